/**
 * Large answers (64 KiB and more) end to end, at their edges: answers of both forms (the id first,
 * streamed while the child writes; the id last, gathered whole) interleaved with small answers and
 * notifications across sessions and transports; clients that leave or cancel mid-answer; slow readers;
 * unusual ids; large notifications and server requests; bytes split anywhere by the child's writes;
 * stateless mode; `--request-timeout` and `--session-idle-timeout` around a streamed answer.
 *
 * The child is a small stdio server written here (`lines` writes the lines it is given, piece by piece,
 * with pauses), run from a `data:` URL so that no file is left behind.
 */

import assert from "node:assert/strict";
import { DENO, startProxy } from "./helpers/proxy_process.ts";

/**
 * The child. `tools/call` of `lines` writes `arguments.lines`, each line as its parts (`text` repeated
 * `repeat` times, with `$ID` made its request id and `$TOKEN` its progress token; or raw `bytes`), pausing
 * `pauseMs` after a part, or exiting with `exit`; one call's lines at a time, in the order of the calls.
 * `tools/call` of `own_line` answers with the line of its own request as the child read it.
 * `tools/call` of `received` answers with the answers (parsed, and as their lines) and cancellations it got. Its `initialize` result
 * carries instructions of `Deno.args[0]` bytes.
 */
const CHILD_SOURCE = `
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const received = [];
const receivedLines = [];
const cancellations = [];
let chain = Promise.resolve();
function writeAll(bytes) {
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}
function writeMessage(message) {
  chain = chain.then(() => writeAll(encoder.encode(JSON.stringify(message) + "\\n")));
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
async function writeLines(lines, id, token) {
  for (const parts of lines) {
    for (const part of parts) {
      if (part.bytes !== undefined) writeAll(new Uint8Array(part.bytes));
      if (part.text !== undefined) {
        const text = part.text.replaceAll("$ID", JSON.stringify(id))
          .replaceAll("$TOKEN", JSON.stringify(token));
        // In pieces of about 64 KiB, as a server writing a long answer does: its start comes at once,
        // however busy the machine, not after the whole of it was built.
        const per = Math.max(1, Math.floor(65536 / Math.max(1, text.length)));
        for (let left = part.repeat ?? 1; left > 0; left -= per) {
          writeAll(encoder.encode(text.repeat(Math.min(per, left))));
        }
      }
      if (part.pauseMs !== undefined) await sleep(part.pauseMs);
      if (part.exit !== undefined) Deno.exit(part.exit);
    }
    writeAll(encoder.encode("\\n"));
  }
}
const instructions = "i".repeat(Number(Deno.args[0] ?? 0));
let buffer = "";
for await (const chunk of Deno.stdin.readable) {
  buffer += decoder.decode(chunk, { stream: true });
  let newline;
  while ((newline = buffer.indexOf("\\n")) !== -1) {
    const line = buffer.slice(0, newline);
    const message = JSON.parse(line);
    buffer = buffer.slice(newline + 1);
    const { id, method } = message;
    const params = message.params ?? {};
    if (method === undefined) {
      received.push(message);
      receivedLines.push(line);
    }
    else if (method === "notifications/cancelled") cancellations.push(params.requestId);
    else if (id === undefined) continue;
    else if (method === "initialize") {
      const result = { protocolVersion: params.protocolVersion, capabilities: { tools: {} }, instructions };
      writeMessage({ jsonrpc: "2.0", id, result: { ...result, serverInfo: { name: "edge", version: "0" } } });
    } else if (method === "ping") writeMessage({ jsonrpc: "2.0", id, result: {} });
    else if (method === "tools/call" && params.name === "lines") {
      const { lines } = params.arguments;
      chain = chain.then(() => writeLines(lines, id, params._meta?.progressToken));
    } else if (method === "tools/call" && params.name === "own_line") {
      writeMessage({ jsonrpc: "2.0", id, result: { content: [{ type: "text", text: line }] } });
    } else if (method === "tools/call" && params.name === "received") {
      const text = JSON.stringify({ received, receivedLines, cancellations });
      writeMessage({ jsonrpc: "2.0", id, result: { content: [{ type: "text", text }] } });
    } else writeMessage({ jsonrpc: "2.0", id, error: { code: -32601, message: "no such method" } });
  }
}
`;

/** The command line of the child; `instructionBytes` of instructions in its InitializeResult. */
function child(instructionBytes = 0): string[] {
  const url = `data:application/typescript;base64,${btoa(CHILD_SOURCE)}`;
  return [DENO, "run", "-A", "--quiet", url, String(instructionBytes)];
}

/** A part of a line the child writes (see {@link CHILD_SOURCE}). */
interface Part {
  text?: string;
  repeat?: number;
  bytes?: number[];
  pauseMs?: number;
  exit?: number;
}

const JSON_AND_SSE = { "Content-Type": "application/json", Accept: "application/json, text/event-stream" };
const PROTOCOL_VERSION = "2025-11-25";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A request of `lines` with id `id`; `token`, when given, as its progress token. */
function linesCall(id: unknown, lines: Part[][], token?: string | number) {
  const params = {
    name: "lines",
    arguments: { lines },
    ...(token === undefined ? {} : { _meta: { progressToken: token } }),
  };
  return { jsonrpc: "2.0", id, method: "tools/call", params };
}

/** The text of a line of parts as a client gets it: `$ID` as its own id (text parts only). */
function lineText(parts: Part[], clientId: unknown, token?: unknown): string {
  return parts.map((part) =>
    (part.text ?? "").replaceAll("$ID", JSON.stringify(clientId)).replaceAll("$TOKEN", JSON.stringify(token))
      .repeat(part.repeat ?? 1)
  ).join("");
}

/** An answer with the id first (the Python SDK's way): streamed while the child writes it. */
function leading(tag: string, bytes: number, pauseMs?: number): Part[] {
  return [
    { text: `{"jsonrpc":"2.0","id":$ID,"result":{"content":[{"type":"text","text":"${tag}:` },
    { text: "\\u00e9é漢-", repeat: Math.ceil(bytes / 12), pauseMs },
    { text: `${tag}"}],"tag":"${tag}"}}` },
  ];
}

/** An answer with the id last (the TypeScript SDK's way): gathered whole, then relayed. */
function trailing(tag: string, bytes: number, pauseMs?: number): Part[] {
  return [
    { text: `{"result":{"content":[{"type":"text","text":"${tag}:` },
    { text: "\\u00e9é漢-", repeat: Math.ceil(bytes / 12), pauseMs },
    { text: `${tag}"}],"tag":"${tag}"},"jsonrpc":"2.0","id":$ID}` },
  ];
}

/** A small answer. */
function small(tag: string): Part[] {
  return [{ text: `{"jsonrpc":"2.0","id":$ID,"result":{"content":[{"type":"text","text":"${tag}"}]}}` }];
}

