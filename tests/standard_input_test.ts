import assert from "node:assert/strict";
import { concatenated } from "../src/large_answer.ts";
import { DENO } from "./helpers/proxy_process.ts";

const COPY = new URL("./helpers/stdin_copy.ts", import.meta.url).pathname;
const WINDOWS = Deno.build.os === "windows";
/** Where a pipe is read from the event loop (see `src/standard_input.ts`). */
const LINUX = Deno.build.os === "linux";

/** Runs the copy helper with `stdin`; writes `pieces` to it when piped, a pause between each. */
async function copied(
  stdin: "piped" | "null" | { file: string },
  pieces: Uint8Array[] = [],
): Promise<{ from: string; bytes: Uint8Array }> {
  const command = typeof stdin === "object"
    // Deno.Command cannot take a file as stdin: a shell redirects it.
    ? new Deno.Command("sh", {
      args: ["-c", `exec "$0" run --quiet "$1" < "$2"`, DENO, COPY, stdin.file],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    })
    : new Deno.Command(DENO, { args: ["run", "--quiet", COPY], stdin, stdout: "piped", stderr: "piped" });
  const child = command.spawn();
  const output = Promise.all([child.stdout.bytes(), new Response(child.stderr).text()]);
  if (stdin === "piped") {
    const writer = child.stdin.getWriter();
    for (const piece of pieces) {
      await writer.write(piece);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await writer.close();
  }
  const [status, [bytes, stderr]] = await Promise.all([child.status, output]);
  assert.equal(status.code, 0, stderr);
  return { from: stderr.split("\n")[0], bytes };
}

Deno.test("standardInput: a pipe is read from the event loop (on Linux), every byte in order", async () => {
  // Pieces of many sizes, some over the 64 KiB a read takes, each of different bytes.
  const pieces = [1, 70_000, 3, 65_536, 200_000, 17].map((size, k) =>
    Uint8Array.from({ length: size }, (_, i) => (i * 31 + k * 7) & 0xff)
  );
  const { from, bytes } = await copied("piped", pieces);
  assert.equal(from, LINUX ? "event loop" : "file");
  assert.deepEqual(bytes, concatenated(pieces));
});

Deno.test("standardInput: a file and /dev/null are read as files", { ignore: WINDOWS }, async () => {
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(path, "line one\nline two\n");
    const fromFile = await copied({ file: path });
    assert.equal(fromFile.from, "file");
    assert.equal(new TextDecoder().decode(fromFile.bytes), "line one\nline two\n");
  } finally {
    await Deno.remove(path);
  }
  const fromNull = await copied("null");
  assert.equal(fromNull.from, "file");
  assert.equal(fromNull.bytes.length, 0);
});

Deno.test(
  "standardInput: a stdin that is stdout's own file is left as it is",
  { ignore: WINDOWS },
  async () => {
    // stdin a duplicate of stdout (a pipe's write end here): non-blocking mode would reach stdout too.
    const child = new Deno.Command("sh", {
      args: ["-c", `exec "$0" run --quiet "$1" <&1`, DENO, COPY],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const [stderr] = await Promise.all([
      new Response(child.stderr).text(),
      child.stdout.cancel(),
      child.status,
    ]);
    assert.equal(stderr.split("\n")[0], "file");
  },
);
