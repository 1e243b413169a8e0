import assert from "node:assert/strict";
import { attribute, functionName } from "../bench/perf_attribution.ts";

const MAP = "(/tmp/perf-4242.map)";
const DENO = "(/opt/deno/deno)";
const LIBC = "(/usr/lib/x86_64-linux-gnu/libc.so.6)";
const KERNEL = "([kernel.kallsyms])";

/** One sample as `perf script -F comm,tid,time,ip,sym,dso` prints it: frames innermost first. */
function sample(thread: string, tid: number, time: number, frames: [string, string][]): string {
  const lines = frames.map(([symbol, dso], k) => `\t    ${(0x1000 + k).toString(16)} ${symbol} ${dso}`);
  return `${thread} ${tid} ${time.toFixed(6)}: \n${lines.join("\n")}\n`;
}

const script = [
  // JSON.parse's native work, under parseMessages, under send: charged to parseMessages.
  sample("deno", 4242, 100.0, [
    ["[unknown]", DENO],
    ["JS:*'parseMessages file:///repo/src/jsonrpc.ts:63:34", MAP],
    ["JS:+'send file:///repo/src/client/streamable_http_client.ts:62:13", MAP],
    ["__libc_start_call_main", LIBC],
  ]),
  // The same function compiled by another tier counts as the same function.
  sample("deno", 4242, 100.5, [
    ["JS:~'parseMessages file:///repo/src/jsonrpc.ts:63:34", MAP],
    ["JS:+'send file:///repo/src/client/streamable_http_client.ts:62:13", MAP],
  ]),
  // No JavaScript on the stack: the event loop, or what is outermost.
  sample("deno", 4242, 101.0, [["epoll_wait", LIBC], ["[unknown]", DENO], ["__libc_start_call_main", LIBC]]),
  sample("deno", 4242, 101.5, [["tcp_sendmsg", KERNEL], ["__send", LIBC]]),
  // A recursive function counts once in the inclusive times.
  sample("deno", 4242, 101.7, [
    ["JS:+'walk file:///repo/src/tree.ts:1:1", MAP],
    ["JS:+'walk file:///repo/src/tree.ts:1:1", MAP],
    ["JS:+' file:///repo/src/standard_input.ts:32:27", MAP],
  ]),
  // Another thread, whose name holds a space: charged to the thread.
  sample("V8 DefaultWorke", 4243, 102.0, [["[unknown]", DENO]]),
].join("\n");

Deno.test("attribute: each sample is charged to its innermost JavaScript function, or else where it ran", () => {
  const result = attribute(script, 4242, "/repo");
  assert.equal(result.samples, 6);
  assert.equal(result.seconds, 2);
  assert.deepEqual(
    Object.fromEntries(result.self),
    {
      "JS parseMessages src/jsonrpc.ts": 2,
      "native, no JS on the stack (event loop, ops, GC)": 1,
      "native, no JS on the stack, under __send": 1,
      "JS walk src/tree.ts": 1,
      "thread V8 DefaultWorke": 1,
    },
  );
  assert.deepEqual(
    Object.fromEntries(result.inclusive),
    {
      "parseMessages src/jsonrpc.ts": 2,
      "send src/client/streamable_http_client.ts": 2,
      "walk src/tree.ts": 1,
      "(anonymous) src/standard_input.ts": 1,
    },
  );
});

Deno.test("attribute: no samples, no time", () => {
  const result = attribute("", 1);
  assert.equal(result.samples, 0);
  assert.equal(result.seconds, 0);
  assert.equal(result.self.size, 0);
});

Deno.test("functionName: Deno's extensions, npm packages and regular expressions read short", () => {
  assert.equal(
    functionName("JS:+'decode ext:deno_web/08_text_encoding.js:1:1721", ""),
    "decode deno_web/08_text_encoding.js",
  );
  assert.equal(
    functionName(
      "JS:^'dispatch file:///root/.cache/deno/npm/registry.npmjs.org/hono/4.13.23/dist/compose.js:4:5",
      "/work/main",
    ),
    "dispatch npm:hono@4.13.23/dist/compose.js",
  );
  assert.equal(
    functionName(
      "JS:*'send file:///w/node_modules/.deno/@modelcontextprotocol+sdk@1.32.2/node_modules/@modelcontextprotocol/sdk/dist/esm/x.js:1:2",
      "/w",
    ),
    "send npm:@modelcontextprotocol+sdk@1.32.2/dist/esm/x.js",
  );
  assert.equal(
    functionName("RegExp.< src: '[^\\0-\\x7f]' flags: ''", ""),
    "RegExp.< src: '[^\\0-\\x7f]' flags: ''",
  );
});
