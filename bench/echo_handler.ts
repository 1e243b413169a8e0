/**
 * What the benchmark's echo servers answer, shared by the stdio one and the HTTP one: `initialize`,
 * `ping`, `tools/list`, and `tools/call` of `echo` (its `text` back) and `blob` (`bytes` characters of a
 * fixed pattern, for the large-answer cases). Notifications get no answer.
 *
 * It imports nothing, so that an echo server starts as fast as Deno can start.
 *
 * @module
 */

/** The protocol version the benchmark's clients ask for. */
export const PROTOCOL_VERSION = "2025-11-25";

const PATTERN = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_";
const blobs = new Map<number, string>();

/** The text `blob` answers for `bytes`: the pattern repeated, cut to `bytes` characters (ASCII). */
export function blobText(bytes: number): string {
  let text = blobs.get(bytes);
  if (text === undefined) {
    text = PATTERN.repeat(Math.ceil(bytes / PATTERN.length)).slice(0, bytes);
    blobs.set(bytes, text);
  }
  return text;
}

const TOOLS = [
  {
    name: "echo",
    description: "Returns its text",
    inputSchema: { type: "object", properties: { text: { type: "string" } }, required: ["text"] },
  },
  {
    name: "blob",
    description: "Returns a text of `bytes` characters",
    inputSchema: { type: "object", properties: { bytes: { type: "number" } }, required: ["bytes"] },
  },
];

type Message = Record<string, unknown>;

/** How answers are written: the id first, as the Python SDK does, or last, as the TypeScript SDK does. */
export const answerShape = { idLast: false };

function result(id: unknown, value: unknown): Message {
  return answerShape.idLast ? { result: value, jsonrpc: "2.0", id } : { jsonrpc: "2.0", id, result: value };
}

function error(id: unknown, code: number, message: string): Message {
  return { jsonrpc: "2.0", id, error: { code, message } };
}

function callTool(id: unknown, params: Message): Message {
  const args = (params.arguments ?? {}) as Message;
  if (params.name === "echo" && typeof args.text === "string") {
    return result(id, { content: [{ type: "text", text: args.text }] });
  }
  if (params.name === "blob" && typeof args.bytes === "number" && args.bytes >= 0) {
    return result(id, { content: [{ type: "text", text: blobText(args.bytes) }] });
  }
  return error(id, -32602, `unknown tool or bad arguments: ${JSON.stringify(params.name)}`);
}

/** The answer to one JSON-RPC message, or undefined for a notification or an answer. */
export function answerMessage(message: unknown): Message | undefined {
  if (typeof message !== "object" || message === null || Array.isArray(message)) {
    return error(null, -32600, "Invalid Request: expected one JSON-RPC message");
  }
  const { id, method } = message as Message;
  if (id === undefined || typeof method !== "string") return undefined;
  const params = ((message as Message).params ?? {}) as Message;
  switch (method) {
    case "initialize":
      return result(id, {
        protocolVersion: typeof params.protocolVersion === "string"
          ? params.protocolVersion
          : PROTOCOL_VERSION,
        capabilities: { tools: {} },
        serverInfo: { name: "bench-echo", version: "1.0.0" },
      });
    case "ping":
      return result(id, {});
    case "tools/list":
      return result(id, { tools: TOOLS });
    case "tools/call":
      return callTool(id, params);
  }
  return error(id, -32601, `Method not found: ${method}`);
}