/** A log notification, which goes to every initialized session. */
function notice(tag: string, bytes = 0): Part[] {
  const head = `{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"${tag}`;
  return [{ text: head }, { text: "n", repeat: bytes }, { text: '"}}' }];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Asserts that `actual` is `expected`; a difference is shown where it starts, not as megabytes of both. */
function assertText(actual: string | undefined, expected: string, what: string): void {
  if (actual === expected) return;
  if (actual === undefined) assert.fail(`${what}: nothing came`);
  let at = 0;
  while (at < actual.length && actual[at] === expected[at]) at++;
  const around = (text: string) => JSON.stringify(text.slice(Math.max(0, at - 40), at + 40));
  assert.fail(
    `${what}: ${actual.length} characters for ${expected.length}, the first difference at ${at}: ` +
      `${around(actual)} for ${around(expected)}`,
  );
}

/** Asserts that the messages are `expected`, in that order (see {@link assertText}). */
function assertTexts(actual: string[], expected: string[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} messages for ${expected.length}`);
  for (const [i, text] of expected.entries()) assertText(actual[i], text, `${what}, message ${i}`);
}

/** Resolves with `promise`, or rejects after `ms` (the timer is cleared either way). */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The JSON text of each message in a Streamable HTTP answer: the body, or the data of each SSE event. */
function messagesIn(contentType: string | null, body: string): string[] {
  if (contentType === "application/json") return [body];
  return eventsIn(body).filter((event) => event.data !== "").map((event) => event.data);
}

/** The events of an SSE text, as a client reads them (lines end at `\n` only: no `\r` is expected). */
function eventsIn(text: string): { event: string; data: string }[] {
  return text.split("\n\n").filter((block) => block.trim() !== "").map(parseEvent);
}

function parseEvent(block: string): { event: string; data: string } {
  let event = "message";
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event: ")) event = line.slice("event: ".length);
    else if (line.startsWith("data: ")) data.push(line.slice("data: ".length));
  }
  return { event, data: data.join("\n") };
}

/** An `initialize` request of this file's client. */
function initializeRequest(id: unknown, protocolVersion: string, capabilities: Record<string, unknown> = {}) {
  return {
    jsonrpc: "2.0",
    id,
    method: "initialize",
    params: { protocolVersion, capabilities, clientInfo: { name: "edges", version: "0" } },
  };
}

/** A Streamable HTTP session. */
async function mcpSession(origin: string, capabilities: Record<string, unknown> = {}) {
  const response = await fetch(`${origin}/mcp`, {
    method: "POST",
    headers: JSON_AND_SSE,
    body: JSON.stringify(initializeRequest(0, PROTOCOL_VERSION, capabilities)),
  });
  assert.equal(response.status, 200);
  await response.text();
  const id = response.headers.get("mcp-session-id")!;
  const headers = { ...JSON_AND_SSE, "Mcp-Session-Id": id, "MCP-Protocol-Version": PROTOCOL_VERSION };
  const post = (body: unknown, init: RequestInit = {}) =>
    fetch(`${origin}/mcp`, {
      method: "POST",
      headers,
      body: typeof body === "string" ? body : JSON.stringify(body),
      ...init,
    });
  const initialized = await post({ jsonrpc: "2.0", method: "notifications/initialized" });
  assert.equal(initialized.status, 202);
  await initialized.body?.cancel();
  return {
    id,
    headers,
    post,
    /** POSTs `body` and returns the JSON text of each message of the answer. */
    async call(body: unknown): Promise<string[]> {
      const response = await post(body);
      assert.equal(response.status, 200);
      return messagesIn(response.headers.get("content-type"), await response.text());
    },
  };
}

/** A legacy SSE session, initialized. */
async function sseSession(origin: string, capabilities: Record<string, unknown> = {}) {
  const response = await fetch(`${origin}/sse`, { headers: { Accept: "text/event-stream" } });
  assert.equal(response.status, 200);
  const reader = response.body!.getReader();
  const textDecoder = new TextDecoder();
  let buffer = "";
  let closed = false;
  const next = async (): Promise<{ event: string; data: string }> => {
    while (!buffer.includes("\n\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the SSE stream ended");
      buffer += textDecoder.decode(value, { stream: true });
    }
    const end = buffer.indexOf("\n\n");
    const block = buffer.slice(0, end);
    buffer = buffer.slice(end + 2);
    return parseEvent(block);
  };
  const endpoint = (await next()).data;
  const post = async (body: unknown): Promise<number> => {
    const answer = await fetch(`${origin}${endpoint}`, {
      method: "POST",
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    await answer.text();
    return answer.status;
  };
  assert.equal(await post(initializeRequest(0, "2024-11-05", capabilities)), 202);
  assert.equal(JSON.parse((await next()).data).id, 0);
  assert.equal(await post({ jsonrpc: "2.0", method: "notifications/initialized" }), 202);
  return {
    endpoint,
    next,
    post,
    /** Reads events until `done` says enough (or `ms` pass): returns them. */
    async collect(done: (events: { event: string; data: string }[]) => boolean, ms = 20_000) {
      const events: { event: string; data: string }[] = [];
      const reading = (async () => {
        while (!done(events)) events.push(await next());
      })();
      await within(reading, ms, "SSE events");
      return events;
    },
    /** Reads until `text` has come (it stays to be read as events). */
    async waitFor(text: string) {
      while (!buffer.includes(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error("the SSE stream ended");
        buffer += textDecoder.decode(value, { stream: true });
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await reader.cancel();
    },
  };
}

/** The servers' state on `/status`. */
async function status(origin: string): Promise<{ sessions: number; state: string }> {
  const response = await fetch(`${origin}/status`);
  return (await response.json()).servers.default;
}

/** What the child got: answers to its requests, and cancellations (as its own ids). */
async function childReceived(
  origin: string,
): Promise<{ received: unknown[]; receivedLines: string[]; cancellations: unknown[] }> {
  const response = await fetch(`${origin}/mcp`, {
    method: "POST",
    headers: JSON_AND_SSE,
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: {} }),
  });
  await response.text();
  const id = response.headers.get("mcp-session-id")!;
  const call = await fetch(`${origin}/mcp`, {
    method: "POST",
    headers: { ...JSON_AND_SSE, "Mcp-Session-Id": id },
    body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "received" } }),
  });
  const [answer] = messagesIn(call.headers.get("content-type"), await call.text());
  const deleted = await fetch(`${origin}/mcp`, { method: "DELETE", headers: { "Mcp-Session-Id": id } });
  await deleted.body?.cancel();
  return JSON.parse(JSON.parse(answer).result.content[0].text);
}

Deno.test("large answers of both forms, small answers and notifications: each reaches its session intact", async () => {
  await using proxy = await startProxy(["--", ...child()]);
  const [a, b] = [await mcpSession(proxy.origin), await mcpSession(proxy.origin)];
  const [c, d] = [await sseSession(proxy.origin), await sseSession(proxy.origin)];
  // Every session uses the same ids: only the proxy's mapping tells the answers apart.
  const calls = {
    a7: [leading("a7", 300_000, 50)],
    a8: [notice("n-a8"), small("a8")],
    b7: [notice("n-b7"), trailing("b7", 200_000, 50)],
    bs: [leading("bs", 100_000), notice("n-bs", 70_000)],
    c7: [leading("c7", 250_000, 50), small("nobody's")],
    c8: [trailing("c8", 150_000), notice("n-c8", 100_000)],
    d7: [trailing("d7", 400_000)],
    d8: [small("d8")],
  };
  const notices = ["n-a8", "n-b7", "n-bs", "n-c8"];
  const mcpAnswers = Promise.all([
    a.call(linesCall(7, calls.a7)),
    a.call(linesCall(8, calls.a8)),
    b.call(linesCall(7, calls.b7)),
    b.call(linesCall("s", calls.bs)),
  ]);
  assert.equal(await c.post(linesCall(7, calls.c7)), 202);
  assert.equal(await c.post(linesCall(8, calls.c8)), 202);
  assert.equal(await d.post(linesCall(7, calls.d7)), 202);
  assert.equal(await d.post(linesCall(8, calls.d8)), 202);

  /** Of the messages a client got, the answers must be exactly `expected`; the rest, known notices. */
  const check = (got: string[], expected: string[], where: string) => {
    const answers = got.filter((text) => !text.startsWith('{"jsonrpc":"2.0","method"'));
    assertTexts(answers.toSorted(), expected.toSorted(), `${where}: its answers, byte for byte`);
    for (const text of got.filter((text) => !answers.includes(text))) {
      const data = JSON.parse(text).params.data as string;
      assert.ok(notices.includes(data.replace(/n*$/, "")), `${where}: a notice it could get`);
    }
  };
  const [a7, a8, b7, bs] = await within(mcpAnswers, 20_000, "the /mcp answers");
  check(a7, [lineText(calls.a7[0], 7)], "a 7");
  check(a8, [lineText(calls.a8[1], 8)], "a 8");
  check(b7, [lineText(calls.b7[1], 7)], "b 7");
  check(bs, [lineText(calls.bs[0], "s")], "b s");
  const answersIn = (events: { data: string }[]) =>
    events.filter((event) => !event.data.startsWith('{"jsonrpc":"2.0","method"')).length;
  const noticesIn = (events: { data: string }[]) => events.length - answersIn(events);
  // The SSE sessions get their two answers, and every notice (they are initialized).
  for (
    const [session, expected, where] of [[c, [calls.c7[0], calls.c8[0]], "c"], [
      d,
      [calls.d7[0], calls.d8[0]],
      "d",
    ]] as const
  ) {
    const events = await session.collect((events) =>
      answersIn(events) === 2 && noticesIn(events) === notices.length
    );
    assert.ok(events.every((event) => event.event === "message"));
    check(events.map((event) => event.data), [lineText(expected[0], 7), lineText(expected[1], 8)], where);
    const seen = events.filter((event) => event.data.startsWith('{"jsonrpc":"2.0","method"'))
      .map((event) => JSON.parse(event.data).params.data.replace(/n*$/, ""));
    assert.deepEqual(seen.toSorted(), notices.toSorted(), `${where}: each notice once`);
    await session.close();
  }
});

Deno.test("a /mcp client that leaves mid-answer: the proxy, its session and the other sessions carry on", async () => {
  await using proxy = await startProxy(["--", ...child()]);
  const [a, b] = [await mcpSession(proxy.origin), await mcpSession(proxy.origin)];
  const response = await a.post(linesCall(1, [leading("left", 300_000, 600)]));
  assert.equal(response.headers.get("content-type"), "application/json");
  assert.equal(response.headers.get("content-length"), null, "passed on while the child writes it");
  const reader = response.body!.getReader();
  const { value } = await reader.read();
  assert.ok(decoder.decode(value).startsWith('{"jsonrpc":"2.0","id":1,"result":'));
  await reader.cancel();
  // The child is still writing that answer: what others ask is answered once its line is out.
  const [pingB, pingA] = await within(
    Promise.all([
      b.call({ jsonrpc: "2.0", id: 1, method: "ping" }),
      a.call({ jsonrpc: "2.0", id: 2, method: "ping" }),
    ]),
    10_000,
    "pings after a client left",
  );
  assert.deepEqual(pingB, ['{"jsonrpc":"2.0","id":1,"result":{}}']);
  assert.deepEqual(pingA, ['{"jsonrpc":"2.0","id":2,"result":{}}']);
  const again = leading("again", 200_000);
  assertTexts(await a.call(linesCall(1, [again])), [lineText(again, 1)], "the same id, reused");
  assert.deepEqual(await status(proxy.origin).then((server) => [server.state, server.sessions]), [
    "running",
    2,
  ]);
  const { ms } = await proxy.stop();
  assert.ok(ms < 3000, `the proxy stops promptly (${Math.round(ms)} ms): nothing left running`);
});

Deno.test("an SSE client that leaves mid-answer: its session ends, the other sessions carry on", async () => {
  await using proxy = await startProxy(["--", ...child()]);
  const [c, d] = [await sseSession(proxy.origin), await sseSession(proxy.origin)];
  assert.equal(await c.post(linesCall(1, [leading("left", 300_000, 600)])), 202);
  await c.waitFor('data: {"jsonrpc":"2.0","id":1,"result":');
  await c.close();
  // Its stream is gone: so is its session, at once.
  for (let i = 0; i < 50 && (await status(proxy.origin)).sessions !== 1; i++) await sleep(20);
  assert.equal((await status(proxy.origin)).sessions, 1);
  assert.equal(await c.post({ jsonrpc: "2.0", id: 2, method: "ping" }), 404);
  // The rest of the left answer reaches nobody; what comes next is each session's own.
  assert.equal(await d.post({ jsonrpc: "2.0", id: 1, method: "ping" }), 202);
  assert.deepEqual(await d.next(), { event: "message", data: '{"jsonrpc":"2.0","id":1,"result":{}}' });
  const again = leading("again", 200_000);
  assert.equal(await d.post(linesCall(1, [again])), 202);
  assertText((await d.next()).data, lineText(again, 1), "the next answer");
  const e = await sseSession(proxy.origin);
  assert.equal(await e.post(linesCall(1, [again])), 202);
  assertText((await e.next()).data, lineText(again, 1), "a new session's answer");
  await Promise.all([d.close(), e.close()]);
});

/** The resident memory of process `pid`, in MiB (Linux; NaN elsewhere). */
function residentMiB(pid: number): number {
  try {
    const kib = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))?.[1];
    return kib === undefined ? NaN : Number(kib) / 1024;
  } catch {
    return NaN;
  }
}

/** Reads `body` slowly: `bytes` at most every `everyMs`; resolves with all of it, decoded. */
async function readSlowly(body: ReadableStream<Uint8Array>, everyMs: number): Promise<string> {
  const reader = body.getReader({ mode: "byob" });
  const chunks: Uint8Array[] = [];
  while (true) {
    const { value, done } = await reader.read(new Uint8Array(64 * 1024));
    if (done) break;
    chunks.push(value);
    await sleep(everyMs);
  }
  const all = new Uint8Array(chunks.reduce((total, chunk) => total + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.length;
  }
  return decoder.decode(all);
}

Deno.test("a slow reader of a streamed 16 MiB answer holds up no other session (the proxy buffers it)", async () => {
  await using proxy = await startProxy(["--", ...child()]);
  const [a, b] = [await mcpSession(proxy.origin), await mcpSession(proxy.origin)];
  const c = await sseSession(proxy.origin);
  const big = leading("slow", 16 * 1024 * 1024);
  const before = residentMiB(proxy.pid);
  const response = await a.post(linesCall(1, [big]));
  assert.equal(response.headers.get("content-length"), null, "streamed");
  let readDone = false;
  const started = performance.now();
  const reading = readSlowly(response.body!, 20).then((text) => {
    readDone = true;
    return text;
  });
  // Meanwhile the other sessions keep calling, one call after another.
  const latencies: number[] = [];
  let peak = before;
  while (!readDone) {
    const start = performance.now();
    assert.deepEqual(await b.call({ jsonrpc: "2.0", id: 1, method: "ping" }), [
      '{"jsonrpc":"2.0","id":1,"result":{}}',
    ]);
    assert.equal(await c.post({ jsonrpc: "2.0", id: 1, method: "ping" }), 202);
    assert.equal((await c.next()).data, '{"jsonrpc":"2.0","id":1,"result":{}}');
    latencies.push(performance.now() - start);
    peak = Math.max(peak, residentMiB(proxy.pid));
  }
  const readMs = performance.now() - started;
  assertText(await reading, lineText(big, 1), "the slow client's answer");
  latencies.sort((x, y) => x - y);
  const report = {
    readMs: Math.round(readMs),
    calls: latencies.length,
    medianMs: latencies[latencies.length >> 1].toFixed(1),
    maxMs: latencies.at(-1)!.toFixed(1),
    rssBeforeMiB: before.toFixed(0),
    rssPeakMiB: peak.toFixed(0),
  };
  assert.ok(
    latencies.length >= 10,
    `others were served while the slow client read: ${JSON.stringify(report)}`,
  );
  await c.close();
});

/** Client ids that must come back exactly as sent. */
const ODD_IDS: (string | number)[] = [
  'q"uo\\te\\"',
  "line\u2028sep\u2029",
  "é漢😀",
  "\ud800 lone",
  "",
  '{"jsonrpc":"2.0","id":1,"result":',
  "\u0000\u001f\u007f",
  -5,
  0,
  1.5,
  9007199254740991,
];

Deno.test("odd client ids come back exactly, on large answers of both forms, over /mcp and /sse", async () => {
  await using proxy = await startProxy(["--", ...child()]);
  const a = await mcpSession(proxy.origin);
  const c = await sseSession(proxy.origin);
  for (const [i, id] of ODD_IDS.entries()) {
    for (const form of [leading, trailing]) {
      const line = form(`id${i}`, 100_000);
      const expected = lineText(line, id);
      assertTexts(await a.call(linesCall(id, [line])), [expected], `/mcp, id ${JSON.stringify(id)}`);
      assert.equal(await c.post(linesCall(id, [line])), 202);
      const event = await c.next();
      assertText(event.data, expected, `/sse, id ${JSON.stringify(id)}`);
      assert.deepEqual(JSON.parse(event.data).id, id);
    }
  }
  await c.close();
});

Deno.test({
  name: "an integer id beyond 2^53 comes back exact, on every answer",
  async fn() {
    await using proxy = await startProxy(["--", ...child()]);
    const a = await mcpSession(proxy.origin);
    const c = await sseSession(proxy.origin);
    for (const id of ["9007199254740993", "12345678901234567890"]) {
      for (const line of [leading("big", 100_000), small("big")]) {
        // The request's text, with the id as the client wrote it.
        const body = JSON.stringify(linesCall(0, [line])).replace('"id":0', `"id":${id}`);
        const expected = lineText(line, 0).replace('"id":0', `"id":${id}`);
        assertTexts(await a.call(body), [expected], `/mcp, id ${id}`);
        assert.equal(await c.post(body), 202);
        assertText((await c.next()).data, expected, `/sse, id ${id}`);
      }
    }
    await c.close();
  },
});

Deno.test("integers beyond 2^53 as a progress token, a reused id and a cancelled id are each read exactly", async () => {
  await using proxy = await startProxy(["--", ...child()]);
  const a = await mcpSession(proxy.origin);
  const big = "12345678901234567891";
  const token = "98765432109876543211";
  const withBig = (message: unknown) =>
    JSON.stringify(message).replace('"id":0', `"id":${big}`).replace(
      '"progressToken":0',
      `"progressToken":${token}`,
    );
  const progress: Part[] = [
    {
      text:
        '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":$TOKEN,"progress":1}}',
    },
  ];
  const answers = await a.call(withBig(linesCall(0, [progress, small("p")], 0)));
  assertTexts(
    answers,
    [
      lineText(progress, 0, 0).replace('"progressToken":0', `"progressToken":${token}`),
      lineText(small("p"), 0).replace('"id":0', `"id":${big}`),
    ],
    "the progress and the answer",
  );
  // While one waits, its id is refused to another request; an id that differs only in digits a JS number
  // loses is another id. The cancellation names the waiting one exactly.
  const waiting = await a.post(withBig(linesCall(0, [[{ text: "", pauseMs: 1500 }, ...small("w")]])));
  const reused = await a.post(withBig(linesCall(0, [small("r")])));
  assert.equal(reused.status, 400);
  assert.match(await reused.text(), /already used by a request in flight/);
  const nearId = `${big.slice(0, -1)}2`;
  const near = a.call(JSON.stringify(linesCall(0, [small("n")])).replace('"id":0', `"id":${nearId}`));
  const cancel = await a.post(
    `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":${big}}}`,
  );
  assert.equal(cancel.status, 202);
  await cancel.body?.cancel();
  assert.deepEqual(messagesIn(waiting.headers.get("content-type"), await waiting.text()), []);
  assertTexts(
    await near,
    [lineText(small("n"), 0).replace('"id":0', `"id":${nearId}`)],
    "the near id's answer",
  );
  assert.equal((await childReceived(proxy.origin)).cancellations.length, 1, "the child got the cancellation");
});

