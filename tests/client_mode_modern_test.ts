/**
 * Client mode and protocol revision 2026-07-28 (stateless: `server/discover` instead of `initialize`,
 * the `_meta` envelope on every request, and the `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` and
 * `Mcp-Param-*` HTTP headers), end to end: the official TypeScript SDK v2 `Client` speaks to mcp-proxy
 * over stdio, and mcp-proxy relays to a real SDK v2 server over Streamable HTTP
 * (`tests/fixtures/modern_http_server.ts`), which records the headers each POST carried.
 *
 * The client runs on {@link DenoStdioTransport} (it closes all it opens, so both sanitizers stay on),
 * given a `pid` so that the SDK treats it as a stdio transport and probes in place; one test runs the
 * SDK's own `StdioClientTransport`, which probes on a disposable sibling process (and leaves timers
 * armed after its close, so that test runs without the sanitizers).
 */

import assert from "node:assert/strict";
import { Client, ProtocolError, UnsupportedProtocolVersionError } from "@modelcontextprotocol/client-v2";
import type { Transport } from "@modelcontextprotocol/client-v2";
import { StdioClientTransport } from "@modelcontextprotocol/client-v2/stdio";
import type { SeenRequest } from "./fixtures/modern_http_server.ts";
import { DenoStdioTransport } from "./helpers/deno_stdio_transport.ts";
import { DENO, processExists } from "./helpers/proxy_process.ts";
import { runClientModeWithInput, startClientMode } from "./helpers/client_mode.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const FIXTURE = new URL("./fixtures/modern_http_server.ts", import.meta.url).pathname;
const MODERN = "2026-07-28";

/** A running `modern_http_server.ts`. */
interface ModernServer extends AsyncDisposable {
  /** `http://127.0.0.1:PORT/mcp`. */
  readonly url: string;
  /** Every POST the server received so far, in order. */
  seen(): Promise<SeenRequest[]>;
  stderr(): string;
  stop(): Promise<void>;
}

async function startModernServer(mode: "modern-only" | "both-eras"): Promise<ModernServer> {
  const child = new Deno.Command(DENO, {
    args: ["run", "-A", "--quiet", FIXTURE, mode],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const readingStderr = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) stderr += chunk;
  })();
  const stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let stopped: Promise<void> | undefined;
  let readingStdout: Promise<void> = Promise.resolve();
  const stop = () => {
    stopped ??= (async () => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
      await Promise.all([readingStdout, readingStderr]);
    })();
    return stopped;
  };

  // Its first stdout line is its URL; without it in 20 s, kill it (which ends the read).
  const timer = setTimeout(() => stop(), 20_000);
  let first = "";
  while (!first.includes("\n")) {
    const { done, value } = await stdout.read();
    if (done) break;
    first += value;
  }
  clearTimeout(timer);
  readingStdout = (async () => {
    while (!(await stdout.read()).done) {
      // Drain.
    }
  })();
  const url = /^(http:\/\/127\.0\.0\.1:\d+\/mcp)\n/.exec(first)?.[1];
  if (url === undefined) {
    await stop();
    throw new Error(`the modern fixture server did not start (stdout: ${JSON.stringify(first)}):\n${stderr}`);
  }
  const seen = async () => {
    const response = await fetch(new URL("/seen", url));
    assert.equal(response.status, 200);
    return await response.json() as SeenRequest[];
  };
  return { url, seen, stderr: () => stderr, stop, [Symbol.asyncDispose]: stop };
}

/** {@link DenoStdioTransport} with a `pid`: the SDK v2 client then probes as on stdio, in place. */
class StdioShapedTransport extends DenoStdioTransport {
  get pid(): number | null {
    return null;
  }
}

type Negotiation = "legacy" | "auto" | { pin: string };

/** An SDK v2 client speaking to `mcp-proxy URL` over stdio. */
interface ProxiedClient extends AsyncDisposable {
  readonly client: Client;
  /** What the proxy wrote to stderr so far. */
  stderr(): string;
  readonly badLines: string[];
  close(): Promise<void>;
}

function newClient(mode: Negotiation): Client {
  return new Client(
    { name: "modern-test-client", version: "1.0.0" },
    { versionNegotiation: { mode, probe: { timeoutMs: 5000 } } },
  );
}

