/**
 * Server mode and protocol revision 2026-07-28 (stateless: `server/discover` instead of `initialize`, the
 * `_meta` envelope on every request, the `Mcp-*` HTTP headers), end to end: the real mcp-proxy in front of
 * a real SDK v2 stdio server (`tests/fixtures/modern_stdio_server.ts`) or a 2025-era one, reached by the
 * official SDK v2 `Client` and by hand-made requests.
 */

import assert from "node:assert/strict";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client-v2";
import {
  connectClient,
  DENO,
  FIXTURE,
  processExists,
  startProxy,
  trackingFetch,
} from "./helpers/proxy_process.ts";
import { startClientMode } from "./helpers/client_mode.ts";

const MODERN_FIXTURE = new URL("./fixtures/modern_stdio_server.ts", import.meta.url).pathname;
const MODERN = "2026-07-28";
const META = {
  "io.modelcontextprotocol/protocolVersion": MODERN,
  "io.modelcontextprotocol/clientCapabilities": {},
};

function modernChild(mode: "modern-only" | "both-eras"): string[] {
  return [DENO, "run", "-A", "--quiet", MODERN_FIXTURE, mode];
}

type Negotiation = "auto" | { pin: string };

/** An SDK v2 client connected to `url` over Streamable HTTP; close it with `await using`. */
async function connectV2(url: string, mode: Negotiation): Promise<Client & AsyncDisposable> {
  const client = new Client(
    { name: "modern-server-test", version: "1.0.0" },
    { versionNegotiation: { mode, probe: { timeoutMs: 10_000 } } },
  );
  const tracked = trackingFetch();
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: tracked.fetch }), {
    timeout: 20_000,
  });
  const close = async () => {
    await client.close();
    await tracked.settled();
  };
  return Object.assign(client, { [Symbol.asyncDispose]: close });
}

function textOf(result: unknown): string {
  return (result as { content: { text: string }[] }).content[0].text;
}

/** A hand-made POST to `url` with the headers of revision 2026-07-28 for `body`, and `extra` ones. */
function post(
  url: string,
  body: Record<string, unknown>,
  extra: Record<string, string> = {},
): Promise<Response> {
  const headers: Record<string, string> = {
    "Content-Type": "application/json",
    Accept: "application/json, text/event-stream",
    "MCP-Protocol-Version": MODERN,
    "Mcp-Method": body.method as string,
    ...extra,
  };
  for (const [name, value] of Object.entries(extra)) if (value === "") delete headers[name];
  return fetch(url, { method: "POST", headers, body: JSON.stringify({ jsonrpc: "2.0", ...body }) });
}

