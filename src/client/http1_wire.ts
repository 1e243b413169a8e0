/**
 * The text of HTTP/1.1 as client mode's own `fetch` (`http1_fetch.ts`) writes and reads it: a request
 * head, a response head, and how the response body is framed (RFC 9112). Pure functions, no I/O.
 *
 * @module
 */

/** Statuses `fetch` follows as redirects when the response has a `Location`. */
export const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
/** Statuses whose response has no body (a `Response` with one cannot be made). */
export const NULL_BODY_STATUSES: ReadonlySet<number> = new Set([101, 103, 204, 205, 304]);

/** A response head, read. */
export interface ResponseHead {
  status: number;
  statusText: string;
  /** Header fields in the order received, names as sent. */
  headers: [string, string][];
  /** Whether the connection may carry another request once this response's body is read. */
  keepAlive: boolean;
  /** How the body ends. */
  framing: BodyFraming;
  /** `Content-Encoding`, in lower case, or "" for none. */
  contentEncoding: string;
  /** How long the server keeps the connection open while idle (`Keep-Alive: timeout=N`), in ms, if said. */
  keepAliveTimeoutMs?: number;
}

/** How a response body ends: after `length` bytes, after a zero-size chunk, or when the server closes. */
export type BodyFraming =
  | { kind: "none" }
  | { kind: "length"; length: number }
  | { kind: "chunked" }
  | { kind: "close" };

/** A response the client cannot read: the connection cannot be used again. */
export class HttpWireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HttpWireError";
  }
}

const CR = 13;
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A request's field value is written as Latin-1: no character above U+00FF. */
const REQUEST_FIELD_VALUE = /^[^\0\r\n\u0100-\uffff]*$/;

/** Bytes as Latin-1 text: HTTP field values are bytes, and `Headers` holds them as byte strings. */
export function latin1(bytes: Uint8Array): string {
  let text = "";
  for (let start = 0; start < bytes.length; start += 8192) {
    text += String.fromCharCode.apply(null, bytes.subarray(start, start + 8192) as unknown as number[]);
  }
  return text;
}

function hasToken(list: string, token: string): boolean {
  return list.toLowerCase().split(",").some((item) => item.trim() === token);
}

/**
 * Where the line that `newline` ends in `text` stops: before that LF and a CR just before it, or at the
 * end of `text` when `newline` is -1 (the last line, which has no line break).
 */
function lineEnd(text: string, newline: number): number {
  if (newline === -1) return text.length;
  return newline > 0 && text.charCodeAt(newline - 1) === CR ? newline - 1 : newline;
}

/**
 * Reads a response head (`text`: its bytes as Latin-1, without the blank line that ends it), for a
 * request made with `method`. Its lines end in CRLF or in a bare LF, which RFC 9112 §2.2 lets a
 * recipient accept (some servers send it). Throws {@link HttpWireError} for anything that is not a
 * valid head.
 *
 * @example
 * ```ts
 * const head = parseResponseHead("HTTP/1.1 200 OK\r\nContent-Length: 2", "POST");
 * // head.status === 200, head.framing: { kind: "length", length: 2 }
 * ```
 */
