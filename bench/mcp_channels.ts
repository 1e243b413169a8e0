/**
 * The benchmark's MCP clients, written on raw JSON-RPC so that they cost little and the same on every
 * path: {@link StdioChannel} (JSON lines over a child's stdin and stdout), {@link StreamableHttpChannel}
 * (a POST per message, the answer as JSON or read from the SSE stream the POST opened, `fetch` with
 * keep-alive) and {@link LegacySseChannel} (one SSE stream, a POST per message).
 *
 * A channel resolves a request with the answer's `result`; an error answer, a missing answer, or none
 * within {@link REQUEST_TIMEOUT_MS} rejects it.
 *
 * @module
 */

import { PROTOCOL_VERSION } from "./echo_handler.ts";
import type { TrackedProcess } from "./processes.ts";

/** Longest wait for one answer. */
export const REQUEST_TIMEOUT_MS = 60_000;

/** One MCP session, as the benchmark drives it. */
export interface McpChannel {
  /** Names the path in error messages, e.g. `proxy /mcp`. */
  readonly label: string;
  /** Sends a request; resolves with the answer's `result`. */
  request(method: string, params?: Record<string, unknown>): Promise<unknown>;
  /** Sends a notification. */
  notify(method: string, params?: Record<string, unknown>): Promise<void>;
  /** Ends the session and releases its connections. */
  close(): Promise<void>;
}

type Message = Record<string, unknown>;

const encoder = new TextEncoder();

/** `initialize`, checked, then `notifications/initialized`. */
export async function initialize(channel: McpChannel): Promise<void> {
  const result = await channel.request("initialize", {
    protocolVersion: PROTOCOL_VERSION,
    capabilities: {},
    clientInfo: { name: "mcp-proxy-bench", version: "1.0.0" },
  }) as Message | undefined;
  if (typeof result?.protocolVersion !== "string") {
    throw new Error(
      `${channel.label}: initialize answered without a protocolVersion: ${JSON.stringify(result)}`,
    );
  }
  await channel.notify("notifications/initialized");
}

function answerOf(label: string, method: string, message: Message): unknown {
  if (message.error !== undefined) {
    const error = message.error as Message;
    throw new Error(`${label}: ${method} answered error ${error.code}: ${error.message}`);
  }
  if (!("result" in message)) throw new Error(`${label}: ${method} answered ${JSON.stringify(message)}`);
  return message.result;
}

function isAnswerTo(message: unknown, id: number): message is Message {
  return typeof message === "object" && message !== null && (message as Message).id === id &&
    !("method" in message);
}

function requestLine(id: number, method: string, params?: Record<string, unknown>): string {
  return JSON.stringify(
    params === undefined ? { jsonrpc: "2.0", id, method } : { jsonrpc: "2.0", id, method, params },
  );
}

function notificationLine(method: string, params?: Record<string, unknown>): string {
  return JSON.stringify(
    params === undefined ? { jsonrpc: "2.0", method } : { jsonrpc: "2.0", method, params },
  );
}

/** Lines of a byte stream (without `\n`), each byte looked at once however long the line. */
export async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  let parts: Uint8Array[] = [];
  let partBytes = 0;
  for await (const chunk of stream) {
    let start = 0;
    let end = chunk.indexOf(0x0a);
    while (end !== -1) {
      const piece = chunk.subarray(start, end);
      if (parts.length === 0) {
        yield piece;
      } else {
        parts.push(piece);
        const line = new Uint8Array(partBytes + piece.length);
        let offset = 0;
        for (const part of parts) {
          line.set(part, offset);
          offset += part.length;
        }
        parts = [];
        partBytes = 0;
        yield line;
      }
      start = end + 1;
      end = chunk.indexOf(0x0a, start);
    }
    if (start < chunk.length) {
      parts.push(chunk.subarray(start));
      partBytes += chunk.length - start;
    }
  }
}

/** One server-sent event. */
export interface ServerSentEvent {
  event: string;
  data: string;
  id?: string;
}

/**
 * Reads an SSE stream to its end, or until `signal` aborts, calling `onEvent` for each event; linear in
 * the stream's length.
 */