Deno.test("the child's request with an id beyond 2^53: the answer, and its cancellation, name it exactly", async () => {
  await using proxy = await startProxy(["--", ...child()]);
  const a = await mcpSession(proxy.origin, { sampling: {} });
  const big = "12345678901234567891";
  const request = (
    id: string,
  ) => [{ text: `{"jsonrpc":"2.0","id":${id},"method":"sampling/createMessage","params":{}}` }];
  const cancelled = [{
    text: `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":${big}2}}`,
  }];
  const response = await a.post(linesCall(1, [request(big), request(`${big}2`), cancelled, small("done")]));
  const messages = messagesIn(response.headers.get("content-type"), await response.text()).map((text) =>
    JSON.parse(text)
  );
  const [first, second, cancellation, done] = messages;
  assert.equal(first.method, "sampling/createMessage");
  assert.equal(second.method, "sampling/createMessage");
  assert.notEqual(first.id, second.id, "two ids a JS number cannot tell apart are two requests");
  // On the call's stream, as the request it names went.
  assert.deepEqual(cancellation, {
    jsonrpc: "2.0",
    method: "notifications/cancelled",
    params: { requestId: second.id },
  });
  assert.equal(done.id, 1);
  // The child cancelled the second: an answer to it goes nowhere; the first one's reaches the child.
  for (const id of [second.id, first.id]) {
    const replied = await a.post({ jsonrpc: "2.0", id, result: { role: "assistant" } });
    assert.equal(replied.status, 202);
    await replied.body?.cancel();
  }
  const { receivedLines } = await childReceived(proxy.origin);
  assert.deepEqual(receivedLines, [`{"jsonrpc":"2.0","id":${big},"result":{"role":"assistant"}}`]);
});

