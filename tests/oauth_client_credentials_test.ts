import assert from "node:assert/strict";
import {
  ClientCredentials,
  type ClientCredentialsOptions,
  OAuthError,
} from "../src/client/oauth_client_credentials.ts";

const CLIENT_ID = "proxy client:1";
const CLIENT_SECRET = "s3cr3t:p@ss/+ word";
/** `Basic base64(form-encoded id ":" form-encoded secret)`, worked out by hand (RFC 6749 §2.3.1). */
const EXPECTED_BASIC = `Basic ${btoa("proxy+client%3A1:s3cr3t%3Ap%40ss%2F%2B+word")}`;
const SECRET_FORMS = [CLIENT_SECRET, "s3cr3t%3Ap%40ss%2F%2B+word", EXPECTED_BASIC.slice(6)];

interface TokenRequest {
  authorization: string | null;
  contentType: string | null;
  accept: string | null;
  body: string;
}

/**
 * An authorization server and the metadata of a resource server on 127.0.0.1: `POST /token` checks
 * Basic client authentication and the grant type and issues `token-1`, `token-2`, …; `GET` answers
 * the JSON documents in `documents`, by path.
 */
class AuthServer {
  readonly tokenRequests: TokenRequest[] = [];
  readonly metadataRequests: string[] = [];
  readonly documents = new Map<string, unknown>();
  /** `expires_in` of the tokens; undefined leaves it out. */
  expiresIn: number | undefined = 60;
  /** Replaces the token endpoint's normal answer. */
  tokenAnswer: (() => Response) | undefined;
  /** Makes the token endpoint wait for this before answering. */
  hold: Promise<void> | undefined;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;

  constructor() {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (request) => this.#handle(request),
    );
  }

  get origin(): string {
    return `http://127.0.0.1:${this.#server.addr.port}`;
  }

  url(path: string): string {
    return this.origin + path;
  }

  credentials(overrides: Partial<ClientCredentialsOptions> = {}): ClientCredentials {
    return new ClientCredentials({
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      tokenUrl: this.url("/token"),
      resourceUrl: this.url("/mcp"),
      fetch,
      ...overrides,
    });
  }

  #handle(request: Request): Response | Promise<Response> {
    const path = new URL(request.url).pathname;
    if (request.method === "POST" && path === "/token") return this.#token(request);
    this.metadataRequests.push(path);
    const document = this.documents.get(path);
    return document === undefined ? new Response("not found", { status: 404 }) : Response.json(document);
  }

  async #token(request: Request): Promise<Response> {
    const authorization = request.headers.get("authorization");
    const body = await request.text();
    this.tokenRequests.push({
      authorization,
      contentType: request.headers.get("content-type"),
      accept: request.headers.get("accept"),
      body,
    });
    await this.hold;
    if (this.tokenAnswer !== undefined) return this.tokenAnswer();
    if (authorization !== EXPECTED_BASIC) {
      // Echoes what it got, as careless servers do: the client must not repeat it.
      const got = atob((authorization ?? "Basic ").slice(6));
      return Response.json({ error: "invalid_client", error_description: `no client ${got}` }, {
        status: 401,
      });
    }
    if (new URLSearchParams(body).get("grant_type") !== "client_credentials") {
      return Response.json({ error: "unsupported_grant_type" }, { status: 400 });
    }
    const answer: Record<string, unknown> = {
      access_token: `token-${this.tokenRequests.length}`,
      token_type: "Bearer",
    };
    if (this.expiresIn !== undefined) answer.expires_in = this.expiresIn;
    return Response.json(answer);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#server.shutdown();
  }
}

/** Runs `action`, which must throw an OAuthError, and checks that its message gives no secret away. */
async function oauthError(action: () => Promise<unknown>): Promise<OAuthError> {
  const error = await action().then(() => undefined, (error: unknown) => error);
  assert.ok(error instanceof OAuthError, `expected an OAuthError, got ${error}`);
  for (const secret of SECRET_FORMS) assert.ok(!error.message.includes(secret), error.message);
  assert.ok(!error.message.includes("\n"), "the message is one line");
  return error;
}

