/**
 * The `fetch` client mode talks to the remote server with: the `-H` headers on every request, and
 * `Authorization` chosen by precedence, OAuth2 token > API access token > `-H Authorization`. With
 * OAuth2, a 401 from the server renews the token once and sends the request once more.
 *
 * @module
 */

import { proxyLogger } from "../logging.ts";
import { bodyStart } from "./remote_transport.ts";
import type { WrittenNotice } from "./http1_fetch.ts";
import { type ClientCredentials, OAuthError } from "./oauth_client_credentials.ts";

const logger = proxyLogger("oauth");

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEADER_VALUE = /^[^\0\r\n\u0100-\uffff]*$/;

/**
 * Checks a header before any request: `fetch` would reject a bad one with a message that quotes the
 * value, and values here are often secrets.
 */
function checkHeader(name: string, value: string, origin: string): void {
  if (!HEADER_NAME.test(name)) throw new TypeError(`${origin}: ${JSON.stringify(name)} is not a header name`);
  if (!HEADER_VALUE.test(value)) {
    throw new TypeError(
      `${origin}: the value of ${name} contains a line break or a character it cannot hold`,
    );
  }
}

/** Whether the request can be sent a second time: every body but a stream can. */
function replayable(input: RequestInfo | URL, init: RequestInit | undefined): boolean {
  if (init?.body !== undefined && init.body !== null) return !(init.body instanceof ReadableStream);
  return !(input instanceof Request && input.body !== null);
}

/** Whether `headers` is a plain name → value record, as opposed to `Headers` or pairs. */
function isRecord(headers: HeadersInit): headers is Record<string, string> {
  return !(headers instanceof Headers) && !(Symbol.iterator in headers);
}

/**
 * `headers` with the `-H` headers the caller did not set and, if given, `authorization` in place of
 * the caller's, as a plain record: `fetch` reads one faster than a `Headers` object.
 */
function mergeRecord(
  headers: Record<string, string>,
  extra: [string, string][],
  authorization: string | undefined,
): Record<string, string> {
  const merged: Record<string, string> = {};
  const present = new Set<string>();
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase();
    if (authorization !== undefined && lower === "authorization") continue;
    merged[name] = headers[name];
    present.add(lower);
  }
  for (const [name, value] of extra) if (!present.has(name)) merged[name] = value;
  if (authorization !== undefined) merged.authorization = authorization;
  return merged;
}

/**
 * Header values this long or longer are kept out of the server's error answers: a value may be a secret
 * (`-H "X-Api-Key: …"`), and a shorter one is too common a string to replace.
 */
const SECRET_MIN_LENGTH = 8;

/** OAuth2 access tokens remembered for {@link AuthorizedClient.scrub}: the latest few. */
const TOKENS_KEPT = 4;

/**
 * `response` itself, or for an error status (400 and up) its copy with its body through `scrub`: servers
 * quote the credentials they refuse, and the body's start goes into the error answer and the log, where a
 * secret must never appear.
 */