Deno.test("a large answer to the child's request reaches it as the client wrote it, only the id replaced", async () => {
  await using proxy = await startProxy(["--", ...child()]);
  const a = await mcpSession(proxy.origin, { sampling: {} });
  const c = await sseSession(proxy.origin, { sampling: {} });
  const text = "ü€😀-".repeat(30_000);
  // Raw bodies over 64 KiB: the id first or last, with white space the child must get as it was.
  const bodies = [
    (id: string) => `{"jsonrpc":"2.0","id":${id},"result":{"role":"assistant","model":"m","text":"${text}"}}`,
    (id: string) => `{ "result" : { "text" : "${text}", "n" : 1.50 }, "jsonrpc" : "2.0", "id" : ${id} }`,
  ];
  const ask = (
    id: string,
  ) => [{ text: `{"jsonrpc":"2.0","id":"${id}","method":"sampling/createMessage","params":{}}` }];
  const expected: string[] = [];
  for (const [i, body] of bodies.entries()) {
    const asked = await a.post(linesCall(`a${i}`, [ask(`srv-a${i}`), small("a")]));
    const [request] = messagesIn(asked.headers.get("content-type"), await asked.text()).map((m) =>
      JSON.parse(m)
    );
    assert.equal(request.method, "sampling/createMessage");
    const replied = await a.post(body(JSON.stringify(request.id)));
    assert.equal(replied.status, 202);
    await replied.body?.cancel();
    expected.push(body(`"srv-a${i}"`));

    assert.equal(await c.post(linesCall(i, [ask(`srv-${i}`), small("c")])), 202);
    const [event] = await c.collect((events) => events.length === 2);
    const sseRequest = JSON.parse(event.data);
    assert.equal(await c.post(body(JSON.stringify(sseRequest.id))), 202);
    expected.push(body(`"srv-${i}"`));
  }
  const { receivedLines } = await childReceived(proxy.origin);
  assert.equal(receivedLines.length, expected.length);
  for (const [i, line] of receivedLines.entries()) assert.ok(line === expected[i], `answer ${i} as written`);
  await c.close();
});

