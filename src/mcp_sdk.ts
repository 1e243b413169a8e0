/**
 * The one place the proxy imports `@modelcontextprotocol/sdk` from. Its subpath imports end in `.js`,
 * which Deno type-checks as `any` (SDK issue #2701); the `@ts-types` line above each import restores the
 * real types. Only what the proxy uses is here; the SDK's client side, used by the demo and the tests,
 * is in `mcp_sdk_client.ts`.
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/server/webStandardStreamableHttp"
export { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
// @ts-types="@modelcontextprotocol/sdk/types"
export { SUPPORTED_PROTOCOL_VERSIONS } from "@modelcontextprotocol/sdk/types.js";
// @ts-types="@modelcontextprotocol/sdk/types"
export type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