const PROXY_ARGS = (url: string) => ["run", "-A", "--quiet", MAIN, url];

/** Starts mcp-proxy in client mode for `url` and connects a v2 client with `mode` to it. */
async function connectThroughProxy(url: string, mode: Negotiation): Promise<ProxiedClient> {
  const transport = new StdioShapedTransport({
    command: DENO,
    args: PROXY_ARGS(url),
    env: Deno.env.toObject(),
  });
  const client = newClient(mode);
  try {
    await client.connect(transport as unknown as Transport, { timeout: 8000 });
  } catch (error) {
    await transport.close();
    throw new Error(`cannot connect through client mode: ${error}\n--- proxy stderr:\n${transport.stderr}`, {
      cause: error,
    });
  }
  const close = async () => {
    await client.close();
    await transport.close();
  };
  return {
    client,
    stderr: () => transport.stderr,
    badLines: transport.badLines,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** How the SDK v2 client encodes a header value that is not plain ASCII. */
function base64Sentinel(value: string): string {
  return `=?base64?${btoa(String.fromCharCode(...new TextEncoder().encode(value)))}?=`;
}

function textOf(result: unknown): string {
  const content = (result as { content: { type: string; text?: string }[] }).content;
  return content.map((part) => part.text ?? "").join("\n");
}

/** Every request through the proxy once, checking the answers. */
async function exerciseModern(client: Client): Promise<void> {
  assert.equal(client.getProtocolEra(), "modern");
  assert.equal(client.getNegotiatedProtocolVersion(), MODERN);
  const tools = (await client.listTools()).tools.map((tool) => tool.name).sort();
  assert.deepEqual(tools, ["echo", "grüße", "regional"]);
  assert.equal(
    textOf(await client.callTool({ name: "echo", arguments: { text: "hallo" } })),
    "echo(modern): hallo",
  );
  assert.equal(
    textOf(await client.callTool({ name: "regional", arguments: { region: "eu-west" } })),
    "regional(modern): region=eu-west",
  );
  assert.equal(
    textOf(await client.callTool({ name: "regional", arguments: { region: "zürich" } })),
    "regional(modern): region=zürich",
  );
  assert.equal(
    textOf(await client.callTool({ name: "grüße", arguments: { wer: "Welt" } })),
    "grüße(modern) an Welt",
  );
  const read = await client.readResource({ uri: "memo://plain" });
  assert.deepEqual(
    read.contents.map((content) => [content.uri, "text" in content ? content.text : undefined]),
    [
      ["memo://plain", "plain memo (modern)"],
    ],
  );
}

/** What the server saw of {@link exerciseModern}: the right headers on every POST, and each answered 200. */
function assertModernHeaders(seen: SeenRequest[]): void {
  assert.ok(seen.length >= 7, `at least discover, list, four calls and a read: ${JSON.stringify(seen)}`);
  assert.ok(!seen.some((entry) => entry.method === "initialize"), "no initialize in the modern era");
  assert.equal(seen.filter((entry) => entry.method === "server/discover" && entry.status === 200).length, 1);
  for (const entry of seen) {
    const what = JSON.stringify(entry);
    assert.equal(entry.status, 200, what);
    assert.equal(entry["mcp-protocol-version"], MODERN, what);
    assert.equal(entry["mcp-method"], entry.method, what);
  }
  assert.deepEqual(
    seen.filter((entry) => entry.method === "tools/call").map((
      entry,
    ) => [entry["mcp-name"], entry["mcp-param-region"]]),
    [
      ["echo", null],
      ["regional", "eu-west"],
      ["regional", base64Sentinel("zürich")],
      [base64Sentinel("grüße"), null],
    ],
  );
  assert.deepEqual(
    seen.filter((entry) => entry.method === "resources/read").map((entry) => entry["mcp-name"]),
    ["memo://plain"],
  );
  assert.deepEqual(
    seen.filter((entry) => entry.method === "tools/list").map((entry) => entry["mcp-name"]),
    [null],
  );
}

Deno.test("client mode, pinned to 2026-07-28, against a modern-only server: every request with its headers", async () => {
  await using server = await startModernServer("modern-only");
  await using proxied = await connectThroughProxy(server.url, { pin: MODERN });
  await exerciseModern(proxied.client);
  assertModernHeaders(await server.seen());
  assert.deepEqual(proxied.badLines, [], "every stdout line is a JSON-RPC message");
});

Deno.test({
  name: "client mode, pinned to 2026-07-28, through the SDK's own StdioClientTransport (its sibling probe)",
  // The SDK's StdioClientTransport leaves its 1 s and 2 s reaping timers armed after close() resolves.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using server = await startModernServer("modern-only");
    const transport = new StdioClientTransport({
      command: DENO,
      args: PROXY_ARGS(server.url),
      env: Deno.env.toObject(),
      stderr: "ignore",
    });
    const client = newClient({ pin: MODERN });
    let pid: number | null = null;
    try {
      await client.connect(transport, { timeout: 8000 });
      pid = transport.pid;
      await exerciseModern(client);
    } finally {
      await client.close();
    }
    assert.ok(pid !== null && !processExists(pid), `the session's proxy (pid ${pid}) is gone`);
    // One discover, by the disposable sibling proxy; the session's proxy starts after it is reaped.
    assertModernHeaders(await server.seen());
  },
});

Deno.test("client mode, auto negotiation, against a server of both eras: ends in the modern era", async () => {
  await using server = await startModernServer("both-eras");
  await using proxied = await connectThroughProxy(server.url, "auto");
  assert.equal(proxied.client.getProtocolEra(), "modern", `not a legacy fallback:\n${proxied.stderr()}`);
  await exerciseModern(proxied.client);
  assertModernHeaders(await server.seen());
  assert.deepEqual(proxied.badLines, [], "every stdout line is a JSON-RPC message");
});

Deno.test("client mode relays the server's own JSON-RPC error unchanged: -32022 with data.supported", async () => {
  await using server = await startModernServer("modern-only");
  // The default, legacy negotiation: the client sends initialize, which a modern-only server refuses.
  let failure: unknown;
  try {
    const proxied = await connectThroughProxy(server.url, "legacy");
    await proxied.close();
  } catch (error) {
    failure = error;
  }
  assert.ok(failure instanceof Error, "connecting with initialize to a modern-only server fails");
  // What the SDK made of the error answer it got: with the server's own answer relayed, the SDK's
  // typed error for -32022, carrying the server's code, message and data.
  const refused = failure.cause;
  assert.ok(refused instanceof ProtocolError, failure.message);
  assert.equal(refused.code, -32022, failure.message);
  assert.deepEqual(refused.data, { supported: [MODERN], requested: "2025-11-25" }, failure.message);
  assert.equal(refused.message, "Unsupported protocol version: 2025-11-25", failure.message);
  assert.ok(refused instanceof UnsupportedProtocolVersionError, failure.message);
  const seen = await server.seen();
  assert.deepEqual(
    seen.filter((entry) => entry.method === "initialize").map((entry) => entry.status),
    [400],
    `the server refused the one initialize itself: ${JSON.stringify(seen)}`,
  );
});

Deno.test("client mode: a call refused for the Mcp-Param header of a tool not listed yet is listed, and goes again once", async () => {
  await using server = await startModernServer("modern-only");
  const meta = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
    progressToken: "p",
  };
  const { code, stdout, stderr } = await runClientModeWithInput(server.url, [
    {
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call",
      params: { _meta: meta, name: "regional", arguments: { region: "eu" } },
    },
    // An error of the server's own (no region given): passed on, not sent again.
    { jsonrpc: "2.0", id: 2, method: "tools/call", params: { _meta: meta, name: "regional", arguments: {} } },
  ]);
  assert.equal(code, 0, stderr);
  const answers = stdout.trim().split("\n").map((line) => JSON.parse(line));
  const first = answers.find((answer) => answer.id === 1);
  assert.equal(first?.result?.content?.[0]?.text, "regional(modern): region=eu", stdout);
  assert.equal(answers.filter((answer) => answer.id === 1).length, 1);
  const second = answers.filter((answer) => answer.id === 2);
  assert.equal(second.length, 1, stdout);
  assert.ok(second[0].error !== undefined || second[0].result?.isError === true, stdout);
  const seen = await server.seen();
  const calls = seen.filter((entry) => entry.method === "tools/call");
  // The first call twice (400, then 200 with the header); the list in between, by the proxy.
  assert.deepEqual(calls.filter((entry) => entry["mcp-param-region"] === "eu").map((entry) => entry.status), [
    200,
  ]);
  assert.equal(seen.filter((entry) => entry.method === "tools/list").length, 1, JSON.stringify(seen));
  assert.equal(calls.length, 3, JSON.stringify(seen));
});

