/**
 * `StreamableHttpClient` against stand-in servers: how requests of revision 2026-07-28 (those given headers
 * of their own) end when the session closes, and how a request of an earlier revision is let go once it
 * was cancelled.
 */

import assert from "node:assert/strict";
import { StreamableHttpClient } from "../src/client/streamable_http_client.ts";
import { RemoteError } from "../src/client/remote_transport.ts";
import { createHttp1Fetch } from "../src/client/http1_fetch.ts";
import { settlesWithin } from "./helpers/proxy_process.ts";

/** A server whose POSTs `answer` as an SSE stream; `cancelled` resolves when a client closes one. */
function standIn(answer: (id: unknown) => ReadableStream<Uint8Array> | string) {
  const { promise: cancelled, resolve } = Promise.withResolvers<void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    if (request.method !== "POST") {
      return new Response(null, { status: request.method === "DELETE" ? 200 : 405 });
    }
    const body = await request.json();
    const stream = answer(body.id);
    if (typeof stream !== "string") {
      const reader = stream.getReader();
      const passed = new ReadableStream<Uint8Array>({
        pull: async (controller) => {
          const { done, value } = await reader.read();
          if (done) controller.close();
          else controller.enqueue(value);
        },
        cancel: () => {
          reader.cancel();
          resolve();
        },
      });
      return new Response(passed, { headers: { "Content-Type": "text/event-stream" } });
    }
    return new Response(stream, { headers: { "Content-Type": "text/event-stream" } });
  });
  const client = new StreamableHttpClient({
    url: new URL(`http://127.0.0.1:${server.addr.port}/mcp`),
    fetch,
    resumeWindowMs: 10_000,
    requestHeaders: () => ({ "MCP-Protocol-Version": "2026-07-28" }),
  });
  return { server, client, cancelled };
}

const CALL = { jsonrpc: "2.0" as const, id: 1, method: "tools/call", params: {} };

Deno.test("StreamableHttpClient: a session closed while a 2026-07-28 answer stream waits to be resumed fails the request", async () => {
  // An event id and no answer: the client waits `retry` (3 s) to resume.
  const { server, client } = standIn(() => `id: e1\nretry: 3000\ndata: \n\n`);
  try {
    const sent = client.send(CALL);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await client.close(true);
    await assert.rejects(sent, (error) => error instanceof RemoteError && error.kind === "lost");
  } finally {
    await server.shutdown();
  }
});

Deno.test("StreamableHttpClient: a session closed ends a 2026-07-28 answer stream the server keeps open after the answer", async () => {
  let keepOpen: ReturnType<typeof setInterval> | undefined;
  let stream: ReadableStreamDefaultController<Uint8Array> | undefined;
  const { server, client, cancelled } = standIn((id) =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        stream = controller;
        const answer = JSON.stringify({ jsonrpc: "2.0", id, result: {} });
        controller.enqueue(new TextEncoder().encode(`id: e1\nevent: message\ndata: ${answer}\n\n`));
        keepOpen = setInterval(() => controller.enqueue(new TextEncoder().encode(": still here\n\n")), 100);
      },
      cancel() {
        clearInterval(keepOpen);
      },
    })
  );
  try {
    const answers: unknown[] = [];
    client.onmessage = (message) => answers.push(message);
    const sent = client.send(CALL);
    while (answers.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    await client.close(true);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ended = await Promise.race([
      sent.then(() => "ended", () => "ended"),
      new Promise((resolve) => timer = setTimeout(() => resolve("still open"), 2000)),
    ]);
    clearTimeout(timer);
    assert.equal(ended, "ended");
    await cancelled;
  } finally {
    clearInterval(keepOpen);
    try {
      stream?.close(); // Whatever the client did: the test does not hang on it.
    } catch {
      // Closed by the client.
    }
    await server.shutdown();
  }
});

/**
 * A server that holds the POST of every `tools/call` (as a JSON answer to come, or with `stream` an SSE
 * stream of keep-alives) until the client closes it, and answers any other request at once. With
 * `redirect`, a `tools/call` is held only once sent again to the URL of a 307.
 */
