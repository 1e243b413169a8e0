/**
 * The `fetch` client mode talks to the remote server with, honouring `--verify-ssl`: the HTTP/1.1
 * `fetch` of `http1_fetch.ts` on Deno's default root store, the same also trusting the certificates of a
 * CA file (each with the global `fetch`, or one trusting that CA file, as its fallback), or a `fetch`
 * that trusts any certificate.
 *
 * Deno's `fetch` cannot skip verification for one client (only the process-wide
 * `--unsafely-ignore-certificate-errors` flag can), so the unverified `fetch` is built on `node:https`
 * with `rejectUnauthorized: false`: requests with a body that can be sent again, redirects, abort
 * signals, and response bodies that stream as they arrive and close the socket when cancelled.
 *
 * @module
 */

import http from "node:http";
import https from "node:https";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { VerifySsl } from "../cli/command_line.ts";
import {
  createHttp1Fetch,
  networkError,
  stopAsSignal,
  USER_AGENT,
  type WrittenNotice,
} from "./http1_fetch.ts";
import { NULL_BODY_STATUSES, REDIRECT_STATUSES } from "./http1_wire.ts";
import { proxiesFor } from "./proxy_environment.ts";

/** A `fetch` with the TLS settings of `--verify-ssl`, and the way to release its connections. */
export interface TlsFetch {
  fetch: typeof fetch;
  /** Closes the connections kept for reuse; requests still running may fail. */
  close(): void;
}

/** The CA file of `--verify-ssl` cannot be used; `message` is one line for the user. */
export class TlsConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TlsConfigError";
  }
}

const PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----";
/** The failures of requests `node:https` made, which takes no proxy (see {@link describeFetchError}). */
const withoutProxy = new WeakSet<TypeError>();
const MAX_REDIRECTS = 20;
/** Headers that describe a request body, dropped when a redirect turns the request into a GET. */
const BODY_HEADERS = [
  "content-encoding",
  "content-language",
  "content-location",
  "content-type",
  "content-length",
];

/** Node's codes for a certificate it does not trust, with a short reason for the user. */
const NODE_CERTIFICATE_ERRORS: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "unknown issuer",
  UNABLE_TO_GET_ISSUER_CERT: "unknown issuer",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "unknown issuer",
  DEPTH_ZERO_SELF_SIGNED_CERT: "self-signed",
  SELF_SIGNED_CERT_IN_CHAIN: "self-signed certificate in chain",
  CERT_HAS_EXPIRED: "expired",
  CERT_NOT_YET_VALID: "not yet valid",
  CERT_REVOKED: "revoked",
  CERT_UNTRUSTED: "untrusted",
  CERT_SIGNATURE_FAILURE: "bad signature",
  ERR_TLS_CERT_ALTNAME_INVALID: "issued for another host name",
};

/** rustls's names (in Deno's `invalid peer certificate: <Name>`) as short reasons. */
const RUSTLS_CERTIFICATE_ERRORS: [RegExp, string][] = [
  [/^UnknownIssuer/, "unknown issuer"],
  [/^Expired/, "expired"],
  [/^NotValidYet/, "not yet valid"],
  [/^NotValidForName/, "issued for another host name"],
  [/^Revoked/, "revoked"],
  [/^BadSignature/, "bad signature"],
  [/^BadEncoding/, "malformed certificate"],
];

/** What a CA certificate used as the server's own (rustls: `CaUsedAsEndEntity`) is said to be. */
const CA_AS_SERVER_CERTIFICATE = "a CA certificate (CA:TRUE) used as the server's own";

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n", 1)[0].trim();
}

/** Each error of the chain `error`, `error.cause`, … (a few deep). */
function causeChain(error: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let current = error; current !== undefined && current !== null && chain.length < 8;) {
    chain.push(current);
    current = current instanceof Error ? current.cause : undefined;
  }
  return chain;
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** The useful end of an error message: without Deno's `error sending request for url (…): client error (…): `. */
function coreMessage(error: unknown): string {
  const text = firstLine(error);
  const clientError = text.match(/client error \([^)]*\): (.*)$/);
  const message = clientError ? clientError[1] : text;
  // Messages may quote the URL; keep only its origin, never its path, query or credentials.
  return message.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s()<>"']+/gi, (url) => {
    try {
      return new URL(url).origin;
    } catch {
      return "<url>";
    }
  });
}

