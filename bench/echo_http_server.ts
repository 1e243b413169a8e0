/**
 * The benchmark's Streamable HTTP MCP server, the remote end of client mode and its baseline: `POST /mcp`
 * answers requests with `application/json` (as {@link answerMessage} says), or with `--event-stream` as an
 * SSE stream of one event per answer (as servers built on the TypeScript SDK do by default), and
 * notifications with 202;
 * `initialize` opens a session whose id comes back in `Mcp-Session-Id`, which later POSTs must send;
 * `GET /mcp` answers 405 (no stream of its own messages); `DELETE /mcp` ends the session.
 *
 * Run: `deno run --allow-net bench/echo_http_server.ts [--port PORT] [--event-stream]`. Once it listens, it writes one line
 * to stdout: `listening http://127.0.0.1:PORT/mcp`.
 *
 * @module
 */

import { answerMessage } from "./echo_handler.ts";

const JSON_HEADERS = { "Content-Type": "application/json" };
const EVENT_STREAM = Deno.args.includes("--event-stream");
const sessions = new Set<string>();

function jsonRpcError(status: number, code: number, message: string): Response {
  return new Response(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code, message } }), {
    status,
    headers: JSON_HEADERS,
  });
}

async function handlePost(request: Request): Promise<Response> {
  let body: unknown;
  try {
    body = JSON.parse(await request.text());
  } catch {
    return jsonRpcError(400, -32700, "Parse error");
  }
  const messages = Array.isArray(body) ? body : [body];
  const opensSession = messages.some((message) => message?.method === "initialize");
  const sessionId = request.headers.get("mcp-session-id");
  const headers: Record<string, string> = { ...JSON_HEADERS };
  if (opensSession) {
    const id = crypto.randomUUID();
    sessions.add(id);
    headers["Mcp-Session-Id"] = id;
  } else if (sessionId === null) {
    return jsonRpcError(400, -32000, "Bad Request: Mcp-Session-Id header is required");
  } else if (!sessions.has(sessionId)) {
    return jsonRpcError(404, -32001, "Session not found");
  }
  const answers = messages.map(answerMessage).filter((answer) => answer !== undefined);
  if (answers.length === 0) return new Response(null, { status: 202 });
  if (EVENT_STREAM) {
    const events = answers.map((answer) => `event: message\ndata: ${JSON.stringify(answer)}\n\n`).join("");
    return new Response(events, { headers: { ...headers, "Content-Type": "text/event-stream" } });
  }
  return new Response(JSON.stringify(Array.isArray(body) ? answers : answers[0]), { headers });
}

function handle(request: Request): Response | Promise<Response> {
  if (new URL(request.url).pathname !== "/mcp") return new Response("Not Found", { status: 404 });
  switch (request.method) {
    case "POST":
      return handlePost(request);
    case "DELETE": {
      const id = request.headers.get("mcp-session-id");
      if (id === null || !sessions.delete(id)) return jsonRpcError(404, -32001, "Session not found");
      return new Response(null, { status: 200 });
    }
  }
  return new Response("Method Not Allowed", { status: 405, headers: { Allow: "POST, DELETE" } });
}

const portIndex = Deno.args.indexOf("--port");
const port = portIndex === -1 ? 0 : Number(Deno.args[portIndex + 1]);
Deno.serve({
  hostname: "127.0.0.1",
  port,
  onListen: ({ port }) => {
    Deno.stdout.writeSync(new TextEncoder().encode(`listening http://127.0.0.1:${port}/mcp\n`));
  },
}, handle);
