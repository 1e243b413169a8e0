/**
 * The HTTP headers a request of MCP revision 2026-07-28 (the stateless one) carries over Streamable HTTP,
 * made from the request itself: a stdio client has no headers to give, and a server of that revision
 * refuses a request without them (HTTP 400, `-32020`). A request belongs to that revision when its
 * `params._meta` names a protocol version (`io.modelcontextprotocol/protocolVersion`); others get none of
 * these headers, as before.
 *
 * - `MCP-Protocol-Version`: the version the request names.
 * - `Mcp-Method`: its method.
 * - `Mcp-Name`: for `tools/call` and `prompts/get` its `params.name`, for `resources/read` its
 *   `params.uri`, for `tasks/get`, `tasks/update` and `tasks/cancel` its `params.taskId`.
 * - `Mcp-Param-{Header}`: for `tools/call`, each argument whose property in the tool's input schema says
 *   `"x-mcp-header": "Header"`, as the `tools/list` answers relayed so far declared it.
 *
 * A value that is not plain printable ASCII (or has spaces at either end, or is empty) is sent as
 * `=?base64?{UTF-8 in Base64}?=`, as the revision says.
 *
 * Client mode makes these headers ({@link modernHeaders}); server mode, where they reach mcp-proxy and not
 * the stdio server, checks that they agree with the body ({@link headerMismatch}).
 *
 * @module
 */

import type { JsonRpcMessage } from "./jsonrpc.ts";
import { VERSION } from "./version.ts";

/** Where a request of revision 2026-07-28 names its protocol version, in `params._meta`. */
export const PROTOCOL_VERSION_META_KEY = "io.modelcontextprotocol/protocolVersion";

/** The first revision of the stateless era; later ones sort after it (they are dates). */
export const FIRST_MODERN_PROTOCOL_VERSION = "2026-07-28";

/** Whether `version` names a revision of the stateless era: a date, 2026-07-28 or later. */
export function isModernVersion(version: string): boolean {
  return version >= FIRST_MODERN_PROTOCOL_VERSION && /^\d{4}-\d{2}-\d{2}$/.test(version);
}

/** The `_meta` envelope of mcp-proxy's own requests of revision `version` (to a server mode child). */
export function ownEnvelope(version: string): Record<string, unknown> {
  return {
    [PROTOCOL_VERSION_META_KEY]: version,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": { name: "mcp-proxy", version: VERSION },
  };
}

/** The member of `params` whose value `Mcp-Name` carries, by method. */
const NAME_SOURCES: Readonly<Record<string, string>> = {
  "tools/call": "name",
  "prompts/get": "name",
  "resources/read": "uri",
  "tasks/get": "taskId",
  "tasks/update": "taskId",
  "tasks/cancel": "taskId",
};

const SENTINEL_START = "=?base64?";
const SENTINEL_END = "?=";
/** An HTTP token (RFC 9110 §5.6.2): what an `x-mcp-header` name must be. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Property types an `x-mcp-header` may annotate (`number` is refused by the revision, but still checked by servers). */
const HEADER_TYPES = new Set(["string", "integer", "boolean", "number"]);
/** Tools whose declarations are kept; past that, the oldest learned go first. */
const MAX_TOOLS = 4096;
/** Schemas nested deeper than this are not searched: the tool gets no declarations (found by review). */
const MAX_DEPTH = 64;
/**
 * Keywords whose subschemas are out of reach of `properties` (an `x-mcp-header` in them makes the tool's
 * declarations invalid), as the SDK lists them; the values of the map-valued ones are subschemas.
 */
const UNREACHABLE_KEYWORDS = [
  "items",
  "prefixItems",
  "contains",
  "additionalProperties",
  "unevaluatedProperties",
  "unevaluatedItems",
  "propertyNames",
  "patternProperties",
  "dependentSchemas",
  "oneOf",
  "anyOf",
  "allOf",
  "not",
  "if",
  "then",
  "else",
  "$defs",
  "definitions",
];
const MAP_KEYWORDS = new Set(["patternProperties", "dependentSchemas", "$defs", "definitions"]);