export async function readEvents(
  body: ReadableStream<Uint8Array>,
  onEvent: (event: ServerSentEvent) => void,
  signal?: AbortSignal,
): Promise<void> {
  const decoder = new TextDecoder();
  let event = "";
  let data: string[] = [];
  let id: string | undefined;
  const onLine = (line: string) => {
    if (line.endsWith("\r")) line = line.slice(0, -1);
    if (line === "") {
      if (data.length > 0) onEvent({ event: event || "message", data: data.join("\n"), id });
      event = "";
      data = [];
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "event") event = value;
    else if (field === "id") id = value;
  };
  let partial: string[] = [];
  const reader = body.getReader();
  // Aborting the fetch does not always end a body that is being read: cancel it here.
  const cancel = () => {
    reader.cancel().catch(() => {});
  };
  signal?.addEventListener("abort", cancel, { once: true });
  if (signal?.aborted) cancel();
  while (true) {
    const { done, value: chunk } = await reader.read();
    if (done) break;
    const text = decoder.decode(chunk, { stream: true });
    let start = 0;
    let end = text.indexOf("\n");
    while (end !== -1) {
      const piece = text.slice(start, end);
      if (partial.length === 0) {
        onLine(piece);
      } else {
        partial.push(piece);
        onLine(partial.join(""));
        partial = [];
      }
      start = end + 1;
      end = text.indexOf("\n", start);
    }
    if (start < text.length) partial.push(text.slice(start));
  }
  signal?.removeEventListener("abort", cancel);
}

interface Pending {
  method: string;
  resolve(result: unknown): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/** Requests waiting for answers that arrive on a stream of their own (stdio, legacy SSE). */
class PendingRequests {
  readonly #label: string;
  readonly #pending = new Map<number, Pending>();
  #failure: Error | undefined;

  constructor(label: string) {
    this.#label = label;
  }

  wait(id: number, method: string): Promise<unknown> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new Error(`${this.#label}: no answer to ${method} (id ${id}) within ${REQUEST_TIMEOUT_MS} ms`),
        );
      }, REQUEST_TIMEOUT_MS);
      this.#pending.set(id, { method, resolve, reject, timer });
    });
  }

  /** Settles the request `message` answers; other messages (notifications, strays) are ignored. */
  deliver(message: unknown): void {
    if (Array.isArray(message)) {
      for (const item of message) this.deliver(item);
      return;
    }
    if (typeof message !== "object" || message === null || "method" in message) return;
    const id = (message as Message).id;
    const pending = typeof id === "number" ? this.#pending.get(id) : undefined;
    if (pending === undefined) return;
    this.#pending.delete(id as number);
    clearTimeout(pending.timer);
    try {
      pending.resolve(answerOf(this.#label, pending.method, message as Message));
    } catch (error) {
      pending.reject(error as Error);
    }
  }

  /** Rejects every waiting request, and every later one, with `error`. */
  fail(error: Error): void {
    this.#failure ??= error;
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer);
      pending.reject(new Error(`${error.message} (waiting for ${pending.method}, id ${id})`));
    }
    this.#pending.clear();
  }
}

/** A stdio MCP session with a child process: JSON lines on its stdin, answers read from its stdout. */
export class StdioChannel implements McpChannel {
  readonly label: string;
  readonly #process: TrackedProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #pending: PendingRequests;
  readonly #reading: Promise<void>;
  #nextId = 1;

  /** `process` must have been spawned with stdin and stdout piped. */
  constructor(label: string, process: TrackedProcess) {
    this.label = label;
    this.#process = process;
    this.#pending = new PendingRequests(label);
    this.#writer = process.child.stdin.getWriter();
    this.#reading = this.#read(process.child.stdout);
  }