/** The JSON-RPC messages of a JSON or SSE response body. */
async function messagesOf(response: Response): Promise<Record<string, unknown>[]> {
  const text = await response.text();
  if (!(response.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
    return [JSON.parse(text)];
  }
  return text.split("\n").filter((line) => line.startsWith("data: ")).map((line) =>
    JSON.parse(line.slice(6))
  );
}

async function status(origin: string): Promise<Record<string, Record<string, unknown>>> {
  return (await (await fetch(`${origin}/status`)).json()).servers;
}

Deno.test("server mode 2026-07-28: a pinned SDK v2 client is served by a child of its own, a 2025 client by the sessions' child", async () => {
  await using proxy = await startProxy(["--port", "0", "--", ...modernChild("both-eras")]);
  const url = `${proxy.origin}/mcp`;
  {
    await using modern = await connectV2(url, { pin: MODERN });
    assert.equal(modern.getNegotiatedProtocolVersion(), MODERN);
    const echoed = textOf(await modern.callTool({ name: "echo", arguments: { text: "hallo" } }));
    assert.match(echoed, /^echo\(modern \d+\): hallo$/);
    // The SDK client sends Mcp-Param-Region for the x-mcp-header argument; the proxy checks it.
    assert.match(
      textOf(await modern.callTool({ name: "regional", arguments: { region: "zürich" } })),
      /^regional\(modern \d+\): region=zürich$/,
    );
    await using legacy = await connectClient(proxy.origin, "mcp");
    const legacyEcho = textOf(await legacy.callTool({ name: "echo", arguments: { text: "hi" } }));
    assert.match(legacyEcho, /^echo\(legacy \d+\): hi$/);
    // Two children: each stays in the era of its first message.
    assert.notEqual(/\d+/.exec(echoed)![0], /\d+/.exec(legacyEcho)![0]);
    const servers = await status(proxy.origin);
    assert.deepEqual((servers.default.modern as { revision: string }).revision, "served");
  }
  {
    // An auto client finds the revision too.
    await using auto = await connectV2(url, "auto");
    assert.equal(auto.getNegotiatedProtocolVersion(), MODERN);
    assert.match(textOf(await auto.callTool({ name: "echo", arguments: { text: "a" } })), /^echo\(modern /);
  }
});

Deno.test("server mode 2026-07-28: a 2025-era server is asked once; its modern clients get -32022 and auto ones fall back", async () => {
  await using proxy = await startProxy(["--port", "0", "--", ...FIXTURE]);
  const url = `${proxy.origin}/mcp`;
  const refused = await post(url, { id: 1, method: "tools/list", params: { _meta: META } });
  assert.equal(refused.status, 400);
  const body = await refused.json();
  assert.equal(body.id, 1);
  assert.equal(body.error.code, -32022);
  assert.ok(body.error.data.supported.includes("2025-11-25"));
  assert.equal(body.error.data.requested, MODERN);
  const modern = (await status(proxy.origin)).default.modern as { revision: string; process?: unknown };
  assert.equal(modern.revision, "not served");
  assert.equal(modern.process, undefined);
  // Its modern child was stopped: only the sessions' child is left.
  const pids = [...proxy.stderr().matchAll(/\(pid (\d+)\)/g)].map((match) => Number(match[1]));
  assert.equal(pids.length, 2);
  await waitFor("the modern child to stop", () => Promise.resolve(!processExists(pids[1])));
  await proxy.waitForStderr(/does not serve protocol revision 2026-07-28/);
  {
    await using auto = await connectV2(url, "auto");
    assert.equal(auto.getNegotiatedProtocolVersion(), "2025-11-25");
    assert.ok((await auto.listTools()).tools.length > 0);
  }
  await assert.rejects(connectV2(url, { pin: MODERN }), /-32022|[Uu]nsupported protocol version/);
});

Deno.test("server mode 2026-07-28: headers that disagree with the body are refused with -32020, as the revision says", async () => {
  await using proxy = await startProxy(["--port", "0", "--", ...modernChild("modern-only")]);
  const url = `${proxy.origin}/mcp`;
  const call = (region: string) => ({
    id: "c",
    method: "tools/call",
    params: { _meta: META, name: "regional", arguments: { region } },
  });
  // The first request of all: the proxy listed the tools itself first, so their x-mcp-headers are known.
  const early = await post(url, call("eu"), { "Mcp-Name": "regional", "Mcp-Param-Region": "us" });
  assert.equal(early.status, 400);
  assert.match((await early.json()).error.message, /Mcp-Param-Region/);
  const cases: [string, Promise<Response>, number, RegExp][] = [
    [
      "no Mcp-Method",
      post(url, { id: 1, method: "tools/list", params: { _meta: META } }, { "Mcp-Method": "" }),
      -32020,
      /Mcp-Method/,
    ],
    [
      "other Mcp-Method",
      post(url, { id: 2, method: "tools/list", params: { _meta: META } }, { "Mcp-Method": "prompts/list" }),
      -32020,
      /prompts\/list/,
    ],
    [
      "other version",
      post(url, { id: 3, method: "tools/list", params: { _meta: META } }, {
        "MCP-Protocol-Version": "2026-09-01",
      }),
      -32020,
      /2026-09-01/,
    ],
    [
      "no version header",
      post(url, { id: 4, method: "tools/list", params: { _meta: META } }, { "MCP-Protocol-Version": "" }),
      -32020,
      /MCP-Protocol-Version/,
    ],
    ["no Mcp-Name", post(url, { ...call("eu"), id: 5 }), -32020, /Mcp-Name/],
    ["other Mcp-Name", post(url, { ...call("eu"), id: 6 }, { "Mcp-Name": "echo" }), -32020, /echo/],
    ["modern header, no envelope", post(url, { id: 7, method: "tools/list", params: {} }), -32602, /_meta/],
    [
      "no capabilities in the envelope",
      post(url, {
        id: 8,
        method: "tools/list",
        params: { _meta: { "io.modelcontextprotocol/protocolVersion": MODERN } },
      }),
      -32602,
      /clientCapabilities/,
    ],
  ];
  for (const [what, sent, code, message] of cases) {
    const response = await sent;
    const body = await response.json();
    assert.equal(response.status, 400, what);
    assert.equal(body.error.code, code, what);
    assert.match(body.error.message, message, what);
  }
  // A batch may hold no message of the revision.
  const batch = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream" },
    body: JSON.stringify([{ jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: META } }]),
  });
  assert.equal(batch.status, 400);
  assert.equal((await batch.json()).error.code, -32600);
  // Once tools/list declared the x-mcp-header, a call's Mcp-Param header must agree with its argument.
  const listed = await messagesOf(await post(url, { id: 9, method: "tools/list", params: { _meta: META } }));
  assert.ok((listed[0].result as { tools: unknown[] }).tools.length > 0);
  const wrong = await post(url, call("eu"), { "Mcp-Name": "regional", "Mcp-Param-Region": "us" });
  assert.equal(wrong.status, 400);
  assert.match((await wrong.json()).error.message, /Mcp-Param-Region/);
  const missing = await post(url, call("eu"), { "Mcp-Name": "regional" });
  assert.equal(missing.status, 400);
  assert.match((await missing.json()).error.message, /Mcp-Param-Region header is absent/);
  const right = await messagesOf(
    await post(url, call("=?x"), { "Mcp-Name": "regional", "Mcp-Param-Region": "=?base64?PT94?=" }),
  );
  assert.match(textOf(right[0].result), /region==\?x$/);
  // No GET stream in this revision.
  const get = await fetch(url, { headers: { Accept: "text/event-stream", "MCP-Protocol-Version": MODERN } });
  await get.body?.cancel();
  assert.equal(get.status, 405);
});

