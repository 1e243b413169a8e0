/**
 * Which era of MCP a POST to `…/mcp` belongs to: the sessions of revisions up to 2025-11-25, or the
 * stateless revision 2026-07-28 and later, whose requests carry their protocol version in
 * `params._meta` (`io.modelcontextprotocol/protocolVersion`) and the `MCP-Protocol-Version`, `Mcp-Method`
 * and `Mcp-Name` headers. The body decides, as the SDK's HTTP entry does; the headers are checked against
 * it here, since they stop at mcp-proxy and the stdio server never sees them (`Mcp-Param-…` later, once
 * the child's tools are known: `ToolHeaderDeclarations.paramMismatch`).
 *
 * Pure: the messages as parsed and the request's headers in, a decision out.
 *
 * @module
 */

import { isNotification, isRequest, type JsonRpcMessage, type RequestId } from "../jsonrpc.ts";
import { headerMismatch, isModernVersion, PROTOCOL_VERSION_META_KEY } from "../modern_headers.ts";

/** The JSON-RPC error of a header that disagrees with the body (HTTP 400). */
export const HEADER_MISMATCH = -32020;

/** What to do with a POST. */
export type EraDecision =
  /** Sessions as before (a batch, an answer, a message naming no modern version). */
  | { era: "legacy" }
  /** A request or notification of a stateless revision, for the server's modern child. */
  | { era: "modern"; version: string }
  /** Refused: HTTP `status` with this JSON-RPC error, for the request `id` when there is one. */
  | { era: "refused"; status: number; code: number; message: string; id: RequestId | null };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The `_meta` of a message's params, when it is an object. */
function metaOf(message: JsonRpcMessage): Record<string, unknown> | undefined {
  const params = (message as { params?: unknown }).params;
  const meta = isObject(params) ? params._meta : undefined;
  return isObject(meta) ? meta : undefined;
}

/** Whether the message's `_meta` names a protocol version (validly or not). */
function hasClaim(message: JsonRpcMessage): boolean {
  const meta = metaOf(message);
  return meta !== undefined && Object.hasOwn(meta, PROTOCOL_VERSION_META_KEY);
}

function refused(code: number, message: string, id: RequestId | null): EraDecision {
  return { era: "refused", status: 400, code, message, id };
}

/** Decides the era of a POST of `messages` (`batch` when its body was an array) with `headers`. */
export function eraOf(
  messages: readonly JsonRpcMessage[],
  batch: boolean,
  headers: Headers,
): EraDecision {
  if (batch || messages.length !== 1) {
    if (messages.some(hasClaim)) {
      return refused(
        -32600,
        "Invalid Request: JSON-RPC batches may not hold messages of protocol revision 2026-07-28 or later",
        null,
      );
    }
    return { era: "legacy" };
  }
  const message = messages[0];
  const request = isRequest(message);
  if (!request && !isNotification(message)) return { era: "legacy" };
  const { method } = message as { method: string };
  const id = request ? message.id : null;
  const headerVersion = headers.get("mcp-protocol-version");
  const headerIsModern = headerVersion !== null && isModernVersion(headerVersion);
  const meta = metaOf(message);
  if (meta === undefined || !Object.hasOwn(meta, PROTOCOL_VERSION_META_KEY)) {
    if (!headerIsModern) return { era: "legacy" };
    if (method === "initialize") {
      return refused(
        HEADER_MISMATCH,
        `Header mismatch: an initialize request (the session handshake) came with MCP-Protocol-Version ${headerVersion}`,
        id,
      );
    }
    if (request) {
      return refused(
        -32602,
        `Invalid params: the MCP-Protocol-Version header names ${headerVersion}, but params._meta does not name ` +
          `it in ${PROTOCOL_VERSION_META_KEY}`,
        id,
      );
    }
    return headerMismatchOrModern(message, headerVersion, headers, false);
  }
  const version = meta[PROTOCOL_VERSION_META_KEY];
  if (typeof version !== "string" || version === "") {
    return refused(
      -32602,
      `Invalid params: _meta.${PROTOCOL_VERSION_META_KEY} must be a protocol version string`,
      id,
    );
  }
  if (headerVersion !== null && headerVersion !== version) {
    return refused(
      HEADER_MISMATCH,
      `Header mismatch: the body names protocol version ${version} but the MCP-Protocol-Version header names ${headerVersion}`,
      id,
    );
  }
  if (!isModernVersion(version)) return { era: "legacy" };
  if (request && !isObject(meta["io.modelcontextprotocol/clientCapabilities"])) {
    return refused(
      -32602,
      "Invalid params: _meta.io.modelcontextprotocol/clientCapabilities must be an object on protocol revision " +
        version,
      id,
    );
  }
  return headerMismatchOrModern(message, version, headers, request);
}

/**
 * A message of revision `version`: refused when its headers disagree with it (a request must have them all,
 * a notification only must not contradict its method), else modern.
 */
function headerMismatchOrModern(
  message: JsonRpcMessage,
  version: string,
  headers: Headers,
  request: boolean,
): EraDecision {
  const { method } = message as { method: string };
  if (!request) {
    const sentMethod = headers.get("mcp-method");
    if (sentMethod !== null && sentMethod !== method) {
      return refused(
        HEADER_MISMATCH,
        `Header mismatch: the body names method ${method} but the Mcp-Method header names ${sentMethod}`,
        null,
      );
    }
    return { era: "modern", version };
  }
  const mismatch = headerMismatch(message as { method: string; params?: unknown }, version, headers);
  if (mismatch !== undefined) {
    return refused(HEADER_MISMATCH, `Header mismatch: ${mismatch}`, (message as { id: RequestId }).id);
  }
  return { era: "modern", version };
}