/** Metadata that sends discovery from the resource `/mcp` to the issuer `/tenant` and its `/token`. */
function publishMetadata(server: AuthServer, resourceMetadataPath: string, serverMetadataPath: string): void {
  server.documents.set(resourceMetadataPath, {
    resource: server.url("/mcp"),
    authorization_servers: [server.url("/tenant")],
  });
  server.documents.set(serverMetadataPath, {
    issuer: server.url("/tenant"),
    token_endpoint: server.url("/token"),
  });
}

Deno.test("ClientCredentials sends Basic client auth with the form-encoded id and secret", async () => {
  await using server = new AuthServer();
  assert.equal(await server.credentials().accessToken(), "token-1");
  assert.deepEqual(server.tokenRequests, [{
    authorization: EXPECTED_BASIC,
    contentType: "application/x-www-form-urlencoded",
    accept: "application/json",
    body: "grant_type=client_credentials",
  }]);
});

Deno.test("ClientCredentials caches the token", async () => {
  await using server = new AuthServer();
  const credentials = server.credentials();
  assert.equal(await credentials.accessToken(), "token-1");
  assert.equal(await credentials.accessToken(), "token-1");
  assert.equal(server.tokenRequests.length, 1);
});

/** Checks `check` every 5 ms until it holds, for up to 2 s. */
async function until(check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!await check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
}

/** What `accessToken()` gives once the renewal it may have started is over (polled, up to 2 s). */
async function tokenOnceRenewed(credentials: ClientCredentials, renewed: string): Promise<string> {
  let token = "";
  await until(async () => (token = await credentials.accessToken()) === renewed);
  return token;
}

Deno.test("ClientCredentials renews the token 30 s before expires_in, the current one serving meanwhile", async () => {
  await using server = new AuthServer();
  let clock = 1_000_000;
  const credentials = server.credentials({ now: () => clock });
  assert.equal(await credentials.accessToken(), "token-1");
  clock += 29_999;
  assert.equal(await credentials.accessToken(), "token-1");
  assert.equal(server.tokenRequests.length, 1);
  clock += 1;
  // Renewed from now on; the request that found it due does not wait for that.
  assert.equal(await credentials.accessToken(), "token-1");
  assert.equal(await tokenOnceRenewed(credentials, "token-2"), "token-2");
  assert.equal(server.tokenRequests.length, 2);
});

Deno.test("ClientCredentials renews a token shorter-lived than a minute at half its life", async () => {
  await using server = new AuthServer();
  server.expiresIn = 20;
  let clock = 0;
  const credentials = server.credentials({ now: () => clock });
  assert.equal(await credentials.accessToken(), "token-1");
  clock = 9_999;
  assert.equal(await credentials.accessToken(), "token-1");
  assert.equal(server.tokenRequests.length, 1);
  clock = 10_000;
  assert.equal(await tokenOnceRenewed(credentials, "token-2"), "token-2");
  // Expired, with no renewal made ahead: the request waits for a new token.
  clock = 10_000 + 20_000;
  assert.equal(await credentials.accessToken(), "token-3");
});

Deno.test("ClientCredentials keeps serving a token whose renewal ahead of expiry failed, until it expires", async () => {
  await using server = new AuthServer();
  server.expiresIn = 60;
  let clock = 0;
  const credentials = server.credentials({ now: () => clock });
  assert.equal(await credentials.accessToken(), "token-1");
  server.tokenAnswer = () => new Response("down", { status: 500 });
  clock = 30_000;
  assert.equal(await credentials.accessToken(), "token-1", "found by QA: this request failed");
  const tried = () => server.tokenRequests.length;
  await until(() => tried() >= 2);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(tried(), 2);
  // Not tried again at once (each request would), but after a pause.
  clock = 31_000;
  assert.equal(await credentials.accessToken(), "token-1");
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(tried(), 2);
  server.tokenAnswer = undefined;
  clock = 36_000;
  assert.equal(await tokenOnceRenewed(credentials, "token-3"), "token-3");
  // Once expired, a failure is the request's: there is no token left to send.
  server.tokenAnswer = () => new Response("down", { status: 500 });
  clock = 36_000 + 60_000;
  await assert.rejects(credentials.accessToken(), OAuthError);
});