/** A failed fetch read once: the error codes and the messages of its cause chain, the latter joined. */
function failureOf(error: unknown): { codes: string[]; messages: string[]; text: string } {
  const chain = causeChain(error);
  const messages = chain.map(coreMessage);
  return {
    codes: chain.map(errorCode).filter((code) => code !== undefined),
    messages,
    text: messages.join(": "),
  };
}

function certificateReason(codes: string[], text: string): string | undefined {
  for (const code of codes) {
    if (code in NODE_CERTIFICATE_ERRORS) return NODE_CERTIFICATE_ERRORS[code];
  }
  const rustls = text.match(/invalid peer certificate: (\S+)/);
  if (rustls && /CaUsedAsEndEntity/.test(rustls[1])) return CA_AS_SERVER_CERTIFICATE;
  if (rustls) {
    const found = RUSTLS_CERTIFICATE_ERRORS.find(([pattern]) => pattern.test(rustls[1]));
    return found ? found[1] : rustls[1].replace(/[^A-Za-z].*$/, "");
  }
  return /certificate/i.test(text) ? "certificate rejected" : undefined;
}

function readCaFile(path: string): string {
  let pem: string;
  try {
    pem = Deno.readTextFileSync(path);
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "no such file"
      : error instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : error instanceof Deno.errors.IsADirectory
      ? "it is a directory"
      : firstLine(error);
    throw new TlsConfigError(`Cannot read the CA file ${path}: ${reason}`);
  }
  if (!pem.includes(PEM_CERTIFICATE)) {
    throw new TlsConfigError(`The CA file ${path} holds no PEM certificate (no "${PEM_CERTIFICATE}" line)`);
  }
  return pem;
}

/**
 * The client of the `fetch` that takes what `http1_fetch.ts` leaves to it (proxies, redirects, HTTP/2):
 * no connection is kept for another request. A kept one the far end dropped makes Deno's `fetch` send a
 * POST again on a new one, even after a server or proxy took it (found by QA: tool calls through
 * `HTTP_PROXY` ran twice).
 */
const FALLBACK_CLIENT: Deno.CreateHttpClientOptions = { poolMaxIdlePerHost: 0 };

/**
 * The certificates in `path`, and the global `fetch` trusting them besides Deno's default root store.
 */
function caFileFetch(path: string): { pem: string; fallback: TlsFetch } {
  const pem = readCaFile(path);
  let client: Deno.HttpClient;
  try {
    // `caCerts` adds to the default root store (Mozilla's roots, or the system's with
    // DENO_TLS_CA_STORE=system): public servers stay trusted.
    client = Deno.createHttpClient({ ...FALLBACK_CLIENT, caCerts: [pem] });
  } catch (error) {
    throw new TlsConfigError(
      `The CA file ${path} holds a certificate Deno cannot use: ${
        firstLine(error).replace(/^invalid peer certificate: /, "")
      }`,
    );
  }
  return {
    pem,
    fallback: { fetch: (input, init) => fetch(input, { ...init, client }), close: () => client.close() },
  };
}

/** What to send on one hop of a request that may be redirected. */
interface Hop {
  url: URL;
  method: string;
  headers: Headers;
  /** Bytes can be sent again after a 307 or 308; a stream cannot. */
  body: Uint8Array | ReadableStream<Uint8Array> | null;
}

interface Agents {
  http: http.Agent;
  https: https.Agent;
}