export function parseResponseHead(text: string, method: string): ResponseHead {
  let newline = text.indexOf("\n");
  const statusEnd = lineEnd(text, newline);
  const statusLine = STATUS_LINE.exec(text.slice(0, statusEnd));
  if (statusLine === null) {
    throw new HttpWireError(`not an HTTP/1.x status line: ${text.slice(0, Math.min(statusEnd, 80))}`);
  }
  const minor = statusLine[1];
  const status = Number(statusLine[2]);
  const headers: [string, string][] = [];
  let contentLength: string | undefined;
  let transferEncoding = "";
  let connection = "";
  let contentEncoding = "";
  let keepAliveTimeoutMs: number | undefined;
  while (newline !== -1) {
    const lineStart = newline + 1;
    newline = text.indexOf("\n", lineStart);
    const end = lineEnd(text, newline);
    const colon = text.indexOf(":", lineStart);
    const name = colon > lineStart && colon < end ? text.slice(lineStart, colon) : "";
    if (!TOKEN.test(name)) {
      throw new HttpWireError(`not a header line: ${text.slice(lineStart, lineStart + 80)}`);
    }
    const value = text.slice(colon + 1, end).trim();
    headers.push([name, value]);
    // Only a few headers matter here; a name of another length is none of them.
    if (name.length < 10 || name.length > 17) continue;
    switch (name.toLowerCase()) {
      case "content-length":
        if (contentLength !== undefined && contentLength !== value) {
          throw new HttpWireError("the response has two different Content-Length headers");
        }
        contentLength = value;
        break;
      case "transfer-encoding":
        transferEncoding = transferEncoding === "" ? value : `${transferEncoding}, ${value}`;
        break;
      case "connection":
        connection = connection === "" ? value : `${connection}, ${value}`;
        break;
      case "content-encoding":
        contentEncoding = value.toLowerCase();
        break;
      case "keep-alive": {
        const timeout = /(?:^|[\s,;])timeout\s*=\s*(\d{1,9})\b/i.exec(value);
        if (timeout !== null) keepAliveTimeoutMs = Number(timeout[1]) * 1000;
        break;
      }
    }
  }
  let keepAlive = minor === "1" ? !hasToken(connection, "close") : hasToken(connection, "keep-alive");
  let framing: BodyFraming;
  if (method === "HEAD" || status === 204 || status === 304 || (status >= 100 && status < 200)) {
    framing = { kind: "none" };
  } else if (transferEncoding !== "") {
    // Chunked must be the last coding; anything else is read to the end of the connection.
    const codings = transferEncoding.toLowerCase().split(",").map((coding) => coding.trim());
    if (codings.at(-1) === "chunked") {
      if (codings.length > 1) throw new HttpWireError(`unsupported Transfer-Encoding: ${transferEncoding}`);
      framing = { kind: "chunked" };
    } else {
      framing = { kind: "close" };
      keepAlive = false;
    }
  } else if (contentLength !== undefined) {
    if (!/^\d{1,15}$/.test(contentLength)) {
      throw new HttpWireError(`invalid Content-Length: ${contentLength}`);
    }
    const length = Number(contentLength);
    framing = length === 0 ? { kind: "none" } : { kind: "length", length };
  } else {
    framing = { kind: "close" };
    keepAlive = false;
  }
  const head: ResponseHead = {
    status,
    statusText: statusLine[3] ?? "",
    headers,
    keepAlive,
    framing,
    contentEncoding,
  };
  if (keepAliveTimeoutMs !== undefined) head.keepAliveTimeoutMs = keepAliveTimeoutMs;
  return head;
}

/**
 * The size of the chunk that `line` (a chunk-size line without its line break) announces; chunk
 * extensions are ignored. Throws {@link HttpWireError} for a line that is not one.
 */
export function parseChunkSize(line: string): number {
  const size = /^([0-9A-Fa-f]{1,12})[ \t]*(?:;.*)?$/.exec(line);
  if (size === null) throw new HttpWireError(`invalid chunk size line: ${line.slice(0, 40)}`);
  return parseInt(size[1], 16);
}

/**
 * A request head, ready to write: request line, `Host`, the caller's headers, and `Content-Length`
 * for `bodyLength` (or none for a body-less GET, HEAD or DELETE). Header names and values must have
 * been checked by the caller.
 *
 * @example
 * ```ts
 * requestHead("POST", new URL("http://127.0.0.1:8080/mcp"), [["content-type", "application/json"]], 2);
 * // "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:8080\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n"
 * ```
 */
export function requestHead(
  method: string,
  url: URL,
  headers: Iterable<[string, string]>,
  bodyLength: number | undefined,
): string {
  return requestHeadStart(method, url, headers) + requestHeadEnd(method, bodyLength);
}

/** The part of {@link requestHead} that does not depend on the body: all but its `Content-Length`. */
export function requestHeadStart(method: string, url: URL, headers: Iterable<[string, string]>): string {
  let head = `${method} ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n`;
  for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
  return head;
}

/** The rest of {@link requestHead}: the `Content-Length` line, if any, and the blank line. */
export function requestHeadEnd(method: string, bodyLength: number | undefined): string {
  if (bodyLength !== undefined) return `content-length: ${bodyLength}\r\n\r\n`;
  if (method !== "GET" && method !== "HEAD" && method !== "DELETE") return "content-length: 0\r\n\r\n";
  return "\r\n";
}

/** Whether `name`/`value` can be written into a request head as they are. */
export function validHeader(name: string, value: string): boolean {
  return TOKEN.test(name) && REQUEST_FIELD_VALUE.test(value);
}