function holdingServer(stream: boolean, redirect: boolean) {
  const closed: unknown[] = [];
  const keepAlives = new Set<ReturnType<typeof setInterval>>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    if (request.method !== "POST") return new Response(null, { status: 405 });
    const body = await request.json();
    if (body.method !== "tools/call") {
      return Response.json({ jsonrpc: "2.0", id: body.id, result: { answered: body.id } });
    }
    if (redirect && new URL(request.url).pathname === "/mcp") {
      return new Response(null, { status: 307, headers: { Location: "/held" } });
    }
    if (!stream) {
      await new Promise((resolve) => request.signal.addEventListener("abort", resolve));
      closed.push(body.id);
      return new Response(null, { status: 500 });
    }
    let timer: ReturnType<typeof setInterval>;
    const events = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(": held\n\n"));
        timer = setInterval(() => controller.enqueue(new TextEncoder().encode(": still\n\n")), 50);
        keepAlives.add(timer);
      },
      cancel() {
        clearInterval(timer);
        keepAlives.delete(timer);
        closed.push(body.id);
      },
    });
    return new Response(events, { headers: { "Content-Type": "text/event-stream" } });
  });
  const http1 = createHttp1Fetch({ fallback: fetch });
  const client = new StreamableHttpClient({
    url: new URL(`http://127.0.0.1:${server.addr.port}/mcp`),
    fetch: http1.fetch,
    resumeWindowMs: 10_000,
  });
  const stop = async () => {
    await client.close(true);
    http1.close();
    for (const timer of keepAlives) clearInterval(timer);
    await server.shutdown();
  };
  return { client, closed, stop };
}

for (const [stream, redirect] of [[false, false], [true, false], [false, true], [true, true]]) {
  Deno.test(
    `StreamableHttpClient: a request let go after its cancellation has its ${
      stream ? "SSE stream" : "POST"
    } ${redirect ? "(sent by the fallback after a redirect) " : ""}closed, and no other of its id`,
    async () => {
      const { client, closed, stop } = holdingServer(stream, redirect);
      try {
        const answers: unknown[] = [];
        client.onmessage = (message) => answers.push(message);
        const held = client.send({ jsonrpc: "2.0", id: 7, method: "tools/call", params: {} });
        await new Promise((resolve) => setTimeout(resolve, 100));
        const notified = Promise.withResolvers<void>();
        client.letGo(7, notified.promise);
        // The client's next request of the same id, sent before the cancellation is out, is another.
        await client.send({ jsonrpc: "2.0", id: 7, method: "tools/list", params: {} });
        assert.deepEqual(answers, [{ jsonrpc: "2.0", id: 7, result: { answered: 7 } }]);
        await new Promise((resolve) => setTimeout(resolve, 100));
        assert.deepEqual(closed, [], "nothing is closed before the cancellation is out");
        notified.resolve();
        // Quietly: it was let go.
        assert.ok(await settlesWithin(held, 2000), "the request was still waiting");
        for (let waited = 0; closed.length === 0 && waited < 2000; waited += 20) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        // Found by QA: each cancelled request kept its connection for the rest of the session.
        assert.deepEqual(closed, [7]);
      } finally {
        await stop();
      }
    },
  );
}

Deno.test("StreamableHttpClient: a failure of its own while it reads an answer stream is warned of, not taken for a break", async () => {
  const { server, client: _unused } = standIn((id) => `data: {"jsonrpc":"2.0","id":${id},"result":{}}\n\n`);
  const warnings: string[] = [];
  const client = new StreamableHttpClient({
    url: new URL(`http://127.0.0.1:${server.addr.port}/mcp`),
    fetch,
    resumeWindowMs: 10_000,
    onwarning: (text) => warnings.push(text),
  });
  const thrown = [new RangeError("offset is out of bounds"), new TypeError("x is not a function")];
  client.onmessage = () => {
    throw thrown.shift();
  };
  try {
    await assert.rejects(client.send(CALL), RemoteError);
    // Found by QA: events the parser failed on were lost with nothing logged.
    assert.deepEqual(warnings, [
      "reading the server's event stream failed: RangeError: offset is out of bounds",
    ]);
    // A TypeError of its own too, which a broken stream's failure also is (found by review).
    await assert.rejects(client.send({ ...CALL, id: 2 }), RemoteError);
    assert.equal(warnings[1], "reading the server's event stream failed: TypeError: x is not a function");
  } finally {
    await client.close(true);
    await server.shutdown();
  }
});