Deno.test("ClientCredentials never serves a token a 401 refused, also while or after a renewal ahead of expiry", async () => {
  await using server = new AuthServer();
  let clock = 0;
  const credentials = server.credentials({ now: () => clock });
  assert.equal(await credentials.accessToken(), "token-1");
  // Due for renewal; the token endpoint is slow: token-1 serves meanwhile.
  let release = Promise.withResolvers<void>();
  server.hold = release.promise;
  clock = 30_000;
  assert.equal(await credentials.accessToken(), "token-1");
  // The server refuses token-1: from now on everybody waits for the renewal under way (found by review:
  // token-1 was handed out until it ended).
  const renewed = credentials.renew(null, "token-1");
  const meanwhile = credentials.accessToken();
  release.resolve();
  assert.deepEqual(await Promise.all([renewed, meanwhile]), ["token-2", "token-2"]);
  assert.equal(server.tokenRequests.length, 2);
  // The same with a renewal that fails: token-2 is not served again after it.
  release = Promise.withResolvers<void>();
  server.hold = release.promise;
  server.tokenAnswer = () => new Response("down", { status: 500 });
  clock = 60_000;
  assert.equal(await credentials.accessToken(), "token-2");
  const refused = credentials.renew(null, "token-2");
  release.resolve();
  await assert.rejects(refused, OAuthError);
  server.hold = undefined;
  server.tokenAnswer = undefined;
  assert.equal(await credentials.accessToken(), "token-4", "a token asked for anew, not token-2");
});

Deno.test("ClientCredentials keeps a token without expires_in until renew()", async () => {
  await using server = new AuthServer();
  server.expiresIn = undefined;
  let clock = 0;
  const credentials = server.credentials({ now: () => clock });
  assert.equal(await credentials.accessToken(), "token-1");
  clock = 1e12;
  assert.equal(await credentials.accessToken(), "token-1");
  assert.equal(await credentials.renew(), "token-2");
  assert.equal(await credentials.accessToken(), "token-2");
  assert.equal(server.tokenRequests.length, 2);
});

Deno.test("ClientCredentials lets concurrent callers share one token request", async () => {
  await using server = new AuthServer();
  const credentials = server.credentials();
  const tokens = await Promise.all([
    credentials.accessToken(),
    credentials.accessToken(),
    credentials.accessToken(),
  ]);
  assert.deepEqual(tokens, ["token-1", "token-1", "token-1"]);
  const renewed = await Promise.all([credentials.renew(), credentials.renew(), credentials.accessToken()]);
  assert.deepEqual(renewed, ["token-2", "token-2", "token-2"]);
  assert.equal(server.tokenRequests.length, 2);
});

Deno.test("ClientCredentials.renew() does not replace a token newer than the rejected one", async () => {
  await using server = new AuthServer();
  const credentials = server.credentials();
  assert.equal(await credentials.accessToken(), "token-1");
  assert.equal(await credentials.renew(null, "token-1"), "token-2");
  assert.equal(await credentials.renew(null, "token-1"), "token-2");
  assert.equal(server.tokenRequests.length, 2);
  assert.equal(await credentials.renew(null, "token-2"), "token-3");
});

Deno.test("ClientCredentials reports a wrong secret as invalid_client, without the secret", async () => {
  await using server = new AuthServer();
  const credentials = server.credentials({
    clientSecret: "wrong s3cret!",
    tokenUrl: server.url("/token?tenant=7"),
  });
  const error = await oauthError(() => credentials.accessToken());
  assert.match(
    error.message,
    /^token request to http:\/\/127\.0\.0\.1:\d+\/token was refused: 401 invalid_client/,
  );
  assert.match(error.message, /\(check --client-id and --client-secret\)$/);
  assert.ok(!error.message.includes("tenant=7"), error.message);
  assert.ok(
    !error.message.includes("wrong s3cret!") && !error.message.includes("wrong+s3cret%21"),
    error.message,
  );
  assert.equal(error.stage, "token");
});

