/**
 * The server-mode half of `bench/floor.ts`: the least an HTTP → stdio relay can do, on both of mcp-proxy's
 * transports. Each request's id is swapped for one of the relay's own (the sessions share one child, and
 * their ids collide), its text written to the child's stdin; the child's answer, its id swapped back, goes
 * to the session that asked:
 *
 * - `POST /mcp`: a request is answered with its answer line as a JSON body; a POST without an id, 202;
 * - `GET /sse`: a stream whose first event names `/messages/?session_id=N`; a POST there is answered 202,
 *   and its answer is sent on the stream as a `message` event.
 *
 * No checks, no routing beyond that, no sessions on `/mcp`: a measuring stick, not a relay to use. It
 * serves only the benchmark's clients (`bench/mcp_channels.ts`), whose ids are numbers written `"id":N`.
 *
 * Run: `deno run -A bench/minimal_server_relay.ts PORT COMMAND [ARGS…]`.
 *
 * @module
 */

const [port, command, ...args] = Deno.args;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const child = new Deno.Command(command, { args, stdin: "piped", stdout: "piped" }).spawn();
const writer = child.stdin.getWriter();
/** The relay's id of each request under way → its own id and where its answer goes. */
const waiting = new Map<number, { id: unknown; deliver: (line: string) => void }>();
let lastId = 0;
const streams = new Map<string, ReadableStreamDefaultController<Uint8Array>>();
let lastStream = 0;

/** `text` with its first `"id":` member, whose value is `id`, set to `newId`. */
function withId(text: string, id: unknown, newId: unknown): string {
  const member = `"id":${JSON.stringify(id)}`;
  const at = text.indexOf(member);
  return text.slice(0, at) + `"id":${JSON.stringify(newId)}` + text.slice(at + member.length);
}

/** Writes the message `text` to the child; a request's answer goes to `deliver`. */
function relay(text: string, deliver: (line: string) => void): boolean {
  const { id } = JSON.parse(text);
  if (id === undefined) {
    writer.write(encoder.encode(text + "\n"));
    return false;
  }
  waiting.set(++lastId, { id, deliver });
  writer.write(encoder.encode(withId(text, id, lastId) + "\n"));
  return true;
}

(async () => {
  // Only the new text is searched for a newline: a long line costs time in proportion to its length.
  let buffer = "";
  for await (const chunk of child.stdout) {
    let from = buffer.length;
    buffer += decoder.decode(chunk, { stream: true });
    for (let newline = buffer.indexOf("\n", from); newline !== -1; newline = buffer.indexOf("\n")) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      from = 0;
      if (line === "") continue;
      const id = JSON.parse(line).id;
      const request = waiting.get(id);
      if (request === undefined) continue;
      waiting.delete(id);
      request.deliver(withId(line, id, request.id));
    }
  }
})();

function openStream(): Response {
  const session = `${++lastStream}`;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      streams.set(session, controller);
      controller.enqueue(encoder.encode(`event: endpoint\ndata: /messages/?session_id=${session}\n\n`));
    },
    cancel() {
      streams.delete(session);
    },
  });
  return new Response(body, { headers: { "Content-Type": "text/event-stream" } });
}

async function postMessage(request: Request, session: string): Promise<Response> {
  const stream = streams.get(session);
  if (stream === undefined) return new Response(null, { status: 404 });
  relay(await request.text(), (line) => stream.enqueue(encoder.encode(`event: message\ndata: ${line}\n\n`)));
  return new Response("Accepted", { status: 202 });
}

async function postMcp(request: Request): Promise<Response> {
  let deliver!: (line: string) => void;
  const answer = new Promise<string>((resolve) => deliver = resolve);
  if (!relay(await request.text(), deliver)) return new Response(null, { status: 202 });
  return new Response(await answer, {
    headers: { "Content-Type": "application/json", "Mcp-Session-Id": "floor" },
  });
}

Deno.serve({ hostname: "127.0.0.1", port: Number(port), onListen() {} }, (request) => {
  // The path and query as written, without a URL parser: "http://host:port" ends before the third "/".
  const target = request.url.slice(request.url.indexOf("/", "http://".length));
  if (request.method === "GET" && target === "/sse") return openStream();
  if (request.method === "POST" && target.startsWith("/messages/?session_id=")) {
    return postMessage(request, target.slice("/messages/?session_id=".length));
  }
  if (request.method === "POST") return postMcp(request);
  return new Response(null, { status: 200 });
});

// Ends by returning from the module, not by the signal's default, so that `--cpu-prof` writes its profile.
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
