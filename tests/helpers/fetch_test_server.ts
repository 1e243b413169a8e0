/**
 * The HTTP(S) server the `fetch` tests (`tls_fetch_test.ts`, `http1_fetch_test.ts`) send their requests
 * to, on 127.0.0.1 with the certificate of `tests/fixtures/tls/` (or plain HTTP).
 *
 * @module
 */

import assert from "node:assert/strict";
import type { ExchangeStop, WrittenNotice } from "../../src/client/http1_fetch.ts";
import { decodeEventStream } from "../../src/client/server_sent_events.ts";
import { settlesWithin } from "./proxy_process.ts";

const FIXTURES = new URL("../fixtures/tls/", import.meta.url);
const cert = Deno.readTextFileSync(new URL("cert.pem", FIXTURES));
const key = Deno.readTextFileSync(new URL("key.pem", FIXTURES));
const encoder = new TextEncoder();

/** What the test server saw. */
export interface ServerState {
  /** Resolves when the client cancels the `/events` stream (its connection closed). */
  eventsCancelled: Promise<void>;
  /** The client port of every connection that carried a request. */
  ports: Set<number>;
}

/** The test server's routes; `/slow` answers only once `released` resolves. */
function handler(state: { onEventsCancelled: () => void; released: Promise<void>; ports: Set<number> }) {
  return async (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): Promise<Response> => {
    state.ports.add(info.remoteAddr.port);
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/echo":
        return Response.json({
          method: request.method,
          path: url.pathname + url.search,
          headers: Object.fromEntries(request.headers),
          body: await request.text(),
        });
      case "/big":
        return new Response("x".repeat(Number(url.searchParams.get("bytes"))));
      case "/accepted":
        return new Response(null, { status: 202 });
      case "/nothing":
        return new Response(null, { status: 204 });
      case "/multi": {
        const headers = new Headers({ "x-multi": "a" });
        headers.append("x-multi", "b");
        return new Response("ok", { headers });
      }
      case "/redirect":
        return new Response(null, {
          status: Number(url.searchParams.get("status")),
          headers: { location: url.searchParams.get("to") ?? "echo" },
        });
      case "/loop":
        return new Response(null, { status: 302, headers: { location: "/loop" } });
      case "/slow":
        await state.released;
        return new Response("too late");
      case "/events": {
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(encoder.encode("id: 1\ndata: \n\n"));
            controller.enqueue(encoder.encode('event: message\ndata: {"first":true}\n\n'));
          },
          cancel: () => state.onEventsCancelled(),
        });
        return new Response(body, { headers: { "content-type": "text/event-stream" } });
      }
      default:
        return new Response("not found", { status: 404 });
    }
  };
}

/**
 * Runs `test` against an HTTPS server on 127.0.0.1 (or plain HTTP), shutting it down afterwards.
 *
 * @example
 * ```ts
 * await withServer(async (origin) => {
 *   const response = await fetch(`${origin}/echo`, { method: "POST", body: "x" });
 * }, { secure: false });
 * ```
 */
export async function withServer(
  test: (origin: string, state: ServerState) => Promise<void>,
  { secure = true } = {},
): Promise<void> {
  const cancelled = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  const ports = new Set<number>();
  const tls = secure ? { cert, key } : {};
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, ...tls, onListen() {} },
    handler({ onEventsCancelled: cancelled.resolve, released: release.promise, ports }),
  );
  try {
    await test(`${secure ? "https" : "http"}://127.0.0.1:${server.addr.port}`, {
      eventsCancelled: cancelled.promise,
      ports,
    });
  } finally {
    release.resolve();
    await server.shutdown();
  }
}

// ---- what every fetch of client mode must do, checked against this server -----------------------------

/** An event stream arrives as it is sent; cancelling it closes the connection. */
export async function checkEventStream(fetch: typeof globalThis.fetch, origin: string, server: ServerState) {
  const response = await fetch(`${origin}/events`, { headers: { accept: "text/event-stream" } });
  assert.equal(response.headers.get("content-type"), "text/event-stream");
  const events = decodeEventStream(response.body!).getReader();
  assert.deepEqual((await events.read()).value, { event: "message", data: "", id: "1" });
  assert.deepEqual((await events.read()).value, { event: "message", data: '{"first":true}' });
  await events.cancel();
  await server.eventsCancelled;
}

/** An abort while the body streams errors the body with an AbortError and closes the connection. */
export async function checkAbortWhileStreaming(
  fetch: typeof globalThis.fetch,
  origin: string,
  server: ServerState,
) {
  const controller = new AbortController();
  const response = await fetch(`${origin}/events`, { signal: controller.signal });
  const reader = response.body!.getReader();
  assert.equal((await reader.read()).done, false);
  controller.abort();
  await assert.rejects(
    reader.read(),
    (error) => error instanceof DOMException && error.name === "AbortError",
  );
  await server.eventsCancelled;
}

/**
 * A stop (`init.stop`, see `ExchangeStop`) while the body streams errors the body with an AbortError and
 * closes the connection; a stop stopped already fails the request.
 */
export async function checkStopWhileStreaming(
  fetch: typeof globalThis.fetch,
  origin: string,
  server: ServerState,
) {
  const stop: ExchangeStop = { stopped: false };
  const response = await fetch(`${origin}/events`, { stop } as RequestInit & WrittenNotice);
  const reader = response.body!.getReader();
  assert.equal((await reader.read()).done, false);
  stop.stopped = true;
  stop.onstop?.();
  const read = reader.read();
  assert.ok(await settlesWithin(read.catch(() => {}), 5000), "the body still streams");
  await assert.rejects(read, (error) => error instanceof DOMException && error.name === "AbortError");
  await server.eventsCancelled;
  await assert.rejects(
    fetch(`${origin}/echo`, { stop: { stopped: true } } as RequestInit & WrittenNotice),
    (error) => error instanceof DOMException && error.name === "AbortError",
  );
}

/** An abort before or while the request waits for its answer rejects with the signal's reason. */
export async function checkAbortBeforeAnswer(fetch: typeof globalThis.fetch, origin: string) {
  const reason = new Error("stop");
  await assert.rejects(
    fetch(`${origin}/echo`, { signal: AbortSignal.abort(reason) }),
    (error) => error === reason,
  );
  const controller = new AbortController();
  const pending = fetch(`${origin}/slow`, { signal: controller.signal });
  setTimeout(() => controller.abort(), 50);
  await assert.rejects(pending, (error) => error instanceof DOMException && error.name === "AbortError");
}