async function withoutSecrets(response: Response, scrub: (text: string) => string): Promise<Response> {
  if (response.status < 400 || response.body === null) return response;
  const text = scrub(await bodyStart(response.body));
  return new Response(text, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}

/** Options of {@link authorizedFetch}. */
export interface AuthorizationOptions {
  /** `-H` headers, added to every request unless the caller set the same header. */
  headers: Record<string, string>;
  /** `--api-access-token` or `API_ACCESS_TOKEN`: sent as `Authorization: Bearer …`. */
  apiAccessToken?: string;
  /** OAuth2 client credentials: their token wins over every other `Authorization`. */
  oauth?: ClientCredentials;
  /** Other values sent that a server may quote back, to scrub as the credentials: see {@link urlSecrets}. */
  secrets?: readonly string[];
}

/** Words of a query parameter's name that say its value is a credential (`api_key`, `X-Amz-Signature`). */
const SECRET_WORDS = new Set([
  "key",
  "apikey",
  "token",
  "secret",
  "password",
  "passwd",
  "pass",
  "pwd",
  "pw",
  "auth",
  "authorization",
  "sig",
  "signature",
  "credential",
  "credentials",
  "creds",
  "session",
  "sessionid",
  "sid",
  "code",
  "jwt",
  "hmac",
  "otp",
  "ticket",
  "pat",
  "bearer",
]);

/**
 * Ends of a name written as one word that say the same (`accesstoken`, `secretkey`, `passphrase`, `authcode`,
 * plurals too); `code` ends one only as `authcode` or `passcode` (not `barcode`), `pass` not at all
 * (`compass`).
 */
const SECRET_ENDINGS = /(tokens?|secrets?|passwords?|passwd|passphrase|passcode|authcode|signatures?|keys?)$/;

/** Whether a query parameter's name says its value is a credential: by its words, not any part of them. */
function namesSecret(name: string): boolean {
  const words = name.replace(/([a-z0-9])([A-Z])/g, "$1 $2").toLowerCase().split(/[^a-z0-9]+/);
  return words.some((word) => SECRET_WORDS.has(word) || SECRET_ENDINGS.test(word));
}

/** A query parameter without a value this long is taken for a credential (`?sk-live-…`), not a flag. */
const BARE_SECRET_LENGTH = 16;

/**
 * A path segment that looks like a credential rather than a name: 16 characters or more of letters and
 * digits both (some hosted servers take their secret in the path: `…/mcp/s/SECRET/mcp`).
 */
export function isTokenLike(segment: string): boolean {
  return segment.length >= BARE_SECRET_LENGTH && /[a-z]/i.test(segment) && /\d/.test(segment);
}

/** `text` as the base64 of its UTF-8 bytes, as `fetch` writes `Basic` credentials. */
function base64Utf8(text: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/**
 * The values of `url` that are credentials, as written in it and as decoded: its user name and password
 * (and the `Basic` credentials `fetch` makes of them), the values of the query parameters whose names say
 * so ({@link namesSecret}), long parameters without a value, and path segments that look like tokens
 * ({@link isTokenLike}). A server may quote its URL back in an error (found by QA: `?key=` reached the log
 * and the client). Other values are left alone: a server's error answer quoting them goes to the client as
 * it is.
 */
export function urlSecrets(url: URL): string[] {
  const found: string[] = [];
  // A `+` is a space in a query (as forms write it), and itself elsewhere (found by review: a password
  // with both a `+` and a %-escape was not hidden).
  const decoded = (written: string, plusIsSpace: boolean) => {
    try {
      return decodeURIComponent(plusIsSpace ? written.replaceAll("+", " ") : written);
    } catch {
      return written; // Not percent-encoded as it should be (a `%` alone): as written, then.
    }
  };
  const inQuery = (written: string) => found.push(written, decoded(written, true), decoded(written, false));
  const elsewhere = (written: string) => found.push(written, decoded(written, false));
  for (const pair of url.search.slice(1).split("&")) {
    const equals = pair.indexOf("=");
    if (equals === -1) {
      if (pair.length >= BARE_SECRET_LENGTH) inQuery(pair);
    } else if (namesSecret(decoded(pair.slice(0, equals), true))) inQuery(pair.slice(equals + 1));
  }
  for (const segment of url.pathname.split("/")) if (isTokenLike(segment)) elsewhere(segment);
  if (url.username !== "" || url.password !== "") {
    elsewhere(url.username);
    elsewhere(url.password);
    // Latin-1 or UTF-8 bytes, decoded or as written: whichever the fetch sends (found by QA: `pässwört`).
    const user = decoded(url.username, false);
    const password = decoded(url.password, false);
    for (const pair of [`${user}:${password}`, `${url.username}:${url.password}`]) {
      found.push(base64Utf8(pair));
      try {
        found.push(btoa(pair));
      } catch {
        // Not Latin-1.
      }
    }
  }
  return [...new Set(found)];
}

/**
 * The `Basic` credentials of `url`'s user name and password (%-escapes undone, UTF-8), as `fetch` would
 * send them; undefined for a URL without them. Client mode takes them out of the URL and sends them as the
 * weakest `Authorization` (found by QA: `fetch` sent them beside a token's, as a second `Authorization`).
 */
export function userInfoAuthorization(url: URL): string | undefined {
  if (url.username === "" && url.password === "") return undefined;
  const decoded = (written: string) => {
    try {
      return decodeURIComponent(written);
    } catch {
      return written;
    }
  };
  return `Basic ${base64Utf8(`${decoded(url.username)}:${decoded(url.password)}`)}`;
}

/** A `fetch` that sends the credentials, and what keeps them out of text for the user. */
export interface AuthorizedClient {
  /** Rejects with {@link OAuthError} when no access token can be had. */
  fetch: typeof fetch;
  /**
   * `text` with every credential sent (`-H` values, the API access token, OAuth2 access tokens, the
   * `secrets` given) replaced by `***`: for any text of the server's put into a log line or an error answer.
   */
  scrub(text: string): string;
}

/**
 * Wraps `base` so that every request carries the `-H` headers and the right `Authorization`, and no error
 * response quotes them back (see {@link withoutSecrets}). Throws TypeError, without quoting values, when a
 * header cannot be sent. The returned `fetch`
 * rejects with {@link OAuthError} when no access token can be had.
 *
 * @example
 * ```ts
 * const remoteFetch = authorizedFetch(fetch, {
 *   headers: { "X-Tenant": "acme" },
 *   apiAccessToken: Deno.env.get("API_ACCESS_TOKEN"),
 * });
 * await remoteFetch("https://mcp.example.com/mcp", { method: "POST", body: "{}" });
 * ```
 */
export function authorizedFetch(base: typeof fetch, options: AuthorizationOptions): typeof fetch {
  return authorizedClient(base, options).fetch;
}

/** {@link authorizedFetch}, with the {@link AuthorizedClient.scrub} of what it sends. */
export function authorizedClient(base: typeof fetch, options: AuthorizationOptions): AuthorizedClient {
  const extra = new Headers();
  for (const [name, value] of Object.entries(options.headers)) {
    checkHeader(name, value, "-H");
    extra.set(name, value);
  }
  if (options.apiAccessToken !== undefined) {
    checkHeader("Authorization", options.apiAccessToken, "API_ACCESS_TOKEN");
  }
  const fixedAuthorization = options.apiAccessToken !== undefined
    ? `Bearer ${options.apiAccessToken}`
    : extra.get("Authorization") ?? undefined;
  extra.delete("Authorization");

  // Names in lower case, as `Headers` iterates them.
  const extraHeaders = [...extra];
  // An `Authorization` value's credentials, without its scheme, too: a server may quote just those.
  const credentials = fixedAuthorization?.replace(/^\S+\s+/, "") ?? "";
  // Each as sent, and as a JSON string writes it, in which a server may quote it (`"` as `\"`).
  const secrets = [...Object.values(options.headers), credentials, ...options.secrets ?? []]
    .filter((value) => value.trim().length >= SECRET_MIN_LENGTH)
    .flatMap((value) => {
      const quoted = JSON.stringify(value).slice(1, -1);
      return quoted === value ? [value] : [value, quoted];
    });
  /** The OAuth2 access tokens sent lately. */
  const tokens: string[] = [];
  const noteToken = (token: string) => {
    if (tokens.includes(token)) return;
    if (tokens.push(token) > TOKENS_KEPT) tokens.shift();
  };
  const scrub = (text: string) => {
    for (const secret of secrets) text = text.replaceAll(secret, "***");
    for (const token of tokens) text = text.replaceAll(token, "***");
    return text;
  };

  /**
   * For each frozen record a caller sent, the merged record made last, frozen too, and with which
   * `Authorization`: the next request with both the same gets the same record, whose request head the
   * `fetch` of `http1_fetch.ts` has written out already (client mode sends every POST of a session with
   * one frozen record).
   */
  const mergedFrozen = new WeakMap<
    Record<string, string>,
    { authorization: string | undefined; merged: Readonly<Record<string, string>> }
  >();
  const merged = (own: Record<string, string>, authorization: string | undefined) => {
    if (!Object.isFrozen(own)) return mergeRecord(own, extraHeaders, authorization);
    const kept = mergedFrozen.get(own);
    if (kept !== undefined && kept.authorization === authorization) return kept.merged;
    const made = Object.freeze(mergeRecord(own, extraHeaders, authorization));
    mergedFrozen.set(own, { authorization, merged: made });
    return made;
  };

  /** Sends the request with the `-H` headers and, if given, `authorization` in place of the caller's. */
  const send = (
    input: RequestInfo | URL,
    init: RequestInit | undefined,
    authorization: string | undefined,
  ) => {
    if (extraHeaders.length === 0 && authorization === undefined) return base(input, init);
    const own = init?.headers ?? (input instanceof Request ? input.headers : undefined);
    if (own === undefined || isRecord(own)) {
      return base(input, { ...init, headers: merged(own ?? {}, authorization) });
    }
    const headers = new Headers(own);
    for (const [name, value] of extraHeaders) if (!headers.has(name)) headers.set(name, value);
    if (authorization !== undefined) headers.set("Authorization", authorization);
    return base(input, { ...init, headers });
  };

  const oauth = options.oauth;
  if (oauth === undefined) {
    if (extraHeaders.length === 0 && fixedAuthorization === undefined && secrets.length === 0) {
      return { fetch: base, scrub };
    }
    return {
      fetch: async (input, init) => withoutSecrets(await send(input, init, fixedAuthorization), scrub),
      scrub,
    };
  }

  // Set once discovery found no token endpoint: requests then go without a token, and without looking for
  // one again each time, until the server answers 401, whose challenge may point to one.
  let noTokenEndpoint = false;
  const oauthFetch: typeof fetch = async (input, init) => {
    let token: string | undefined;
    if (!noTokenEndpoint) {
      try {
        token = await oauth.accessToken();
      } catch (error) {
        // No token endpoint known yet: the server's 401 challenge may point to it.
        if (!(error instanceof OAuthError && error.stage === "discovery")) throw error;
        noTokenEndpoint = true;
        logger.debug("no token endpoint found yet ({error}); asking the server for its challenge", { error });
      }
    }
    if (token !== undefined) noteToken(token);
    const response = await send(input, init, token === undefined ? undefined : `Bearer ${token}`);
    if (response.status !== 401 || !replayable(input, init)) return withoutSecrets(response, scrub);
    const challenge = response.headers.get("www-authenticate");
    await response.body?.cancel();
    logger.debug("the server answered 401; renewing the access token and retrying once");
    const renewed = await oauth.renew(challenge, token);
    noTokenEndpoint = false;
    noteToken(renewed);
    // The server did not run it: a failure of the next sending is that one's (found by review).
    (init as WrittenNotice | undefined)?.onresend?.();
    return withoutSecrets(await send(input, init, `Bearer ${renewed}`), scrub);
  };
  return { fetch: oauthFetch, scrub };
}