Deno.test("client mode: a -32020 that comes on the answer's SSE stream (the server may have run the call) is passed on, never sent again", async () => {
  let calls = 0;
  let lists = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const body = await request.json();
    if (body.method === "tools/list") {
      lists++;
      return Response.json({
        jsonrpc: "2.0",
        id: body.id,
        result: {
          tools: [{
            name: "regional",
            inputSchema: {
              type: "object",
              properties: { region: { type: "string", "x-mcp-header": "Region" } },
            },
          }],
        },
      });
    }
    calls++;
    const refusal = {
      jsonrpc: "2.0",
      id: body.id,
      error: { code: -32020, message: "Header mismatch, said late" },
    };
    return new Response(`event: message\ndata: ${JSON.stringify(refusal)}\n\n`, {
      headers: { "Content-Type": "text/event-stream" },
    });
  });
  try {
    const meta = {
      "io.modelcontextprotocol/protocolVersion": MODERN,
      "io.modelcontextprotocol/clientCapabilities": {},
    };
    const { code, stdout, stderr } = await runClientModeWithInput(
      `http://127.0.0.1:${server.addr.port}/mcp`,
      [{
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: { _meta: meta, name: "regional", arguments: { region: "eu" } },
      }],
      { args: ["--transport", "streamablehttp"] },
    );
    assert.equal(code, 0, stderr);
    assert.equal(JSON.parse(stdout.trim()).error.code, -32020, stdout);
    assert.deepEqual({ calls, lists }, { calls: 1, lists: 0 });
  } finally {
    await server.shutdown();
  }
});

