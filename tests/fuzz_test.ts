/**
 * Generated hostile input: more than 10,000 bad inputs — random bytes, truncated and mutated JSON-RPC
 * messages, wrong types, huge ids, deep nesting, junk batches, invalid UTF-8, wrong headers, bodies over
 * the limit — sent to `/mcp` (with and without a session), to `/messages/` of a live SSE session, and to
 * client mode's stdin. Every HTTP request must get a status the protocol allows (never 500, never a
 * dropped connection or no answer), every valid ping on stdin its answer, and client mode's stdout must
 * carry JSON-RPC lines only; afterwards the proxy still serves the sessions that got the junk, and new
 * ones.
 *
 * The inputs come from a seeded generator: set `FUZZ_SEED` to replay a failure (the seed is in every
 * failure message).
 */

import assert from "node:assert/strict";
import { decodeEventStream } from "../src/client/server_sent_events.ts";
import { connectClient, DENO, FIXTURE, processExists, startProxy } from "./helpers/proxy_process.ts";
import { Random } from "./helpers/random.ts";

const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20261121);
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const MAX_BODY = 64 * 1024;
const CONCURRENCY = 16;
const REQUEST_TIMEOUT_MS = 15_000;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** How many inputs each target gets: 10,000 HTTP requests and 2,000 lines on stdin. */
const COUNTS = { mcpWithoutSession: 3400, mcpWithSession: 3300, messages: 3300, stdin: 2000 };

// ---- the inputs -------------------------------------------------------------------------------------

/** Valid messages the bad ones are made from. Tools that sleep, exit or spawn are left out on purpose. */
const TEMPLATES: Record<string, unknown>[] = [
  {
    jsonrpc: "2.0",
    id: 0,
    method: "initialize",
    params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "fuzz", version: "0" } },
  },
  { jsonrpc: "2.0", id: 1, method: "ping" },
  { jsonrpc: "2.0", id: 2, method: "tools/list", params: {} },
  { jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "echo", arguments: { text: "héllo" } } },
  { jsonrpc: "2.0", id: "r", method: "resources/list", params: { cursor: "2" } },
  { jsonrpc: "2.0", id: 4, method: "no/such/method", params: { _meta: { progressToken: 7 } } },
  { jsonrpc: "2.0", method: "notifications/initialized" },
  { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 3, reason: "fuzz" } },
  { jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: 1, progress: 1 } },
  { jsonrpc: "2.0", id: 5, result: {} },
  { jsonrpc: "2.0", id: 6, error: { code: -32000, message: "no" } },
];

/** Raw JSON text put in place of `"<raw number>"` after stringifying: numbers JSON.stringify cannot write. */
const RAW_NUMBERS = [
  "123456789012345678901234567890",
  "1e400",
  "-1e400",
  "-0",
  "1E+2",
  "0.1e-400",
  "9".repeat(400),
];
const RAW = "<raw number>";

const WRONG_VALUES: Record<string, unknown[]> = {
  jsonrpc: [undefined, 2, 2.0, "1.0", "2.00", "", null, true, {}, ["2.0"]],
  id: [null, true, {}, [], [1], 1.5, -1, 1e308, "x".repeat(5000), "", "\u{1F600}", RAW],
  method: [undefined, 1, null, true, {}, [], "", "x".repeat(5000), "tools/call\u0000", "\u{1F600}", " ping"],
  params: [null, "params", 1, true, [], [1, 2], { _meta: null }, { _meta: { progressToken: {} } }],
  result: [null, 1, "ok", [], true],
  error: [null, {}, { code: "x" }, "error", [], { code: 1.5, message: 1 }],
};

/** One bad input, as a body (or a line) and, for HTTP, the headers it goes with. */
interface BadInput {
  kind: string;
  body: Uint8Array<ArrayBuffer>;
  headers?: Record<string, string>;
  method?: string;
}

function text(value: unknown): string {
  return JSON.stringify(value);
}

function withRaw(value: unknown, random: Random): string {
  return text(value).replaceAll(`"${RAW}"`, () => random.pick(RAW_NUMBERS));
}

