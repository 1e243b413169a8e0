/**
 * Client mode keeps its two promises against servers that do not keep theirs: every request of the
 * stdio client gets exactly one answer (a 200 JSON body that answers something else, or is no JSON-RPC at
 * all, or breaks off mid-body, gets an error answer), and every message the client wrote before the end
 * of its input reaches the server before the session ends.
 */

import assert from "node:assert/strict";
import { busyDelay, fetchFailureKind, RemoteError, retryAfterMs } from "../src/client/remote_transport.ts";
import { runClientModeWithInput } from "./helpers/client_mode.ts";

const INITIALIZE = {
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "0" } },
};

const INITIALIZE_RESULT = {
  protocolVersion: "2025-11-25",
  capabilities: {},
  serverInfo: { name: "test", version: "0" },
};

/** A Streamable HTTP server whose answer to each `ping` is `bodies[id]`, as given, with status 200. */
function misanswering(bodies: Record<string, string>) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    if (request.method !== "POST") return new Response(null, { status: 405 });
    const body = await request.json();
    if (body.id === undefined) return new Response(null, { status: 202 });
    const answer = body.method === "initialize"
      ? JSON.stringify({ jsonrpc: "2.0", id: body.id, result: { protocolVersion: "2025-11-25" } })
      : bodies[body.id];
    return new Response(answer, { headers: { "Content-Type": "application/json", "Mcp-Session-Id": "s" } });
  });
  return { url: `http://127.0.0.1:${server.addr.port}/mcp`, [Symbol.asyncDispose]: () => server.shutdown() };
}

/** The time limit makes a request left unanswered fail the test (-32001) rather than hang it. */
const ARGS = ["--transport", "streamablehttp", "--request-timeout", "10"];

function ping(id: string) {
  return { jsonrpc: "2.0", id, method: "ping" };
}

Deno.test("a 200 JSON body that does not answer the request gets an error answer; EOF still ends the run", async () => {
  await using server = misanswering({
    "null-id": '{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request"}}',
    "not-json": "{not json",
    empty: "",
    "not-json-rpc": "{}",
    "other-id": '{"jsonrpc":"2.0","id":"someone-else","result":{}}',
  });
  const ids = ["null-id", "not-json", "empty", "not-json-rpc", "other-id"];
  const { code, stdout, stderr } = await runClientModeWithInput(server.url, [
    INITIALIZE,
    { jsonrpc: "2.0", method: "notifications/initialized" },
    ...ids.map(ping),
  ], { args: ARGS });
  assert.equal(code, 0, stderr);
  const answers = new Map(
    stdout.trimEnd().split("\n").map((line) => JSON.parse(line)).map((message) => [message.id, message]),
  );
  assert.deepEqual([...answers.keys()].sort(), [1, ...ids].sort(), stdout);
  const message = (id: string) => answers.get(id).error.message as string;
  for (const id of ids) assert.equal(answers.get(id).error.code, -32000, id);
  assert.match(message("null-id"), /the server answered with an error \(-32600\): Invalid Request/);
  assert.match(message("not-json"), /not JSON-RPC \(the text is not JSON\): \{not json/);
  assert.match(message("empty"), /the body is empty/);
  assert.match(message("not-json-rpc"), /not JSON-RPC/);
  assert.match(message("other-id"), /not the answer to this request/);
});

/**
 * An HTTP/1.1 server by hand, one request per connection: initialize is answered, a notification gets
 * 202, and any other request a head that promises 2 MB of body, 300 KB of it, and the connection closed.
 */
function cuttingServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const encoder = new TextEncoder();
  const serve = async (conn: Deno.Conn) => {
    let text = "";
    const buffer = new Uint8Array(65536);
    for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
      text += new TextDecoder().decode(buffer.subarray(0, n));
      const end = text.indexOf("\r\n\r\n");
      const length = Number(/content-length: *(\d+)/i.exec(text)?.[1] ?? 0);
      if (end !== -1 && text.length >= end + 4 + length) break;
    }
    const body = JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4));
    const head = (status: string, length: number) =>
      `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nMcp-Session-Id: s\r\nConnection: close\r\n` +
      `Content-Length: ${length}\r\n\r\n`;
    if (body.id === undefined) await conn.write(encoder.encode(head("202 Accepted", 0)));
    else if (body.method === "initialize") {
      const answer = JSON.stringify({
        jsonrpc: "2.0",
        id: body.id,
        result: { protocolVersion: "2025-11-25" },
      });
      await conn.write(encoder.encode(head("200 OK", answer.length) + answer));
    } else {
      const part = `{"jsonrpc":"2.0","id":${JSON.stringify(body.id)},"result":{"text":"${
        "x".repeat(300_000)
      }`;
      await conn.write(encoder.encode(head("200 OK", 2_000_000) + part));
    }
    conn.close();
  };
  const accepting = (async () => {
    for await (const conn of listener) serve(conn).catch(() => conn.close());
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/mcp`,
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting;
    },
  };
}

Deno.test("an initialize answered with a null result is passed on as it is, as JSON and as an event", async () => {
  for (const events of [false, true]) {
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
      if (request.method !== "POST") return new Response(null, { status: 405 });
      const body = await request.json();
      if (body.id === undefined) return new Response(null, { status: 202 });
      const answer = JSON.stringify({ jsonrpc: "2.0", id: body.id, result: null });
      return events
        ? new Response(`event: message\ndata: ${answer}\n\n`, {
          headers: { "Content-Type": "text/event-stream" },
        })
        : new Response(answer, { headers: { "Content-Type": "application/json" } });
    });
    try {
      const { stdout } = await runClientModeWithInput(
        `http://127.0.0.1:${server.addr.port}/mcp`,
        [INITIALIZE, ping("after")],
        { args: ARGS },
      );
      // Found by QA: the answer to initialize was lost, only the ping's came.
      const lines = stdout.trim().split("\n").map((line) => JSON.parse(line));
      assert.deepEqual(lines.find((line) => line.id === 1), { jsonrpc: "2.0", id: 1, result: null }, stdout);
      assert.ok(lines.some((line) => line.id === "after"), stdout);
    } finally {
      await server.shutdown();
    }
  }
});

