/**
 * Hostile input, one kind at a time: each gets the right HTTP status or JSON-RPC error, and nothing
 * else is affected — the same session, other sessions and the child keep working.
 */

import assert from "node:assert/strict";
import { connectClient, FIXTURE, messagesInBody, startProxy } from "./helpers/proxy_process.ts";

const JSON_AND_SSE = { "Content-Type": "application/json", Accept: "application/json, text/event-stream" };

/** The JSON-RPC messages in an SSE or JSON response body. */
function messagesIn(text: string): Record<string, unknown>[] {
  return text.trim() === "" ? [] : messagesInBody(text);
}

async function session(
  origin: string,
): Promise<(body: BodyInit, headers?: HeadersInit) => Promise<Response>> {
  const initialize = await fetch(`${origin}/mcp`, {
    method: "POST",
    headers: JSON_AND_SSE,
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: {
        protocolVersion: "2025-03-26",
        capabilities: {},
        clientInfo: { name: "hostile", version: "0" },
      },
    }),
  });
  await initialize.body?.cancel();
  const id = initialize.headers.get("mcp-session-id")!;
  return (body, headers = {}) =>
    fetch(`${origin}/mcp`, {
      method: "POST",
      headers: { ...JSON_AND_SSE, "Mcp-Session-Id": id, ...headers },
      body,
    });
}

/** `before`, the raw bytes `bytes`, then `after`, as UTF-8 around them. */
function withBytes(before: string, bytes: number[], after: string): Uint8Array<ArrayBuffer> {
  const encoder = new TextEncoder();
  return new Uint8Array([...encoder.encode(before), ...bytes, ...encoder.encode(after)]);
}

Deno.test("Streamable HTTP: malformed, non-JSON-RPC, invalid UTF-8 and wrongly typed bodies are refused", async () => {
  await using proxy = await startProxy(["--", ...FIXTURE]);
  const post = await session(proxy.origin);
  const cases: [string, BodyInit, HeadersInit, number, number | undefined][] = [
    ["malformed JSON", "{ not json", {}, 400, -32700],
    ["not JSON-RPC", JSON.stringify({ hello: "world" }), {}, 400, -32600],
    ["wrong jsonrpc", JSON.stringify({ jsonrpc: "1.0", id: 1, method: "ping" }), {}, 400, -32600],
    ["invalid UTF-8", new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), {}, 400, -32700],
    // U+FFFD itself, as UTF-8, is a character like any other.
    [
      "U+FFFD",
      JSON.stringify({ jsonrpc: "2.0", id: "fffd", method: "ping", params: { s: "\uFFFD" } }),
      {},
      200,
      undefined,
    ],
    // Inside a string of a valid message: refused, not passed on as U+FFFD (found by QA).
    [
      "invalid UTF-8 in a string",
      withBytes('{"jsonrpc":"2.0","id":1,"method":"ping","params":{"s":"', [0xff, 0xfe], '"}}'),
      {},
      400,
      -32700,
    ],
    [
      "text/plain",
      JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
      { "Content-Type": "text/plain" },
      415,
      undefined,
    ],
    [
      "no SSE in Accept",
      JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
      { Accept: "application/json" },
      406,
      undefined,
    ],
  ];
  for (const [name, body, headers, status, code] of cases) {
    const response = await post(body, headers);
    const text = await response.text();
    assert.equal(response.status, status, `${name}: ${text}`);
    if (code !== undefined) assert.equal(JSON.parse(text).error.code, code, name);
  }
  const ping = await post(JSON.stringify({ jsonrpc: "2.0", id: "still", method: "ping" }));
  assert.deepEqual(messagesIn(await ping.text()), [{ jsonrpc: "2.0", id: "still", result: {} }]);
});

Deno.test("batches, huge ids, duplicate ids in flight and unknown methods are relayed faithfully", async () => {
  await using proxy = await startProxy(["--", ...FIXTURE]);
  const post = await session(proxy.origin);

  const batch = await post(JSON.stringify([
    { jsonrpc: "2.0", id: "b1", method: "ping" },
    {
      jsonrpc: "2.0",
      id: "b2",
      method: "tools/call",
      params: { name: "echo", arguments: { text: "in a batch" } },
    },
  ]));
  const answers = messagesIn(await batch.text());
  assert.deepEqual(answers.map((answer) => answer.id).sort(), ["b1", "b2"]);

  const hugeId = "i".repeat(100_000);
  const huge = await post(JSON.stringify({ jsonrpc: "2.0", id: hugeId, method: "ping" }));
  assert.equal(messagesIn(await huge.text())[0].id, hugeId);

  // Two requests with one id in flight: the second is refused; the first is answered as usual.
  const call = (text: string) =>
    post(JSON.stringify({
      jsonrpc: "2.0",
      id: 7,
      method: "tools/call",
      params: { name: "sleep", arguments: { ms: 300 }, _meta: { text } },
    }));
  const first = call("one");
  await new Promise((resolve) => setTimeout(resolve, 50));
  const second = await call("two");
  assert.equal(second.status, 400);
  assert.match(await second.text(), /already used by a request in flight/);
  const firstAnswer = messagesIn(await (await first).text());
  assert.equal(firstAnswer[0].id, 7);
  assert.ok("result" in firstAnswer[0]);
  const sameBatch = await post(JSON.stringify([
    { jsonrpc: "2.0", id: "x", method: "ping" },
    { jsonrpc: "2.0", id: "x", method: "ping" },
  ]));
  assert.equal(sameBatch.status, 400);
  await sameBatch.body?.cancel();

  const unknown = await post(
    JSON.stringify({ jsonrpc: "2.0", id: 8, method: "vendor/future-method", params: {} }),
  );
  const [answer] = messagesIn(await unknown.text());
  assert.equal((answer.error as { code: number }).code, -32601);
});

