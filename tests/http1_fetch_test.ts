import assert from "node:assert/strict";
import { bodyInMemory, createHttp1Fetch, type WrittenNotice } from "../src/client/http1_fetch.ts";
import { applyNoProxyEverywhere } from "../src/client/proxy_environment.ts";
import {
  HttpWireError,
  parseChunkSize,
  parseResponseHead,
  requestHead,
  validHeader,
} from "../src/client/http1_wire.ts";
import { neverArrived } from "../src/client/remote_transport.ts";
import { describeFetchError } from "../src/client/tls_fetch.ts";
import {
  checkAbortBeforeAnswer,
  checkAbortWhileStreaming,
  checkEventStream,
  checkStopWhileStreaming,
  withServer,
} from "./helpers/fetch_test_server.ts";

const FIXTURES = new URL("./fixtures/tls/", import.meta.url);
const caCert = Deno.readTextFileSync(new URL("ca.pem", FIXTURES));
const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ---- the wire, without I/O -------------------------------------------------------------------------

Deno.test("http1_wire: response heads and their body framing", () => {
  const head = parseResponseHead(
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\nX-A: 1\r\nX-A: 2",
    "POST",
  );
  assert.equal(head.status, 200);
  assert.equal(head.statusText, "OK");
  assert.deepEqual(head.headers, [["Content-Type", "application/json"], ["Content-Length", "12"], [
    "X-A",
    "1",
  ], [
    "X-A",
    "2",
  ]]);
  assert.deepEqual(head.framing, { kind: "length", length: 12 });
  assert.equal(head.keepAlive, true);

  const chunked = parseResponseHead(
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5",
    "GET",
  );
  assert.deepEqual(chunked.framing, { kind: "chunked" });
  const closing = parseResponseHead("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1", "GET");
  assert.equal(closing.keepAlive, false);
  const toTheEnd = parseResponseHead("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream", "GET");
  assert.deepEqual([toTheEnd.framing, toTheEnd.keepAlive], [{ kind: "close" }, false]);
  const old = parseResponseHead("HTTP/1.0 200 OK\r\nContent-Length: 1", "GET");
  assert.equal(old.keepAlive, false);
  const oldKept = parseResponseHead("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1", "GET");
  assert.equal(oldKept.keepAlive, true);
  assert.deepEqual(parseResponseHead("HTTP/1.1 204 No Content", "DELETE").framing, { kind: "none" });
  assert.deepEqual(parseResponseHead("HTTP/1.1 200 OK\r\nContent-Length: 9", "HEAD").framing, {
    kind: "none",
  });
  assert.deepEqual(parseResponseHead("HTTP/1.1 202 Accepted\r\nContent-Length: 0", "POST").framing, {
    kind: "none",
  });
  assert.equal(parseResponseHead("HTTP/1.1 404", "GET").statusText, "");
  assert.equal(parseResponseHead("HTTP/1.1 200 OK\r\nContent-Encoding: GZIP", "GET").contentEncoding, "gzip");
  // How long the server keeps an idle connection, when it says.
  const keepAlive = (value: string) =>
    parseResponseHead(`HTTP/1.1 200 OK\r\nKeep-Alive: ${value}\r\nContent-Length: 1`, "GET")
      .keepAliveTimeoutMs;
  assert.equal(keepAlive("timeout=5"), 5000);
  assert.equal(keepAlive("max=100, Timeout = 75"), 75_000);
  assert.equal(keepAlive("max=100"), undefined);
  assert.equal(keepAlive("xtimeout=5"), undefined);
  assert.equal(parseResponseHead("HTTP/1.1 200 OK", "GET").keepAliveTimeoutMs, undefined);
});

Deno.test("http1_wire: heads that cannot be read are HttpWireError", () => {
  for (
    const text of [
      "SSH-2.0-OpenSSH_9.6",
      "HTTP/2 200",
      "HTTP/1.1 200 OK\r\nno colon here",
      "HTTP/1.1 200 OK\r\nBad Name: x",
      "HTTP/1.1 200 OK\r\nContent-Length: -1",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked",
    ]
  ) {
    assert.throws(() => parseResponseHead(text, "GET"), HttpWireError, text);
  }
});

Deno.test("http1_wire: chunk sizes, request heads, header checks", () => {
  assert.equal(parseChunkSize("1a"), 26);
  assert.equal(parseChunkSize("0"), 0);
  assert.equal(parseChunkSize("FF;name=value"), 255);
  assert.throws(() => parseChunkSize("zz"), HttpWireError);
  assert.throws(() => parseChunkSize(""), HttpWireError);
  assert.equal(
    requestHead("POST", new URL("http://example.com/mcp?x=1#frag"), [["accept", "*/*"]], 2),
    "POST /mcp?x=1 HTTP/1.1\r\nhost: example.com\r\naccept: */*\r\ncontent-length: 2\r\n\r\n",
  );
  assert.equal(
    requestHead("DELETE", new URL("https://example.com:8443/"), [], undefined),
    "DELETE / HTTP/1.1\r\nhost: example.com:8443\r\n\r\n",
  );
  assert.match(requestHead("POST", new URL("http://a/"), [], undefined), /content-length: 0\r\n/);
  assert.equal(validHeader("Mcp-Session-Id", "abc"), true);
  assert.equal(validHeader("X", "a\r\nInjected: 1"), false);
  assert.equal(validHeader("X Y", "a"), false);
  assert.equal(validHeader("X", "€"), false);
});