Deno.test("ClientCredentials reports a token answer it cannot use", async () => {
  await using server = new AuthServer();
  const cases: [Response, RegExp][] = [
    [
      new Response("<html>login</html>", { headers: { "content-type": "text/html" } }),
      /not JSON \(text\/html\)/,
    ],
    [Response.json({ token_type: "Bearer" }), /has no access_token/],
    [Response.json({ access_token: "abc", token_type: "mac" }), /type "mac"; only bearer tokens/],
    [Response.json({ access_token: "a\nb" }), /cannot go in a header/],
    [new Response("oops", { status: 502 }), /answered HTTP 502 without an OAuth error/],
  ];
  for (const [answer, expected] of cases) {
    server.tokenAnswer = () => answer;
    const error = await oauthError(() => server.credentials().accessToken());
    assert.match(error.message, expected);
  }
});

Deno.test("ClientCredentials accepts a lowercase bearer token_type and a numeric-string expires_in", async () => {
  await using server = new AuthServer();
  server.tokenAnswer = () =>
    Response.json({
      access_token: `abc${server.tokenRequests.length}`,
      token_type: "bearer",
      expires_in: "60",
    });
  let clock = 0;
  const credentials = server.credentials({ now: () => clock });
  assert.equal(await credentials.accessToken(), "abc1");
  clock = 29_999;
  assert.equal(await credentials.accessToken(), "abc1");
  clock = 30_000;
  assert.equal(await tokenOnceRenewed(credentials, "abc2"), "abc2", "renewed at half of 60 s");
  assert.equal(server.tokenRequests.length, 2);
});

Deno.test("ClientCredentials names the token URL, without its query, when it cannot be reached", async () => {
  let port: number;
  {
    await using server = new AuthServer();
    port = Number(new URL(server.origin).port);
  }
  const credentials = new ClientCredentials({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    tokenUrl: `http://127.0.0.1:${port}/token?key=hush`,
    resourceUrl: "http://127.0.0.1:1/mcp",
    fetch,
  });
  const error = await oauthError(() => credentials.accessToken());
  assert.match(
    error.message,
    new RegExp(`^cannot reach the token endpoint http://127\\.0\\.0\\.1:${port}/token: .*connection refused`),
  );
  assert.doesNotMatch(error.message, /fetch failed/);
  assert.ok(!error.message.includes("hush"), error.message);
});

Deno.test("ClientCredentials gives up on a token endpoint that does not answer", async () => {
  await using server = new AuthServer();
  const release = Promise.withResolvers<void>();
  server.hold = release.promise;
  const error = await oauthError(() => server.credentials({ requestTimeoutMs: 100 }).accessToken());
  release.resolve();
  assert.match(error.message, /^cannot reach the token endpoint .*: no answer within 0\.1 s$/);
});

Deno.test("ClientCredentials discovers the token endpoint from the 401 challenge", async () => {
  await using server = new AuthServer();
  publishMetadata(server, "/custom/prm", "/.well-known/oauth-authorization-server/tenant");
  const credentials = server.credentials({ tokenUrl: undefined });

  const error = await oauthError(() => credentials.accessToken());
  assert.equal(error.stage, "discovery");
  assert.match(
    error.message,
    /^cannot discover the OAuth token endpoint of http:\/\/127\.0\.0\.1:\d+\/mcp: tried /,
  );
  assert.match(error.message, /\/\.well-known\/oauth-protected-resource\/mcp \(HTTP 404\)/);
  assert.match(error.message, /; pass --token-url$/);

  const challenge = `Bearer error="invalid_token", resource_metadata="${server.url("/custom/prm")}"`;
  assert.equal(await credentials.renew(challenge), "token-1");
  assert.equal(server.tokenRequests[0].authorization, EXPECTED_BASIC);
  assert.deepEqual(
    new URLSearchParams(server.tokenRequests[0].body),
    new URLSearchParams({ grant_type: "client_credentials", resource: server.url("/mcp") }),
  );

  const lookups = server.metadataRequests.length;
  assert.equal(await credentials.renew(challenge), "token-2");
  assert.equal(server.metadataRequests.length, lookups, "the discovered endpoint is kept");
});