Deno.test("a child's non-JSON stdout lines are logged and skipped; its answers still arrive", async () => {
  await using proxy = await startProxy(["--", ...FIXTURE]);
  await using client = await connectClient(proxy.baseUrl(), "mcp");
  const result = await client.callTool({ name: "garbage", arguments: {} });
  assert.deepEqual(result.content, [{ type: "text", text: "after garbage" }]);
  await proxy.waitForStderr(/not a JSON-RPC message \(not JSON\); skipped: this line is not JSON-RPC/);
  await proxy.waitForStderr(/not a JSON-RPC message \(a JSON-RPC message needs "method"/);
});

Deno.test("control characters a child writes to stderr reach the text log as \\xHH, not raw", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-proxy-stderr-" });
  try {
    const script = `${dir}/server.sh`;
    // A colour, a carriage return that would rewrite the line shown, a bell; a tab stays.
    await Deno.writeTextFile(
      script,
      `#!/bin/sh\nprintf '\\033[31mred\\rforged line\\007\\tend\\n' >&2\nexec ${
        FIXTURE.map((word) => `'${word}'`).join(" ")
      }\n`,
    );
    await Deno.chmod(script, 0o755);
    await using proxy = await startProxy(["--", script]);
    const deadline = Date.now() + 10_000;
    while (!proxy.stderr().includes("end") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(proxy.stderr().includes("[default] \\x1b[31mred\\x0dforged line\\x07\tend\n"), proxy.stderr());
    // deno-lint-ignore no-control-regex -- control characters are what it looks for
    assert.ok(!/[\x00-\x08\x0b-\x1f\x7f]/.test(proxy.stderr()), "no raw control character in the log");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A legacy SSE stream opened by hand: its reader, what it read so far, and the path its endpoint named. */
async function rawSseStream(origin: string) {
  const response = await fetch(`${origin}/sse`);
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n\n")) text += (await reader.read()).value;
  return { reader, text, path: /data: (\S+)/.exec(text)![1] };
}

Deno.test("legacy SSE: bad POST bodies get 400 and the session carries on", async () => {
  await using proxy = await startProxy(["--", ...FIXTURE]);
  await using other = await connectClient(proxy.baseUrl(), "sse");
  const stream = await rawSseStream(proxy.origin);
  const { reader } = stream;
  let { text } = stream;
  const endpoint = `${proxy.origin}${stream.path}`;
  const post = async (body: BodyInit) => {
    const answer = await fetch(endpoint, { method: "POST", body });
    await answer.body?.cancel();
    return answer.status;
  };
  const notUtf8 = withBytes('{"jsonrpc":"2.0","id":1,"method":"ping","params":{"s":"', [0xff], '"}}');
  for (
    const body of ["{ nope", "[]", JSON.stringify({ id: 1 }), new Uint8Array([0xc3, 0x28]), "null", notUtf8]
  ) {
    assert.equal(await post(body), 400, String(body));
  }
  assert.equal(await post(JSON.stringify({ jsonrpc: "2.0", id: "alive", method: "ping" })), 202);
  while (!text.includes('"id":"alive"')) text += (await reader.read()).value;
  await reader.cancel();
  assert.deepEqual((await other.callTool({ name: "echo", arguments: { text: "x" } })).content, [
    { type: "text", text: "x" },
  ]);
});

/**
 * Sends `path` a POST head that promises `length` bytes of body, and 10 of them; then goes away. (From
 * 64 KiB on, the proxy reads a body into a buffer of its length: another way.)
 */
async function abortedUpload(origin: string, path: string, length = 1000): Promise<void> {
  const { hostname, port } = new URL(origin);
  const connection = await Deno.connect({ hostname, port: Number(port) });
  const head = `POST ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: application/json\r\n` +
    `Accept: application/json, text/event-stream\r\nContent-Length: ${length}\r\n\r\n`;
  await connection.write(new TextEncoder().encode(`${head}{"jsonrpc"`));
  await new Promise((resolve) => setTimeout(resolve, 100));
  connection.close();
}

Deno.test("a client that goes away mid-body is no error of the proxy: no ERROR line, sessions carry on", async () => {
  await using proxy = await startProxy(["--", ...FIXTURE]);
  await using mcp = await connectClient(proxy.baseUrl(), "mcp");
  const { reader, path } = await rawSseStream(proxy.origin);
  for (const length of [1000, 200_000]) {
    await abortedUpload(proxy.origin, "/mcp", length);
    await abortedUpload(proxy.origin, path, length);
  }
  await reader.cancel();
  assert.deepEqual((await mcp.callTool({ name: "echo", arguments: { text: "x" } })).content, [
    { type: "text", text: "x" },
  ]);
  assert.doesNotMatch(proxy.stderr(), /ERROR/);
});
