/**
 * `deno task demo [--check] [PROXY OPTIONS]`: mcp-proxy in server mode in front of the reference MCP server
 * (`@modelcontextprotocol/server-everything`), with no configuration. It checks both HTTP transports
 * with the SDK's own client, prints the URLs to connect to, and runs until Ctrl-C.
 *
 * `--check`: exit after the self-check (used by the tests).
 *
 * @module
 */

import { Client, SSEClientTransport, StreamableHTTPClientTransport } from "../src/mcp_sdk_client.ts";
import { PERMISSIONS, V8_FLAGS_ARGUMENT } from "./permissions.ts";
import { say } from "./say.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const EVERYTHING = "npm:@modelcontextprotocol/server-everything@2026.8.31";

const checkOnly = Deno.args.includes("--check");
const proxyOptions = Deno.args.filter((arg) => arg !== "--check");
if (!proxyOptions.some((arg) => arg === "--port" || arg.startsWith("--port="))) {
  proxyOptions.push("--port", "0");
}

// The child gets a minimal environment: name deno by absolute path, and keep its cache where it is.
const denoDir = Deno.env.get("DENO_DIR");
const proxy = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    ...PERMISSIONS,
    V8_FLAGS_ARGUMENT,
    MAIN,
    ...proxyOptions,
    ...(denoDir ? ["-e", "DENO_DIR", denoDir] : []),
    "--",
    Deno.execPath(),
    "run",
    "-A",
    "--quiet",
    EVERYTHING,
    "stdio",
  ],
  stdin: "null",
  stdout: "inherit",
  stderr: "piped",
}).spawn();

/** Passes the proxy's log through to our stderr and resolves with its origin once it serves. */
async function relayLogUntilReady(stderr: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stderr.getReader();
  let seen = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the proxy exited before it was ready");
    Deno.stderr.writeSync(value);
    seen += decoder.decode(value, { stream: true });
    const origin = /status: (http:\/\/\S+)\/status/.exec(seen)?.[1];
    if (origin !== undefined) {
      (async () => {
        for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
          Deno.stderr.writeSync(chunk.value);
        }
      })();
      return origin;
    }
  }
}

/**
 * The API key the proxy will ask for, if any: the first `--api-key` among the options (or an abbreviation
 * of it), else `MCP_PROXY_API_KEY` (found by QA: with either, the self-check was refused, 401).
 */
function apiKey(): string | undefined {
  for (let i = 0; i < proxyOptions.length; i++) {
    const [name, inline] = proxyOptions[i].split(/=(.*)/s, 2);
    if (name.length < "--api-k".length || !"--api-key".startsWith(name)) continue;
    return inline ?? proxyOptions[i + 1];
  }
  return Deno.env.get("MCP_PROXY_API_KEY") || undefined;
}

async function checkTransport(origin: string, kind: "mcp" | "sse"): Promise<string> {
  const client = new Client({ name: "mcp-proxy-demo", version: "1.0.0" });
  const url = new URL(`${origin}/${kind}`);
  const key = apiKey();
  const requestInit = key === undefined ? undefined : { headers: { "X-API-Key": key } };
  await client.connect(
    kind === "mcp"
      ? new StreamableHTTPClientTransport(url, { requestInit })
      : new SSEClientTransport(url, { requestInit }),
  );
  try {
    const { tools } = await client.listTools();
    const result = await client.callTool({ name: "echo", arguments: { message: `hello over /${kind}` } });
    const [content] = result.content as { text: string }[];
    return `${tools.length} tools; echo → ${JSON.stringify(content.text)}`;
  } finally {
    await client.close();
  }
}

let exitCode = 0;
let interrupted = false;
try {
  const origin = await relayLogUntilReady(proxy.stderr);
  say();
  say("mcp-proxy demo: @modelcontextprotocol/server-everything (stdio) served over HTTP");
  say();
  say(`  Streamable HTTP  ${origin}/mcp`);
  say(`  SSE (legacy)     ${origin}/sse`);
  say(`  Status           ${origin}/status`);
  say();
  for (const kind of ["mcp", "sse"] as const) say(`  ✓ /${kind}  ${await checkTransport(origin, kind)}`);
  say();
  if (checkOnly) {
    say("Self-check passed.");
  } else {
    say(`Try it: npx @modelcontextprotocol/inspector, then connect to ${origin}/mcp (Streamable HTTP).`);
    say("Press Ctrl-C to stop.");
    await new Promise<void>((resolve) => Deno.addSignalListener("SIGINT", resolve));
    // Ctrl-C reached the proxy too (same process group): let it shut down on that one signal.
    interrupted = true;
  }
} catch (error) {
  Deno.stderr.writeSync(encoder.encode(`demo failed: ${error instanceof Error ? error.message : error}\n`));
  exitCode = 1;
} finally {
  const exited = await Promise.race([
    proxy.status.then(() => true),
    new Promise((resolve) => setTimeout(() => resolve(false), interrupted ? 5000 : 0)),
  ]);
  if (!exited) proxy.kill("SIGTERM");
  const status = await proxy.status;
  if (exitCode === 0 && !status.success && status.signal === null) exitCode = status.code;
}
Deno.exit(exitCode);