Deno.test("server mode 2026-07-28: progress and subscriptions/listen reach the client that asked, under its own ids", async () => {
  // A subscription outlives --request-timeout: it is no request left unanswered.
  await using proxy = await startProxy([
    "--port",
    "0",
    "--request-timeout",
    "1",
    "--",
    ...modernChild("modern-only"),
  ]);
  const url = `${proxy.origin}/mcp`;
  // Two clients listen with the same id: each gets its own acknowledgement and change notification.
  const listen = () =>
    post(url, {
      id: "L",
      method: "subscriptions/listen",
      params: { _meta: META, notifications: { toolsListChanged: true } },
    });
  const listeners = await Promise.all([listen(), listen()]);
  const readers = listeners.map((response) => {
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
    return response.body!.pipeThrough(new TextDecoderStream()).getReader();
  });
  async function nextMessage(reader: ReadableStreamDefaultReader<string>, buffer: { text: string }) {
    while (true) {
      const data = /^data: (.*)$/m.exec(buffer.text);
      const end = buffer.text.indexOf("\n\n");
      if (data !== null && end >= 0) {
        buffer.text = buffer.text.slice(end + 2);
        return JSON.parse(data[1]);
      }
      if (end >= 0) {
        buffer.text = buffer.text.slice(end + 2); // A comment or an event without data.
        continue;
      }
      const { done, value } = await reader.read();
      if (done) throw new Error("the listen stream ended");
      buffer.text += value;
    }
  }
  const buffers = readers.map(() => ({ text: "" }));
  for (const [i, reader] of readers.entries()) {
    const ack = await nextMessage(reader, buffers[i]);
    assert.equal(ack.method, "notifications/subscriptions/acknowledged");
    assert.equal(ack.params._meta["io.modelcontextprotocol/subscriptionId"], "L");
  }
  await new Promise((resolve) => setTimeout(resolve, 1300));
  const changed = await messagesOf(
    await post(url, {
      id: 1,
      method: "tools/call",
      params: { _meta: META, name: "change", arguments: {} },
    }, { "Mcp-Name": "change" }),
  );
  assert.match(textOf(changed.at(-1)!.result), /said/);
  for (const [i, reader] of readers.entries()) {
    const note = await nextMessage(reader, buffers[i]);
    assert.equal(note.method, "notifications/tools/list_changed");
    assert.equal(note.params._meta["io.modelcontextprotocol/subscriptionId"], "L");
  }
  for (const reader of readers) await reader.cancel();

  // Progress goes on the call's own stream, with the client's token; the answer has the client's id.
  const slow = await messagesOf(
    await post(url, {
      id: 77,
      method: "tools/call",
      params: { _meta: { ...META, progressToken: "tok" }, name: "slow", arguments: { ms: 150 } },
    }, { "Mcp-Name": "slow" }),
  );
  assert.deepEqual(
    slow.slice(0, 2).map((message) => (message.params as { progressToken: unknown }).progressToken),
    [
      "tok",
      "tok",
    ],
  );
  assert.equal(slow.at(-1)!.id, 77);
  assert.match(textOf(slow.at(-1)!.result), /done/);
});

/** A `/bin/sh` script in a temporary directory; returns its path and the directory (to be removed). */
async function script(body: string): Promise<{ path: string; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-proxy-modern-" });
  const path = `${dir}/server.sh`;
  await Deno.writeTextFile(path, body);
  await Deno.chmod(path, 0o755);
  return { path, dir };
}