Deno.test("an answer that breaks off mid-body gets an error answer", async () => {
  await using server = cuttingServer();
  const { code, stdout, stderr } = await runClientModeWithInput(server.url, [
    INITIALIZE,
    { jsonrpc: "2.0", method: "notifications/initialized" },
    ping("cut"),
  ], { args: ARGS });
  assert.equal(code, 0, stderr);
  const messages = stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
  const answer = messages.find((message) => message.id === "cut");
  assert.equal(answer?.error?.code, -32000, stdout.slice(0, 500));
  assert.match(answer.error.message, /the answer broke off/);
});

Deno.test("messages written just before the end of input reach the server before the session ends", async () => {
  const received: string[] = [];
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    if (request.method === "DELETE") {
      received.push("DELETE");
      return new Response(null, { status: 200 });
    }
    if (request.method !== "POST") return new Response(null, { status: 405 });
    const body = await request.json();
    received.push(String(body.method ?? `answer ${body.id}`));
    if (body.method === "initialize") {
      return Response.json({ jsonrpc: "2.0", id: body.id, result: { protocolVersion: "2025-11-25" } }, {
        headers: { "Mcp-Session-Id": "s" },
      });
    }
    // Slow to take them: without waiting for them, the end of input would cut them off.
    await new Promise((resolve) => setTimeout(resolve, 300));
    return new Response(null, { status: 202 });
  });
  const { code, stderr } = await runClientModeWithInput(`http://127.0.0.1:${server.addr.port}/mcp`, [
    INITIALIZE,
    { jsonrpc: "2.0", method: "notifications/initialized" },
    { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 7, reason: "user" } },
    { jsonrpc: "2.0", id: "server-req-1", result: { roots: [] } },
    { jsonrpc: "2.0", method: "notifications/roots/list_changed" },
  ], { args: ARGS });
  assert.equal(code, 0, stderr);
  assert.doesNotMatch(stderr, /lost/);
  assert.deepEqual(received.slice(0, 2), ["initialize", "notifications/initialized"]);
  assert.deepEqual(
    received.slice(2, 5).sort(),
    ["answer server-req-1", "notifications/cancelled", "notifications/roots/list_changed"],
  );
  assert.equal(received.at(-1), "DELETE");
});

Deno.test("stdin lines that are JSON but no message get -32600 under their id; a batch, an array of them", async () => {
  await using server = misanswering({});
  const { code, stdout, stderr } = await runClientModeWithInput(server.url, [
    INITIALIZE,
    { jsonrpc: "2.0", method: "notifications/initialized" },
    '{"jsonrpc":"2.0","id":4,"method":7}',
    '{"id":"five","method":"ping"}',
    "not json",
    '[{"jsonrpc":"2.0","id":6,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/x"}]',
  ], { args: ARGS });
  assert.equal(code, 0, stderr);
  const lines = stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
  const errors = lines.flat().filter((message) => message.error !== undefined);
  assert.deepEqual(
    errors.map((message) => [message.id, message.error.code]).sort(),
    [[4, -32600], ["five", -32600], [null, -32700], [6, -32600]].sort(),
  );
  const batch = lines.find(Array.isArray);
  assert.deepEqual(
    batch?.map((message: { id: unknown }) => message.id),
    [6],
    "the batch's answer is an array",
  );
});

