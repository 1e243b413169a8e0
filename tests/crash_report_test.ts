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
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-env", "--allow-read", FIXTURE, "slow"],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // About 1.3 MB/s, where 3 MB wait: found by review, the report was lost behind them.
  const chunks: Uint8Array[] = [];
  for await (const chunk of child.stderr) {
    chunks.push(chunk);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const { code } = await child.status;
  const text = new TextDecoder().decode(new Uint8Array(chunks.flatMap((chunk) => [...chunk])));
  assert.equal(code, 1);
  assert.match(
    text,
    /\nmcp-proxy: \d+ log lines dropped: stderr was not read fast enough\nmcp-proxy: crashed: Error: boom/,
  );
});