function nodeHeaders(hop: Hop): Record<string, string> {
  const headers: Record<string, string> = {
    "accept": "*/*",
    // As the requests made without --no-verify-ssl say (found by QA: Deno's own name was sent here).
    "user-agent": USER_AGENT,
  };
  for (const [name, value] of hop.headers) headers[name] = value;
  if (hop.body instanceof Uint8Array) {
    headers["content-length"] = String(hop.body.byteLength);
  } else if (hop.body === null && !["GET", "HEAD"].includes(hop.method)) {
    headers["content-length"] = "0";
  }
  return headers;
}

/** Sends one hop and resolves with the response head; the body is left to read. */
function exchange(hop: Hop, agents: Agents, signal: AbortSignal): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const secure = hop.url.protocol === "https:";
    const options = {
      method: hop.method,
      headers: nodeHeaders(hop),
      agent: secure ? agents.https : agents.http,
    };
    const request = secure ? https.request(hop.url, options) : http.request(hop.url, options);
    const onAbort = () => {
      reject(signal.reason);
      request.destroy();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    request.on("response", (incoming) => {
      signal.removeEventListener("abort", onAbort);
      resolve(incoming);
    });
    request.on("error", (error) => {
      signal.removeEventListener("abort", onAbort);
      if (signal.aborted) return reject(signal.reason);
      const failure = networkError(error);
      withoutProxy.add(failure);
      reject(failure);
    });
    if (hop.body instanceof ReadableStream) {
      // pipeline destroys the request if the stream fails, which rejects through the "error" listener.
      pipeline(Readable.fromWeb(hop.body), request).catch(() => {});
    } else {
      request.end(hop.body ?? undefined);
    }
  });
}

/**
 * The body of `incoming`, chunk by chunk as it arrives (the socket pauses while the reader lags);
 * cancelling or aborting it closes the connection.
 */
function bodyStream(incoming: http.IncomingMessage, signal: AbortSignal): ReadableStream<Uint8Array> {
  let finished = false;
  let onAbort = () => {};
  const finish = () => {
    finished = true;
    signal.removeEventListener("abort", onAbort);
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      const fail = (error: unknown) => {
        if (finished) return;
        finish();
        controller.error(error);
        incoming.destroy();
      };
      onAbort = () => fail(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      incoming.on("data", (chunk: Uint8Array) => {
        if (finished) return;
        // Node may hand out views of a shared pool; the stream's reader keeps its chunks.
        controller.enqueue(new Uint8Array(chunk));
        if ((controller.desiredSize ?? 0) <= 0) incoming.pause();
      });
      incoming.on("end", () => {
        if (finished) return;
        finish();
        controller.close();
      });
      incoming.on("error", (error) => fail(new TypeError("terminated", { cause: error })));
      incoming.on("close", () => {
        fail(
          new TypeError("terminated", {
            cause: new Error("the connection closed before the body was complete"),
          }),
        );
      });
    },
    pull() {
      incoming.resume();
    },
    cancel() {
      finish();
      incoming.destroy();
    },
  });
}

function toResponse(
  incoming: http.IncomingMessage,
  hop: Hop,
  redirected: boolean,
  signal: AbortSignal,
): Response {
  const status = incoming.statusCode ?? 0;
  if (status < 200 || status > 599) {
    incoming.destroy();
    throw networkError(new Error(`unsupported HTTP status ${status}`));
  }
  const headers = new Headers();
  const raw = incoming.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i], raw[i + 1]);
  let body: ReadableStream<Uint8Array> | null = null;
  if (hop.method === "HEAD" || NULL_BODY_STATUSES.has(status)) {
    incoming.resume();
  } else {
    body = bodyStream(incoming, signal);
  }
  const response = new Response(body, { status, statusText: incoming.statusMessage ?? "", headers });
  const url = new URL(hop.url);
  url.hash = "";
  Object.defineProperties(response, { url: { value: url.href }, redirected: { value: redirected } });
  return response;
}

