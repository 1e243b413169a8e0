/**
 * The server-mode half of `bench/floor.ts`: the least an HTTP → stdio relay can do, on both of mcp-proxy's
 * transports. Each request's id is swapped for one of the relay's own (the sessions share one child, and
 * their ids collide), its text written to the child's stdin; the child's answer, its id swapped back, goes
 * to the session that asked:
 *
 * - `POST /mcp`: a request is answered with its answer as a JSON body; a POST without an id, 202;
 * - `GET /sse`: a stream whose first event names `/messages/?session_id=N`; a POST there is answered 202,
 *   and its answer is sent on the stream as a `message` event.
 *
 * An answer that spans reads of the child's stdout is streamed as its bytes come, as mcp-proxy does: its
 * start (where the child writes the id) is rewritten, the rest passed on untouched and uncopied. One whose
 * id comes last is held, uncopied, until its end names its destination, then passed on the same way.
 *
 * Under load (the child has other requests under way, and the last write to it was less than 1 ms ago),
 * what is written to it waits for the end of the event loop's turn, to go in one write with the rest of
 * that turn, as mcp-proxy does.
 *
 * No checks, no routing beyond that, no sessions on `/mcp`: a measuring stick, not a relay to use. It
 * serves only the benchmark's clients (`bench/mcp_channels.ts`) and echo server, whose ids are numbers
 * written `"id":N`, the answer's right after `{"jsonrpc":"2.0",`.
 *
 * Run: `deno run -A bench/minimal_server_relay.ts PORT COMMAND [ARGS…]`.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { indexOfLineBreak, searchableText } from "../src/line_break_search.ts";

const [port, command, ...args] = Deno.args;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const ANSWER_START = /^\{"jsonrpc":"2\.0","id":(\d+)/;
const ANSWER_END = /"id":(\d+)\}$/;

/** Where an answer goes: whole, or in pieces as it comes. */
interface Destination {
  /** The answer line, its id already its client's. */
  deliver(line: string): void;
  /** Opens the answer to bytes as they come; `first` is its start, its id already its client's. */
  stream(first: Uint8Array): { write(bytes: Uint8Array): void; end(): void };
}

const child = new Deno.Command(command, { args, stdin: "piped", stdout: "piped" }).spawn();
const writer = child.stdin.getWriter();
/** The relay's id of each request under way → its client's id and where its answer goes. */
const waiting = new Map<number, { id: unknown; to: Destination }>();
let lastId = 0;
const streams = new Map<string, ReadableStreamDefaultController<Uint8Array>>();
let lastStream = 0;

/** `text` with its first `"id":` member, whose value is `id`, set to `newId`. */
function withId(text: string, id: unknown, newId: unknown): string {
  const member = `"id":${JSON.stringify(id)}`;
  const at = text.indexOf(member);
  return text.slice(0, at) + `"id":${JSON.stringify(newId)}` + text.slice(at + member.length);
}

/** Lines for the child held to the end of the event loop's turn. */
let held: string[] = [];
/** When the last write to the child was made (`performance.now()`). */
let lastWriteAt = -Infinity;

function writeToChild(text: string): void {
  lastWriteAt = performance.now();
  writer.write(encoder.encode(text + "\n"));
}

/**
 * Writes `line` to the child: at once after a quiet spell (no write for 1 ms) or while it has no other
 * request under way; else at the end of the turn, together with the others of that turn, as mcp-proxy
 * does (see its `JsonLineWriter`).
 */
function toChild(line: string): void {
  if (held.push(line) > 1) return;
  if (performance.now() - lastWriteAt >= 1 || waiting.size <= 1) {
    held = [];
    writeToChild(line);
    return;
  }
  setImmediate(() => {
    writeToChild(held.join("\n"));
    held = [];
  });
}

/** Writes the message `text` to the child; a request's answer goes to `to`. */
function relay(text: string, to: Destination): boolean {
  const { id } = JSON.parse(text);
  if (id === undefined) {
    toChild(text);
    return false;
  }
  waiting.set(++lastId, { id, to });
  toChild(withId(text, id, lastId));
  return true;
}

function answerLine(line: string): void {
  const id = JSON.parse(line).id;
  const request = waiting.get(id);
  if (request === undefined) return;
  waiting.delete(id);
  request.to.deliver(withId(line, id, request.id));
}

/** The start of a long answer line: its destination's sink, with the start written, or undefined. */
function answerStream(start: Uint8Array): ReturnType<Destination["stream"]> | undefined {
  const found = ANSWER_START.exec(decoder.decode(start.subarray(0, 64)));
  const request = found === null ? undefined : waiting.get(Number(found[1]));
  if (found === null || request === undefined) return undefined;
  waiting.delete(Number(found[1]));
  const head = encoder.encode(`{"jsonrpc":"2.0","id":${JSON.stringify(request.id)}`);
  const first = new Uint8Array(head.length + start.length - found[0].length);
  first.set(head);
  first.set(start.subarray(found[0].length), head.length);
  return request.to.stream(first);
}