Deno.test("client mode: calls refused together for a tool not listed yet share one listing, a refusal that comes after it too", async () => {
  let lists = 0;
  const calls: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const body = await request.json();
    if (body.method === "tools/list") {
      lists++;
      return Response.json({
        jsonrpc: "2.0",
        id: body.id,
        result: {
          tools: [{
            name: "regional",
            inputSchema: {
              type: "object",
              properties: { region: { type: "string", "x-mcp-header": "Region" } },
            },
          }],
        },
      });
    }
    const header = request.headers.get("mcp-param-region");
    calls.push(`${body.id}:${header}`);
    if (header === null) {
      // The refusal of the call with id 2 comes late, after the listing for id 1 is done.
      if (body.id === 2) await new Promise((resolve) => setTimeout(resolve, 800));
      return Response.json({
        jsonrpc: "2.0",
        id: body.id,
        error: { code: -32020, message: "Mcp-Param-Region missing" },
      }, {
        status: 400,
      });
    }
    return Response.json({
      jsonrpc: "2.0",
      id: body.id,
      result: { content: [{ type: "text", text: `ok ${header}` }] },
    });
  });
  try {
    const meta = {
      "io.modelcontextprotocol/protocolVersion": MODERN,
      "io.modelcontextprotocol/clientCapabilities": {},
    };
    const call = (id: number) => ({
      jsonrpc: "2.0",
      id,
      method: "tools/call",
      params: { _meta: meta, name: "regional", arguments: { region: "eu" } },
    });
    const { code, stdout, stderr } = await runClientModeWithInput(
      `http://127.0.0.1:${server.addr.port}/mcp`,
      [call(1), call(2), call(3)],
      { args: ["--transport", "streamablehttp"] },
    );
    assert.equal(code, 0, stderr);
    const answers = stdout.trim().split("\n").map((line) => JSON.parse(line));
    assert.deepEqual(answers.map((answer) => answer.id).sort(), [1, 2, 3], stdout);
    for (const answer of answers) assert.equal(answer.result?.content?.[0]?.text, "ok eu", stdout);
    assert.equal(lists, 1);
    // Each call refused once, then sent with its header.
    assert.deepEqual(calls.toSorted(), ["1:eu", "1:null", "2:eu", "2:null", "3:eu", "3:null"]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("client mode: a subscriptions/listen outlives --request-timeout, and does not hold the end of input", async () => {
  let listenClosed: () => void;
  const closed = new Promise<void>((resolve) => listenClosed = resolve);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const body = await request.json();
    if (body.method !== "subscriptions/listen") {
      return Response.json({ jsonrpc: "2.0", id: body.id, result: { tools: [] } });
    }
    const encoder = new TextEncoder();
    const note = (method: string) =>
      encoder.encode(`event: message\ndata: ${
        JSON.stringify({
          jsonrpc: "2.0",
          method,
          params: { _meta: { "io.modelcontextprotocol/subscriptionId": body.id } },
        })
      }\n\n`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(note("notifications/subscriptions/acknowledged"));
        // Past --request-timeout (1 s): the subscription still stands.
        timer = setTimeout(() => controller.enqueue(note("notifications/tools/list_changed")), 1500);
      },
      cancel() {
        clearTimeout(timer);
        listenClosed();
      },
    });
    return new Response(stream, { headers: { "Content-Type": "text/event-stream" } });
  });
  try {
    const meta = {
      "io.modelcontextprotocol/protocolVersion": MODERN,
      "io.modelcontextprotocol/clientCapabilities": {},
    };
    const client = startClientMode(`http://127.0.0.1:${server.addr.port}/mcp`, [
      "--transport",
      "streamablehttp",
      "--request-timeout",
      "1",
    ]);
    // Not for ever, whatever goes wrong.
    const killer = setTimeout(() => client.kill(), 10_000);
    await client.write({
      jsonrpc: "2.0",
      id: "L",
      method: "subscriptions/listen",
      params: { _meta: meta, notifications: { toolsListChanged: true } },
    });
    const seen: Record<string, unknown>[] = [];
    while (seen.at(-1)?.method !== "notifications/tools/list_changed") seen.push(await client.read());
    assert.deepEqual(seen.map((message) => message.method), [
      "notifications/subscriptions/acknowledged",
      "notifications/tools/list_changed",
    ], "no time-out answer between");
    // The end of input ends it: mcp-proxy stops, and the server sees the stream closed.
    const started = Date.now();
    const { code } = await client.end();
    clearTimeout(killer);
    assert.equal(code, 0);
    assert.ok(Date.now() - started < 5000, `stopped in ${Date.now() - started} ms`);
    await closed;
  } finally {
    await server.shutdown();
  }
});