Deno.test('a result holding "method", "id" and whole answers of other requests: only its client gets it', async () => {
  await using proxy = await startProxy(["--", ...child()]);
  const [a, b] = [await mcpSession(proxy.origin), await mcpSession(proxy.origin)];
  const c = await sseSession(proxy.origin);
  // b's request waits at the child, unanswered: its proxy id is among those named inside a's answers.
  const waiting = await b.post(linesCall("w", []));
  const decoys = Array.from(
    { length: 12 },
    (_, i) =>
      `{"jsonrpc":"2.0","id":${i},"result":{}},{"jsonrpc":"2.0","id":${i},"method":"tools/call"},` +
      `{"method":"notifications/cancelled","params":{"requestId":${i}}},{"result":{},"jsonrpc":"2.0","id":${i}}`,
  ).join(",");
  const lines: Part[][] = [
    [
      {
        text:
          `{"jsonrpc":"2.0","id":$ID,"result":{"method":"notifications/progress","id":3,"decoys":[${decoys}],`,
      },
      { text: '"pad":"' },
      { text: "p", repeat: 100_000 },
      { text: '","last":{"jsonrpc":"2.0","id":2}}}' },
    ],
    [
      { text: `{"result":{"method":"sampling/createMessage","decoys":[${decoys}],"pad":"` },
      { text: "q", repeat: 100_000 },
      { text: '","jsonrpc":"2.0","id":4},"jsonrpc":"2.0","id":$ID}' },
    ],
  ];
  for (const [i, line] of lines.entries()) {
    assertTexts(await a.call(linesCall(`a${i}`, [line])), [lineText(line, `a${i}`)], `/mcp, line ${i}`);
    assert.equal(await c.post(linesCall(i, [line])), 202);
    assertText((await c.next()).data, lineText(line, i), `/sse, line ${i}`);
  }
  // b cancels its request: its POST ends without an answer; nothing of a's reached it.
  const cancel = await b.post({
    jsonrpc: "2.0",
    method: "notifications/cancelled",
    params: { requestId: "w" },
  });
  assert.equal(cancel.status, 202);
  await cancel.body?.cancel();
  assert.deepEqual(messagesIn(waiting.headers.get("content-type"), await waiting.text()), []);
  await c.close();
});

Deno.test("a large notification, server request and progress notification are relayed as such", async () => {
  await using proxy = await startProxy(["--", ...child()]);
  const a = await mcpSession(proxy.origin, { sampling: {} });
  const c = await sseSession(proxy.origin);
  const pad = "s".repeat(200_000);
  // The child's request takes the id of the call it runs for: it starts as an answer to that call would.
  const request = `{"jsonrpc":"2.0","id":$ID,"method":"sampling/createMessage","params":{"childId":$ID,` +
    `"maxTokens":5,"messages":[{"role":"user","content":{"type":"text","text":"${pad}"}}]}}`;
  const progress = `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":$TOKEN,` +
    `"progress":1,"message":"${pad}"}}`;
  const lines: Part[][] = [notice("big", 200_000), [{ text: request }], [{ text: progress }], small("done")];
  const response = await a.post(linesCall(5, lines, "token-é"));
  assert.equal(response.headers.get("content-type"), "text/event-stream");
  const messages = messagesIn("text/event-stream", await response.text());
  assert.equal(messages.length, 4, "the notice, the request, the progress and the answer, in order");
  assertText(messages[0], lineText(notice("big", 200_000), null), "the notice, as the child wrote it");
  const forwarded = JSON.parse(messages[1]);
  assert.equal(forwarded.method, "sampling/createMessage");
  assert.equal(typeof forwarded.id, "number");
  assert.equal(forwarded.params.messages[0].content.text, pad);
  assert.deepEqual(JSON.parse(messages[2]), {
    jsonrpc: "2.0",
    method: "notifications/progress",
    params: { progressToken: "token-é", progress: 1, message: pad },
  });
  assertText(messages[3], lineText(small("done"), 5), "the answer");
  // The client's answer reaches the child under the child's own id.
  const reply = {
    jsonrpc: "2.0",
    id: forwarded.id,
    result: { role: "assistant", content: { type: "text", text: "ok" } },
  };
  const replied = await a.post(reply);
  assert.equal(replied.status, 202);
  await replied.body?.cancel();
  const { received } = await childReceived(proxy.origin);
  assert.deepEqual(received, [{ ...reply, id: forwarded.params.childId }]);
  // The SSE session declared no sampling: it got the notice alone.
  assertText((await c.next()).data, lineText(notice("big", 200_000), null), "the notice, on /sse");
  assert.equal(await c.post({ jsonrpc: "2.0", id: 1, method: "ping" }), 202);
  assert.equal((await c.next()).data, '{"jsonrpc":"2.0","id":1,"result":{}}');
  await c.close();
});

Deno.test("a cancellation mid-answer: a streamed answer still ends whole; a gathered one is dropped", async () => {
  await using proxy = await startProxy(["--", ...child()]);
  const a = await mcpSession(proxy.origin);
  const c = await sseSession(proxy.origin);
  const cancel = (id: unknown) => ({
    jsonrpc: "2.0",
    method: "notifications/cancelled",
    params: { requestId: id },
  });
  // Streamed (the id first): once passed on, the request is done for the proxy; the cancellation is
  // dropped, and the client gets the whole answer, which it may ignore.
  const streamed = leading("streamed", 200_000, 400);
  const response = await a.post(linesCall(1, [streamed]));
  const reader = response.body!.getReader();
  let text = decoder.decode((await reader.read()).value, { stream: true });
  const cancelled = await a.post(cancel(1));
  assert.equal(cancelled.status, 202);
  await cancelled.body?.cancel();
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  assertText(text, lineText(streamed, 1), "/mcp: the streamed answer");
  assert.equal(await c.post(linesCall(1, [streamed])), 202);
  await c.waitFor('data: {"jsonrpc":"2.0","id":1,"result"');
  assert.equal(await c.post(cancel(1)), 202);
  assertText((await c.next()).data, lineText(streamed, 1), "/sse: the streamed answer");
  assert.deepEqual((await childReceived(proxy.origin)).cancellations, [], "none reached the child");

  // Gathered (the id last): the request still waits while the child writes it, so it is cancelled.
  const gathered = trailing("gathered", 200_000, 400);
  const slow = await a.post(linesCall(2, [gathered]));
  assert.equal(slow.headers.get("content-type"), "text/event-stream");
  const cancelledToo = await a.post(cancel(2));
  await cancelledToo.body?.cancel();
  assert.deepEqual(messagesIn("text/event-stream", await slow.text()), [], "the POST ends without an answer");
  assert.equal(await c.post(linesCall(2, [gathered])), 202);
  await sleep(150);
  assert.equal(await c.post(cancel(2)), 202);
  assert.equal(await c.post({ jsonrpc: "2.0", id: 3, method: "ping" }), 202);
  assert.deepEqual(await c.next(), { event: "message", data: '{"jsonrpc":"2.0","id":3,"result":{}}' });
  assert.equal((await childReceived(proxy.origin)).cancellations.length, 2, "both reached the child");
  await c.close();
});