function deepNesting(random: Random): string {
  const depth = random.pick([100, 1000, 10_000, 50_000]);
  const [open, close] = random.pick([["[", "]"], ['{"a":', "}"]]);
  const nested = open.repeat(depth) + (open === "[" ? "" : "0") + close.repeat(depth);
  switch (random.int(3)) {
    case 0:
      return nested;
    case 1:
      return text({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "echo" } })
        .replace('"echo"}', `"echo","arguments":{"text":"deep","more":${nested}}}`);
    default:
      return text({ jsonrpc: "2.0", method: "notifications/message" }).replace("}", `,"params":${nested}}`);
  }
}

function junkBatch(random: Random): string {
  switch (random.int(6)) {
    case 0:
      return "[]";
    case 1:
      return text([1, "two", null, {}, []]);
    case 2:
      return text([random.pick(TEMPLATES), { jsonrpc: "1.0" }]);
    case 3:
      return text([[random.pick(TEMPLATES)]]);
    case 4:
      return text(Array.from({ length: 200 }, () => random.pick(TEMPLATES)));
    default:
      return text(Array.from({ length: random.int(5) + 1 }, () => wrongTypes(random)));
  }
}

function wrongTypes(random: Random): Record<string, unknown> {
  const message: Record<string, unknown> = { ...random.pick(TEMPLATES) };
  const field = random.pick(Object.keys(WRONG_VALUES));
  const value = random.pick(WRONG_VALUES[field]);
  if (value === undefined) delete message[field];
  else message[field] = value;
  return message;
}

function mutate(bytes: Uint8Array, random: Random): Uint8Array<ArrayBuffer> {
  let result = Array.from(bytes);
  for (let n = random.int(4) + 1; n > 0; n--) {
    const at = random.int(result.length + 1);
    switch (random.int(4)) {
      case 0:
        if (at < result.length) result[at] ^= 1 << random.int(8);
        break;
      case 1:
        result.splice(at, 0, random.pick([0x22, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x5c, 0x00, 0xff, 0xc3]));
        break;
      case 2:
        result.splice(at, 1 + random.int(3));
        break;
      default:
        result = result.concat(result.slice(at, at + random.int(20)));
    }
  }
  return Uint8Array.from(result);
}

/** Byte sequences that are not UTF-8: stray bytes, an overlong form, cut sequences, a surrogate. */
const NOT_UTF8 = [[0xff], [0xc0, 0xaf], [0xe2, 0x82], [0x80, 0x80], [0xed, 0xa0, 0x80], [0xf8, 0x88]];

/** Invalid UTF-8 inside a valid message's strings. */
function invalidUtf8(random: Random): Uint8Array<ArrayBuffer> {
  const source = encoder.encode(text(random.pick(TEMPLATES)));
  const quote = source.indexOf(0x22, random.int(source.length));
  const at = quote < 0 ? source.length : quote + 1;
  return Uint8Array.from([...source.subarray(0, at), ...random.pick(NOT_UTF8), ...source.subarray(at)]);
}

/** A bad body or line, of a kind picked at random. */
function badBody(random: Random, forLine: boolean): { kind: string; body: Uint8Array<ArrayBuffer> } {
  const kinds = [
    "random bytes",
    "truncated",
    "mutated",
    "wrong types",
    "huge id",
    "deep nesting",
    "junk batch",
    "invalid UTF-8",
    "not an object",
  ];
  const kind = random.pick(forLine ? kinds : [...kinds, "over the limit"]);
  const template = () => encoder.encode(text(random.pick(TEMPLATES)));
  const body = (() => {
    switch (kind) {
      case "random bytes":
        return random.bytes(random.int(300));
      case "truncated": {
        const whole = template();
        return whole.subarray(0, random.int(whole.length));
      }
      case "mutated":
        return mutate(template(), random);
      case "wrong types":
        return encoder.encode(withRaw(wrongTypes(random), random));
      case "huge id":
        return encoder.encode(
          withRaw({
            ...random.pick(TEMPLATES.filter((t) => "id" in t)),
            id: random.pick([RAW, RAW, 2 ** 53 + 2]),
          }, random),
        );
      case "deep nesting":
        return encoder.encode(deepNesting(random));
      case "junk batch":
        return encoder.encode(junkBatch(random));
      case "invalid UTF-8":
        return invalidUtf8(random);
      case "not an object":
        return encoder.encode(
          random.pick(["null", "1", '"2.0"', "true", "{}", "[{}]", "", " ", "\t", "{}{}", "NaN"]),
        );
      default: {
        const padding = "x".repeat(MAX_BODY + random.int(MAX_BODY));
        return encoder.encode(
          text({ ...TEMPLATES[3], params: { name: "echo", arguments: { text: padding } } }),
        );
      }
    }
  })();
  if (!forLine) return { kind, body };
  // One line on stdin: newlines inside would make it several, which is fine but harder to count.
  return { kind, body: body.map((byte) => byte === 0x0a || byte === 0x0d ? 0x20 : byte) };
}