/** The hop that follows a redirect response, as `fetch` makes it, or a network error. */
function redirectHop(hop: Hop, status: number, location: string): Hop {
  let url: URL;
  try {
    url = new URL(location, hop.url);
  } catch {
    throw networkError(new Error("the redirect's Location is not a valid URL"));
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw networkError(new Error(`cannot follow a redirect to a ${url.protocol} URL`));
  }
  const headers = new Headers(hop.headers);
  let { method, body } = hop;
  if (
    ((status === 301 || status === 302) && method === "POST") ||
    (status === 303 && !["GET", "HEAD"].includes(method))
  ) {
    method = "GET";
    body = null;
    for (const name of BODY_HEADERS) headers.delete(name);
  } else if (body instanceof ReadableStream) {
    throw networkError(new Error("cannot send a streamed request body again after a redirect"));
  }
  if (url.origin !== hop.url.origin) headers.delete("authorization");
  return { url, method, headers, body };
}

/** A `fetch` on `node:http` and `node:https` that does not verify certificates. */
function unverifiedFetch(): TlsFetch {
  const agents: Agents = {
    http: new http.Agent({ keepAlive: true }),
    https: new https.Agent({ keepAlive: true, rejectUnauthorized: false }),
  };

  const fetchUnverified = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    // It cannot tell when the body is written: the next request does not wait for it.
    (init as WrittenNotice | undefined)?.onwritten?.(false);
    const request = new Request(input, stopAsSignal(init));
    const { signal } = request;
    signal.throwIfAborted();
    let body: Hop["body"] = null;
    if (request.body) {
      body = init?.body instanceof ReadableStream
        ? request.body
        : new Uint8Array(await request.arrayBuffer());
    }
    let hop: Hop = { url: new URL(request.url), method: request.method, headers: request.headers, body };
    if (hop.url.protocol !== "http:" && hop.url.protocol !== "https:") {
      throw new TypeError(`fetch: unsupported URL scheme ${hop.url.protocol}`);
    }
    for (let redirects = 0;; redirects++) {
      const incoming = await exchange(hop, agents, signal);
      if (signal.aborted) {
        incoming.destroy();
        throw signal.reason;
      }
      const status = incoming.statusCode ?? 0;
      const location = incoming.headers.location;
      if (!REDIRECT_STATUSES.has(status) || location === undefined || request.redirect === "manual") {
        return toResponse(incoming, hop, redirects > 0, signal);
      }
      incoming.resume();
      if (request.redirect === "error") throw networkError(new Error(`redirected with status ${status}`));
      if (redirects === MAX_REDIRECTS) throw networkError(new Error("redirect count exceeded"));
      hop = redirectHop(hop, status, location);
    }
  };

  return {
    fetch: fetchUnverified,
    close() {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

/**
 * Returns the `fetch` for `--verify-ssl`: the global one, one that also trusts a CA file (read now; a
 * missing or unusable file throws {@link TlsConfigError}), or one that accepts any certificate.
 *
 * @example
 * ```ts
 * const tls = createTlsFetch({ kind: "ca-file", path: "ca.pem" });
 * try {
 *   const response = await tls.fetch("https://mcp.internal/mcp");
 *   await response.body?.cancel();
 * } finally {
 *   tls.close();
 * }
 * ```
 */
export function createTlsFetch(verify: VerifySsl): TlsFetch {
  switch (verify.kind) {
    case "verify": {
      // Made when first needed: most sessions never leave anything to Deno's fetch.
      let client: Deno.HttpClient | undefined;
      const http1 = createHttp1Fetch({
        fallback: (input, init) =>
          fetch(input, { ...init, client: client ??= Deno.createHttpClient(FALLBACK_CLIENT) }),
      });
      return {
        fetch: http1.fetch,
        close() {
          http1.close();
          client?.close();
        },
      };
    }
    case "ca-file": {
      const { pem, fallback } = caFileFetch(verify.path);
      const http1 = createHttp1Fetch({ fallback: fallback.fetch, caCerts: [pem] });
      return {
        fetch: http1.fetch,
        close() {
          http1.close();
          fallback.close();
        },
      };
    }
    case "no-verify":
      return unverifiedFetch();
  }
}

/**
 * Whether `error` (a failed fetch) is the server's certificate refused: sent again, the request would fail
 * the same way.
 */
export function certificateRefused(error: unknown): boolean {
  const { codes, text } = failureOf(error);
  return certificateReason(codes, text) !== undefined;
}

/**
 * One line telling the user why a request to `url` failed, naming only the server's origin (never the
 * path, query or headers), with a hint for a certificate that is not trusted.
 *
 * @example
 * ```ts
 * try {
 *   await fetch(url);
 * } catch (error) {
 *   log.error(describeFetchError(error, url));
 *   // "TLS certificate of https://mcp.internal is not trusted (unknown issuer); use --verify-ssl CA.pem …"
 * }
 * ```
 */
export function describeFetchError(error: unknown, url: string): string {
  let origin = "the server";
  let host = "the server's host name";
  try {
    const parsed = new URL(url);
    origin = parsed.origin;
    host = parsed.hostname;
  } catch {
    // Describe the error without naming the server.
  }
  const { codes, messages, text } = failureOf(error);
  const has = (...wanted: string[]) => codes.some((code) => wanted.includes(code));
  const name = error instanceof Error || error instanceof DOMException ? error.name : "";

  const certificate = certificateReason(codes, text);
  if (certificate === CA_AS_SERVER_CERTIFICATE) {
    // Trusting it does not help: rustls refuses such a certificate even when it is in the CA file.
    return `TLS certificate of ${origin} is not accepted: it is ${certificate}, which Deno's TLS (rustls) ` +
      "refuses even when trusted; give the server a certificate issued by a CA (CA:FALSE), or use --no-verify-ssl";
  }
  if (certificate) {
    return `TLS certificate of ${origin} is not trusted (${certificate}); use --verify-ssl CA.pem to trust its CA, ` +
      "or --no-verify-ssl";
  }
  if (name === "TimeoutError") return `request to ${origin} timed out`;
  if (name === "AbortError") return `request to ${origin} was aborted`;
  // Through a proxy, the failure to connect may be the proxy's (found by QA: a proxy that was down was
  // reported as the server refusing).
  // Not where no proxy carried the request: `--no-verify-ssl`'s, or a host `NO_PROXY` names (found by review).
  let proxies: string[] = [];
  try {
    if (!(error instanceof TypeError && withoutProxy.has(error))) proxies = proxiesFor(new URL(url));
  } catch {
    // No URL: no proxy to name.
  }
  const via = proxies.length === 0 ? "" : ` (or to the proxy: ${proxies.join(", ")} set)`;
  if (has("ECONNREFUSED") || /connection refused/i.test(text)) {
    return `cannot connect to ${origin}${via}: connection refused`;
  }
  if (
    has("ENOTFOUND", "EAI_AGAIN", "EAI_NONAME", "EAI_FAIL") ||
    /dns error|failed to lookup|getaddrinfo|name or service not known|nodename nor servname/i.test(text)
  ) {
    // The name that failed may be the proxy's (found by QA: only the server's was named).
    return proxies.length === 0
      ? `cannot resolve ${host}`
      : `cannot resolve ${host} or the proxy's host name (${proxies.join(", ")} set)`;
  }
  if (has("ETIMEDOUT") || /timed out/i.test(text)) return `cannot connect to ${origin}${via}: timed out`;
  if (has("EHOSTUNREACH", "ENETUNREACH") || /unreachable|no route to host/i.test(text)) {
    return `cannot connect to ${origin}${via}: host unreachable`;
  }
  if (
    /^(terminated|error reading a body from connection)|connection closed before message completed/i.test(
      text,
    )
  ) {
    return `connection to ${origin} closed before the response was complete`;
  }
  if (has("ECONNRESET", "EPIPE") || /connection reset|broken pipe|socket hang up/i.test(text)) {
    return `connection to ${origin} was reset`;
  }
  const detail = messages.findLast((message) => message !== "") ?? "unknown error";
  return `request to ${origin} failed: ${detail}`;
}