Deno.test("SSE: what the proxy answers itself while a large answer goes in pieces waits for its end", async () => {
  await using proxy = await startProxy(["--", ...child()]);
  const c = await sseSession(proxy.origin);
  const big = leading("pieces", 300_000, 500);
  assert.equal(await c.post(linesCall(1, [big])), 202);
  await c.waitFor('data: {"jsonrpc":"2.0","id":1,"result"');
  // Answered by the proxy at once (a notification sent as a request), and by the child after its line.
  assert.equal(await c.post({ jsonrpc: "2.0", id: 2, method: "notifications/bogus" }), 202);
  assert.equal(await c.post({ jsonrpc: "2.0", id: 3, method: "ping" }), 202);
  assert.equal(
    await c.post([{ jsonrpc: "2.0", id: 4, method: "notifications/x" }, {
      jsonrpc: "2.0",
      id: 5,
      method: "ping",
    }]),
    202,
  );
  const events = await c.collect((events) => events.length === 5);
  assert.ok(events.every((event) => event.event === "message"));
  assertText(events[0].data, lineText(big, 1), "the large answer, whole");
  assert.deepEqual(events.slice(1).map((event) => JSON.parse(event.data).id), [2, 4, 3, 5]);
  assert.equal(JSON.parse(events[1].data).error.code, -32600);
  await c.close();
});

/** A line split by the child's writes inside a UTF-8 character, and around a carriage return. */
function splitLine(form: "leading" | "trailing"): { parts: Part[]; text: string } {
  const [head, tail] = form === "leading"
    ? ['{"jsonrpc":"2.0","id":$ID,"result":{"text":"', '"}}']
    : ['{"result":{"text":"', '"},"jsonrpc":"2.0","id":$ID}'];
  const parts: Part[] = [
    { text: head },
    { text: "x", repeat: 70_000 },
    { bytes: [0xc3], pauseMs: 60 }, // é, in two writes
    { bytes: [0xa9] },
    { text: '",' },
    { bytes: [0x0d], pauseMs: 60 }, // a carriage return between tokens, at the end of a write
    { text: '"more":"' },
    { text: "y", repeat: 70_000 },
    { bytes: [0xf0, 0x9f], pauseMs: 60 }, // 😀, in three writes
    { bytes: [0x98], pauseMs: 60 },
    { bytes: [0x80] },
    { text: tail },
    { bytes: [0x0d], pauseMs: 60 }, // the line ends with \r\n, in two writes
  ];
  const text = `${head}${"x".repeat(70_000)}é",\r"more":"${"y".repeat(70_000)}😀${tail}`;
  return { parts, text };
}

Deno.test("bytes split anywhere by the child's writes arrive intact; a carriage return only /sse changes", async () => {
  await using proxy = await startProxy(["--", ...child()]);
  const a = await mcpSession(proxy.origin);
  const c = await sseSession(proxy.origin);
  for (const form of ["leading", "trailing"] as const) {
    const { parts, text } = splitLine(form);
    const id = `${form}-é`;
    const expected = text.replaceAll("$ID", JSON.stringify(id));
    const response = await a.post(linesCall(id, [parts]));
    const streamed = response.headers.get("content-type") === "application/json";
    assert.equal(streamed, form === "leading", "the id first: streamed; last: on a stream after 100 ms");
    const body = await response.text();
    // On /mcp the JSON body is the child's line as it was, but for its line break (\r\n).
    assertTexts(messagesIn(response.headers.get("content-type"), body), [
      streamed ? expected : expected.replace("\r", " "),
    ], `/mcp, ${form}`);
    assert.equal(await c.post(linesCall(id, [parts])), 202);
    assertText((await c.next()).data, expected.replace("\r", " "), `/sse, ${form}`);
  }
  await c.close();
});

Deno.test("SSE: a carriage return inside a long write of a streamed answer becomes a space, beside ASCII or not", async () => {
  await using proxy = await startProxy(["--", ...child()]);
  const c = await sseSession(proxy.origin);
  // The proxy reads the middle write in chunks of several KiB, whose text it searches for line breaks;
  // the "é" filler makes that text shorter than the bytes.
  for (const filler of ["x", "é"]) {
    const parts: Part[] = [
      { text: '{"jsonrpc":"2.0","id":$ID,"result":{"text":"' },
      { text: "z", repeat: 70_000, pauseMs: 60 },
      { text: `${filler.repeat(40_000)}",\r\r"more":"${filler.repeat(40_000)}` },
      { text: '"}}' },
    ];
    const id = `cr-${filler}`;
    assert.equal(await c.post(linesCall(id, [parts])), 202);
    const expected = lineText(parts, id).replaceAll("\r", " ");
    assertText((await c.next()).data, expected, `/sse, ${filler}`);
  }
  await c.close();
});

/** A POST of `body` to a stateless proxy. */
function statelessPost(origin: string, body: unknown): Promise<Response> {
  return fetch(`${origin}/mcp`, {
    method: "POST",
    headers: { ...JSON_AND_SSE, "MCP-Protocol-Version": PROTOCOL_VERSION },
    body: JSON.stringify(body),
  });
}

/** Waits until `/status` counts `sessions` sessions (or `ms` pass); returns the last count. */
async function sessionsBecome(origin: string, sessions: number, ms = 5000): Promise<number> {
  const deadline = Date.now() + ms;
  let count = (await status(origin)).sessions;
  while (count !== sessions && Date.now() < deadline) {
    await sleep(25);
    count = (await status(origin)).sessions;
  }
  return count;
}

Deno.test("--stateless: a client that leaves mid-answer; the session ends with the child's line", async () => {
  await using proxy = await startProxy(["--stateless", "--", ...child()]);
  const big = leading("stateless", 300_000, 500);
  const response = await statelessPost(proxy.origin, linesCall(1, [big]));
  assert.equal(response.headers.get("content-length"), null, "streamed");
  const reader = response.body!.getReader();
  assert.ok(decoder.decode((await reader.read()).value).startsWith('{"jsonrpc":"2.0","id":1,"result":'));
  await reader.cancel();
  assert.equal(
    (await status(proxy.origin)).sessions,
    1,
    "the session lasts while the child writes its answer",
  );
  assert.equal(await sessionsBecome(proxy.origin, 0), 0, "and ends with it");
  // A gathered answer whose client left before it came: its session ends, the request is cancelled.
  const gathered = trailing("gone", 200_000, 400);
  const left = await statelessPost(proxy.origin, linesCall(2, [gathered]));
  assert.equal(left.headers.get("content-type"), "text/event-stream");
  await left.body!.cancel();
  assert.equal(await sessionsBecome(proxy.origin, 0), 0);
  for (const [id, line] of [[3, leading("next", 200_000)], [4, trailing("next", 200_000)]] as const) {
    const next = await statelessPost(proxy.origin, linesCall(id, [line]));
    const messages = messagesIn(next.headers.get("content-type"), await next.text());
    assertTexts(messages, [lineText(line, id)], `the next call (${id})`);
  }
  const received = await statelessPost(proxy.origin, {
    jsonrpc: "2.0",
    id: 9,
    method: "tools/call",
    params: { name: "received" },
  });
  const { cancellations } = JSON.parse(JSON.parse(await received.text()).result.content[0].text);
  assert.equal(cancellations.length, 1, "only the gathered answer's request was cancelled at the child");
  assert.equal(await sessionsBecome(proxy.origin, 0), 0);
});

