/**
 * The client-mode half of `bench/floor.ts`: the least a stdio → Streamable HTTP relay can do. Each stdin
 * line is POSTed as it is to the URL given as the argument (with the session id the first answer
 * brought), and each answer body is written to stdout as one line (an SSE body: the `data` of each of its
 * lines that has one). No checks, no validation, no errors handled: a measuring stick, not a relay to use.
 *
 * Two ways to send: Deno's `fetch` (the default), or with `--http1` a bare HTTP/1.1 exchange over
 * kept-alive `Deno.connect` connections (bodies with Content-Length only), as mcp-proxy's client mode
 * sends its own requests without `fetch`'s machinery.
 *
 * Run: `deno run --allow-net bench/minimal_client_relay.ts [--http1] http://127.0.0.1:PORT/mcp`.
 *
 * @module
 */

import { Socket } from "node:net";

const http1 = Deno.args.includes("--http1");
const url = new URL(Deno.args.find((arg) => !arg.startsWith("--"))!);
const encoder = new TextEncoder();
const decoder = new TextDecoder();
let sessionId: string | undefined;

/** A kept-alive connection and the bytes read from it but not yet used. */
class Connection {
  buffer = new Uint8Array(64 * 1024);
  start = 0;
  end = 0;
  constructor(readonly conn: Deno.TcpConn) {
    conn.setNoDelay(true);
  }

  async fill(): Promise<void> {
    if (this.start === this.end) this.start = this.end = 0;
    if (this.end === this.buffer.length) {
      const bigger = new Uint8Array(this.buffer.length * 2);
      bigger.set(this.buffer.subarray(this.start, this.end));
      this.end -= this.start;
      this.start = 0;
      this.buffer = bigger;
    }
    const count = await this.conn.read(this.buffer.subarray(this.end));
    if (count === null) throw new Error("the server closed the connection");
    this.end += count;
  }

  /** POSTs `body`; returns the answer body and the session id header, if any. */
  async post(body: string): Promise<{ text: string; session: string | undefined }> {
    const bytes = encoder.encode(body);
    let head = `POST ${url.pathname} HTTP/1.1\r\nhost: ${url.host}\r\ncontent-type: application/json\r\n` +
      `accept: application/json, text/event-stream\r\ncontent-length: ${bytes.length}\r\n`;
    if (sessionId !== undefined) head += `mcp-session-id: ${sessionId}\r\n`;
    const headBytes = encoder.encode(head + "\r\n");
    const message = new Uint8Array(headBytes.length + bytes.length);
    message.set(headBytes);
    message.set(bytes, headBytes.length);
    for (let written = 0; written < message.length;) {
      written += await this.conn.write(message.subarray(written));
    }
    let headEnd = -1;
    while ((headEnd = findHeadEnd(this.buffer, this.start, this.end)) === -1) await this.fill();
    const headText = decoder.decode(this.buffer.subarray(this.start, headEnd));
    this.start = headEnd + 4;
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(headText)?.[1] ?? 0);
    const session = /\r\nmcp-session-id: *([^\r]*)/i.exec(headText)?.[1];
    while (this.end - this.start < length) await this.fill();
    const text = decoder.decode(this.buffer.subarray(this.start, this.start + length));
    this.start += length;
    return { text, session };
  }
}

/**
 * Where the blank line after the head starts, or -1. Searched in the bytes read only: a search of the
 * whole buffer goes through the rest of its 64 KiB each time a head is not complete yet.
 */
function findHeadEnd(buffer: Uint8Array, start: number, end: number): number {
  const read = buffer.subarray(0, end);
  for (let at = read.indexOf(13, start); at !== -1 && at + 3 < end; at = read.indexOf(13, at + 1)) {
    if (read[at + 1] === 10 && read[at + 2] === 13 && read[at + 3] === 10) return at;
  }
  return -1;
}

const idle: Connection[] = [];

async function postHttp1(line: string): Promise<string> {
  const connection = idle.pop() ??
    new Connection(await Deno.connect({ hostname: url.hostname, port: Number(url.port) }));
  const { text, session } = await connection.post(line);
  idle.push(connection);
  sessionId ??= session;
  return text;
}

async function postFetch(line: string): Promise<string> {
  const headers: Record<string, string> = {
    "Content-Type": "application/json",
    Accept: "application/json, text/event-stream",
  };
  if (sessionId !== undefined) headers["Mcp-Session-Id"] = sessionId;
  const response = await fetch(url, { method: "POST", headers, body: line });
  sessionId ??= response.headers.get("mcp-session-id") ?? undefined;
  return await response.text();
}

const post = http1 ? postHttp1 : postFetch;

/** The JSON texts of an SSE body: each `data: ` line's (one line per event, as the echo server writes). */
function eventData(text: string): string {
  return text.split("\n").filter((line) => line.startsWith("data: ")).map((line) => line.slice(6)).join("\n");
}

async function relay(line: string): Promise<void> {
  let text = await post(line);
  if (text.startsWith("event:") || text.startsWith("data:")) text = eventData(text);
  if (text === "") return;
  // At once, as mcp-proxy writes its stdout: an asynchronous write goes through a thread of Deno's pool.
  const bytes = encoder.encode(text + "\n");
  for (let written = 0; written < bytes.length;) written += Deno.stdout.writeSync(bytes.subarray(written));
}

// Read from the event loop, as mcp-proxy reads a piped stdin (src/standard_input.ts): `Deno.stdin` is
// read on a thread of Deno's pool, some 40 µs more a call.
let buffer = "";
new Socket({ fd: 0, readable: true, writable: false, allowHalfOpen: true }).on(
  "data",
  (chunk: Uint8Array) => {
    buffer += decoder.decode(chunk, { stream: true });
    for (let newline = buffer.indexOf("\n"); newline !== -1; newline = buffer.indexOf("\n")) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line !== "") relay(line);
    }
  },
);