/** One argument a tool wants mirrored into a header: where it is in `arguments`, and the header's name. */
export interface HeaderDeclaration {
  path: readonly string[];
  header: string;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The protocol version a request names in its `params._meta`, if any (only requests carry one). */
export function envelopeVersion(message: JsonRpcMessage): string | undefined {
  if (!("method" in message) || !("id" in message)) return undefined;
  const meta = (message.params as { _meta?: unknown } | undefined)?._meta;
  if (!isObject(meta)) return undefined;
  const version = meta[PROTOCOL_VERSION_META_KEY];
  return typeof version === "string" ? version : undefined;
}

/** `text` as a header value: as it is when it is plain printable ASCII, else in the Base64 sentinel. */
export function headerValue(text: string): string {
  let plain = text.length > 0 && text.trim() === text &&
    !(text.startsWith(SENTINEL_START) && text.endsWith(SENTINEL_END));
  for (let i = 0; plain && i < text.length; i++) {
    const code = text.charCodeAt(i);
    plain = code === 9 || (code >= 32 && code <= 126);
  }
  if (plain) return text;
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return `${SENTINEL_START}${btoa(binary)}${SENTINEL_END}`;
}

/**
 * The text a header value stands for: a Base64 sentinel decoded (undefined when it is no valid Base64 of
 * UTF-8), any other value as it is.
 */
export function decodedHeaderValue(value: string): string | undefined {
  if (!(value.startsWith(SENTINEL_START) && value.endsWith(SENTINEL_END))) return value;
  const encoded = value.slice(SENTINEL_START.length, value.length - SENTINEL_END.length);
  try {
    const binary = atob(encoded);
    const bytes = Uint8Array.from(binary, (char) => char.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * The `x-mcp-header` declarations of a tool's input schema: on properties reached through `properties`
 * only, from the top. One under a keyword out of that reach (`items`, `anyOf`, `$defs`, …), a name that is
 * no HTTP token, a type that is not a primitive, a name given twice (in any case), or a schema nested over
 * {@link MAX_DEPTH} deep makes the tool's declarations invalid: undefined.
 */
export function headerDeclarations(inputSchema: unknown): HeaderDeclaration[] | undefined {
  const declarations: HeaderDeclaration[] = [];
  const names = new Set<string>();
  let valid = true;
  const visit = (schema: unknown, path: string[], reachable: boolean, depth: number) => {
    if (!valid || !isObject(schema)) return;
    if (depth > MAX_DEPTH) {
      valid = false;
      return;
    }
    if ("x-mcp-header" in schema) {
      const header = schema["x-mcp-header"];
      if (
        !reachable || path.length === 0 || typeof header !== "string" || !TOKEN.test(header) ||
        typeof schema.type !== "string" || !HEADER_TYPES.has(schema.type) || names.has(header.toLowerCase())
      ) {
        valid = false;
        return;
      }
      names.add(header.toLowerCase());
      declarations.push({ path, header });
    }
    if (isObject(schema.properties)) {
      for (const [name, property] of Object.entries(schema.properties)) {
        visit(property, [...path, name], reachable, depth + 1);
      }
    }
    for (const keyword of UNREACHABLE_KEYWORDS) {
      const sub = schema[keyword];
      const branches = Array.isArray(sub)
        ? sub
        : MAP_KEYWORDS.has(keyword) && isObject(sub)
        ? Object.values(sub)
        : [sub];
      for (const branch of branches) visit(branch, path, false, depth + 1);
    }
  };
  visit(inputSchema, [], true, 0);
  return valid ? declarations : undefined;
}

/** An argument's value as a header's text: strings, booleans and safe finite numbers; others have none. */
function argumentText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value !== "number" || !Number.isFinite(value)) return undefined;
  if (Number.isInteger(value) && !Number.isSafeInteger(value)) return undefined;
  return String(value);
}

/** The `x-mcp-header` declarations of the tools the server listed, learned from its `tools/list` answers. */
export class ToolHeaderDeclarations {
  readonly #byTool = new Map<string, HeaderDeclaration[]>();

  /** Learns from the result of a `tools/list` (one page of it): each tool's declarations replace its old ones. */
  learn(result: unknown): void {
    const tools = isObject(result) ? result.tools : undefined;
    if (!Array.isArray(tools)) return;
    for (const tool of tools) {
      if (!isObject(tool) || typeof tool.name !== "string") continue;
      // Tools that declare none are kept too (as knowing so): a refusal of their call is the server's word.
      const declarations = headerDeclarations(tool.inputSchema) ?? [];
      this.#byTool.delete(tool.name);
      if (this.#byTool.size >= MAX_TOOLS) this.#byTool.delete(this.#byTool.keys().next().value!);
      this.#byTool.set(tool.name, declarations);
    }
  }

  /** Whether `tool` was listed (with `x-mcp-header`s or none). */
  knows(tool: string): boolean {
    return this.#byTool.has(tool);
  }

  /** Whether `tool` is known to declare `x-mcp-header`s. */
  declares(tool: string): boolean {
    return (this.#byTool.get(tool)?.length ?? 0) > 0;
  }

  /**
   * How the `Mcp-Param-…` headers of a call of `tool` with `args` disagree with them, or undefined when they
   * agree (or the tool declared none, as far as is known): each declared argument that has a value needs
   * its header, which must decode to that value (a number: to the same number).
   */
  paramMismatch(tool: string, args: unknown, headers: Headers): string | undefined {
    const declarations = this.#byTool.get(tool);
    if (declarations === undefined) return undefined;
    for (const { path, header } of declarations) {
      let value: unknown = args;
      for (const key of path) value = isObject(value) ? value[key] : undefined;
      const text = argumentText(value);
      if (text === undefined) continue;
      const name = `Mcp-Param-${header}`;
      const sent = headers.get(name);
      if (sent === null) {
        return `the body carries arguments.${path.join(".")} but the ${name} header is absent`;
      }
      const decoded = decodedHeaderValue(sent);
      if (decoded === undefined) return `the ${name} header carries an invalid Base64 value`;
      const same = decoded === text ||
        (typeof value === "number" && /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(decoded) &&
          Number(decoded) === value);
      if (!same) {
        return `the ${name} header says ${JSON.stringify(decoded)} but the body carries arguments.${
          path.join(".")
        }=${JSON.stringify(value)}`;
      }
    }
    return undefined;
  }

  /** The `Mcp-Param-…` headers of a call of `tool` with `args`: one per declared argument that has a value. */
  paramHeaders(tool: string, args: unknown, into: Record<string, string>): void {
    const declarations = this.#byTool.get(tool);
    if (declarations === undefined) return;
    for (const { path, header } of declarations) {
      let value: unknown = args;
      for (const key of path) value = isObject(value) ? value[key] : undefined;
      const text = argumentText(value);
      if (text !== undefined) into[`Mcp-Param-${header}`] = headerValue(text);
    }
  }
}

/**
 * The headers of revision 2026-07-28 for `message` (see the module documentation), or undefined for a
 * message that names no protocol version in its `_meta`. `MCP-Protocol-Version` is spelled as the
 * session's own header is, which it replaces.
 */
export function modernHeaders(
  message: JsonRpcMessage,
  tools: ToolHeaderDeclarations,
): Record<string, string> | undefined {
  const version = envelopeVersion(message);
  if (version === undefined) return undefined;
  const { method, params } = message as { method: string; params?: Record<string, unknown> };
  // Written as they are, so only plain ones: the server answers the others with its own error (found by
  // review: a method with a line break, or outside Latin-1, failed in mcp-proxy, and one in Latin-1 was
  // sent as UTF-8, not as the body says).
  if (headerValue(version) !== version || headerValue(method) !== method) return undefined;
  const headers: Record<string, string> = { "MCP-Protocol-Version": version, "Mcp-Method": method };
  const source = Object.hasOwn(NAME_SOURCES, method) ? NAME_SOURCES[method] : undefined;
  const name = source === undefined || !isObject(params) ? undefined : params[source];
  if (typeof name === "string") headers["Mcp-Name"] = headerValue(name);
  if (method === "tools/call" && typeof name === "string") {
    tools.paramHeaders(name, params!.arguments, headers);
  }
  return headers;
}

/**
 * How the headers of a request of revision 2026-07-28 that reached mcp-proxy disagree with its body, or
 * undefined when they agree (the revision's `-32020` check, which the stdio server cannot make, as the
 * headers stop here). `MCP-Protocol-Version` and `Mcp-Method` must be present and name the body's
 * version and method; `Mcp-Name` must be present when the body has the member it mirrors, and decode to
 * it. (`Mcp-Param-…` need the tool's declarations: {@link ToolHeaderDeclarations.paramMismatch}.)
 */
export function headerMismatch(
  request: { method: string; params?: unknown },
  version: string,
  headers: Headers,
): string | undefined {
  const { method } = request;
  const params = isObject(request.params) ? request.params : undefined;
  const sentVersion = headers.get("mcp-protocol-version");
  if (sentVersion === null) {
    return `the body names protocol version ${version} but the MCP-Protocol-Version header is absent`;
  }
  if (sentVersion !== version) {
    return `the body names protocol version ${version} but the MCP-Protocol-Version header names ${sentVersion}`;
  }
  const sentMethod = headers.get("mcp-method");
  if (sentMethod === null) return `the body names method ${method} but the Mcp-Method header is absent`;
  if (sentMethod !== method) {
    return `the body names method ${method} but the Mcp-Method header names ${sentMethod}`;
  }
  const source = Object.hasOwn(NAME_SOURCES, method) ? NAME_SOURCES[method] : undefined;
  const name = source === undefined || params === undefined ? undefined : params[source];
  const sentName = headers.get("mcp-name");
  if (source !== undefined && typeof name === "string") {
    if (sentName === null) return `the body carries params.${source} but the Mcp-Name header is absent`;
    const decoded = decodedHeaderValue(sentName);
    if (decoded === undefined) return "the Mcp-Name header carries an invalid Base64 value";
    if (decoded !== name) {
      return `the body carries params.${source}=${JSON.stringify(name)} but the Mcp-Name header names ${
        JSON.stringify(decoded)
      }`;
    }
  }
  return undefined;
}

/** What of a request's `_meta` says who asks: what mcp-proxy's own requests on its behalf carry. */
const ENVELOPE_KEYS = [
  PROTOCOL_VERSION_META_KEY,
  "io.modelcontextprotocol/clientCapabilities",
  "io.modelcontextprotocol/clientInfo",
];

/** The most pages of `tools/list` read to learn a tool's declarations (see {@link listAllTools}). */
const MAX_TOOL_PAGES = 100;

/**
 * Client mode: whether a `tools/call` of revision 2026-07-28 refused with `-32020` (a header that disagrees
 * with the body) may have lacked the `Mcp-Param-…` headers of its tool: it was sent while the tool was not
 * known (`knewTool`: as {@link ToolHeaderDeclarations.knows} said then), as no `tools/list` had come
 * through. Returns the tool's name and the call's `_meta` envelope (what mcp-proxy's own `tools/list` on its
 * behalf carries), or undefined.
 */
export function mendableCall(
  call: { method: string; params?: Record<string, unknown> },
  refusal: { error?: { code: number } },
  knewTool: boolean,
): { tool: string; envelope: Record<string, unknown> } | undefined {
  const name = call.params?.name;
  const meta = call.params?._meta;
  if (
    call.method !== "tools/call" || refusal.error?.code !== -32020 || typeof name !== "string" ||
    !isObject(meta) || knewTool
  ) {
    return undefined;
  }
  const envelope: Record<string, unknown> = {};
  for (const key of ENVELOPE_KEYS) if (Object.hasOwn(meta, key)) envelope[key] = meta[key];
  return { tool: name, envelope };
}

/** Lists the server's tools with `ask` (every page, up to {@link MAX_TOOL_PAGES}, with `envelope`) into `tools`. */
export async function listAllTools(
  ask: (method: string, params: Record<string, unknown>) => Promise<{ result?: unknown }>,
  envelope: Record<string, unknown>,
  tools: ToolHeaderDeclarations,
): Promise<void> {
  let cursor: string | undefined;
  for (let page = 0; page < MAX_TOOL_PAGES; page++) {
    const params: Record<string, unknown> = { _meta: envelope };
    if (cursor !== undefined) params.cursor = cursor;
    const answer = await ask("tools/list", params);
    if (!isObject(answer.result)) return;
    tools.learn(answer.result);
    const next = answer.result.nextCursor;
    if (typeof next !== "string") return;
    cursor = next;
  }
}