Deno.test("client mode: a 2026-07-28 request timed out while its answer stream was being resumed has the resumed stream closed", async () => {
  const encoder = new TextEncoder();
  const { promise: resumedClosed, resolve: closedAt } = Promise.withResolvers<number>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    if (request.method === "POST") {
      const body = await request.json();
      if (body.id === undefined) return new Response(null, { status: 202 });
      // An event id, then the stream ends with no answer: the client resumes it.
      return new Response(`id: e1\nretry: 50\ndata: \n\n`, {
        headers: { "Content-Type": "text/event-stream" },
      });
    }
    if (request.headers.get("last-event-id") === null) return new Response(null, { status: 405 });
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(encoder.encode(": resumed\n\n"));
      },
      cancel() {
        closedAt(Date.now());
      },
    });
    return new Response(stream, { headers: { "Content-Type": "text/event-stream" } });
  });
  try {
    const meta = {
      "io.modelcontextprotocol/protocolVersion": MODERN,
      "io.modelcontextprotocol/clientCapabilities": {},
    };
    const client = startClientMode(`http://127.0.0.1:${server.addr.port}/mcp`, [
      "--transport",
      "streamablehttp",
      "--request-timeout",
      "1",
    ]);
    const killer = setTimeout(() => client.kill(), 15_000);
    await client.write({
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call",
      params: { _meta: meta, name: "slow", arguments: {} },
    });
    const answer = await client.read();
    const timedOutAt = Date.now();
    assert.equal((answer.error as { code: number }).code, -32001, JSON.stringify(answer));
    // Stdin stays open: only the time-out may close the resumed stream, and soon.
    let late: ReturnType<typeof setTimeout> | undefined;
    const closed = await Promise.race([
      resumedClosed,
      new Promise<number>((resolve) => late = setTimeout(() => resolve(-1), 3000)),
    ]);
    clearTimeout(late);
    assert.ok(closed !== -1 && closed - timedOutAt < 2000, "the resumed stream was closed at the time-out");
    await client.end();
    clearTimeout(killer);
  } finally {
    await server.shutdown();
  }
});