  async #read(stdout: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for await (const line of readLines(stdout)) {
        if (line.length === 0) continue;
        let message: unknown;
        try {
          message = JSON.parse(decoder.decode(line));
        } catch {
          this.#pending.fail(
            new Error(
              `${this.label}: a stdout line that is not JSON: ${decoder.decode(line.subarray(0, 200))}`,
            ),
          );
          continue;
        }
        this.#pending.deliver(message);
      }
    } catch (error) {
      this.#pending.fail(new Error(`${this.label}: reading stdout failed: ${error}`));
    }
    this.#pending.fail(new Error(`${this.label}: stdout ended\n${this.#process.stderrTail()}`));
  }

  request(method: string, params?: Record<string, unknown>): Promise<unknown> {
    const id = this.#nextId++;
    const answer = this.#pending.wait(id, method);
    this.#write(requestLine(id, method, params));
    return answer;
  }

  notify(method: string, params?: Record<string, unknown>): Promise<void> {
    return this.#write(notificationLine(method, params));
  }

  #write(line: string): Promise<void> {
    return this.#writer.write(encoder.encode(line + "\n")).catch((error) => {
      this.#pending.fail(
        new Error(`${this.label}: cannot write to stdin: ${error}\n${this.#process.stderrTail()}`),
      );
    });
  }

  /** Closes the child's stdin (end of input); its stdout is read until the child closes it. */
  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
    await Promise.race([this.#reading, new Promise((resolve) => setTimeout(resolve, 3000))]);
  }
}

/** A Streamable HTTP session: every message is a POST to `url`, with `fetch` (keep-alive). */
export class StreamableHttpChannel implements McpChannel {
  readonly label: string;
  readonly url: string;
  #sessionId: string | undefined;
  #protocolVersion: string | undefined;
  #nextId = 1;
  #stream: { abort: AbortController; reading: Promise<void> } | undefined;

  constructor(label: string, url: string) {
    this.label = label;
    this.url = url;
  }

  #headers(extra: Record<string, string>): Record<string, string> {
    const headers = { ...extra };
    if (this.#sessionId !== undefined) headers["Mcp-Session-Id"] = this.#sessionId;
    if (this.#protocolVersion !== undefined) headers["MCP-Protocol-Version"] = this.#protocolVersion;
    return headers;
  }

  async #post(body: string): Promise<Response> {
    const response = await fetch(this.url, {
      method: "POST",
      headers: this.#headers({
        "Content-Type": "application/json",
        Accept: "application/json, text/event-stream",
      }),
      body,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    this.#sessionId ??= response.headers.get("mcp-session-id") ?? undefined;
    return response;
  }

  async #httpError(what: string, response: Response): Promise<Error> {
    const text = (await response.text().catch(() => "")).slice(0, 300);
    return new Error(`${this.label}: ${what} answered HTTP ${response.status}: ${text}`);
  }

  async request(method: string, params?: Record<string, unknown>): Promise<unknown> {
    const id = this.#nextId++;
    const response = await this.#post(requestLine(id, method, params));
    if (!response.ok) throw await this.#httpError(method, response);
    const type = (response.headers.get("content-type") ?? "").toLowerCase();
    let answer: Message | undefined;
    const look = (message: unknown) => {
      for (const item of Array.isArray(message) ? message : [message]) {
        if (isAnswerTo(item, id)) answer = item;
      }
    };
    if (type.startsWith("text/event-stream")) {
      await readEvents(response.body!, (event) => {
        if (event.event === "message" && event.data !== "") look(JSON.parse(event.data));
      });
    } else if (type.includes("json")) {
      look(JSON.parse(await response.text()));
    } else {
      await response.body?.cancel();
      throw new Error(`${this.label}: ${method} answered with content type "${type}"`);
    }
    if (answer === undefined) {
      throw new Error(`${this.label}: the response to ${method} (id ${id}) held no answer`);
    }
    const result = answerOf(this.label, method, answer);
    if (method === "initialize") this.#protocolVersion = (result as Message).protocolVersion as string;
    return result;
  }

  async notify(method: string, params?: Record<string, unknown>): Promise<void> {
    const response = await this.#post(notificationLine(method, params));
    if (!response.ok) throw await this.#httpError(method, response);
    await response.body?.cancel();
  }

  /**
   * Opens the session's GET stream (as the SDK's client does after `notifications/initialized`) and
   * keeps it open until {@link close}; a server without one (405) is fine.
   */
  async openStream(): Promise<void> {
    const abort = new AbortController();
    const response = await fetch(this.url, {
      headers: this.#headers({ Accept: "text/event-stream" }),
      signal: abort.signal,
    });
    if (response.status === 405) {
      await response.body?.cancel();
      return;
    }
    if (!response.ok) throw await this.#httpError("GET", response);
    this.#stream = { abort, reading: readEvents(response.body!, () => {}, abort.signal).catch(() => {}) };
  }

  /** Closes the GET stream and ends the session with DELETE. */
  async close(): Promise<void> {
    if (this.#stream !== undefined) {
      this.#stream.abort.abort();
      await this.#stream.reading;
    }
    if (this.#sessionId === undefined) return;
    try {
      const response = await fetch(this.url, {
        method: "DELETE",
        headers: this.#headers({}),
        signal: AbortSignal.timeout(5000),
      });
      await response.body?.cancel();
    } catch {
      // The server is gone: so is the session.
    }
  }
}

