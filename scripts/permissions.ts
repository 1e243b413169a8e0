/**
 * The Deno permissions mcp-proxy runs with, written out rather than `-A`: compiled binaries get exactly
 * these, and so do `deno task start` and the demo (a test checks that they agree).
 *
 * - `--allow-net`: serve HTTP; reach the remote server and the OAuth2 token endpoint.
 * - `--allow-run`: start the stdio MCP servers (on Windows also `cmd.exe` and `taskkill`).
 * - `--allow-env`: build each server's environment; read `API_ACCESS_TOKEN`, `MCP_PROXY_API_KEY`, `SSE_URL`.
 * - `--allow-read`: config files, CA bundles, checking that a server's command exists.
 * - `--allow-sys`: `node:https`, used for `--no-verify-ssl`, reads the system's CA store.
 *
 * @module
 */

/** See the module documentation. */
export const PERMISSIONS: readonly string[] = [
  "--allow-net",
  "--allow-run",
  "--allow-env",
  "--allow-read",
  "--allow-sys",
];