Deno.test("http1_wire: head lines end in CRLF or a bare LF, mixed; a bare CR ends none", () => {
  const bare = parseResponseHead(
    "HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: 2",
    "POST",
  );
  assert.deepEqual([bare.status, bare.statusText], [200, "OK"]);
  assert.deepEqual(bare.headers, [["Content-Type", "application/json"], ["Content-Length", "2"]]);
  assert.deepEqual(bare.framing, { kind: "length", length: 2 });
  const mixed = parseResponseHead(
    "HTTP/1.1 201 Created\r\nX-A: 1\nX-B: 2 \r\nTransfer-Encoding: chunked",
    "GET",
  );
  assert.deepEqual([mixed.status, mixed.statusText], [201, "Created"]);
  assert.deepEqual(mixed.headers, [["X-A", "1"], ["X-B", "2"], ["Transfer-Encoding", "chunked"]]);
  assert.deepEqual(mixed.framing, { kind: "chunked" });
  assert.equal(parseResponseHead("HTTP/1.1 404\nX-A: 1", "GET").statusText, "");
  // A CR not followed by LF is no line break: in the status line it is invalid, in a value it stays.
  assert.throws(() => parseResponseHead("HTTP/1.1 200 OK\rContent-Length: 2", "GET"), HttpWireError);
  assert.deepEqual(parseResponseHead("HTTP/1.1 200 OK\nX-A: 1\rX-B: 2", "GET").headers, [[
    "X-A",
    "1\rX-B: 2",
  ]]);
  assert.throws(() => parseResponseHead("HTTP/1.1 200 OK\n\nX-A: 1", "GET"), HttpWireError);
});

// ---- against real servers --------------------------------------------------------------------------

/** Runs `test` with a fetch whose fallback records what it was given, closing both afterwards. */
async function withFetch(
  test: (fetch: typeof globalThis.fetch, fallbackCalls: unknown[]) => Promise<void>,
  caCerts?: string[],
): Promise<void> {
  const fallbackCalls: unknown[] = [];
  const fallbackClient = Deno.createHttpClient({ caCerts });
  const http = createHttp1Fetch({
    fallback: (input, init) => {
      fallbackCalls.push(input);
      return fetch(input, { ...init, client: fallbackClient });
    },
    caCerts,
  });
  try {
    await test(http.fetch, fallbackCalls);
  } finally {
    http.close();
    fallbackClient.close();
  }
}

/**
 * A TCP server on 127.0.0.1 that reads each request head (and its Content-Length body) and lets
 * `respond` write raw bytes back; `respond` returns false to close the connection.
 */
async function withRawServer(
  respond: (conn: Deno.Conn, request: string, index: number) => Promise<boolean>,
  test: (origin: string, counts: { connections: number; requests: number }) => Promise<void>,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const counts = { connections: 0, requests: 0 };
  const conns = new Set<Deno.Conn>();
  const handlers: Promise<void>[] = [];
  const serve = async (conn: Deno.Conn) => {
    conns.add(conn);
    let text = "";
    const buffer = new Uint8Array(65536);
    try {
      for (;;) {
        const end = text.indexOf("\r\n\r\n");
        if (end !== -1) {
          const length = Number(/content-length: (\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
          if (text.length >= end + 4 + length) {
            const request = text.slice(0, end + 4 + length);
            text = text.slice(end + 4 + length);
            if (!await respond(conn, request, counts.requests++)) break;
            continue;
          }
        }
        const count = await conn.read(buffer);
        if (count === null) break;
        text += decoder.decode(buffer.subarray(0, count));
      }
    } catch {
      // The client went away.
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      counts.connections++;
      handlers.push(serve(conn));
    }
  })();
  try {
    await test(`http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`, counts);
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const conn of conns) conn.close();
    await Promise.all(handlers);
  }
}

async function writeText(conn: Deno.Conn, text: string | Uint8Array): Promise<void> {
  const bytes = typeof text === "string" ? encoder.encode(text) : text;
  for (let written = 0; written < bytes.length;) written += await conn.write(bytes.subarray(written));
}