Deno.test("client mode: a 2026-07-28 request cancelled before it went goes no more; one timed out while mended gets no notification of mcp-proxy's own", async () => {
  const seen: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const body = await request.json();
    seen.push(body.method);
    if (body.id === undefined) return new Response(null, { status: 202 });
    if (body.method === "tools/list") {
      await new Promise((resolve) => setTimeout(resolve, 2500));
      return Response.json({ jsonrpc: "2.0", id: body.id, result: { tools: [] } });
    }
    if (body.method === "tools/call") {
      return Response.json({
        jsonrpc: "2.0",
        id: body.id,
        error: { code: -32020, message: "header missing" },
      }, {
        status: 400,
      });
    }
    return new Response(": open\n\n", { headers: { "Content-Type": "text/event-stream" } });
  });
  try {
    const meta = {
      "io.modelcontextprotocol/protocolVersion": MODERN,
      "io.modelcontextprotocol/clientCapabilities": {},
    };
    const { code, stdout, stderr } = await runClientModeWithInput(
      `http://127.0.0.1:${server.addr.port}/mcp`,
      [
        // Cancelled in the same breath: before it could go.
        {
          jsonrpc: "2.0",
          id: "L",
          method: "subscriptions/listen",
          params: { _meta: meta, notifications: {} },
        },
        { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: "L", _meta: meta } },
        // Refused, then timed out while mcp-proxy lists the tools (2.5 s) to mend it.
        { jsonrpc: "2.0", id: 2, method: "tools/call", params: { _meta: meta, name: "t", arguments: {} } },
      ],
      { args: ["--transport", "streamablehttp", "--request-timeout", "1"] },
    );
    assert.equal(code, 0, stderr);
    assert.ok(!seen.includes("subscriptions/listen"), `sent: ${seen}`);
    const answers = stdout.trim().split("\n").map((line) => JSON.parse(line));
    assert.deepEqual(answers.map((answer) => [answer.id, answer.error?.code]), [[2, -32001]], stdout);
    assert.deepEqual(
      seen.filter((method) => method === "notifications/cancelled").length,
      1,
      `sent: ${seen}`,
    );
    assert.doesNotMatch(stderr, /lost/);
  } finally {
    await server.shutdown();
  }
});

Deno.test("client mode: over legacy SSE, which cannot close a request, a timed-out 2026-07-28 request is cancelled by notification", async () => {
  const streams: ReadableStreamDefaultController<Uint8Array>[] = [];
  const posted: Record<string, unknown>[] = [];
  const encoder = new TextEncoder();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    if (request.method === "GET") {
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          streams.push(controller);
          controller.enqueue(encoder.encode("event: endpoint\ndata: /messages\n\n"));
        },
      });
      return new Response(body, { headers: { "Content-Type": "text/event-stream" } });
    }
    posted.push(await request.json()); // Never answered.
    return new Response(null, { status: 202 });
  });
  try {
    const meta = {
      "io.modelcontextprotocol/protocolVersion": MODERN,
      "io.modelcontextprotocol/clientCapabilities": {},
    };
    const client = startClientMode(`http://127.0.0.1:${server.addr.port}/sse`, [
      "--transport",
      "sse",
      "--request-timeout",
      "1",
    ]);
    const killer = setTimeout(() => client.kill(), 10_000);
    await client.write({
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call",
      params: { _meta: meta, name: "slow", arguments: {} },
    });
    const answer = await client.read();
    assert.equal((answer.error as { code: number }).code, -32001, JSON.stringify(answer));
    const deadline = Date.now() + 3000;
    while (posted.length < 2 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const { code, stderr } = await client.end();
    clearTimeout(killer);
    assert.equal(code, 0, stderr);
    assert.deepEqual(posted.map((message) => message.method), ["tools/call", "notifications/cancelled"]);
  } finally {
    for (const stream of streams) {
      try {
        stream.close();
      } catch {
        // Cancelled already: client mode closed its end.
      }
    }
    await server.shutdown();
  }
});
