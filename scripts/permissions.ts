/**
 * How mcp-proxy is run: the Deno permissions, written out rather than `-A`, and the V8 flags. Compiled
 * binaries get exactly these, and so do `deno task start` and the demo (a test checks that they agree);
 * the benchmark and the soak run the proxy with the same V8 flags.
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

/**
 * `--max-semi-space-size=1` (MiB): under load V8 grows its young generation up to 32 MiB per semi-space
 * (64 MiB resident) and never gives it back, not even when idle. The soak measured RSS after 50,000 calls
 * at +15% over its baseline by default, +13% with 4 MiB, +3% to +12% with 2 MiB (over its 10% limit in
 * two runs of four), +4% to +6% with 1 MiB; a proxy's live objects are few and short-lived, so the
 * small young generation costs little (see bench/README.md). Measured again with less allocated per
 * message: 2 MiB gives about 10% more calls a second in case (b) and now passes the soak (+5% to +6%),
 * but in client mode a 1 MiB answer then costs twice the CPU (about +1.1 ms p50, paired
 * `bench/compare.ts --client --large`), and case (e) grows from +6.7 to +7.4 MiB of its +8.
 */
export const V8_FLAGS: readonly string[] = ["--max-semi-space-size=1"];

/** {@link V8_FLAGS} as one `deno run` / `deno compile` argument. */
export const V8_FLAGS_ARGUMENT = `--v8-flags=${V8_FLAGS.join(",")}`;
