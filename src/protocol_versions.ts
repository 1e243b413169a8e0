/**
 * The MCP protocol revisions the proxy speaks on its HTTP side: the same list as the SDK's
 * `SUPPORTED_PROTOCOL_VERSIONS` (a test keeps them equal), kept here so that server mode does not load
 * the SDK and its schemas only for these strings.
 *
 * @module
 */

/** The newest revision. */
export const LATEST_PROTOCOL_VERSION = "2025-11-25";

/** Revisions a client may ask for, newest first. */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly string[] = [
  LATEST_PROTOCOL_VERSION,
  "2025-06-18",
  "2025-03-26",
  "2024-11-05",
  "2024-10-07",
];

/** The revision a Streamable HTTP request without `MCP-Protocol-Version` is taken to speak. */
export const DEFAULT_HTTP_PROTOCOL_VERSION = "2025-03-26";

/** The first revision whose clients expect SSE priming events (an event id with empty data). */
export const PRIMING_PROTOCOL_VERSION = "2025-11-25";