Deno.test("--request-timeout cuts a streamed answer short: /mcp breaks off, /sse gets an error", async () => {
  await using proxy = await startProxy(["--request-timeout", "1", "--", ...child()]);
  const a = await mcpSession(proxy.origin);
  const c = await sseSession(proxy.origin);
  const stalled = leading("stalled", 200_000, 1600);
  const response = await a.post(linesCall(1, [stalled]));
  await assert.rejects(response.text(), "the body breaks off");
  assertTexts(await a.call({ jsonrpc: "2.0", id: 2, method: "ping" }), [
    '{"jsonrpc":"2.0","id":2,"result":{}}',
  ], "then");
  assert.equal(await c.post(linesCall(1, [stalled])), 202);
  const aborted = await c.next();
  assert.equal(aborted.event, "mcp-proxy-aborted");
  assert.ok(lineText(stalled, 1).startsWith(aborted.data), "what came of it, as it came");
  const error = JSON.parse((await c.next()).data);
  assert.deepEqual(error, {
    jsonrpc: "2.0",
    id: 1,
    error: {
      code: -32603,
      message: "mcp-proxy: the server's answer was cut short (no end within --request-timeout (1 s))",
    },
  });
  // The rest of the stalled line, when it comes, goes nowhere.
  assert.equal(await c.post({ jsonrpc: "2.0", id: 2, method: "ping" }), 202);
  assert.deepEqual(await c.next(), { event: "message", data: '{"jsonrpc":"2.0","id":2,"result":{}}' });
  const fine = leading("fine", 200_000);
  assert.equal(await c.post(linesCall(3, [fine])), 202);
  assertText((await c.next()).data, lineText(fine, 3), "a large answer after");
  await c.close();
  // The body cut short is no fault of the proxy: no stack trace from the runtime on stderr.
  assert.doesNotMatch(proxy.stderr(), /^\s+at /m);
});

Deno.test("a streamed answer over --max-line-size is cut short, the rest dropped; all carry on", async () => {
  await using proxy = await startProxy(["--max-line-size", "16M", "--", ...child()]);
  const a = await mcpSession(proxy.origin);
  const c = await sseSession(proxy.origin);
  const long = leading("long", 17 * 1024 * 1024);
  const response = await a.post(linesCall(1, [long]));
  await assert.rejects(response.text(), "the body breaks off");
  assert.equal(await c.post(linesCall(1, [long])), 202);
  assert.equal((await c.next()).event, "mcp-proxy-aborted");
  const error = JSON.parse((await c.next()).data);
  assert.equal(error.id, 1);
  assert.match(error.error.message, /cut short \(the line is longer than 16777216 bytes\)/);
  const fine = trailing("fine", 200_000);
  assertTexts(await a.call(linesCall(2, [fine])), [lineText(fine, 2)], "/mcp after");
  assert.equal(await c.post(linesCall(2, [fine])), 202);
  assertText((await c.next()).data, lineText(fine, 2), "/sse after");
  await c.close();
});

Deno.test("the child dies mid-answer: it breaks off, waiting calls fail, the restarted child serves", async () => {
  await using proxy = await startProxy(["--restart-delay", "0.2", "--", ...child()]);
  const [a, b] = [await mcpSession(proxy.origin), await mcpSession(proxy.origin)];
  const c = await sseSession(proxy.origin);
  const dying: Part[] = [...leading("dying", 200_000, 300).slice(0, 2), { exit: 3 }];
  const response = await a.post(linesCall(1, [dying]));
  const waiting = b.call({ jsonrpc: "2.0", id: 1, method: "ping" });
  const sseWaiting = c.post({ jsonrpc: "2.0", id: 1, method: "ping" });
  await assert.rejects(response.text(), "the body breaks off");
  const [answer] = await waiting;
  assert.equal(JSON.parse(answer).error.code, -32000);
  assert.equal(await sseWaiting, 202);
  assert.equal(JSON.parse((await c.next()).data).error.code, -32000);
  // Once restarted (and initialized again by the proxy), every session carries on.
  let served: string[] = [];
  for (let i = 0; i < 100; i++) {
    served = await b.call(linesCall(2, [leading("after", 100_000)]));
    if (!served[0].includes('"error"')) break;
    await sleep(50);
  }
  assertTexts(served, [lineText(leading("after", 100_000), 2)], "after the restart");
  assertTexts(await a.call(linesCall(2, [trailing("after", 100_000)])), [
    lineText(trailing("after", 100_000), 2),
  ], "a too");
  assert.equal(await c.post(linesCall(2, [leading("after", 100_000)])), 202);
  assertText((await c.next()).data, lineText(leading("after", 100_000), 2), "and c");
  await c.close();
});

/** Reads events until the stream ends. */
async function eventsUntilEnd(session: { next(): Promise<{ event: string; data: string }> }) {
  const events: { event: string; data: string }[] = [];
  try {
    while (true) events.push(await session.next());
  } catch {
    // The stream ended.
  }
  return events;
}

for (const streamedOn of ["mcp", "sse"] as const) {
  Deno.test({
    // On /sse the answer goes in pieces, and the error answers given at shutdown wait behind it: closing
    // the stream must cut it short and let them out.
    name: `shutdown mid-answer (${streamedOn}): the answer breaks off; calls waiting get their error answer`,
    fn: async () => {
      const proxy = await startProxy(["--", ...child()]);
      const a = await mcpSession(proxy.origin);
      const c = await sseSession(proxy.origin);
      const stalled = leading("stalled", 200_000, 4000);
      const ping = { jsonrpc: "2.0", id: 2, method: "ping" };
      let streamed: Response | undefined;
      if (streamedOn === "mcp") streamed = await a.post(linesCall(1, [stalled]));
      else {
        assert.equal(await c.post(linesCall(1, [stalled])), 202);
        await c.waitFor('data: {"jsonrpc":"2.0","id":1,"result"');
      }
      // Both sessions wait for the child, behind the stalled line.
      // (A POST still waiting after 100 ms gets its stream: then its request is at the proxy.)
      const waiting = await a.post(ping);
      assert.equal(waiting.headers.get("content-type"), "text/event-stream");
      assert.equal(await c.post(ping), 202);
      const stopped = proxy.stop();
      if (streamed !== undefined) await assert.rejects(streamed.text(), "the body breaks off");
      const [answer] = messagesIn("text/event-stream", await waiting.text());
      assert.match(JSON.parse(answer).error.message, /shutting down/, "/mcp: the waiting call's answer");
      const events = await eventsUntilEnd(c);
      const messages = events.filter((event) => event.event === "message").map((event) =>
        JSON.parse(event.data)
      );
      assert.ok(
        !messages.some((message) => message.result !== undefined),
        "no half answer reads as a whole one",
      );
      // The call cut short gets its error answer too, as when the child dies mid-answer.
      const cutShort = streamedOn === "sse"
        ? [[1, "mcp-proxy: the server's answer was cut short (mcp-proxy is shutting down)"]]
        : [];
      assert.deepEqual(messages.map((message) => [message.id, message.error?.message]), [
        ...cutShort,
        [2, 'MCP server "default" is not running (mcp-proxy is shutting down)'],
      ], "/sse: the waiting calls' answers");
      await c.close();
      const { ms } = await stopped;
      assert.ok(ms < 8000, `stopped in ${Math.round(ms)} ms`);
    },
  });
}

Deno.test({
  // While an answer streams, neither its channel nor its request is waiting any more: the session must
  // still count as busy, or the idle sweep closes it under a client reading its answer.
  name: "--session-idle-timeout: a session whose answer is still streaming is kept",
  async fn() {
    await using proxy = await startProxy(["--session-idle-timeout", "1", "--", ...child()]);
    const a = await mcpSession(proxy.origin);
    // The child takes 2.5 s to write the answer, after its first 70 KB.
    const slow: Part[] = [
      { text: '{"jsonrpc":"2.0","id":$ID,"result":{"text":"' },
      { text: "a", repeat: 70_000, pauseMs: 1250 },
      { text: "b", repeat: 1000, pauseMs: 1250 },
      { text: '"}}' },
    ];
    assertTexts(await a.call(linesCall(1, [slow])), [lineText(slow, 1)], "the streamed answer");
    const ping = await a.post({ jsonrpc: "2.0", id: 2, method: "ping" });
    assert.equal(ping.status, 200, "the session is still there");
    assert.equal(await ping.text(), '{"jsonrpc":"2.0","id":2,"result":{}}');
  },
});

