/**
 * The "client implementation" that the official MCP conformance suite runs for its client scenarios,
 * with mcp-proxy's client mode in the middle:
 *
 * ```
 * suite's test server ◀── HTTP ──▶ mcp-proxy URL (client mode) ◀── stdio ──▶ this driver (SDK Client)
 * ```
 *
 * The suite runs `COMMAND URL`: the test server's URL is the last argument, the scenario's name is in
 * `MCP_CONFORMANCE_SCENARIO`, and what a scenario adds (the client id and secret of the
 * client-credentials scenarios) is a JSON object in `MCP_CONFORMANCE_CONTEXT`. The driver starts
 * `deno run -A main.ts [--client-id ID --client-secret SECRET] URL` and acts as a stdio MCP client
 * such as Claude Desktop would: it initializes, lists the tools, calls each one, accepts every
 * elicitation form as the server pre-filled it (its defaults applied, SEP-1034), and closes stdin.
 * Everything on the wire (transport, OAuth, SSE resumption) is the proxy's job.
 *
 * Exit status 0 when every step succeeded, 1 otherwise; the proxy's log is copied to stderr.
 *
 * ```sh
 * deno run -A npm:@modelcontextprotocol/conformance@0.1.16 client \
 *   --command "deno run -A tests/conformance/client_driver.ts" --scenario tools_call
 * ```
 *
 * @module
 */

import { Client, ElicitRequestSchema } from "../../src/mcp_sdk_client.ts";
import { DenoStdioTransport } from "../helpers/deno_stdio_transport.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** Arguments for the suite's tools that need some; any other tool is called without arguments. */
const TOOL_ARGUMENTS: Record<string, Record<string, unknown>> = {
  add_numbers: { a: 5, b: 3 },
};

/** Longest wait for one answer: below the suite's 30 s, so that a hang is reported with the proxy's log. */
const REQUEST_TIMEOUT_MS = 20_000;

const encoder = new TextEncoder();

function writeStderr(text: string): void {
  const bytes = encoder.encode(text);
  let written = 0;
  while (written < bytes.length) written += Deno.stderr.writeSync(bytes.subarray(written));
}

function log(text: string): void {
  writeStderr(`client_driver: ${text}\n`);
}

/** The proxy's options for a scenario's context: OAuth2 client credentials when it gives some. */
function proxyOptions(context: Record<string, unknown>): string[] {
  const { client_id: id, client_secret: secret } = context;
  return typeof id === "string" && typeof secret === "string"
    ? ["--client-id", id, "--client-secret", secret]
    : [];
}

function readContext(): Record<string, unknown> {
  const text = Deno.env.get("MCP_CONFORMANCE_CONTEXT");
  if (text === undefined) return {};
  const context: unknown = JSON.parse(text);
  if (typeof context !== "object" || context === null || Array.isArray(context)) {
    throw new Error(`MCP_CONFORMANCE_CONTEXT is not a JSON object: ${text}`);
  }
  return context as Record<string, unknown>;
}

/** Initializes through the proxy, lists the tools and calls each; throws at the first step that fails. */
async function exercise(client: Client): Promise<void> {
  const server = client.getServerVersion();
  log(`initialized: ${server?.name} ${server?.version}`);
  const { tools } = await client.listTools(undefined, { timeout: REQUEST_TIMEOUT_MS });
  log(`tools: ${tools.map((tool) => tool.name).join(", ") || "none"}`);
  for (const tool of tools) {
    const result = await client.callTool(
      { name: tool.name, arguments: TOOL_ARGUMENTS[tool.name] ?? {} },
      undefined,
      { timeout: REQUEST_TIMEOUT_MS },
    );
    const text = JSON.stringify(result.content);
    if (result.isError) throw new Error(`tool ${tool.name} answered with an error: ${text}`);
    log(`tool ${tool.name}: ${text}`);
  }
}

async function main(): Promise<number> {
  const url = Deno.args.at(-1);
  if (url === undefined) {
    log("usage: client_driver.ts [...] URL (the conformance suite appends the server URL)");
    return 2;
  }
  const scenario = Deno.env.get("MCP_CONFORMANCE_SCENARIO") ?? "(none)";
  const options = proxyOptions(readContext());
  log(
    `scenario ${scenario}: mcp-proxy ${options.length > 0 ? "--client-id … --client-secret … " : ""}${url}`,
  );

  const transport = new DenoStdioTransport({
    command: Deno.execPath(),
    args: ["run", "-A", "--quiet", MAIN, ...options, url],
  });
  const client = new Client(
    { name: "mcp-proxy-conformance-driver", version: "1.0.0" },
    { capabilities: { elicitation: { form: { applyDefaults: true } } } },
  );
  // The user accepts the form as shown; the SDK fills in the schema's defaults (applyDefaults).
  client.setRequestHandler(ElicitRequestSchema, (request) => {
    log(`elicitation: ${request.params.message}`);
    return { action: "accept", content: {} };
  });
  client.onerror = (error) => log(`transport: ${error.message}`);

  let status = 0;
  try {
    await client.connect(transport, { timeout: REQUEST_TIMEOUT_MS });
    await exercise(client);
  } catch (error) {
    log(`FAILED: ${error instanceof Error ? error.message : String(error)}`);
    status = 1;
  } finally {
    await client.close();
  }
  writeStderr(transport.stderr);
  log(status === 0 ? "done" : "failed");
  return status;
}

Deno.exit(await main());