Deno.test("legacy SSE: a stream that never names its endpoint fails initialize after --connect-timeout", async () => {
  const streams: ReadableStreamDefaultController<Uint8Array>[] = [];
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () =>
      new Response(new ReadableStream({ start: (controller) => void streams.push(controller) }), {
        headers: { "Content-Type": "text/event-stream" },
      }),
  );
  const started = performance.now();
  const { code, stdout, stderr } = await runClientModeWithInput(
    `http://127.0.0.1:${server.addr.port}/sse`,
    [INITIALIZE, "   ", "\t"],
    { args: ["--transport", "sse", "--connect-timeout", "1", "--request-timeout", "5"] },
  );
  for (const stream of streams) {
    try {
      stream.close();
    } catch {
      // Cancelled already: client mode closed its end.
    }
  }
  assert.equal(code, 0, stderr);
  assert.ok(performance.now() - started < 10_000, `took ${performance.now() - started} ms`);
  const answers = stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
  assert.equal(answers.length, 1, `one answer, none for the blank lines: ${stdout}`);
  assert.equal(answers[0].id, 1);
  assert.match(answers[0].error.message, /no endpoint event within 1 s/);
});

Deno.test("a request answered by --request-timeout does not hold the end of input up, though its POST hangs on", async () => {
  const held = Promise.withResolvers<void>();
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    if (request.method !== "POST") {
      return new Response(null, { status: request.method === "DELETE" ? 200 : 405 });
    }
    const body = await request.json();
    if (body.id === undefined) return new Response(null, { status: 202 });
    if (body.method !== "initialize") await held.promise;
    return Response.json({ jsonrpc: "2.0", id: body.id, result: { protocolVersion: "2025-11-25" } }, {
      headers: { "Mcp-Session-Id": "s" },
    });
  });
  // Let go after 15 s, so that a proxy that waits for the POST fails the test rather than hangs it.
  const release = setTimeout(() => held.resolve(), 15_000);
  const started = performance.now();
  try {
    const { code, stdout, stderr } = await runClientModeWithInput(
      `http://127.0.0.1:${server.addr.port}/mcp`,
      [
        INITIALIZE,
        { jsonrpc: "2.0", method: "notifications/initialized" },
        ping("held"),
      ],
      { args: ["--transport", "streamablehttp", "--request-timeout", "1"] },
    );
    assert.equal(code, 0, stderr);
    const answer = stdout.trimEnd().split("\n").map((line) => JSON.parse(line)).find((m) => m.id === "held");
    assert.equal(answer?.error?.code, -32001, stdout);
    assert.ok(performance.now() - started < 10_000, `exited only after ${performance.now() - started} ms`);
  } finally {
    clearTimeout(release);
    held.resolve();
  }
});

Deno.test("legacy SSE: a request the server refuses with 404 goes again on a new session, and is answered once", async () => {
  const streams = new Map<string, ReadableStreamDefaultController<Uint8Array>>();
  const ran: string[] = [];
  const encoder = new TextEncoder();
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const url = new URL(request.url);
    if (request.method === "GET") {
      const session = String(streams.size + 1);
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          streams.set(session, controller);
          controller.enqueue(encoder.encode(`event: endpoint\ndata: /messages?session_id=${session}\n\n`));
        },
      });
      return new Response(body, { headers: { "Content-Type": "text/event-stream" } });
    }
    const session = url.searchParams.get("session_id")!;
    const message = await request.json();
    // The server forgot the first session by the time the client's ping came.
    if (session === "1" && message.method === "ping") return new Response("no such session", { status: 404 });
    if (message.id === undefined) return new Response(null, { status: 202 });
    ran.push(`${message.method} on ${session}`);
    const answer = {
      jsonrpc: "2.0",
      id: message.id,
      result: message.method === "ping" ? {} : INITIALIZE_RESULT,
    };
    streams.get(session)!.enqueue(encoder.encode(`event: message\ndata: ${JSON.stringify(answer)}\n\n`));
    return new Response(null, { status: 202 });
  });
  const { code, stdout, stderr } = await runClientModeWithInput(
    `http://127.0.0.1:${server.addr.port}/sse`,
    [INITIALIZE, { jsonrpc: "2.0", method: "notifications/initialized" }, ping("p")],
    { args: ["--transport", "sse", "--request-timeout", "10"] },
  );
  for (const stream of streams.values()) {
    try {
      stream.close();
    } catch {
      // Cancelled already: client mode closed its end.
    }
  }
  assert.equal(code, 0, stderr);
  const answers = stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
  assert.deepEqual(answers.map((answer) => answer.id), [1, "p"], stdout);
  assert.deepEqual(answers[1].result, {}, stdout);
  assert.deepEqual(ran, ["initialize on 1", "initialize on 2", "ping on 2"]);
});