Deno.test("--session-idle-timeout: a session whose call waits as long for the child is kept", async () => {
  await using proxy = await startProxy(["--session-idle-timeout", "1", "--", ...child()]);
  const a = await mcpSession(proxy.origin);
  const slow: Part[] = [{ text: "", pauseMs: 2500 }, ...trailing("late", 100_000)];
  assertTexts(await a.call(linesCall(1, [slow])), [lineText(slow, 1)], "the late answer");
  assertTexts(await a.call({ jsonrpc: "2.0", id: 2, method: "ping" }), [
    '{"jsonrpc":"2.0","id":2,"result":{}}',
  ], "then");
});

Deno.test({
  // A batch's answers go in a JSON array, even a batch of one request whose answer could stream.
  name: "a batch of one request gets an array, its large answer too",
  async fn() {
    await using proxy = await startProxy(["--", ...child()]);
    const a = await mcpSession(proxy.origin);
    for (const line of [small("one"), trailing("one", 100_000), leading("one", 100_000)]) {
      const body = [linesCall("b", [line]), { jsonrpc: "2.0", method: "notifications/progress", params: {} }];
      const response = await a.post(body);
      assertText(await response.text(), `[${lineText(line, "b")}]`, "a batch's answer");
    }
  },
});

Deno.test("through the app's middleware (--allow-origin): large answers of both forms, byte for byte", async () => {
  await using proxy = await startProxy(["--allow-origin", "*", "--", ...child()]);
  const a = await mcpSession(proxy.origin);
  for (const form of [leading, trailing]) {
    const line = form("cors", 200_000);
    const response = await a.post(linesCall(1, [line]), {
      headers: { ...a.headers, Origin: "http://elsewhere" },
    });
    assert.equal(response.headers.get("access-control-allow-origin"), "*");
    const expected = lineText(line, 1);
    const length = response.headers.get("content-length");
    assert.equal(
      length === null ? null : Number(length),
      form === leading ? null : encoder.encode(expected).length,
    );
    assertText(await response.text(), expected, form.name);
  }
});

Deno.test("a large initialize answer is read, not passed on: every session gets it, then large answers", async () => {
  await using proxy = await startProxy(["--", ...child(200_000)]);
  const initialize = (id: string) => initializeRequest(id, PROTOCOL_VERSION);
  for (const id of ["first", "second"]) {
    const response = await fetch(`${proxy.origin}/mcp`, {
      method: "POST",
      headers: JSON_AND_SSE,
      body: JSON.stringify(initialize(id)),
    });
    const answer = JSON.parse(await response.text());
    assert.equal(answer.id, id);
    assert.equal(answer.result.instructions, "i".repeat(200_000));
    const headers = { ...JSON_AND_SSE, "Mcp-Session-Id": response.headers.get("mcp-session-id")! };
    const line = leading(id, 100_000);
    const call = await fetch(`${proxy.origin}/mcp`, {
      method: "POST",
      headers,
      body: JSON.stringify(linesCall(1, [line])),
    });
    assertText(await call.text(), lineText(line, 1), `then a large answer (${id})`);
  }
});

Deno.test("by design: a child writing a large answer slowly holds up every session's answers", async () => {
  await using proxy = await startProxy(["--", ...child()]);
  const [a, b] = [await mcpSession(proxy.origin), await mcpSession(proxy.origin)];
  const c = await sseSession(proxy.origin);
  for (const form of [leading, trailing]) {
    const slow = form("slow", 200_000, 800);
    // Its headers come once the answer streams (the id first), or after 100 ms (the id last).
    const call = await a.post(linesCall(1, [slow]));
    const start = performance.now();
    const [ping] = await b.call({ jsonrpc: "2.0", id: 1, method: "ping" });
    const waited = performance.now() - start;
    assert.equal(ping, '{"jsonrpc":"2.0","id":1,"result":{}}');
    assert.ok(waited > 400, `${form.name}: b's ping waited for a's line (${Math.round(waited)} ms)`);
    const messages = messagesIn(call.headers.get("content-type"), await call.text());
    assertTexts(messages, [lineText(slow, 1)], form.name);
    assert.equal(await c.post({ jsonrpc: "2.0", id: 1, method: "ping" }), 202);
    assert.equal((await c.next()).data, '{"jsonrpc":"2.0","id":1,"result":{}}');
  }
  await c.close();
});

Deno.test("a request reaches the child as the client wrote it, only the id and token replaced, over /mcp and /sse", async () => {
  await using proxy = await startProxy(["--", ...child()]);
  const a = await mcpSession(proxy.origin);
  const c = await sseSession(proxy.origin);
  // Laid out on several lines, numbers a JS number would write otherwise, an escape, a progress token.
  const body = '{\r\n "jsonrpc": "2.0", "id": 7, "method": "tools/call",\n "params": {"name": "own_line",' +
    ' "arguments": {"big": 12345678901234567891, "one": 1.0, "tiny": 1e-400, "s": "\\u00e9"},' +
    ' "_meta": {"progressToken": "tok"}}\n}\n';
  // What the child read, with the proxy's id and token put back as the client's.
  const asSent = (text: string) =>
    JSON.parse(text).result.content[0].text.replace(/"id": \d+/, '"id": 7').replace(
      /"progressToken": \d+/,
      '"progressToken": "tok"',
    );
  const expected = body.trim().replace(/[\r\n]/g, " ");
  const [answer] = await a.call(body);
  assert.equal(asSent(answer), expected);
  assert.equal(await c.post(body), 202);
  assert.equal(asSent((await c.next()).data), expected);
  // The same two in a batch (MCP 2025-03-26), laid out on several lines: each goes on as written.
  const batch = `[\n${body.trim()},\n${body.trim().replace('"id": 7', '"id": 8')}\n]`;
  const batchAnswers = JSON.parse((await a.call(batch))[0]) as unknown[];
  assert.deepEqual(batchAnswers.map((answer) => asSent(JSON.stringify(answer))), [expected, expected]);
  assert.equal(await c.post(batch), 202);
  assert.equal(asSent((await c.next()).data), expected);
  assert.equal(asSent((await c.next()).data), expected);
  await c.close();
});

Deno.test("an answer carries its request's id back as the client spelled it, over /mcp and /sse", async () => {
  await using proxy = await startProxy(["--", ...child()]);
  const a = await mcpSession(proxy.origin);
  const c = await sseSession(proxy.origin);
  // Ids whose value JSON writes otherwise (found by QA: `1e3` came back as `1000`).
  for (
    const id of ["1e3", "1E+2", "1.50", "-0", '"a\\ud83d\\ude00\\/"', '"\\u00e9"', "12345678901234567891.0"]
  ) {
    const expected = `{"jsonrpc":"2.0","id":${id},"result":{}}`;
    // Also in a text that reads two ways (a member named twice), which goes to the child written anew.
    for (const params of ["", ',"params":{"a":1,"a":2,"s":"\\u00e9"}']) {
      const body = `{"jsonrpc":"2.0","id":${id},"method":"ping"${params}}`;
      assert.deepEqual(await a.call(body), [expected], body);
      assert.equal(await c.post(body), 202);
      assert.equal((await c.next()).data, expected, body);
    }
  }
  // Answers mcp-proxy makes itself too: a later session's initialize is answered from the first one's.
  const initialize = await fetch(`${proxy.origin}/mcp`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream" },
    body: '{"jsonrpc":"2.0","id":1e3,"method":"initialize","params":{"protocolVersion":"2025-06-18",' +
      '"capabilities":{},"clientInfo":{"name":"x","version":"0"}}}',
  });
  assert.match(await initialize.text(), /^\{"jsonrpc":"2\.0","id":1e3,"result":/);
  await c.close();
});
