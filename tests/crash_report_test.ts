/**
 * A crash of mcp-proxy (an exception nothing caught, a rejection nothing handled) is reported, with the log
 * lines before it: they wait in a queue for stderr, which Deno's own exit would drop.
 */

import assert from "node:assert/strict";

const FIXTURE = new URL("./fixtures/crash_after_logging.ts", import.meta.url).pathname;

for (const how of ["throw", "reject", "chatty", "unshowable"]) {
  Deno.test(`a crash (${how}) is reported after the log lines before it, and the exit is 1`, async () => {
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--allow-env", "--allow-read", FIXTURE, how],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(stderr);
    assert.equal(code, 1, text);
    const lines = text.trimEnd().split("\n");
    // Found by review: the lines still queued were lost, the last ones first.
    assert.equal(lines.filter((line) => line.includes("of many")).length, 1000);
    const crashed = lines.findIndex((line) => line.startsWith("mcp-proxy: crashed: "));
    assert.ok(crashed > 0, text.slice(-2000));
    // Found by review: a report that could not be made a string left the process running for ever.
    const why = {
      throw: /Error: boom \(thrown\)$/,
      chatty: /Error: boom \(thrown\)$/,
      reject: /Error: boom \(rejected\)$/,
    };
    assert.match(
      lines[crashed],
      why[how as keyof typeof why] ?? /crashed: \(an error that cannot be shown\)$/,
    );
    // The report is the last line, its stack aside: found by review, lines logged after the crash (a busy
    // child's) kept it from going out.
    assert.deepEqual(lines.slice(crashed + 1).filter((line) => !/^\s+at /.test(line)), []);
    assert.match(
      lines[crashed - 1],
      how === "chatty"
        ? /WARNING +(more )+$|^mcp-proxy: \d+ log lines dropped/
        : /ERROR +the last line before the crash$/,
    );
  });
}

Deno.test("a crash is reported to a stderr read slowly: the lines it has not taken after 0.8 s are dropped", async () => {
  // About 1.3 MB/s, where 3 MB wait: found by review, the report was lost behind them.
  const { code, text } = await crashReadSlowly(50, "slow");
  assert.equal(code, 1);
  assert.match(
    text,
    /\nmcp-proxy: \d+ log lines dropped: stderr was not read fast enough\nmcp-proxy: crashed: Error: boom/,
  );
});

/** Runs the fixture with `args`, reading its stderr a chunk each `pauseMs`; its exit code and stderr. */
async function crashReadSlowly(pauseMs: number, ...args: string[]): Promise<{ code: number; text: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-env", "--allow-read", FIXTURE, ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const chunks: Uint8Array[] = [];
  for await (const chunk of child.stderr) {
    chunks.push(chunk);
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
  const { code } = await child.status;
  return { code, text: new TextDecoder().decode(new Uint8Array(chunks.flatMap((chunk) => [...chunk]))) };
}

Deno.test("a crash behind a full queue: every line logged is written or counted as dropped", async () => {
  const { code, text } = await crashReadSlowly(150, "overflow");
  assert.equal(code, 1);
  const lines = text.split("\n");
  const written = lines.filter((line) => line.startsWith("[srv] line ")).length +
    lines.filter((line) => / (WARNING|ERROR) +(line \d+ of many|the last line before the crash)$/.test(line))
      .length;
  const notes = [...text.matchAll(/mcp-proxy: (\d+) log lines dropped/g)].map((match) => Number(match[1]));
  assert.ok(notes.length > 0, "some were dropped");
  // Found by review: a note still queued when the report cut the queue was counted as one line.
  assert.equal(written + notes.reduce((sum, count) => sum + count, 0), 1001 + 30_000, `notes: ${notes}`);
  assert.match(text, /\nmcp-proxy: crashed: Error: boom \(thrown\)/);
});

Deno.test("with --log-format json, the crash's report and the dropped-lines note are JSON lines too", async () => {
  const { code, text } = await crashReadSlowly(150, "overflow", "json");
  assert.equal(code, 1);
  const lines = text.trimEnd().split("\n").map((line) => JSON.parse(line));
  // Found by review: both were plain text.
  assert.ok(lines.some((line) => /^mcp-proxy: \d+ log lines dropped/.test(line.message)));
  const last = lines.at(-1);
  assert.equal(last.level, "CRITICAL");
  assert.match(last.message, /^mcp-proxy: crashed: Error: boom \(thrown\)\n\s+at /);
});