async function waitFor(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

Deno.test("server mode 2026-07-28: a child that stops while asked is taken as not serving (-32022, no child per request)", async () => {
  // A 2025-era server that exits when its first message is no initialize: the second start (the modern
  // child) exits at once; the others run the fixture.
  const { path, dir } = await script(
    `#!/bin/sh\nn=0\n[ -f "$0.count" ] && read n < "$0.count"\nn=$((n+1))\necho "$n" > "$0.count"\n` +
      `[ "$n" = 2 ] && exit 1\nexec ${DENO} run -A --quiet ${MODERN_FIXTURE} both-eras\n`,
  );
  try {
    await using proxy = await startProxy(["--port", "0", "--", path]);
    const url = `${proxy.origin}/mcp`;
    for (const id of [1, 2, 3]) {
      const refused = await post(url, { id, method: "server/discover", params: { _meta: META } });
      assert.equal(refused.status, 400);
      const body = await refused.json();
      assert.deepEqual([body.id, body.error.code], [id, -32022]);
    }
    assert.equal(
      ((await status(proxy.origin)).default.modern as { revision: string }).revision,
      "not served",
    );
    assert.equal(await Deno.readTextFile(`${path}.count`), "2\n", "one modern child, not one per request");
    await proxy.waitForStderr(/stopped while asked .*asked again in 30 s/);
    // A client that can fall back does, to the sessions' child.
    await using auto = await connectV2(url, "auto");
    assert.equal(auto.getNegotiatedProtocolVersion(), "2025-11-25");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("server mode 2026-07-28: a revision the child did not name gets -32022 with the ones it did; /health counts the modern child", async () => {
  await using proxy = await startProxy(["--port", "0", "--no-restart", "--", ...modernChild("both-eras")]);
  const url = `${proxy.origin}/mcp`;
  const later = { ...META, "io.modelcontextprotocol/protocolVersion": "2099-01-01" };
  const refused = await post(url, { id: 1, method: "tools/list", params: { _meta: later } }, {
    "MCP-Protocol-Version": "2099-01-01",
  });
  assert.equal(refused.status, 400);
  const body = await refused.json();
  assert.equal(body.error.code, -32022);
  assert.deepEqual(body.error.data.supported.slice(0, 2), ["2026-07-28", "2025-11-25"]);
  // No date, no revision of the stateless era: a 2025 request with a bad version header, as before.
  const garbage = await post(url, { id: 2, method: "tools/list", params: {} }, {
    "MCP-Protocol-Version": "zzz",
  });
  assert.equal(garbage.status, 400);
  assert.equal((await garbage.json()).error.code, -32000);
  const health = async () => {
    const response = await fetch(`${proxy.origin}/health`);
    await response.body?.cancel();
    return response.status;
  };
  assert.equal(await health(), 200);
  const pid = ((await status(proxy.origin)).default.modern as { process: { pid: number } }).process.pid;
  Deno.kill(pid, "SIGKILL");
  await waitFor("the modern child to fail", async () => await health() === 503);
});

Deno.test("server mode 2026-07-28: a child silent before initialize keeps a modern client waiting 10 s at most, then -32022", async () => {
  // A 2025-era server that reads every line and answers nothing before initialize (as some do).
  const { path, dir } = await script(
    `#!/bin/sh\nexec ${DENO} eval --quiet 'for await (const _ of Deno.stdin.readable) {}'\n`,
  );
  try {
    await using proxy = await startProxy(["--port", "0", "--", path]);
    const started = Date.now();
    const refused = await post(`${proxy.origin}/mcp`, {
      id: 1,
      method: "server/discover",
      params: { _meta: META },
    });
    const waited = Date.now() - started;
    assert.equal(refused.status, 400);
    assert.equal((await refused.json()).error.code, -32022);
    assert.ok(waited >= 9_000 && waited < 20_000, `waited ${waited} ms`);
    assert.equal(((await status(proxy.origin)).default.modern as { revision: string }).revision, "asking");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("server mode 2026-07-28 behind client mode: a call cancelled by the client, or timed out by client mode, is cancelled at the child", async () => {
  await using proxy = await startProxy(["--port", "0", "--", ...modernChild("modern-only")]);
  const url = `${proxy.origin}/mcp`;
  const running = async () =>
    ((await status(proxy.origin)).default.modern as { process?: { sessions: number } }).process?.sessions ??
      0;
  const slow = (id: number) => ({
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: { _meta: META, name: "slow", arguments: { ms: 20_000 } },
  });

  const cancelled = startClientMode(url);
  await cancelled.write(slow(1));
  await waitFor("the call to run", async () => await running() === 1);
  await cancelled.write({
    jsonrpc: "2.0",
    method: "notifications/cancelled",
    params: { requestId: 1, reason: "user" },
  });
  await waitFor("the call to end at the child", async () => await running() === 0, 3000);
  assert.equal((await cancelled.end()).code, 0);

  const timedOut = startClientMode(url, ["--request-timeout", "1"]);
  await timedOut.write(slow(2));
  const answer = await timedOut.read();
  assert.deepEqual([answer.id, (answer.error as { code: number }).code], [2, -32001]);
  await waitFor("the call to end at the child", async () => await running() === 0, 3000);
  const { code, stderr } = await timedOut.end();
  assert.equal(code, 0);
  assert.doesNotMatch(stderr, /lost/, "no cancellation the server refuses");
});
