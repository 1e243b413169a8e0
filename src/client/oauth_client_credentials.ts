/**
 * OAuth 2.0 client credentials (RFC 6749 §4.4) for client mode: an access token for the remote MCP
 * server, fetched on first use, cached, and renewed shortly before it expires or when the server
 * rejects it. Without `--token-url` the token endpoint is discovered from the server's metadata:
 * the 401 challenge's `resource_metadata` (RFC 9728 §5.1) or the well-known protected-resource
 * metadata (RFC 9728 §3), then the authorization server's metadata (RFC 8414 §3, or OpenID discovery).
 *
 * The client secret and the tokens never appear in a log line or an error message.
 *
 * @module
 */

import { oneLine, proxyLogger } from "../logging.ts";
import { neverArrived } from "./remote_transport.ts";
import { certificateRefused, describeFetchError } from "./tls_fetch.ts";

const logger = proxyLogger("oauth");

/** A token is renewed this long before its `expires_in` runs out (or at half its life, if shorter). */
const RENEW_MARGIN_MS = 30_000;

/** After a renewal ahead of expiry failed, the next is tried no sooner than this (the token still serves). */
const RENEW_AHEAD_RETRY_MS = 5_000;

/** How long one metadata or token request (answer included) may take. */
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** The URL without query and fragment, which may carry secrets: what messages show. */
function redact(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

/** `value` encoded as in an `application/x-www-form-urlencoded` body (RFC 6749 §2.3.1, Appendix B). */
function formEncode(value: string): string {
  return new URLSearchParams([["", value]]).toString().slice(1);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `text` without a trailing slash, so that `https://as/` and `https://as` compare equal. */
function withoutTrailingSlash(text: string): string {
  return text.endsWith("/") ? text.slice(0, -1) : text;
}

/** The `resource_metadata` parameter of a `WWW-Authenticate` header (RFC 9728 §5.1), if any. */
function resourceMetadataParameter(challenge: string): string | undefined {
  const match = /(?:^|[\s,])resource_metadata\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/i.exec(challenge);
  if (match === null) return undefined;
  return match[1] !== undefined ? match[1].replace(/\\(.)/g, "$1") : match[2];
}

/**
 * The well-known URLs of the metadata of the resource at `resource` (RFC 9728 §3.1): the suffix goes
 * between host and path; the root form, without path, comes second as a fallback.
 */
function protectedResourceMetadataUrls(resource: URL): URL[] {
  const path = withoutTrailingSlash(resource.pathname);
  const root = new URL("/.well-known/oauth-protected-resource", resource.origin);
  return path === ""
    ? [root]
    : [new URL(`/.well-known/oauth-protected-resource${path}`, resource.origin), root];
}

/**
 * The metadata URLs of the authorization server `issuer`: RFC 8414 §3.1 first, then the two OpenID
 * Connect Discovery forms (suffix inserted before, or appended to, the issuer's path).
 */
function authorizationServerMetadataUrls(issuer: URL): URL[] {
  const path = withoutTrailingSlash(issuer.pathname);
  const urls = [
    new URL(`/.well-known/oauth-authorization-server${path}`, issuer.origin),
    new URL(`/.well-known/openid-configuration${path}`, issuer.origin),
  ];
  if (path !== "") urls.push(new URL(`${path}/.well-known/openid-configuration`, issuer.origin));
  return urls;
}

/** Whether the resource identifier `resource` covers `target`: same origin, and a path prefix of it. */
function covers(resource: URL, target: URL): boolean {
  const base = withoutTrailingSlash(resource.pathname);
  const path = withoutTrailingSlash(target.pathname);
  return resource.origin === target.origin && (path === base || path.startsWith(base + "/"));
}

/** Parses `text` as an absolute http(s) URL, or returns undefined. */
function httpUrl(text: unknown): URL | undefined {
  if (typeof text !== "string") return undefined;
  try {
    const url = new URL(text);
    return url.protocol === "https:" || url.protocol === "http:" ? url : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The token endpoint in authorization server metadata for `issuer`, or what is wrong with it: the
 * metadata must be the issuer's own (RFC 8414 §3.3), and the endpoint, which receives the client
 * secret, must use TLS unless it is on this machine.
 */
function tokenEndpointIn(metadata: Record<string, unknown>, issuer: URL): URL | string {
  const declared = metadata.issuer;
  if (typeof declared !== "string" || withoutTrailingSlash(declared) !== withoutTrailingSlash(issuer.href)) {
    return `its issuer ${JSON.stringify(declared)} is not ${issuer.href}`;
  }
  const endpoint = httpUrl(metadata.token_endpoint);
  if (endpoint === undefined) return "no token_endpoint";
  if (endpoint.protocol === "http:" && !LOOPBACK_HOSTS.has(endpoint.hostname)) {
    return `its token_endpoint ${redact(endpoint)} is not https`;
  }
  return endpoint;
}

/** A failure to get an access token; `message` is one line for the user and holds no secret. */
export class OAuthError extends Error {
  /**
   * `"discovery"`: no token endpoint is known, and the metadata did not lead to one (a 401 challenge
   * from the server may still do so); `"token"`: the token endpoint failed or refused.
   */
  readonly stage: "discovery" | "token";
  /**
   * The token endpoint could not be reached (a refused connection, a name not found): it may be back in
   * a moment, so the request is worth sending again (see `fetchFailureKind`).
   */
  readonly unreachable: boolean;

  constructor(message: string, stage: "discovery" | "token" = "token", unreachable = false) {
    super(message);
    this.name = "OAuthError";
    this.stage = stage;
    this.unreachable = unreachable;
  }
}

/** A request of {@link ClientCredentials} that failed below HTTP, or got no answer in time. */
class ExchangeError extends Error {
  constructor(message: string, readonly unreachable: boolean) {
    super(message);
  }
}

/** Options of {@link ClientCredentials}. */
export interface ClientCredentialsOptions {
  /** `--client-id`. */
  clientId: string;
  /** `--client-secret`. */
  clientSecret: string;
  /** `--token-url`; without it the token endpoint is discovered from the server's metadata. */
  tokenUrl?: string;
  /** The MCP server's URL: where discovery starts. */
  resourceUrl: string;
  /** The `fetch` for every request made here; it honours `--verify-ssl`. */
  fetch: typeof fetch;
  /** The clock, in milliseconds; `Date.now` by default. */
  now?: () => number;
  /** How long one metadata or token request may take; 30 s by default. */
  requestTimeoutMs?: number;
}

/** The outcome of one GET of metadata: its JSON object, or why there is none. */
type MetadataResult = { metadata: Record<string, unknown> } | { failure: string };

/** A token endpoint, and the `resource` value to send there (RFC 8707) when discovery found one. */
interface TokenEndpoint {
  url: URL;
  resource?: string;
}

/** The authorization server of the resource, and the resource identifier the metadata declared. */
interface AuthorizationServer {
  issuer: URL;
  resource?: string;
}

interface CachedToken {
  value: string;
  /** When to renew, in the clock's milliseconds; undefined: keep until the server rejects it. */
  renewAt?: number;
  /** When its `expires_in` runs out, in the clock's milliseconds; with `renewAt`. */
  expiresAt?: number;
}

/**
 * Access tokens from the OAuth 2.0 client credentials grant, with HTTP Basic client authentication.
 * Concurrent callers share one token request.
 *
 * @example
 * ```ts
 * const credentials = new ClientCredentials({
 *   clientId: "proxy",
 *   clientSecret: Deno.env.get("CLIENT_SECRET")!,
 *   resourceUrl: "https://mcp.example.com/mcp",
 *   fetch,
 * });
 * const headers = { Authorization: `Bearer ${await credentials.accessToken()}` };
 * ```
 */
export class ClientCredentials {
  readonly #resourceUrl: URL;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  readonly #timeoutMs: number;
  readonly #basicCredentials: string;
  readonly #secrets: string[];
  #endpoint: TokenEndpoint | undefined;
  #token: CachedToken | undefined;
  #pending: Promise<string> | undefined;
  /** No renewal ahead of expiry before this (one just failed); see {@link RENEW_AHEAD_RETRY_MS}. */
  #renewAheadAfter = -Infinity;

  constructor(options: ClientCredentialsOptions) {
    const resourceUrl = httpUrl(options.resourceUrl);
    if (resourceUrl === undefined) {
      throw new OAuthError(`the server URL ${JSON.stringify(options.resourceUrl)} is not an http(s) URL`);
    }
    this.#resourceUrl = resourceUrl;
    if (options.tokenUrl !== undefined) {
      const url = httpUrl(options.tokenUrl);
      if (url === undefined) {
        throw new OAuthError(`--token-url ${JSON.stringify(options.tokenUrl)} is not an http(s) URL`);
      }
      this.#endpoint = { url };
    }
    this.#fetch = options.fetch;
    this.#now = options.now ?? Date.now;
    this.#timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    // Form-encoded, the result is ASCII, which btoa takes.
    this.#basicCredentials = btoa(`${formEncode(options.clientId)}:${formEncode(options.clientSecret)}`);
    this.#secrets = [options.clientSecret, formEncode(options.clientSecret), this.#basicCredentials]
      .filter((secret) => secret.length >= 3);
  }

  /**
   * The current access token: cached, or fetched now if there is none or it has expired. One about to
   * expire is renewed meanwhile, and serves until then: a token endpoint down or slow for a moment fails
   * no request while the token in hand is good (found by QA: every request in the last 30 s failed).
   */
  accessToken(): Promise<string> {
    const token = this.#token;
    if (token !== undefined) {
      const now = this.#now();
      if (token.renewAt === undefined || now < token.renewAt) return Promise.resolve(token.value);
      if (now < token.expiresAt!) {
        if (this.#pending === undefined && now >= this.#renewAheadAfter) this.#renewAhead(token);
        return Promise.resolve(token.value);
      }
    }
    return this.#pending ??= this.#requestToken(null);
  }

  /** Renews `token` before it expires; a failure is warned of, and `token` serves on until then. */
  #renewAhead(token: CachedToken): void {
    // Counted from its start: the next goes no sooner, whatever becomes of this one.
    this.#renewAheadAfter = this.#now() + RENEW_AHEAD_RETRY_MS;
    this.#pending = this.#requestToken(null);
    this.#pending.catch((error: unknown) => {
      // The token is no longer the one in hand (a 401 refused it): the request that found so is told.
      if (this.#token !== token) return;
      const seconds = Math.max(0, Math.round((token.expiresAt! - this.#now()) / 1000));
      logger.warn("renewing the access token failed; the current one serves {seconds} s more: {error}", {
        seconds,
        error: error instanceof Error ? error.message : String(error),
      });
    });
  }

  /**
   * A new access token, after the MCP server answered 401. `challenge` is that answer's
   * `WWW-Authenticate` header, where discovery starts when no token endpoint is known yet. `rejected`,
   * the token the server refused, avoids a second renewal when several requests failed with it: if a
   * newer token is already cached, that one is returned.
   */
  renew(challenge?: string | null, rejected?: string): Promise<string> {
    const token = this.#token;
    const stale = token !== undefined && (rejected === undefined || token.value === rejected);
    // The server refused the token in hand: nobody gets it again, also while a renewal ahead of its
    // expiry is under way, nor after one that fails (found by review).
    if (stale) this.#token = undefined;
    if (this.#pending !== undefined) return this.#pending;
    if (token !== undefined && !stale) return Promise.resolve(token.value);
    return this.#pending = this.#requestToken(challenge ?? null);
  }

  async #requestToken(challenge: string | null): Promise<string> {
    try {
      const endpoint = this.#endpoint ??= await this.#discover(challenge);
      const token = await this.#tokenRequest(endpoint);
      this.#token = token;
      return token.value;
    } finally {
      this.#pending = undefined;
    }
  }

  /** Sends one request and reads the whole answer, giving up after the request timeout. */
  async #exchange(url: URL, init: RequestInit): Promise<{ response: Response; text: string }> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.#timeoutMs);
    try {
      const response = await this.#fetch(url, { ...init, signal: controller.signal });
      return { response, text: await response.text() };
    } catch (error) {
      if (controller.signal.aborted) {
        throw new ExchangeError(`no answer within ${this.#timeoutMs / 1000} s`, false);
      }
      // What went wrong below HTTP (a certificate, a refused connection, a name), not fetch's "fetch failed".
      const unreachable = neverArrived(error) && !certificateRefused(error);
      throw new ExchangeError(this.#scrub(describeFetchError(error, url.href), url), unreachable);
    } finally {
      clearTimeout(timer);
    }
  }

  /** `text` with the secret, and `url` in full, replaced by harmless forms. */
  #scrub(text: string, url: URL): string {
    let clean = text.replaceAll(url.href, redact(url));
    for (const secret of this.#secrets) clean = clean.replaceAll(secret, "***");
    return oneLine(clean);
  }

  async #tokenRequest(endpoint: TokenEndpoint): Promise<CachedToken> {
    const where = redact(endpoint.url);
    const body = new URLSearchParams({ grant_type: "client_credentials" });
    if (endpoint.resource !== undefined) body.set("resource", endpoint.resource);
    logger.debug("requesting an access token from {url}", { url: where });
    let answer: { response: Response; text: string };
    try {
      answer = await this.#exchange(endpoint.url, {
        method: "POST",
        headers: {
          "Content-Type": "application/x-www-form-urlencoded",
          Accept: "application/json",
          Authorization: `Basic ${this.#basicCredentials}`,
        },
        body: body.toString(),
      });
    } catch (error) {
      throw new OAuthError(
        `cannot reach the token endpoint ${where}: ${(error as Error).message}`,
        "token",
        (error as ExchangeError).unreachable,
      );
    }
    const { response, text } = answer;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!response.ok) throw new OAuthError(this.#refusal(where, response.status, json, endpoint.url));
    if (!isObject(json)) {
      const type = response.headers.get("content-type") ?? "no content type";
      throw new OAuthError(`the token endpoint ${where} answered with something that is not JSON (${type})`);
    }
    const { access_token: value, token_type: type, expires_in: expiresIn } = json;
    if (typeof value !== "string" || value === "") {
      throw new OAuthError(`the answer of the token endpoint ${where} has no access_token`);
    }
    if (!/^[\x21-\x7E]+$/.test(value)) {
      throw new OAuthError(`the token endpoint ${where} issued an access_token that cannot go in a header`);
    }
    if (type !== undefined && (typeof type !== "string" || type.toLowerCase() !== "bearer")) {
      throw new OAuthError(
        `the token endpoint ${where} issued a token of type ${JSON.stringify(type)}; only bearer tokens work`,
      );
    }
    const seconds = typeof expiresIn === "string" ? Number(expiresIn) : expiresIn;
    if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds <= 0) return { value };
    const lifetime = seconds * 1000;
    const now = this.#now();
    return {
      value,
      renewAt: now + lifetime - Math.min(RENEW_MARGIN_MS, lifetime / 2),
      expiresAt: now + lifetime,
    };
  }

  /** The message for a non-2xx answer of the token endpoint, with the OAuth error code if there is one. */
  #refusal(where: string, status: number, json: unknown, url: URL): string {
    if (!isObject(json) || typeof json.error !== "string") {
      return `the token endpoint ${where} answered HTTP ${status} without an OAuth error`;
    }
    const description = typeof json.error_description === "string"
      ? `: ${this.#scrub(json.error_description, url)}`
      : "";
    const hint = json.error === "invalid_client"
      ? " (check --client-id and --client-secret)"
      : json.error === "unauthorized_client"
      ? " (the client may not use the client_credentials grant)"
      : "";
    return `token request to ${where} was refused: ${status} ${
      this.#scrub(json.error, url)
    }${description}${hint}`;
  }

  /** Finds the token endpoint from the server's metadata; the attempts are named if none works. */
  async #discover(challenge: string | null): Promise<TokenEndpoint> {
    const tried: string[] = [];
    const candidates: URL[] = [];
    const fromChallenge = challenge === null ? undefined : resourceMetadataParameter(challenge);
    if (fromChallenge !== undefined) {
      const url = httpUrl(fromChallenge);
      if (url === undefined) tried.push(`resource_metadata ${JSON.stringify(fromChallenge)} (not a URL)`);
      else candidates.push(url);
    }
    candidates.push(...protectedResourceMetadataUrls(this.#resourceUrl));

    let server: AuthorizationServer | undefined;
    for (const url of candidates) {
      const result = await this.#metadata(url);
      const found = "failure" in result ? result.failure : this.#authorizationServerIn(result.metadata);
      if (typeof found === "string") tried.push(`${redact(url)} (${found})`);
      else {
        server = found;
        break;
      }
    }
    if (server !== undefined) {
      for (const url of authorizationServerMetadataUrls(server.issuer)) {
        const result = await this.#metadata(url);
        const found = "failure" in result ? result.failure : tokenEndpointIn(result.metadata, server.issuer);
        if (typeof found === "string") {
          tried.push(`${redact(url)} (${found})`);
          continue;
        }
        logger.debug("discovered the token endpoint {url} (authorization server {issuer})", {
          url: redact(found),
          issuer: redact(server.issuer),
        });
        return { url: found, resource: server.resource };
      }
    }
    throw new OAuthError(
      `cannot discover the OAuth token endpoint of ${redact(this.#resourceUrl)}: tried ${
        tried.join(", ")
      }; pass --token-url`,
      "discovery",
    );
  }

  /**
   * The authorization server named first in protected-resource metadata, or what is wrong with it. A
   * `resource` that is not this server (RFC 9728 §3.3: it must be; here, a URL prefix of it is enough)
   * disqualifies the metadata.
   */
  #authorizationServerIn(metadata: Record<string, unknown>): AuthorizationServer | string {
    const servers = metadata.authorization_servers;
    const issuer = Array.isArray(servers) ? httpUrl(servers[0]) : undefined;
    if (issuer === undefined) return "no authorization_servers";
    const resource = metadata.resource;
    if (resource === undefined) return { issuer };
    const url = httpUrl(resource);
    if (typeof resource !== "string" || url === undefined || !covers(url, this.#resourceUrl)) {
      return `its resource ${JSON.stringify(resource)} is another server`;
    }
    return { issuer, resource };
  }

  /** GETs one metadata document. */
  async #metadata(url: URL): Promise<MetadataResult> {
    let answer: { response: Response; text: string };
    try {
      answer = await this.#exchange(url, { headers: { Accept: "application/json" } });
    } catch (error) {
      return { failure: (error as Error).message };
    }
    if (!answer.response.ok) return { failure: `HTTP ${answer.response.status}` };
    try {
      const metadata: unknown = JSON.parse(answer.text);
      return isObject(metadata) ? { metadata } : { failure: "not a JSON object" };
    } catch {
      return { failure: "not JSON" };
    }
  }
}