const JSON_AND_SSE = { "Content-Type": "application/json", Accept: "application/json, text/event-stream" };
const CONTENT_TYPES = [
  undefined,
  "text/plain",
  "application/json; charset=utf-16",
  "application/jsonx",
  "multipart/form-data; boundary=x",
  "application/x-www-form-urlencoded",
  "",
  "APPLICATION/JSON",
];
const ACCEPTS = [undefined, "text/html", "application/json", "text/event-stream", "*/*", "", "application/*"];

/** Headers for `/mcp`: mostly right, sometimes wrong in one way. */
function mcpHeaders(random: Random, sessionId?: string): Record<string, string> {
  const headers: Record<string, string> = { ...JSON_AND_SSE };
  if (sessionId !== undefined) {
    headers["Mcp-Session-Id"] = sessionId;
    headers["MCP-Protocol-Version"] = "2025-11-25";
  }
  if (random.chance(0.25)) {
    const contentType = random.pick(CONTENT_TYPES);
    if (contentType === undefined) delete headers["Content-Type"];
    else headers["Content-Type"] = contentType;
  }
  if (random.chance(0.2)) {
    const accept = random.pick(ACCEPTS);
    if (accept === undefined) delete headers.Accept;
    else headers.Accept = accept;
  }
  if (random.chance(0.05)) {
    headers["MCP-Protocol-Version"] = random.pick(["1999-01-01", "", "junk", "2025-11-25x"]);
  }
  if (sessionId === undefined && random.chance(0.1)) {
    headers["Mcp-Session-Id"] = random.pick([
      crypto.randomUUID(),
      "",
      "x".repeat(4000),
      "../../etc/passwd",
      "00000000-0000-0000-0000-000000000000",
    ]);
  }
  return headers;
}

// ---- sending ----------------------------------------------------------------------------------------

/** What came back for one input: a status, or why none came. */
type Answer = { status: number } | { failure: string };

/** Sends one request and reads its whole answer, within the time limit. */
async function send(url: string, input: BadInput): Promise<Answer> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
  try {
    const method = input.method ?? "POST";
    const response = await fetch(url, {
      method,
      headers: input.headers,
      body: method === "POST" ? input.body : undefined,
      signal: abort.signal,
    });
    await response.arrayBuffer();
    return { status: response.status };
  } catch (error) {
    return {
      failure: abort.signal.aborted ? `no complete answer within ${REQUEST_TIMEOUT_MS} ms` : String(error),
    };
  } finally {
    clearTimeout(timer);
  }
}

function describe(input: BadInput): string {
  const shown = JSON.stringify(decoder.decode(input.body.subarray(0, 160)));
  return `${input.kind} (${input.method ?? "POST"}, ${input.body.length} bytes, headers ${
    text(input.headers ?? {}).slice(0, 300)
  }): ${shown}`;
}

/**
 * Sends every input, `CONCURRENCY` at a time; returns one line per input whose status is not in
 * `allowed` or that got no status at all, and the count of each status.
 */
