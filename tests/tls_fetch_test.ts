import assert from "node:assert/strict";
import { decodeEventStream } from "../src/client/server_sent_events.ts";
import { createTlsFetch, describeFetchError, TlsConfigError } from "../src/client/tls_fetch.ts";
import {
  checkAbortBeforeAnswer,
  checkAbortWhileStreaming,
  checkEventStream,
  checkStopWhileStreaming,
  withServer,
} from "./helpers/fetch_test_server.ts";

const FIXTURES = new URL("./fixtures/tls/", import.meta.url);
const CA_FILE = new URL("ca.pem", FIXTURES).pathname;
const encoder = new TextEncoder();

/** Runs `test` with the fetch of `createTlsFetch(verify)`, closing it afterwards. */
async function withFetch(
  verify: Parameters<typeof createTlsFetch>[0],
  test: (fetch: typeof globalThis.fetch) => Promise<void>,
): Promise<void> {
  const tls = createTlsFetch(verify);
  try {
    await test(tls.fetch);
  } finally {
    tls.close();
  }
}

const NO_VERIFY = { kind: "no-verify" } as const;

async function freePort(): Promise<number> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return await Promise.resolve(port);
}

Deno.test("tls_fetch: default verification rejects the test CA, with a hint", async () => {
  await withServer(async (origin) => {
    const url = `${origin}/echo?token=secret`;
    const { fetch } = createTlsFetch({ kind: "verify" });
    const error = await fetch(url).then(() => undefined, (error) => error);
    assert.ok(error instanceof Error);
    assert.equal(
      describeFetchError(error, url),
      `TLS certificate of ${origin} is not trusted (unknown issuer); use --verify-ssl CA.pem to trust its CA, ` +
        "or --no-verify-ssl",
    );
  });
});

Deno.test("tls_fetch: a CA file makes the server trusted", async () => {
  await withServer(async (origin) => {
    await withFetch({ kind: "ca-file", path: CA_FILE }, async (fetch) => {
      const response = await fetch(`${origin}/echo`);
      assert.equal(response.status, 200);
      assert.equal((await response.json()).method, "GET");
      const byName = await fetch(`${origin.replace("127.0.0.1", "localhost")}/echo`, {
        method: "POST",
        body: "x",
      });
      assert.equal((await byName.json()).body, "x");
    });
  });
});

Deno.test("tls_fetch: a missing or unusable CA file throws TlsConfigError naming it", () => {
  assert.throws(
    () => createTlsFetch({ kind: "ca-file", path: "/no/such/ca.pem" }),
    (error) =>
      error instanceof TlsConfigError &&
      error.message === "Cannot read the CA file /no/such/ca.pem: no such file",
  );
  const keyFile = new URL("key.pem", FIXTURES).pathname;
  assert.throws(
    () => createTlsFetch({ kind: "ca-file", path: keyFile }),
    (error) =>
      error instanceof TlsConfigError &&
      error.message.startsWith(`The CA file ${keyFile} holds no PEM certificate`),
  );
  const directory = new URL(".", FIXTURES).pathname;
  assert.throws(() => createTlsFetch({ kind: "ca-file", path: directory }), TlsConfigError);
});