/** A legacy SSE session (protocol 2024-11-05): GET `sseUrl`, then POST each message to its `endpoint`. */
export class LegacySseChannel implements McpChannel {
  readonly label: string;
  readonly #abort: AbortController;
  readonly #pending: PendingRequests;
  readonly #endpoint: Promise<string>;
  #reading: Promise<void> = Promise.resolve();
  #nextId = 1;

  private constructor(label: string, abort: AbortController, endpoint: Promise<string>) {
    this.label = label;
    this.#abort = abort;
    this.#endpoint = endpoint;
    this.#pending = new PendingRequests(label);
  }

  /** Opens the stream and waits for its `endpoint` event. */
  static async open(label: string, sseUrl: string): Promise<LegacySseChannel> {
    const abort = new AbortController();
    const response = await fetch(sseUrl, { headers: { Accept: "text/event-stream" }, signal: abort.signal });
    if (!response.ok) {
      const text = (await response.text().catch(() => "")).slice(0, 300);
      throw new Error(`${label}: GET ${sseUrl} answered HTTP ${response.status}: ${text}`);
    }
    let found!: (url: string) => void;
    let missing!: (error: Error) => void;
    const endpoint = new Promise<string>((resolve, reject) => {
      found = resolve;
      missing = reject;
    });
    const channel = new LegacySseChannel(label, abort, endpoint);
    channel.#reading = channel.#read(response.body!, sseUrl, found, missing);
    const timer = setTimeout(() => missing(new Error(`${label}: no endpoint event within 30 s`)), 30_000);
    try {
      await endpoint;
    } catch (error) {
      abort.abort();
      throw error;
    } finally {
      clearTimeout(timer);
    }
    return channel;
  }

  async #read(
    body: ReadableStream<Uint8Array>,
    sseUrl: string,
    found: (url: string) => void,
    missing: (error: Error) => void,
  ): Promise<void> {
    try {
      await readEvents(body, (event) => {
        if (event.event === "endpoint") found(new URL(event.data.trim(), sseUrl).href);
        else if (event.event === "message" && event.data !== "") {
          this.#pending.deliver(JSON.parse(event.data));
        }
      }, this.#abort.signal);
    } catch (error) {
      if (!this.#abort.signal.aborted) {
        this.#pending.fail(new Error(`${this.label}: the SSE stream broke: ${error}`));
      }
    }
    const ended = new Error(`${this.label}: the SSE stream ended`);
    missing(ended);
    this.#pending.fail(ended);
  }

  async #post(line: string, what: string): Promise<void> {
    const response = await fetch(await this.#endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: line,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await response.text();
    if (!response.ok) {
      throw new Error(`${this.label}: ${what} answered HTTP ${response.status}: ${text.slice(0, 300)}`);
    }
  }

  async request(method: string, params?: Record<string, unknown>): Promise<unknown> {
    const id = this.#nextId++;
    const answer = this.#pending.wait(id, method);
    try {
      await this.#post(requestLine(id, method, params), method);
    } catch (error) {
      answer.catch(() => {});
      throw error;
    }
    return await answer;
  }

  notify(method: string, params?: Record<string, unknown>): Promise<void> {
    return this.#post(notificationLine(method, params), method);
  }

  /** Closes the stream, which ends the session. */
  async close(): Promise<void> {
    this.#abort.abort();
    await this.#reading;
  }
}