async function sendAll(
  url: (input: BadInput) => string,
  inputs: BadInput[],
  allowed: ReadonlySet<number>,
): Promise<{ problems: string[]; statuses: Map<number, number> }> {
  const problems: string[] = [];
  const statuses = new Map<number, number>();
  let next = 0;
  const worker = async () => {
    while (next < inputs.length) {
      const input = inputs[next++];
      const answer = await send(url(input), input);
      if ("failure" in answer) {
        problems.push(`${answer.failure} — ${describe(input)}`);
        continue;
      }
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      if (!allowed.has(answer.status)) problems.push(`HTTP ${answer.status} — ${describe(input)}`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { problems, statuses };
}

// ---- sessions ---------------------------------------------------------------------------------------

const INITIALIZE = TEMPLATES[0];
const INITIALIZED = { jsonrpc: "2.0", method: "notifications/initialized" };

function echo(id: string, value: string) {
  return { jsonrpc: "2.0", id, method: "tools/call", params: { name: "echo", arguments: { text: value } } };
}

/** The messages of a POST answer (JSON or an SSE stream). */
async function messagesOf(response: Response): Promise<Record<string, unknown>[]> {
  if (response.headers.get("content-type")?.startsWith("application/json")) return [await response.json()];
  const messages = [];
  for await (const event of decodeEventStream(response.body!)) {
    if (event.data !== "") messages.push(JSON.parse(event.data));
  }
  return messages;
}

async function openMcpSession(origin: string): Promise<string> {
  const response = await fetch(`${origin}/mcp`, {
    method: "POST",
    headers: JSON_AND_SSE,
    body: text(INITIALIZE),
  });
  const sessionId = response.headers.get("mcp-session-id");
  await response.body?.cancel();
  assert.ok(sessionId, `initialize: HTTP ${response.status}`);
  const headers = { ...JSON_AND_SSE, "Mcp-Session-Id": sessionId, "MCP-Protocol-Version": "2025-11-25" };
  const initialized = await fetch(`${origin}/mcp`, { method: "POST", headers, body: text(INITIALIZED) });
  await initialized.body?.cancel();
  assert.equal(initialized.status, 202);
  return sessionId;
}

async function mcpEcho(origin: string, sessionId: string, value: string): Promise<string | undefined> {
  const headers = { ...JSON_AND_SSE, "Mcp-Session-Id": sessionId, "MCP-Protocol-Version": "2025-11-25" };
  const response = await fetch(`${origin}/mcp`, {
    method: "POST",
    headers,
    body: text(echo("final", value)),
  });
  assert.equal(response.status, 200);
  const answer = (await messagesOf(response)).find((message) => message.id === "final");
  return (answer?.result as { content: { text: string }[] } | undefined)?.content[0].text;
}

/** A legacy SSE session read by hand: its messages endpoint, and every message it received. */
interface SseSession {
  endpoint: string;
  /** Resolves with the message that has `id`, from the stream. */
  answer(id: string, ms: number): Promise<Record<string, unknown> | undefined>;
  close(): Promise<void>;
}

async function openSseSession(origin: string): Promise<SseSession> {
  const response = await fetch(`${origin}/sse`);
  const events = decodeEventStream(response.body!).getReader();
  const first = await events.read();
  assert.equal(first.value?.event, "endpoint");
  const endpoint = new URL(first.value!.data, origin).href;
  const received = new Map<unknown, Record<string, unknown>>();
  const reading = (async () => {
    try {
      for (let next = await events.read(); !next.done; next = await events.read()) {
        if (next.value.event !== "message") continue;
        const message = JSON.parse(next.value.data);
        if (typeof message.id === "string") received.set(message.id, message);
      }
    } catch {
      // Cancelled by close().
    }
  })();
  const session: SseSession = {
    endpoint,
    async answer(id, ms) {
      const deadline = Date.now() + ms;
      while (!received.has(id) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return received.get(id);
    },
    async close() {
      await events.cancel().catch(() => {});
      await reading;
    },
  };
  const post = async (message: unknown) => {
    const posted = await fetch(endpoint, { method: "POST", body: text(message) });
    await posted.body?.cancel();
    assert.equal(posted.status, 202);
  };
  await post({ ...INITIALIZE, id: "init" });
  assert.ok(await session.answer("init", 10_000), "the SSE session's initialize was not answered");
  await post(INITIALIZED);
  return session;
}

// ---- client mode ------------------------------------------------------------------------------------

/** Junk and valid pings on client mode's stdin; returns what stdout carried and how the process ended. */
async function fuzzClientMode(
  url: string,
  random: Random,
): Promise<{ lines: string[]; pings: string[]; code: number; stderr: string; junk: number }> {
  const child = new Deno.Command(DENO, {
    args: ["run", "-A", "--quiet", MAIN, url],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const stdoutDone = (async () => {
    let partial = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop()!;
      lines.push(...parts);
    }
    if (partial !== "") lines.push(partial);
  })();
  const stderr = new Response(child.stderr).text();

  // As a client should, it waits for the answer to initialize before it sends anything else.
  const writer = child.stdin.getWriter();
  await writer.write(encoder.encode(text({ ...INITIALIZE, id: "init" }) + "\n"));
  const deadline = Date.now() + 20_000;
  while (!lines.some((line) => line.includes('"id":"init"')) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const pings: string[] = [];
  const chunks: Uint8Array[] = [encoder.encode(text(INITIALIZED) + "\n")];
  for (let i = 0; i < COUNTS.stdin; i++) {
    chunks.push(badBody(random, true).body, encoder.encode("\n"));
    if (i % 20 === 19) {
      const id = `ping-${i}`;
      pings.push(id);
      chunks.push(encoder.encode(text({ jsonrpc: "2.0", id, method: "ping" }) + "\n"));
    }
  }
  chunks.push(encoder.encode(text(echo("final", "client mode survived")) + "\n"));
  for (const chunk of chunks) await writer.write(chunk);
  // The end of stdin: client mode answers what is on its way, ends the session and exits.
  await writer.close();
  const [status] = await Promise.all([child.status, stdoutDone]);
  return { lines, pings, code: status.code, stderr: await stderr, junk: COUNTS.stdin };
}

// ---- the test ---------------------------------------------------------------------------------------

Deno.test(`fuzz: 12,000 bad inputs to /mcp, /messages/ and client mode's stdin (FUZZ_SEED=${SEED})`, async () => {
  const random = new Random(SEED);
  const failWith = (message: string): never => assert.fail(`FUZZ_SEED=${SEED}: ${message}`);
  // The fixture takes a *request* named notifications/cancelled for the notification and never answers
  // it; generated input can be such a request, which --request-timeout then answers with -32001.
  await using proxy = await startProxy([
    "--max-body-size",
    String(MAX_BODY),
    "--request-timeout",
    "5",
    "--",
    ...FIXTURE,
  ]);
  const { origin } = proxy;
  const mcpSession = await openMcpSession(origin);
  const sseSession = await openSseSession(origin);
  try {
    // (a) /mcp without a session, and with one.
    const withoutSession: BadInput[] = Array.from({ length: COUNTS.mcpWithoutSession }, () => {
      const input: BadInput = { ...badBody(random, false), headers: mcpHeaders(random) };
      if (random.chance(0.05)) input.method = random.pick(["GET", "DELETE", "PUT", "PATCH"]);
      return input;
    });
    const withSession: BadInput[] = Array.from({ length: COUNTS.mcpWithSession }, () => ({
      ...badBody(random, false),
      headers: mcpHeaders(random, mcpSession),
    }));
    // (b) /messages/ of the live SSE session; one in twenty with a session_id of its own.
    const sessionIds: string[] = [];
    const messages: BadInput[] = Array.from({ length: COUNTS.messages }, () => {
      const input: BadInput = { ...badBody(random, false) };
      if (random.chance(0.2)) input.headers = { "Content-Type": random.pick(CONTENT_TYPES) ?? "text/plain" };
      sessionIds.push(
        random.chance(0.05)
          ? random.pick(["", "0".repeat(32), "zz", "x".repeat(5000), "%00", "../"])
          : new URL(sseSession.endpoint).searchParams.get("session_id")!,
      );
      return input;
    });
    const sessionIdOf = new Map(messages.map((input, i) => [input, sessionIds[i]]));

    const mcpUrl = () => `${origin}/mcp`;
    const runs = [
      await sendAll(mcpUrl, withoutSession, new Set([200, 202, 400, 404, 405, 406, 413, 415])),
      await sendAll(mcpUrl, withSession, new Set([200, 202, 400, 406, 413, 415])),
      await sendAll(
        (input) => `${origin}/messages/?session_id=${encodeURIComponent(sessionIdOf.get(input)!)}`,
        messages,
        new Set([202, 400, 404, 413]),
      ),
    ];
    const problems = runs.flatMap((run) => run.problems);
    if (problems.length > 0) {
      failWith(
        `${problems.length} requests went wrong; the first ones:\n${problems.slice(0, 15).join("\n")}`,
      );
    }
    for (const run of runs) assert.ok(run.statuses.size > 1, `only one status: ${[...run.statuses.keys()]}`);

    // (c) client mode in front of the same proxy.
    const client = await fuzzClientMode(`${origin}/mcp`, random);
    if (client.code !== 0) failWith(`client mode exited with ${client.code}:\n${client.stderr.slice(-3000)}`);
    const answers = new Map<unknown, Record<string, unknown>>();
    for (const line of client.lines) {
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        failWith(`client mode wrote a line that is not JSON: ${line.slice(0, 200)}`);
      }
      // A junk batch is answered with an array of errors, as JSON-RPC answers a batch.
      for (const message of Array.isArray(value) && value.length > 0 ? value : [value]) {
        if (typeof message !== "object" || message === null || !("jsonrpc" in message)) {
          failWith(`client mode wrote a line that is not JSON-RPC: ${line.slice(0, 200)}`);
        }
        const fields = message as Record<string, unknown>;
        if (fields.jsonrpc !== "2.0") {
          failWith(`client mode wrote a line that is not JSON-RPC: ${line.slice(0, 200)}`);
        }
        answers.set(fields.id, fields);
      }
    }
    const unanswered = client.pings.filter((id) => answers.get(id)?.result === undefined);
    if (unanswered.length > 0) failWith(`pings without an answer on stdout: ${unanswered.join(", ")}`);
    const finalEcho = answers.get("final")?.result as { content: { text: string }[] } | undefined;
    assert.equal(finalEcho?.content[0].text, "client mode survived", `FUZZ_SEED=${SEED}`);
    // -32700 for a line that is not JSON, -32600 for JSON that is no message (or a batch, an array of them).
    const refusals = client.lines.filter((line) => /"code":-32(700|600)\b/.test(line)).length;
    assert.ok(refusals > client.junk / 2, `only ${refusals} error answers for ${client.junk} junk lines`);

    // Afterwards: the proxy lives, the sessions that got the junk still work, and so do new ones.
    assert.ok(processExists(proxy.pid), "the proxy is gone");
    assert.equal(await mcpEcho(origin, mcpSession, "mcp session survived"), "mcp session survived");
    const posted = await fetch(sseSession.endpoint, {
      method: "POST",
      body: text(echo("final", "sse session survived")),
    });
    await posted.body?.cancel();
    assert.equal(posted.status, 202);
    const sseAnswer = await sseSession.answer("final", 10_000);
    assert.equal(
      (sseAnswer?.result as { content: { text: string }[] } | undefined)?.content[0].text,
      "sse session survived",
    );
    for (const transport of ["mcp", "sse"] as const) {
      await using fresh = await connectClient(proxy.baseUrl(), transport);
      const result = await fresh.callTool({ name: "echo", arguments: { text: `fresh ${transport}` } });
      assert.deepEqual(result.content, [{ type: "text", text: `fresh ${transport}` }]);
    }
    const status = await (await fetch(`${origin}/status`)).json();
    assert.equal(status.servers.default.state, "running");
    assert.equal(status.servers.default.restarts, 0, "the child was restarted");
    assert.doesNotMatch(proxy.stderr(), / failed: |Internal Server Error|Uncaught|mcp-proxy: crashed/);
  } finally {
    await sseSession.close();
  }
});