Deno.test("fetchFailureKind(): how far the request got decides before what the error says", () => {
  const failure = (message: string) => new TypeError("fetch failed", { cause: new Error(message) });
  const closeNotify = failure("peer closed connection without sending TLS close_notify");
  const handshake = failure("client error (Connect): tls handshake eof");
  const refused = failure("Connection refused (os error 111)");
  // Written whole: it may have run (found by QA: a dropped TLS connection read as one never made).
  for (const error of [closeNotify, handshake, refused]) {
    assert.equal(fetchFailureKind(error, "written"), "lost");
  }
  // Not written (or a GET): any network failure may go again, a handshake cut short too (found by review).
  for (const error of [closeNotify, handshake, refused]) {
    assert.equal(fetchFailureKind(error, "unwritten"), "unreachable");
  }
  assert.equal(fetchFailureKind(new Error("not a network failure"), "unwritten"), "lost");
  // A fetch that cannot tell: the error's text, a connection that broke once made counting as arrived.
  assert.equal(fetchFailureKind(closeNotify), "lost");
  assert.equal(fetchFailureKind(handshake), "unreachable");
  assert.equal(fetchFailureKind(refused), "unreachable");
  assert.equal(fetchFailureKind(failure("connection reset by peer")), "lost");
  // The URL the error quotes says nothing (found by review: a path with "handshake" made it "unreachable").
  const quoting = (path: string) =>
    failure(
      `error sending request for url (http://127.0.0.1:1${path}): connection closed before message completed`,
    );
  assert.equal(fetchFailureKind(quoting("/handshake/mcp")), "lost");
  assert.equal(fetchFailureKind(quoting("/dns/tls-tools/mcp")), "lost");
  // As Deno 2.9 writes it: the URL unbracketed, a path with parentheses, its host named after it.
  const deno29 = failure(
    "error sending request from 127.0.0.1:5 for http://handshake.test/a(b)handshake/mcp (handshake.test:80): " +
      "client error (SendRequest): connection closed before message completed",
  );
  assert.equal(fetchFailureKind(deno29), "lost");
});

Deno.test("Retry-After is read as seconds or an HTTP date; anything else is no answer", () => {
  const now = Date.parse("Sun, 06 Nov 1994 08:49:37 GMT");
  assert.equal(retryAfterMs("2", now), 2000);
  assert.equal(retryAfterMs(" 0 ", now), 0);
  assert.equal(retryAfterMs("Sun, 06 Nov 1994 08:49:40 GMT", now), 3000);
  assert.equal(retryAfterMs("Sunday, 06-Nov-94 08:49:39 GMT", now), 2000);
  assert.equal(retryAfterMs("Sat, 05 Nov 1994 08:49:37 GMT", now), 0, "a date past is now");
  for (const value of [null, "", "1.5", "-1", "soon", "Tomorrow"]) {
    assert.equal(retryAfterMs(value, now), undefined, String(value));
  }
  // Waited at least 100 ms, and at most 5 min: a longer wait would overflow setTimeout into none at all.
  const busy = (ms: number | undefined) => new RemoteError("busy", "HTTP 503", 503, ms);
  assert.equal(busyDelay(busy(0), 0), 100);
  assert.equal(busyDelay(busy(2000), 3), 2000);
  assert.equal(busyDelay(busy(99999999 * 1000), 0), 300_000);
  assert.equal(busyDelay(busy(Infinity), 0), 300_000);
  assert.equal(busyDelay(busy(undefined), 1), 500);
});

/**
 * A Streamable HTTP server that answers the first `busy` POSTs (of any message) with `status` and
 * `Retry-After: retryAfter`, then serves; `ran` lists the requests it ran.
 */