/**
 * A long answer line in `parts` whose id comes last, as the TypeScript SDK writes it, with the whole
 * `"id":N}` in its last part: it goes to its destination as those parts, uncopied but for the last, its
 * id swapped. False for any other line.
 */
function answerInParts(parts: Uint8Array[]): boolean {
  const last = parts[parts.length - 1];
  const found = ANSWER_END.exec(decoder.decode(last.subarray(Math.max(0, last.length - 64))));
  const request = found === null ? undefined : waiting.get(Number(found[1]));
  if (found === null || request === undefined) return false;
  waiting.delete(Number(found[1]));
  const sink = request.to.stream(parts[0]);
  for (const part of parts.slice(1, -1)) sink.write(part);
  const tail = encoder.encode(`"id":${JSON.stringify(request.id)}}`);
  const keep = last.subarray(0, last.length - found[0].length);
  const lastPart = new Uint8Array(keep.length + tail.length);
  lastPart.set(keep);
  lastPart.set(tail, keep.length);
  sink.write(lastPart);
  sink.end();
  return true;
}

(async () => {
  /** The start of a line that spans reads and is being gathered. */
  let parts: Uint8Array[] = [];
  /** Where the rest of a long answer goes, while it streams. */
  let sink: ReturnType<Destination["stream"]> | undefined;
  // The default reader hands over a new buffer with every read: views of it may be kept.
  for await (const chunk of child.stdout) {
    // The newline search mcp-proxy uses: by way of the chunk's text when it is long.
    const text = searchableText(chunk);
    let start = 0;
    while (start < chunk.length) {
      const newline = indexOfLineBreak(chunk, text, "\n", start);
      const end = newline === -1 ? chunk.length : newline;
      if (sink !== undefined) {
        if (end > start) sink.write(chunk.subarray(start, end));
        if (newline !== -1) {
          sink.end();
          sink = undefined;
        }
      } else if (newline === -1) {
        const rest = chunk.subarray(start);
        if (parts.length > 0 || (sink = answerStream(rest)) === undefined) parts.push(rest);
      } else if (parts.length === 0) {
        if (end > start) answerLine(decoder.decode(chunk.subarray(start, end)));
      } else if (!answerInParts([...parts, chunk.subarray(start, end)])) {
        parts.push(chunk.subarray(start, end));
        const line = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
        let offset = 0;
        for (const part of parts) {
          line.set(part, offset);
          offset += part.length;
        }
        parts = [];
        answerLine(decoder.decode(line));
      } else {
        parts = [];
      }
      start = end + 1;
    }
  }
})();

function openStream(): Response {
  const session = `${++lastStream}`;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      streams.set(session, controller);
      controller.enqueue(encoder.encode(`event: endpoint\ndata: /messages/?session_id=${session}\n\n`));
    },
    cancel() {
      streams.delete(session);
    },
  });
  return new Response(body, { headers: { "Content-Type": "text/event-stream" } });
}

const EVENT_HEAD = encoder.encode("event: message\ndata: ");
const EVENT_END = encoder.encode("\n\n");

async function postMessage(request: Request, session: string): Promise<Response> {
  const stream = streams.get(session);
  if (stream === undefined) return new Response(null, { status: 404 });
  relay(await request.text(), {
    deliver: (line) => stream.enqueue(encoder.encode(`event: message\ndata: ${line}\n\n`)),
    stream: (first) => {
      stream.enqueue(EVENT_HEAD);
      stream.enqueue(first);
      return { write: (bytes) => stream.enqueue(bytes), end: () => stream.enqueue(EVENT_END) };
    },
  });
  return new Response("Accepted", { status: 202 });
}

const JSON_HEADERS = { "Content-Type": "application/json", "Mcp-Session-Id": "floor" };

async function postMcp(request: Request): Promise<Response> {
  let respond!: (response: Response) => void;
  const response = new Promise<Response>((resolve) => respond = resolve);
  const to: Destination = {
    deliver: (line) => respond(new Response(line, { headers: JSON_HEADERS })),
    stream: (first) => {
      let body!: ReadableStreamDefaultController<Uint8Array>;
      respond(new Response(new ReadableStream({ start: (it) => body = it }), { headers: JSON_HEADERS }));
      body.enqueue(first);
      return { write: (bytes) => body.enqueue(bytes), end: () => body.close() };
    },
  };
  if (!relay(await request.text(), to)) return new Response(null, { status: 202 });
  return await response;
}

Deno.serve({ hostname: "127.0.0.1", port: Number(port), onListen() {} }, (request) => {
  // The path and query as written, without a URL parser: "http://host:port" ends before the third "/".
  const target = request.url.slice(request.url.indexOf("/", "http://".length));
  if (request.method === "GET" && target === "/sse") return openStream();
  if (request.method === "POST" && target.startsWith("/messages/?session_id=")) {
    return postMessage(request, target.slice("/messages/?session_id=".length));
  }
  if (request.method === "POST") return postMcp(request);
  return new Response(null, { status: 200 });
});

// Ends by returning from the module, not by the signal's default, so that `--cpu-prof` writes its profile.
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