/** Writes a response whose body is `text`, gzip-encoded, with its length. */
async function writeGzipped(conn: Deno.Conn, text: string): Promise<void> {
  const gzipped = new Uint8Array(
    await new Response(new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer(),
  );
  await writeText(
    conn,
    `HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: ${gzipped.length}\r\n\r\n`,
  );
  await writeText(conn, gzipped);
}

Deno.test("http1_fetch: GET and POST with headers in every form, on one kept-alive connection", async () => {
  await withServer(async (origin, { ports }) => {
    await withFetch(async (fetch, fallbackCalls) => {
      const get = await fetch(new URL(`${origin}/echo?x=1#fragment`));
      assert.equal(get.status, 200);
      assert.equal(get.statusText, "OK");
      assert.match(get.headers.get("content-type") ?? "", /^application\/json/);
      const echo = await get.json();
      assert.deepEqual([echo.method, echo.path, echo.headers.accept], ["GET", "/echo?x=1", "*/*"]);
      assert.match(echo.headers["user-agent"], /^mcp-proxy\//);

      const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping", text: "héllo" });
      const headerForms: HeadersInit[] = [
        new Headers({ "Content-Type": "application/json", "Mcp-Session-Id": "s1" }),
        [["Content-Type", "application/json"], ["Mcp-Session-Id", "s1"]],
        { "Content-Type": "application/json", "Mcp-Session-Id": "s1", "Content-Length": "999" },
      ];
      for (const headers of headerForms) {
        const echo = await (await fetch(`${origin}/echo`, { method: "POST", headers, body })).json();
        assert.deepEqual([echo.method, echo.body], ["POST", body]);
        assert.equal(echo.headers["mcp-session-id"], "s1");
        assert.equal(echo.headers["content-length"], String(encoder.encode(body).length));
      }
      const bytes = await (await fetch(`${origin}/echo`, { method: "POST", body: encoder.encode("bytes") }))
        .json();
      assert.equal(bytes.body, "bytes");
      const deleted = await (await fetch(`${origin}/echo`, { method: "DELETE" })).json();
      assert.equal(deleted.method, "DELETE");
      assert.equal(ports.size, 1, "every request went on the same connection");
      assert.deepEqual(fallbackCalls, []);
    });
  }, { secure: false });
});

Deno.test("http1_fetch: a header record written once when frozen, and as it is now when not", async () => {
  await withServer(async (origin) => {
    await withFetch(async (fetch) => {
      const seen = async (url: string, init: RequestInit) => {
        const echo = await (await fetch(url, init)).json();
        return [echo.method, echo.path, echo.headers["x-tag"], echo.body];
      };
      // The same frozen record for other URLs and methods: each head is its own.
      const frozen = Object.freeze({ "X-Tag": "frozen" });
      assert.deepEqual(await seen(`${origin}/echo?a`, { method: "POST", headers: frozen, body: "1" }), [
        "POST",
        "/echo?a",
        "frozen",
        "1",
      ]);
      assert.deepEqual(await seen(`${origin}/echo?b`, { method: "POST", headers: frozen, body: "22" }), [
        "POST",
        "/echo?b",
        "frozen",
        "22",
      ]);
      assert.deepEqual(await seen(`${origin}/echo?b`, { method: "DELETE", headers: frozen }), [
        "DELETE",
        "/echo?b",
        "frozen",
        "",
      ]);
      // A URL object changed in place is a new URL.
      const url = new URL(`${origin}/echo?c`);
      await seen(url.href, { method: "POST", headers: frozen, body: "x" });
      assert.deepEqual((await seen(url.href, { method: "POST", headers: frozen, body: "x" }))[1], "/echo?c");
      url.search = "?d";
      assert.deepEqual(
        (await (await fetch(url, { method: "POST", headers: frozen, body: "x" })).json()).path,
        "/echo?d",
      );
      // A record that is not frozen may change between requests: each is written as it is then.
      const open: Record<string, string> = { "X-Tag": "one" };
      assert.equal((await seen(`${origin}/echo`, { method: "POST", headers: open, body: "x" }))[2], "one");
      open["X-Tag"] = "two";
      assert.equal((await seen(`${origin}/echo`, { method: "POST", headers: open, body: "x" }))[2], "two");
    });
  }, { secure: false });
});

Deno.test("http1_fetch: one signal over many requests aborts those waiting, not the connections kept", async () => {
  await withServer(async (origin, { ports }) => {
    await withFetch(async (fetch) => {
      const controller = new AbortController();
      const { signal } = controller;
      // Four connections, kept once their answers are read.
      const answers = await Promise.all(
        Array.from({ length: 4 }, () => fetch(`${origin}/echo`, { signal }).then((r) => r.json())),
      );
      assert.deepEqual(answers.map((answer) => answer.method), ["GET", "GET", "GET", "GET"]);
      assert.equal(ports.size, 4);
      // Two of them carry requests that wait; the abort closes those two only.
      const waiting = [fetch(`${origin}/slow`, { signal }), fetch(`${origin}/slow`, { signal })];
      setTimeout(() => controller.abort(), 50);
      for (const pending of waiting) {
        await assert.rejects(
          pending,
          (error) => error instanceof DOMException && error.name === "AbortError",
        );
      }
      const again = await Promise.all(
        Array.from({ length: 2 }, () => fetch(`${origin}/echo`).then((r) => r.json())),
      );
      assert.deepEqual(again.map((answer) => answer.method), ["GET", "GET"]);
      assert.equal(ports.size, 4, "the two kept connections the abort did not concern carried them");
    });
  }, { secure: false });
});

Deno.test("http1_fetch: bodies of every size and status, and 16 requests at once", async () => {
  await withServer(async (origin, { ports }) => {
    await withFetch(async (fetch) => {
      for (const bytes of [1, 65_536, 65_537, 1_048_576]) {
        const text = await (await fetch(`${origin}/big?bytes=${bytes}`)).text();
        assert.equal(text.length, bytes);
      }
      const big = "y".repeat(3 * 1024 * 1024);
      const echoed = await (await fetch(`${origin}/echo`, { method: "POST", body: big })).json();
      assert.equal(echoed.body.length, big.length);
      const accepted = await fetch(`${origin}/accepted`, { method: "POST", body: "{}" });
      assert.deepEqual([accepted.status, await accepted.text()], [202, ""]);
      const nothing = await fetch(`${origin}/nothing`);
      assert.deepEqual([nothing.status, nothing.body], [204, null]);
      const missing = await fetch(`${origin}/nowhere`);
      assert.deepEqual([missing.status, await missing.text()], [404, "not found"]);
      const answers = await Promise.all(
        Array.from(
          { length: 16 },
          (_, i) => fetch(`${origin}/echo`, { method: "POST", body: `call ${i}` }).then((r) => r.json()),
        ),
      );
      assert.deepEqual(
        answers.map((answer) => answer.body),
        Array.from({ length: 16 }, (_, i) => `call ${i}`),
      );
      assert.ok(ports.size <= 16, `${ports.size} connections`);
    });
  }, { secure: false });
});

Deno.test("http1_fetch: an event stream arrives as it is sent; cancelling it closes the connection", async () => {
  await withServer(async (origin, server) => {
    await withFetch((fetch) => checkEventStream(fetch, origin, server));
  }, { secure: false });
});

Deno.test("http1_fetch: an abort rejects with the signal's reason, before, during and after the head", async () => {
  await withServer(async (origin, server) => {
    await withFetch(async (fetch) => {
      await checkAbortBeforeAnswer(fetch, origin);
      await checkAbortWhileStreaming(fetch, origin, server);
      // The connections of aborted requests are not reused: the next request still works.
      assert.equal((await (await fetch(`${origin}/echo`)).json()).method, "GET");
    });
  }, { secure: false });
});

Deno.test("http1_fetch: a stop ends the exchange, its own or the fallback's, while the body streams or before", async () => {
  await withServer(async (origin, server) => {
    await withFetch(async (fetch, fallbackCalls) => {
      await checkStopWhileStreaming(fetch, origin, server);
      assert.equal(fallbackCalls.length, 0);
    });
  }, { secure: false });
  await withServer(async (origin, server) => {
    await withFetch(async (fetch, fallbackCalls) => {
      // A `Request` object is left to the fallback.
      await checkStopWhileStreaming(
        (input, init) => fetch(new Request(input as string), init),
        origin,
        server,
      );
      assert.equal(fallbackCalls.length, 2);
    });
  }, { secure: false });
});

Deno.test("http1_fetch: chunked bodies with extensions and trailers, bodies read to the close, gzip", async () => {
  await withRawServer(async (conn, request) => {
    if (request.includes("/chunked")) {
      await writeText(conn, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n");
      await writeText(conn, "6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
      return true;
    }
    if (request.includes("/gzip")) {
      await writeGzipped(conn, "compressed text");
      return true;
    }
    await writeText(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end");
    return false;
  }, async (origin, counts) => {
    await withFetch(async (fetch) => {
      assert.equal(await (await fetch(`${origin}/chunked`)).text(), "hello world");
      assert.equal(await (await fetch(`${origin}/chunked`)).text(), "hello world");
      assert.equal(await (await fetch(`${origin}/gzip`)).text(), "compressed text");
      assert.equal(counts.connections, 1, "chunked and sized bodies leave the connection reusable");
      assert.equal(await (await fetch(`${origin}/close`)).text(), "until the end");
      assert.equal(await (await fetch(`${origin}/chunked`)).text(), "hello world");
      assert.equal(counts.connections, 2, "a body read to the close ends its connection");
    });
  });
});

Deno.test("http1_fetch: bodyInMemory gives the bytes of a small body with a length, and nothing for others", async () => {
  await withRawServer(async (conn, request) => {
    if (request.includes("/sized")) {
      await writeText(conn, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    } else if (request.includes("/chunked")) {
      await writeText(conn, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    } else if (request.includes("/gzip")) {
      await writeGzipped(conn, "compressed text");
    } else {
      await writeText(conn, `HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n${"z".repeat(70_000)}`);
    }
    return true;
  }, async (origin) => {
    await withFetch(async (fetch) => {
      const sized = await fetch(`${origin}/sized`);
      assert.equal(decoder.decode(bodyInMemory(sized)), "hello");
      assert.equal(await sized.text(), "hello", "the body can still be read");
      for (const path of ["/chunked", "/gzip", "/large"]) {
        const response = await fetch(`${origin}${path}`);
        assert.equal(bodyInMemory(response), undefined, path);
        await response.body?.cancel();
      }
      assert.equal(bodyInMemory(new Response("hello")), undefined);
    });
  });
});

Deno.test("http1_fetch: a kept-alive connection the server closed is replaced, the request sent once", async () => {
  await withRawServer(async (conn) => {
    await writeText(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    return false;
  }, async (origin, counts) => {
    await withFetch(async (fetch) => {
      assert.equal(await (await fetch(`${origin}/a`, { method: "POST", body: "1" })).text(), "ok");
      // The server closes each connection after its answer, without saying so: the parked one is stale.
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(await (await fetch(`${origin}/b`, { method: "POST", body: "2" })).text(), "ok");
      assert.equal(await (await fetch(`${origin}/c`, { method: "POST", body: "3" })).text(), "ok");
      assert.deepEqual(counts, { connections: 3, requests: 3 });
    });
  });
});

Deno.test("http1_fetch: back-to-back requests to a server that closes every connection after its answer all go once", async () => {
  // Without `Connection: close`. Found by review: a request made straight after an answer took the
  // connection before its watch began, crossed the server's close and failed, about one in two.
  await withRawServer(async (conn) => {
    await writeText(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    return false;
  }, async (origin, counts) => {
    await withFetch(async (fetch) => {
      const call = async (i: number) =>
        assert.equal(await (await fetch(`${origin}/${i}`, { method: "POST", body: "x" })).text(), "ok");
      for (let i = 0; i < 20; i++) await call(i);
      for (let round = 0; round < 5; round++) {
        await Promise.all([0, 1, 2, 3].map((i) => call(100 + 4 * round + i)));
      }
      assert.deepEqual(
        counts,
        { connections: 40, requests: 40 },
        "each request sent once, on a connection of its own",
      );
    });
  });
});

Deno.test("http1_fetch: a server that closes every connection a moment after its answer is learned from the first request lost", async () => {
  // Without `Connection: close`, and without reading what came meanwhile (found by QA: every second
  // request crossed the close, 30 ms after the answer, and failed).
  await withRawServer(async (conn) => {
    await writeText(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    await new Promise((resolve) => setTimeout(resolve, 30));
    return false;
  }, async (origin) => {
    await withFetch(async (fetch) => {
      let failed = 0;
      for (let i = 0; i < 20; i++) {
        try {
          assert.equal(await (await fetch(`${origin}/${i}`, { method: "POST", body: "x" })).text(), "ok");
        } catch (error) {
          assert.ok(error instanceof TypeError, String(error));
          failed++;
        }
      }
      assert.ok(failed <= 1, `${failed} of 20 failed`);
    });
  });
});

Deno.test("http1_fetch: a request aborted while its connection gets its turn is not sent, and rejects", async () => {
  await withRawServer(async (conn) => {
    await writeText(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    return true;
  }, async (origin, counts) => {
    await withFetch(async (fetch) => {
      assert.equal(await (await fetch(`${origin}/a`, { method: "POST", body: "1" })).text(), "ok");
      // The connection's second request waits a turn first (found by review: an abort then went unheard).
      const controller = new AbortController();
      const second = fetch(`${origin}/b`, { method: "POST", body: "2", signal: controller.signal });
      controller.abort(new Error("aborted by the caller"));
      await assert.rejects(second, /aborted by the caller/);
      assert.deepEqual(counts, { connections: 1, requests: 1 });
    });
  });
});

/**
 * A raw server that answers every POST "ok" and closes the connection right after the answer to request
 * `closeAfter` (counted from 0, over all connections) only; `call(i)` POSTs and checks the answer.
 */
async function withOkServerClosingAfter(
  closeAfter: number,
  test: (
    call: (i: number) => Promise<void>,
    counts: { connections: number; requests: number },
  ) => Promise<void>,
): Promise<void> {
  await withRawServer(async (conn, _request, index) => {
    await writeText(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    return index !== closeAfter;
  }, async (origin, counts) => {
    await withFetch(async (fetch) => {
      const call = async (i: number) =>
        assert.equal(await (await fetch(`${origin}/${i}`, { method: "POST", body: "x" })).text(), "ok");
      await test(call, counts);
    });
  });
}

Deno.test("http1_fetch: a server that closes a connection it had kept (a restart) is not taken to close them all", async () => {
  // Three requests on one connection, which the server closes right after the third answer, as a server
  // stopping does; the next connection it keeps as usual.
  await withOkServerClosingAfter(2, async (call, counts) => {
    for (let i = 0; i < 3; i++) await call(i);
    await new Promise((resolve) => setTimeout(resolve, 20));
    // Found by QA: after such a close no connection was ever taken again, one per request from then on.
    for (let i = 3; i < 6; i++) await call(i);
    assert.deepEqual(counts, { connections: 2, requests: 6 });
  });
});

Deno.test("http1_fetch: a server learned to close every connection is trusted again once one stays open, watched", async () => {
  // The first connection closed right after its one answer; later ones kept.
  await withOkServerClosingAfter(0, async (call, counts) => {
    await call(0);
    await new Promise((resolve) => setTimeout(resolve, 20));
    // Learned to close every connection: none is taken, so none crosses a close.
    await call(1);
    await call(2);
    assert.equal(counts.connections, 3);
    // One watched for a second without a close shows the server keeps them: they are taken again.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    for (let i = 3; i < 6; i++) await call(i);
    assert.deepEqual(counts, { connections: 3, requests: 6 });
  });
});

Deno.test("http1_fetch: an idle limit learned before a server closed connections after their answer still holds after", async () => {
  // The server closes idle connections after 2.5 s; for a while (a restart, say), every connection right
  // after its one answer.
  let closeAtOnce = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  await withRawServer(async (conn) => {
    clearTimeout(timer);
    await writeText(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    if (closeAtOnce) return false;
    timer = setTimeout(() => conn.close(), 2500);
    return true;
  }, async (origin, counts) => {
    await withFetch(async (fetch) => {
      const call = async (path: string) => assert.equal(await (await fetch(`${origin}${path}`)).text(), "ok");
      await call("/a");
      await new Promise((resolve) => setTimeout(resolve, 2700));
      closeAtOnce = true;
      await call("/b");
      await new Promise((resolve) => setTimeout(resolve, 50));
      closeAtOnce = false;
      await call("/c");
      assert.equal(counts.connections, 3);
      // Kept open a second, watched: the server keeps its connections again, and is trusted to.
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await call("/d");
      assert.equal(counts.connections, 3, "idle 1.1 s: taken again");
      // Found by review: the limit learned first (2.5 s, less a margin) had been forgotten.
      await new Promise((resolve) => setTimeout(resolve, 1700));
      await call("/e");
      assert.equal(counts.connections, 4, "idle 1.7 s: not taken, as the server keeps it 2.5 s");
    });
  });
  clearTimeout(timer);
});

Deno.test("http1_fetch: bytes a server sends on an idle connection drop it; the next request takes a new one", async () => {
  await withRawServer(async (conn, request) => {
    await writeText(
      conn,
      `HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n${request.includes("/first") ? "ok" : "OK"}`,
    );
    // Out of turn, once the connection is idle: a response to no request.
    if (request.includes("/first")) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      await writeText(conn, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale");
    }
    return true;
  }, async (origin, counts) => {
    await withFetch(async (fetch) => {
      assert.equal(await (await fetch(`${origin}/first`)).text(), "ok");
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(await (await fetch(`${origin}/second`)).text(), "OK", "not the bytes sent out of turn");
      assert.deepEqual(counts, { connections: 2, requests: 2 });
    });
  });
});

Deno.test("http1_fetch: a request written whole is never sent again, even when the server closes at once", async () => {
  // The server reads the second request on each connection and closes without answering, as a server does
  // when its keep-alive timeout ends just as the request arrives, and as one does that dies right after a
  // side effect (found by QA: such a call ran twice). Only the first is safe to send again, and it cannot
  // be told from the second.
  await withRawServer(async (conn, request) => {
    if (request.includes("/second")) return false;
    await writeText(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    return true;
  }, async (origin, counts) => {
    await withFetch(async (fetch) => {
      assert.equal(await (await fetch(`${origin}/first`)).text(), "ok");
      await assert.rejects(fetch(`${origin}/second`, { method: "POST", body: "x" }), TypeError);
      assert.deepEqual(counts, { connections: 1, requests: 2 }, "/second was sent once");
    });
  });
});

Deno.test("http1_fetch: a request the server worked on before closing unanswered is not sent again", async () => {
  // The server takes the second request on the kept connection, works on it, then drops the connection:
  // a request it may have run, unlike one that crossed a close on the wire.
  // Its answers are slow, as a tool's may be: how long an answer takes is no measure of a round trip.
  await withRawServer(async (conn, request) => {
    await new Promise((resolve) => setTimeout(resolve, 400));
    if (request.includes("/second")) return false;
    await writeText(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    return true;
  }, async (origin, counts) => {
    await withFetch(async (fetch) => {
      assert.equal(await (await fetch(`${origin}/first`)).text(), "ok");
      const error = await fetch(`${origin}/second`, { method: "POST", body: "x" }).then(() => {}, (e) => e);
      assert.ok(error instanceof TypeError);
      assert.match(describeFetchError(error, `${origin}/second`), /closed the connection without answering/);
      assert.deepEqual(counts, { connections: 1, requests: 2 }, "/second was sent once");
    });
  });
});

Deno.test("http1_fetch: a connection idle for about as long as its server keeps it is not taken again", async () => {
  // Said: `Keep-Alive: timeout=1` (one second) lets a connection be taken only while idle under half that.
  await withRawServer(async (conn) => {
    await writeText(conn, "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 2\r\n\r\nok");
    return true;
  }, async (origin, counts) => {
    await withFetch(async (fetch) => {
      assert.equal(await (await fetch(`${origin}/a`)).text(), "ok");
      assert.equal(await (await fetch(`${origin}/b`)).text(), "ok");
      assert.equal(counts.connections, 1, "taken again at once");
      await new Promise((resolve) => setTimeout(resolve, 600));
      assert.equal(await (await fetch(`${origin}/c`)).text(), "ok");
      assert.equal(counts.connections, 2, "not taken after 600 ms idle");
    });
  });
  // Learned: a server that closes idle connections after 2.5 s without saying so.
  const timers = new Map<Deno.Conn, ReturnType<typeof setTimeout>>();
  /** Answers "ok", and closes the connection once it is idle for `ms`. */
  const closingIdleAfter = (ms: number) => async (conn: Deno.Conn) => {
    clearTimeout(timers.get(conn));
    await writeText(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    timers.set(conn, setTimeout(() => conn.close(), ms));
    return true;
  };
  await withRawServer(closingIdleAfter(2500), async (origin, counts) => {
    await withFetch(async (fetch) => {
      assert.equal(await (await fetch(`${origin}/a`)).text(), "ok");
      await new Promise((resolve) => setTimeout(resolve, 2700));
      assert.equal(await (await fetch(`${origin}/b`)).text(), "ok");
      assert.equal(counts.connections, 2, "the first one was closed by the server");
      await new Promise((resolve) => setTimeout(resolve, 1700));
      assert.equal(await (await fetch(`${origin}/c`)).text(), "ok");
      assert.equal(counts.connections, 3, "idle 1.7 s: not taken, as the server keeps it 2.5 s");
      assert.equal(counts.requests, 3);
    });
  });
  // Not learned from a close after less than seconds idle (a server that restarts closes all it holds).
  await withRawServer(closingIdleAfter(300), async (origin, counts) => {
    await withFetch(async (fetch) => {
      assert.equal(await (await fetch(`${origin}/a`)).text(), "ok");
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.equal(await (await fetch(`${origin}/b`)).text(), "ok");
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(await (await fetch(`${origin}/c`)).text(), "ok");
      assert.equal(counts.connections, 2, "idle 200 ms: taken again");
    });
  });
  for (const timer of timers.values()) clearTimeout(timer);
});

Deno.test("http1_fetch: a broken answer is a network error, never sent again", async () => {
  await withRawServer(async (conn, request) => {
    if (request.includes("/garbage")) await writeText(conn, "SSH-2.0-OpenSSH\r\n\r\n");
    else if (request.includes("/half")) await writeText(conn, "HTTP/1.1 200 OK\r\nContent-Len");
    else await writeText(conn, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort");
    return false;
  }, async (origin, counts) => {
    await withFetch(async (fetch) => {
      const garbage = await fetch(`${origin}/garbage`).then(() => undefined, (error) => error);
      assert.ok(garbage instanceof TypeError && garbage.cause instanceof HttpWireError);
      assert.match(describeFetchError(garbage, `${origin}/garbage`), /not an HTTP\/1\.x status line/);
      await assert.rejects(fetch(`${origin}/half`), TypeError);
      // A small body is read before fetch resolves: a short one rejects the fetch itself.
      await assert.rejects(fetch(`${origin}/short`).then((response) => response.text()), TypeError);
      assert.equal(counts.requests, 3);
    });
  });
});

/**
 * How long a request of the tests of bare LF line breaks may wait: a client that misses a line break
 * waits for the bytes after it without end.
 */
const LINE_BREAK_DEADLINE_MS = 10_000;

/** Writes `pieces` one after another, with a pause after each for the client to read it apart. */
async function writePieces(conn: Deno.Conn, pieces: string[], pauseMs: number): Promise<void> {
  (conn as Deno.TcpConn).setNoDelay(true);
  for (const piece of pieces) {
    await writeText(conn, piece);
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
}

Deno.test("http1_fetch: a head whose lines end in a bare LF is read, and its connection kept", async () => {
  await withRawServer(async (conn, request) => {
    const body = request.includes("/first") ? "{}" : '{"second":true}';
    await writeText(
      conn,
      `HTTP/1.1 200 OK\nContent-Type: application/json\nX-Tag: bare\nContent-Length: ${body.length}\n\n${body}`,
    );
    return true;
  }, async (origin, counts) => {
    await withFetch(async (fetch) => {
      const signal = AbortSignal.timeout(LINE_BREAK_DEADLINE_MS);
      const first = await fetch(`${origin}/first`, { method: "POST", body: "{}", signal });
      assert.deepEqual(
        [first.status, first.statusText, first.headers.get("content-type"), first.headers.get("x-tag")],
        [200, "OK", "application/json", "bare"],
      );
      assert.equal(await first.text(), "{}");
      const second = await fetch(`${origin}/second`, { method: "POST", body: "{}", signal });
      assert.deepEqual(await second.json(), { second: true });
      assert.deepEqual(
        counts,
        { connections: 1, requests: 2 },
        "the second request took the same connection",
      );
    });
  });
});

Deno.test("http1_fetch: a head of CRLF and bare LF lines ends at its first blank line, however written", async () => {
  const blankLines = ["\r\n\r\n", "\n\n", "\r\n\n", "\n\r\n"];
  await withRawServer(async (conn, request, index) => {
    if (request.includes("/bare-cr")) {
      await writeText(conn, "HTTP/1.1 200 OK\nX-A: 1\rX-B: 2\nContent-Length: 2\n\nok");
    } else if (request.includes("/too-long")) {
      await writeText(conn, `HTTP/1.1 200 OK\n${`X-Pad: ${"a".repeat(100)}\n`.repeat(700)}`);
    } else if (request.includes("/cut")) {
      await writeText(conn, "HTTP/1.1 200 OK\nContent-Length: 2\n");
      return false;
    } else {
      // The body starts with a line break: it is the body's, after the first blank line.
      await writeText(
        conn,
        `HTTP/1.1 200 OK\r\nX-A: 1\nX-B: 2\r\nContent-Length: 4${blankLines[index]}\r\nok`,
      );
    }
    return true;
  }, async (origin, counts) => {
    await withFetch(async (fetch) => {
      const signal = AbortSignal.timeout(LINE_BREAK_DEADLINE_MS);
      for (const blankLine of blankLines) {
        const response = await fetch(`${origin}/mixed`, { signal });
        assert.deepEqual(
          [response.status, response.headers.get("x-a"), response.headers.get("x-b"), await response.text()],
          [200, "1", "2", "\r\nok"],
          JSON.stringify(blankLine),
        );
      }
      assert.equal(counts.connections, 1, "each head and body was read to its end, no further");
      // A CR without an LF breaks no line: the header value holding it is refused.
      const bareCr = await fetch(`${origin}/bare-cr`, { signal }).then(() => undefined, (error) => error);
      assert.ok(bareCr instanceof TypeError, String(bareCr));
      const tooLong = await fetch(`${origin}/too-long`, { signal }).then(() => undefined, (error) => error);
      assert.ok(tooLong instanceof TypeError && tooLong.cause instanceof HttpWireError, String(tooLong));
      assert.equal(tooLong.cause.message, "the response head is over 64 KiB");
      const cut = await fetch(`${origin}/cut`, { signal }).then(() => undefined, (error) => error);
      assert.ok(cut instanceof TypeError && cut.cause instanceof HttpWireError, String(cut));
      assert.equal(cut.cause.message, "the connection closed inside the response head");
    });
  });
});

Deno.test("http1_fetch: chunked framing whose size lines, trailers and last line end in a bare LF", async () => {
  await withRawServer(async (conn, request) => {
    if (request.includes("/crlf-head")) {
      await writeText(conn, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
      await writeText(conn, "5;ext=1\nli\nne\n6\r\n works\n0\nX-Trailer: t\nX-Other: u\r\n\n");
    } else {
      await writeText(conn, "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3\nabc\r\n0\n\n");
    }
    return true;
  }, async (origin, counts) => {
    await withFetch(async (fetch) => {
      const signal = AbortSignal.timeout(LINE_BREAK_DEADLINE_MS);
      assert.equal(await (await fetch(`${origin}/crlf-head`, { signal })).text(), "li\nne works");
      assert.equal(await (await fetch(`${origin}/bare-head`, { signal })).text(), "abc");
      assert.equal(await (await fetch(`${origin}/crlf-head`, { signal })).text(), "li\nne works");
      assert.deepEqual(counts, { connections: 1, requests: 3 }, "each body was read to its last line");
    });
  });
});

Deno.test("http1_fetch: heads and chunk lines with bare LFs read as they arrive, a byte at a time or split at LFs", async () => {
  const chunked = "HTTP/1.1 200 OK\nX-A: 1\r\nTransfer-Encoding: chunked\n\r\n3\nabc\r\n0\nX-T: t\n\n";
  const splits = [
    ["HTTP/1.1 200 OK\r", "\n", "X-A: 1\n", "Content-Length: 2\r", "\n", "\r", "\nok"],
    ["HTTP/1.1 200 OK\n", "X-A: 1\n", "Content-Length: 2\n", "\n", "ok"],
    ["HTTP/1.1 200 OK\nX-A: 1\r\nContent-Length: 2\r\n", "\n", "ok"],
    ["HTTP/1.1 200 OK\nX-A: 1\nContent-Length: 2\n", "\r\nok"],
    ["HTTP/1.1 200 OK\nX-A: 1\nContent-Length: 2\n\r", "\nok"],
  ];
  await withRawServer(async (conn, request, index) => {
    await writePieces(conn, request.includes("/bytes") ? [...chunked] : splits[index - 1], 2);
    return true;
  }, async (origin, counts) => {
    await withFetch(async (fetch) => {
      const signal = AbortSignal.timeout(LINE_BREAK_DEADLINE_MS);
      const bytes = await fetch(`${origin}/bytes`, { signal });
      assert.deepEqual([bytes.headers.get("x-a"), await bytes.text()], ["1", "abc"]);
      for (const pieces of splits) {
        const split = await fetch(`${origin}/split`, { signal });
        assert.deepEqual([split.headers.get("x-a"), await split.text()], ["1", "ok"], JSON.stringify(pieces));
      }
      assert.equal(counts.connections, 1);
    });
  });
});

Deno.test("http1_fetch: onwritten tells whether the request went on a connection opened for it", async () => {
  await withServer(async (origin) => {
    await withFetch(async (fetch) => {
      const told: [boolean | undefined, boolean | undefined][] = [];
      for (const body of ["first", "second"]) {
        const response = await fetch(
          `${origin}/echo`,
          {
            method: "POST",
            body,
            onwritten: (known?: boolean, fresh?: boolean) => told.push([known, fresh]),
          } as RequestInit & WrittenNotice,
        );
        await response.body?.cancel();
      }
      // The second on the connection kept from the first (found by QA: a message on a new connection was
      // read after one written later on a kept one; the relay holds what follows such a one).
      assert.deepEqual(told, [[true, true], [true, false]]);
    });
  }, { secure: false });
});

Deno.test("http1_fetch: redirects, proxies and other requests go to the fallback", async () => {
  await withServer(async (origin) => {
    await withFetch(async (fetch, fallbackCalls) => {
      const written: (boolean | undefined)[] = [];
      const redirected = await fetch(
        `${origin}/redirect?status=307&to=/echo`,
        {
          method: "POST",
          body: "again",
          onwritten: (known?: boolean) => written.push(known),
        } as RequestInit & WrittenNotice,
      );
      assert.equal((await redirected.json()).body, "again");
      assert.equal(fallbackCalls.length, 1);
      // Written whole, then sent again by a fetch that cannot tell when it has written it (found by review:
      // the first sending counted as the one that failed).
      assert.deepEqual(written, [true, false]);
      const form = await fetch(`${origin}/echo`, { method: "POST", body: new URLSearchParams({ a: "b" }) });
      assert.equal((await form.json()).body, "a=b");
      const request = await fetch(new Request(`${origin}/echo`));
      await request.body?.cancel();
      assert.equal(fallbackCalls.length, 3);
    });
    // A proxy in the environment (read when the fetch is made): every request goes to the fallback.
    Deno.env.set("HTTP_PROXY", "http://127.0.0.1:1");
    try {
      await withFetch(async (fetch, fallbackCalls) => {
        const viaProxy = await fetch(`${origin}/echo`).catch(() => undefined);
        await viaProxy?.body?.cancel();
        assert.equal(fallbackCalls.length, 1);
      });
      // `NO_PROXY=*` turns every proxy off, as curl reads it (Deno's fetch does not): requests go direct.
      Deno.env.set("NO_PROXY", "*");
      applyNoProxyEverywhere();
      assert.equal(Deno.env.get("HTTP_PROXY"), undefined);
      await withFetch(async (fetch, fallbackCalls) => {
        assert.equal(
          (await (await fetch(`${origin}/echo`, { method: "POST", body: "direct" })).json()).body,
          "direct",
        );
        assert.equal(fallbackCalls.length, 0);
      });
    } finally {
      Deno.env.delete("HTTP_PROXY");
      Deno.env.delete("NO_PROXY");
    }
  }, { secure: false });
});

Deno.test("http1_fetch: https with a trusted CA, connections kept", async () => {
  await withServer(async (origin, { ports }) => {
    await withFetch(async (fetch, fallbackCalls) => {
      for (let i = 0; i < 3; i++) {
        const echo = await (await fetch(`${origin}/echo`, { method: "POST", body: `secure ${i}` })).json();
        assert.equal(echo.body, `secure ${i}`);
      }
      assert.equal(ports.size, 1);
      assert.deepEqual(fallbackCalls, []);
    }, [caCert]);
    await withFetch(async (fetch) => {
      const error = await fetch(`${origin}/echo`).then(() => undefined, (error) => error);
      assert.match(describeFetchError(error, origin), /not trusted \(unknown issuer\)/);
    });
  }, { secure: true });
});

Deno.test("http1_fetch: connection refused is a network error that never arrived", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  await withFetch(async (fetch) => {
    const url = `http://127.0.0.1:${port}/mcp?token=secret`;
    const error = await fetch(url, { method: "POST", body: "{}" }).then(() => undefined, (error) => error);
    assert.ok(error instanceof TypeError);
    assert.equal(neverArrived(error), true);
    assert.equal(
      describeFetchError(error, url),
      `cannot connect to http://127.0.0.1:${port}: connection refused`,
    );
  });
});

Deno.test("http1_fetch: close() ends requests under way and kept connections", async () => {
  await withServer(async (origin) => {
    const http = createHttp1Fetch({ fallback: fetch });
    await (await http.fetch(`${origin}/echo`)).text();
    const pending = http.fetch(`${origin}/slow`);
    await new Promise((resolve) => setTimeout(resolve, 20));
    http.close();
    await assert.rejects(pending, TypeError);
  }, { secure: false });
});

Deno.test("http1_fetch: a server that speaks only HTTP/2 is left to the fallback, which speaks it", async () => {
  const cert = Deno.readTextFileSync(new URL("cert.pem", FIXTURES));
  const key = Deno.readTextFileSync(new URL("key.pem", FIXTURES));
  const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key, alpnProtocols: ["h2"] });
  const accepted: Deno.TlsConn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      accepted.push(conn);
      // The handshake fails on the server side too: no protocol in common.
      conn.handshake().catch(() => {}).finally(() => conn.close());
    }
  })();
  const origin = `https://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
  const fallbackCalls: unknown[] = [];
  const http = createHttp1Fetch({
    fallback: (input) => {
      fallbackCalls.push(input);
      return Promise.resolve(new Response("from the fallback"));
    },
    caCerts: [caCert],
  });
  try {
    assert.equal(
      await (await http.fetch(`${origin}/mcp`, { method: "POST", body: "{}" })).text(),
      "from the fallback",
    );
    assert.equal(
      await (await http.fetch(`${origin}/mcp`, { method: "POST", body: "{}" })).text(),
      "from the fallback",
    );
    assert.equal(fallbackCalls.length, 2);
    assert.equal(accepted.length, 1, "the second request went straight to the fallback");
  } finally {
    http.close();
    listener.close();
    await accepting.catch(() => {});
  }
});