Deno.test("ClientCredentials falls back to the root well-known metadata and OpenID discovery", async () => {
  await using server = new AuthServer();
  server.documents.set("/.well-known/oauth-protected-resource", {
    resource: server.origin,
    authorization_servers: [server.url("/tenant")],
  });
  server.documents.set("/tenant/.well-known/openid-configuration", {
    issuer: server.url("/tenant"),
    token_endpoint: server.url("/token"),
  });
  assert.equal(await server.credentials({ tokenUrl: undefined }).accessToken(), "token-1");
  assert.deepEqual(server.metadataRequests, [
    "/.well-known/oauth-protected-resource/mcp",
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-authorization-server/tenant",
    "/.well-known/openid-configuration/tenant",
    "/tenant/.well-known/openid-configuration",
  ]);
  assert.equal(new URLSearchParams(server.tokenRequests[0].body).get("resource"), server.origin);
});

Deno.test("ClientCredentials sends no resource parameter when the metadata declares none", async () => {
  await using server = new AuthServer();
  publishMetadata(
    server,
    "/.well-known/oauth-protected-resource/mcp",
    "/.well-known/oauth-authorization-server/tenant",
  );
  server.documents.set("/.well-known/oauth-protected-resource/mcp", {
    authorization_servers: [server.url("/tenant")],
  });
  assert.equal(await server.credentials({ tokenUrl: undefined }).accessToken(), "token-1");
  assert.equal(server.tokenRequests[0].body, "grant_type=client_credentials");
});

Deno.test("ClientCredentials refuses metadata that does not fit", async () => {
  await using server = new AuthServer();
  const resourceMetadata = "/.well-known/oauth-protected-resource/mcp";
  const serverMetadata = "/.well-known/oauth-authorization-server/tenant";
  const cases: [(server: AuthServer) => void, RegExp][] = [
    [
      (server) =>
        server.documents.set(resourceMetadata, {
          resource: server.url("/other"),
          authorization_servers: [server.url("/tenant")],
        }),
      /oauth-protected-resource\/mcp \(its resource "http:\/\/127\.0\.0\.1:\d+\/other" is another server\)/,
    ],
    [
      (server) => server.documents.set(resourceMetadata, { resource: server.url("/mcp") }),
      /\(no authorization_servers\)/,
    ],
    [
      (server) =>
        server.documents.set(serverMetadata, { issuer: "https://evil.example", token_endpoint: "x" }),
      /oauth-authorization-server\/tenant \(its issuer "https:\/\/evil\.example" is not http:\/\/127/,
    ],
    [
      (server) =>
        server.documents.set(serverMetadata, {
          issuer: server.url("/tenant"),
          token_endpoint: "http://auth.example/token",
        }),
      /\(its token_endpoint http:\/\/auth\.example\/token is not https\)/,
    ],
  ];
  for (const [change, expected] of cases) {
    server.documents.clear();
    publishMetadata(server, resourceMetadata, serverMetadata);
    change(server);
    const error = await oauthError(() => server.credentials({ tokenUrl: undefined }).accessToken());
    assert.equal(error.stage, "discovery");
    assert.match(error.message, expected);
  }
  assert.equal(server.tokenRequests.length, 0);
});

Deno.test("ClientCredentials rejects a --token-url that is not a URL", () => {
  assert.throws(
    () =>
      new ClientCredentials({
        clientId: "a",
        clientSecret: "b",
        tokenUrl: "token",
        resourceUrl: "http://x/",
        fetch,
      }),
    (error: unknown) =>
      error instanceof OAuthError && error.message === `--token-url "token" is not an http(s) URL`,
  );
});