function busyServer(busy: number, status: number, retryAfter?: string) {
  const ran: string[] = [];
  let refused = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    if (request.method !== "POST") return new Response(null, { status: 405 });
    const body = await request.json();
    if (refused < busy) {
      refused++;
      const headers: Record<string, string> = retryAfter === undefined ? {} : { "Retry-After": retryAfter };
      return new Response("busy", { status, headers });
    }
    if (body.id === undefined) return new Response(null, { status: 202 });
    ran.push(body.method);
    const result = body.method === "initialize" ? INITIALIZE_RESULT : {};
    return Response.json({ jsonrpc: "2.0", id: body.id, result }, { headers: { "Mcp-Session-Id": "s" } });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/mcp`,
    ran,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

for (const [status, retryAfter] of [[503, "1"], [429, undefined]] as const) {
  Deno.test(`HTTP ${status}${retryAfter ? ` with Retry-After: ${retryAfter}` : ""}: the message goes again, once it may`, async () => {
    await using server = busyServer(2, status, retryAfter);
    const started = performance.now();
    const { code, stdout, stderr } = await runClientModeWithInput(
      server.url,
      [INITIALIZE, { jsonrpc: "2.0", method: "notifications/initialized" }, ping("p")],
      { args: ["--transport", "auto", "--request-timeout", "20"] },
    );
    assert.equal(code, 0, stderr);
    const answers = stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
    assert.deepEqual(
      answers.map((answer) => [answer.id, answer.error]),
      [[1, undefined], ["p", undefined]],
      stdout,
    );
    assert.deepEqual(server.ran, ["initialize", "ping"]);
    assert.match(stderr, new RegExp(`HTTP ${status}: busy; trying again in`));
    // Two refusals, each waited out: 1 s as asked, or the back-off (250 ms, then 500 ms).
    if (retryAfter !== undefined) {
      assert.ok(performance.now() - started >= 2000, "Retry-After was not waited");
    }
  });
}

Deno.test("a Retry-After beyond --connect-timeout: the request gets an error at once, saying so", async () => {
  await using server = busyServer(1, 503, "3600");
  const { code, stdout, stderr } = await runClientModeWithInput(server.url, [INITIALIZE], {
    args: ["--connect-timeout", "5", "--request-timeout", "20"],
  });
  assert.equal(code, 0, stderr);
  const answer = JSON.parse(stdout);
  assert.equal(answer.id, 1);
  assert.match(answer.error.message, /HTTP 503: busy; it asked to wait 3600 s, beyond --connect-timeout/);
  assert.deepEqual(server.ran, []);
});

Deno.test("a server busy for all of --connect-timeout: the request gets an error saying how long it was tried", async () => {
  await using server = busyServer(1000, 503, "1");
  const { code, stdout, stderr } = await runClientModeWithInput(server.url, [INITIALIZE], {
    args: ["--connect-timeout", "2.5", "--request-timeout", "20"],
  });
  assert.equal(code, 0, stderr);
  const answer = JSON.parse(stdout);
  assert.equal(answer.id, 1);
  // Found by QA: "it asked to wait 1 s, beyond --connect-timeout".
  assert.match(
    answer.error.message,
    /HTTP 503: busy; still so after \d+ s \(--connect-timeout\)$/,
  );
  assert.deepEqual(server.ran, []);
});

Deno.test("legacy SSE: an event stream refused for now (503) is asked for again", async () => {
  let refused = 0;
  const streams: ReadableStreamDefaultController<Uint8Array>[] = [];
  const encoder = new TextEncoder();
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    if (request.method === "GET") {
      if (refused++ === 0) return new Response("starting", { status: 503, headers: { "Retry-After": "0" } });
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          streams.push(controller);
          controller.enqueue(encoder.encode("event: endpoint\ndata: /messages\n\n"));
        },
      });
      return new Response(body, { headers: { "Content-Type": "text/event-stream" } });
    }
    const message = await request.json();
    if (message.id !== undefined) {
      const answer = { jsonrpc: "2.0", id: message.id, result: INITIALIZE_RESULT };
      streams[0].enqueue(encoder.encode(`event: message\ndata: ${JSON.stringify(answer)}\n\n`));
    }
    return new Response(null, { status: 202 });
  });
  const { code, stdout, stderr } = await runClientModeWithInput(
    `http://127.0.0.1:${server.addr.port}/sse`,
    [INITIALIZE],
    { args: ["--transport", "sse", "--request-timeout", "10"] },
  );
  for (const stream of streams) {
    try {
      stream.close();
    } catch {
      // Cancelled already: client mode closed its end.
    }
  }
  assert.equal(code, 0, stderr);
  assert.deepEqual(JSON.parse(stdout).result, INITIALIZE_RESULT, stdout);
  assert.equal(refused, 2);
});