Deno.test("tls_fetch: a CA file with a broken certificate throws TlsConfigError", async () => {
  const path = await Deno.makeTempFile({ suffix: ".pem" });
  try {
    await Deno.writeTextFile(
      path,
      "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    );
    assert.throws(
      () => createTlsFetch({ kind: "ca-file", path }),
      (error) =>
        error instanceof TlsConfigError && error.message.includes(path) && !error.message.includes("\n"),
    );
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("tls_fetch: no-verify GETs from a server with an untrusted certificate", async () => {
  await withServer(async (origin) => {
    await withFetch(NO_VERIFY, async (fetch) => {
      const response = await fetch(new URL(`${origin}/echo?x=1#fragment`));
      assert.equal(response.status, 200);
      assert.equal(response.statusText, "OK");
      assert.equal(response.url, `${origin}/echo?x=1`);
      assert.equal(response.redirected, false);
      assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
      const echo = await response.json();
      assert.equal(echo.method, "GET");
      assert.equal(echo.path, "/echo?x=1");
      assert.equal(echo.headers.accept, "*/*");
    });
  });
});

Deno.test("tls_fetch: no-verify POSTs a JSON body with headers in every form", async () => {
  await withServer(async (origin) => {
    await withFetch(NO_VERIFY, async (fetch) => {
      const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping", text: "héllo" });
      const headerForms: HeadersInit[] = [
        new Headers({ "Content-Type": "application/json", "Mcp-Session-Id": "s1" }),
        [["Content-Type", "application/json"], ["Mcp-Session-Id", "s1"]],
        { "Content-Type": "application/json", "Mcp-Session-Id": "s1" },
      ];
      for (const headers of headerForms) {
        const echo = await (await fetch(`${origin}/echo`, { method: "POST", headers, body })).json();
        assert.equal(echo.method, "POST");
        assert.equal(echo.body, body);
        assert.equal(echo.headers["content-type"], "application/json");
        assert.equal(echo.headers["mcp-session-id"], "s1");
        assert.equal(echo.headers["content-length"], String(encoder.encode(body).length));
        // As without --no-verify-ssl (found by QA: Deno/… was sent).
        assert.match(echo.headers["user-agent"], /^mcp-proxy\//);
      }
      const request = new Request(`${origin}/echo`, { method: "PUT", body: encoder.encode("bytes") });
      assert.deepEqual((await (await fetch(request)).json()).body, "bytes");
      const buffer = encoder.encode("buffer").buffer;
      assert.equal(
        (await (await fetch(`${origin}/echo`, { method: "POST", body: buffer })).json()).body,
        "buffer",
      );
    });
  });
});

Deno.test("tls_fetch: no-verify sends URLSearchParams as a form, and streamed bodies", async () => {
  await withServer(async (origin) => {
    await withFetch(NO_VERIFY, async (fetch) => {
      const form = await (await fetch(`${origin}/echo`, {
        method: "POST",
        body: new URLSearchParams({ grant_type: "client_credentials", scope: "a b" }),
      })).json();
      assert.equal(form.headers["content-type"], "application/x-www-form-urlencoded;charset=UTF-8");
      assert.equal(form.body, "grant_type=client_credentials&scope=a+b");
      const streamed = await (await fetch(`${origin}/echo`, {
        method: "POST",
        body: ReadableStream.from([encoder.encode("one,"), encoder.encode("two")]),
      })).json();
      assert.equal(streamed.body, "one,two");
    });
  });
});

Deno.test("tls_fetch: no-verify returns 202 with an empty body, and joins repeated headers", async () => {
  await withServer(async (origin) => {
    await withFetch(NO_VERIFY, async (fetch) => {
      const accepted = await fetch(`${origin}/accepted`, { method: "POST", body: "{}" });
      assert.equal(accepted.status, 202);
      assert.equal(await accepted.text(), "");
      const multi = await fetch(`${origin}/multi`);
      assert.equal(multi.headers.get("x-multi"), "a, b");
      assert.equal(await multi.text(), "ok");
      const missing = await fetch(`${origin}/nowhere`);
      assert.equal(missing.status, 404);
      assert.equal(await missing.text(), "not found");
    });
  });
});

Deno.test("tls_fetch: no-verify follows redirects as fetch does", async () => {
  await withServer(async (origin) => {
    await withFetch(NO_VERIFY, async (fetch) => {
      const post = (status: number, to = "echo") =>
        fetch(`${origin}/redirect?status=${status}&to=${encodeURIComponent(to)}`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: "Bearer t" },
          body: '{"a":1}',
        });
      for (const status of [307, 308]) {
        const response = await post(status);
        assert.equal(response.redirected, true);
        assert.equal(response.url, `${origin}/echo`);
        const echo = await response.json();
        assert.deepEqual([echo.method, echo.body, echo.headers["content-type"]], [
          "POST",
          '{"a":1}',
          "application/json",
        ]);
        assert.equal(echo.headers.authorization, "Bearer t");
      }
      for (const status of [301, 302, 303]) {
        const echo = await (await post(status, "/echo?after=redirect")).json();
        assert.deepEqual([echo.method, echo.body, echo.path], ["GET", "", "/echo?after=redirect"]);
        assert.equal(echo.headers["content-type"], undefined);
      }
      const crossOrigin = await (await post(307, `${origin.replace("127.0.0.1", "localhost")}/echo`)).json();
      assert.equal(crossOrigin.body, '{"a":1}');
      assert.equal(crossOrigin.headers.authorization, undefined);
      const manual = await fetch(`${origin}/redirect?status=302`, { redirect: "manual" });
      assert.deepEqual([manual.status, manual.headers.get("location")], [302, "echo"]);
      await manual.body?.cancel();
      await assert.rejects(fetch(`${origin}/loop`), (error) => {
        assert.ok(error instanceof TypeError);
        assert.equal(
          describeFetchError(error, `${origin}/loop`),
          `request to ${origin} failed: redirect count exceeded`,
        );
        return true;
      });
    });
  });
});

Deno.test("tls_fetch: no-verify streams an event stream as it arrives; cancelling closes it", async () => {
  await withServer(async (origin, server) => {
    await withFetch(NO_VERIFY, (fetch) => checkEventStream(fetch, origin, server));
  });
});

Deno.test("tls_fetch: no-verify aborts while the body streams", async () => {
  await withServer(async (origin, server) => {
    await withFetch(NO_VERIFY, (fetch) => checkAbortWhileStreaming(fetch, origin, server));
  });
});

Deno.test("tls_fetch: no-verify ends a request stopped while its body streams, and one stopped before", async () => {
  await withServer(async (origin, server) => {
    await withFetch(NO_VERIFY, (fetch) => checkStopWhileStreaming(fetch, origin, server));
  });
});

Deno.test("tls_fetch: no-verify rejects with the signal's reason when aborted before or during the request", async () => {
  await withServer(async (origin) => {
    await withFetch(NO_VERIFY, (fetch) => checkAbortBeforeAnswer(fetch, origin));
  });
});

Deno.test("tls_fetch: no-verify also speaks plain HTTP", async () => {
  await withServer(async (origin) => {
    await withFetch(NO_VERIFY, async (fetch) => {
      const echo = await (await fetch(`${origin}/echo`, { method: "POST", body: "plain" })).json();
      assert.equal(echo.body, "plain");
    });
  }, { secure: false });
});

Deno.test("tls_fetch: connection refused is one line naming the origin only", async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/mcp?token=secret`;
  const expected = `cannot connect to http://127.0.0.1:${port}: connection refused`;
  const denoError = await fetch(url).then(() => undefined, (error) => error);
  assert.equal(describeFetchError(denoError, url), expected);
  await withFetch(NO_VERIFY, async (fetch) => {
    const nodeError = await fetch(url).then(() => undefined, (error) => error);
    assert.ok(nodeError instanceof TypeError);
    assert.equal(describeFetchError(nodeError, url), expected);
    const secureUrl = `https://127.0.0.1:${port}/`;
    const secureError = await fetch(secureUrl).then(() => undefined, (error) => error);
    assert.equal(
      describeFetchError(secureError, secureUrl),
      `cannot connect to https://127.0.0.1:${port}: connection refused`,
    );
    // `node:https` takes no proxy: the refusal is the server's, whatever proxy is set (found by review).
    Deno.env.set("HTTP_PROXY", "http://127.0.0.1:3128");
    Deno.env.set("HTTPS_PROXY", "http://127.0.0.1:3128");
    try {
      assert.equal(describeFetchError(nodeError, url), expected);
      assert.equal(
        describeFetchError(secureError, secureUrl),
        `cannot connect to https://127.0.0.1:${port}: connection refused`,
      );
    } finally {
      Deno.env.delete("HTTP_PROXY");
      Deno.env.delete("HTTPS_PROXY");
    }
  });
});

/** An error shaped like Deno's fetch failure, with `detail` after the client error prefix. */
function denoFetchError(url: string, detail: string): TypeError {
  return new TypeError("fetch failed", {
    cause: new Error(`error sending request for url (${url}): client error (Connect): ${detail}`),
  });
}

/** An error shaped like Node's, with a `code`. */
function nodeError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

Deno.test("tls_fetch: requests left to Deno's fetch (through HTTP_PROXY) keep no connection for another", async () => {
  // A proxy that answers each request itself, counting connections: a kept connection that broke would
  // make Deno's fetch send a POST again (found by QA: tool calls through a proxy ran twice).
  let connections = 0;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const conn of listener) {
      connections++;
      (async () => {
        const buffer = new Uint8Array(65536);
        try {
          while ((await conn.read(buffer)) !== null) {
            await conn.write(new TextEncoder().encode("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
          }
        } catch {
          // The client went away.
        } finally {
          conn.close();
        }
      })();
    }
  })();
  Deno.env.set("HTTP_PROXY", `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`);
  const tls = createTlsFetch({ kind: "verify" });
  try {
    for (const body of ["1", "2", "3"]) {
      assert.equal(
        await (await tls.fetch("http://127.0.0.1:19999/mcp", { method: "POST", body })).text(),
        "ok",
      );
    }
    assert.equal(connections, 3);
  } finally {
    tls.close();
    Deno.env.delete("HTTP_PROXY");
    listener.close();
    await serving.catch(() => {});
  }
});

Deno.test("describeFetchError: describes the error shapes of Deno and Node", () => {
  const url = "https://user:pw@mcp.example.com:8443/mcp?key=secret";
  const origin = "https://mcp.example.com:8443";
  const hint = "use --verify-ssl CA.pem to trust its CA, or --no-verify-ssl";
  const cases: [unknown, string][] = [
    [
      denoFetchError(url, "invalid peer certificate: UnknownIssuer"),
      `TLS certificate of ${origin} is not trusted (unknown issuer); ${hint}`,
    ],
    [
      denoFetchError(url, "invalid peer certificate: Expired"),
      `TLS certificate of ${origin} is not trusted (expired); ${hint}`,
    ],
    [
      denoFetchError(url, 'invalid peer certificate: NotValidForNameContext { expected: "x" }'),
      `TLS certificate of ${origin} is not trusted (issued for another host name); ${hint}`,
    ],
    [
      nodeError("self-signed certificate", "DEPTH_ZERO_SELF_SIGNED_CERT"),
      `TLS certificate of ${origin} is not trusted (self-signed); ${hint}`,
    ],
    [
      new TypeError("fetch failed", { cause: nodeError("certificate has expired", "CERT_HAS_EXPIRED") }),
      `TLS certificate of ${origin} is not trusted (expired); ${hint}`,
    ],
    [
      nodeError("Hostname/IP does not match certificate's altnames", "ERR_TLS_CERT_ALTNAME_INVALID"),
      `TLS certificate of ${origin} is not trusted (issued for another host name); ${hint}`,
    ],
    [
      nodeError("self-signed certificate in certificate chain", "SELF_SIGNED_CERT_IN_CHAIN"),
      `TLS certificate of ${origin} is not trusted (self-signed certificate in chain); ${hint}`,
    ],
    [
      denoFetchError(url, "dns error: failed to lookup address information: Name or service not known"),
      "cannot resolve mcp.example.com",
    ],
    [nodeError("getaddrinfo ENOTFOUND mcp.example.com", "ENOTFOUND"), "cannot resolve mcp.example.com"],
    [nodeError("getaddrinfo EAI_AGAIN mcp.example.com", "EAI_AGAIN"), "cannot resolve mcp.example.com"],
    [
      denoFetchError(url, "tcp connect error: Connection timed out (os error 110)"),
      `cannot connect to ${origin}: timed out`,
    ],
    [nodeError("connect ETIMEDOUT 10.0.0.1:443", "ETIMEDOUT"), `cannot connect to ${origin}: timed out`],
    [
      new DOMException("The operation was aborted due to timeout", "TimeoutError"),
      `request to ${origin} timed out`,
    ],
    [new DOMException("The signal has been aborted", "AbortError"), `request to ${origin} was aborted`],
    [nodeError("read ECONNRESET", "ECONNRESET"), `connection to ${origin} was reset`],
    [
      new TypeError("error reading a body from connection"),
      `connection to ${origin} closed before the response was complete`,
    ],
    [
      denoFetchError(url, "tcp connect error: No route to host (os error 113)"),
      `cannot connect to ${origin}: host unreachable`,
    ],
    [
      new TypeError("fetch failed", {
        cause: new Error(
          `error sending request from 10.0.0.2:5000 for ${url} (10.0.0.1:8443): client error (SendRequest): ` +
            "connection closed before message completed",
        ),
      }),
      `connection to ${origin} closed before the response was complete`,
    ],
    [
      new TypeError("fetch failed", {
        cause: new Error(
          `error sending request from 10.0.0.2:5000 for ${url}: client error (SendRequest): invalid HTTP version parsed`,
        ),
      }),
      `request to ${origin} failed: invalid HTTP version parsed`,
    ],
    [new TypeError(`bad thing at ${url}`), `request to ${origin} failed: bad thing at ${origin}`],
    ["a string", `request to ${origin} failed: a string`],
  ];
  for (const [error, expected] of cases) {
    const line = describeFetchError(error, url);
    assert.equal(line, expected);
    assert.ok(!line.includes("secret") && !line.includes("pw") && !line.includes("\n"), line);
  }
  assert.equal(describeFetchError(new Error("boom"), "not a url"), "request to the server failed: boom");
  // Through a proxy, the refusal may be the proxy's (found by QA: a proxy that was down was taken for the
  // server).
  Deno.env.set("HTTPS_PROXY", "http://user:proxy-secret@127.0.0.1:3128");
  try {
    const refused = denoFetchError(url, "tcp connect error: Connection refused (os error 111)");
    assert.equal(
      describeFetchError(refused, url),
      `cannot connect to ${origin} (or to the proxy: HTTPS_PROXY set): connection refused`,
    );
    // The name that failed may be the proxy's (found by QA: only the server's was named).
    assert.equal(
      describeFetchError(denoFetchError(url, "dns error: failed to lookup address information"), url),
      "cannot resolve mcp.example.com or the proxy's host name (HTTPS_PROXY set)",
    );
    // Only the proxies that would carry it: not one for the other scheme, nor for a host NO_PROXY names.
    const plain = `cannot connect to ${origin}: connection refused`;
    Deno.env.set("HTTP_PROXY", "http://127.0.0.1:3128");
    Deno.env.set("ALL_PROXY", "http://127.0.0.1:1080");
    assert.equal(
      describeFetchError(refused, url),
      `cannot connect to ${origin} (or to the proxy: HTTPS_PROXY, ALL_PROXY set): connection refused`,
    );
    Deno.env.delete("HTTPS_PROXY");
    Deno.env.delete("ALL_PROXY");
    assert.equal(describeFetchError(refused, url), plain);
    Deno.env.set("HTTPS_PROXY", "http://127.0.0.1:3128");
    for (
      const [noProxy, excluded] of [
        ["example.com", true],
        [" localhost, .example.com", true],
        ["*", true],
        [
          "mcp.example.com",
          true,
        ],
        ["ample.com", false],
        ["other.example.com", false],
        ["", false],
        // Compared as written, as Deno's fetch does (found by review).
        ["MCP.EXAMPLE.COM", false],
      ] as const
    ) {
      Deno.env.set("NO_PROXY", noProxy);
      assert.equal(
        describeFetchError(refused, url),
        excluded
          ? plain
          : `cannot connect to ${origin} (or to the proxy: HTTPS_PROXY set): connection refused`,
        noProxy,
      );
    }
    // An address: by an entry of the same address or a range of them, and not by `*`, as Deno's fetch.
    const byAddress: Record<string, [string, boolean][]> = {
      "https://10.1.2.3:8443/mcp": [
        ["10.1.2.3", true],
        ["10.0.0.0/8", true],
        ["10.1.2.0/24", true],
        ["10.1.3.0/24", false],
        ["*", false],
        ["example.com", false],
        ["010.1.2.3", false],
        ["10.0.0.0/", false],
      ],
      "https://[fd00::1]:8443/mcp": [
        ["fd00::1", true],
        ["fd00:0::1", true],
        ["fd00::/8", true],
        ["fe00::/8", false],
        ["[fd00::1]", false],
        ["*", false],
      ],
    };
    for (const [addressUrl, cases] of Object.entries(byAddress)) {
      const atAddress = denoFetchError(addressUrl, "tcp connect error: Connection refused (os error 111)");
      for (const [noProxy, excluded] of cases) {
        Deno.env.set("NO_PROXY", noProxy);
        assert.equal(
          describeFetchError(atAddress, addressUrl).includes("or to the proxy"),
          !excluded,
          noProxy,
        );
      }
    }
  } finally {
    for (const name of ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"]) Deno.env.delete(name);
  }
});

Deno.test("tls_fetch: no-verify errors the body when the server drops the connection mid-stream", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const origin = `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
  const served = (async () => {
    const connection = await listener.accept();
    await connection.read(new Uint8Array(4096));
    const chunk = "data: 1\n\n";
    await connection.write(encoder.encode(
      "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n" +
        `${chunk.length.toString(16)}\r\n${chunk}\r\n`,
    ));
    connection.close();
  })();
  try {
    await withFetch(NO_VERIFY, async (fetch) => {
      const response = await fetch(`${origin}/events`);
      const events = decodeEventStream(response.body!).getReader();
      assert.deepEqual((await events.read()).value, { event: "message", data: "1" });
      const error = await events.read().then(() => undefined, (error) => error);
      assert.ok(error instanceof TypeError);
      assert.equal(
        describeFetchError(error, origin),
        `connection to ${origin} closed before the response was complete`,
      );
    });
  } finally {
    await served;
    listener.close();
  }
});
