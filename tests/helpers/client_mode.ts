/**
 * Client-mode test helpers: remote MCP servers on 127.0.0.1, and the SDK's `Client` talking to
 * mcp-proxy through `StdioClientTransport`, as Claude Desktop would.
 *
 * @module
 */

import { Client, StdioClientTransport } from "../../src/mcp_sdk_client.ts";
import { DenoStdioTransport } from "./deno_stdio_transport.ts";
import { DENO, freePort, waitForText } from "./proxy_process.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** A server-everything instance serving its own HTTP transport. */
export interface RemoteEverything extends AsyncDisposable {
  /** `http://127.0.0.1:PORT/mcp` (Streamable HTTP) or `…/sse` (legacy SSE). */
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

async function waitForPort(port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      const connection = await Deno.connect({ hostname: "127.0.0.1", port });
      connection.close();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`nothing listens on port ${port} after ${ms} ms`);
}

/** Starts `server-everything sse|streamableHttp` on a free port (or `port`), and waits until it listens. */
export async function startRemoteEverything(
  transport: "sse" | "streamableHttp",
  port = freePort(),
): Promise<RemoteEverything> {
  const child = new Deno.Command(DENO, {
    args: ["run", "-A", "--quiet", "npm:@modelcontextprotocol/server-everything@2026.8.31", transport],
    env: { PORT: String(port) },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
    })();
    return stopped;
  };
  try {
    await waitForPort(port, 20_000);
  } catch (error) {
    await stop();
    throw error;
  }
  const url = `http://127.0.0.1:${port}/${transport === "sse" ? "sse" : "mcp"}`;
  return { url, port, stop, [Symbol.asyncDispose]: stop };
}

/** An SDK client talking to mcp-proxy in client mode over stdio. */
export interface StdioClient extends AsyncDisposable {
  readonly client: Client;
  /** What the proxy wrote to stderr so far. */
  stderr(): string;
  /** Resolves once stderr matches `pattern` (it is written asynchronously); throws after `ms`. */
  waitForStderr(pattern: RegExp, ms?: number): Promise<void>;
  /** Every stdout line that was not a JSON-RPC message (only checked by the Deno transport). */
  readonly badLines: string[];
  close(): Promise<void>;
}

/**
 * Starts `mcp-proxy [args] URL` as a stdio MCP server and connects the SDK's `Client` to it. By default
 * through {@link DenoStdioTransport}, which checks every stdout line and closes all it opened; with
 * `sdkTransport`, through the SDK's own `StdioClientTransport` (whose `close()` leaves a 2 s timer behind
 * and reports its child closed late: tests using it cannot run the op and resource sanitizers).
 */
export async function connectThroughClientMode(
  url: string,
  options: {
    args?: string[];
    env?: Record<string, string>;
    capabilities?: Record<string, unknown>;
    /** Called before connecting, to register request handlers on the client. */
    setup?: (client: Client) => void;
    sdkTransport?: boolean;
  } = {},
): Promise<StdioClient> {
  const command = DENO;
  const args = ["run", "-A", "--quiet", MAIN, ...(options.args ?? []), url];
  const env = { ...Deno.env.toObject(), ...options.env };
  let stderr: () => string;
  let badLines: string[] = [];
  let transport: DenoStdioTransport | StdioClientTransport;
  if (options.sdkTransport) {
    const sdk = new StdioClientTransport({ command, args, env, stderr: "pipe" });
    let text = "";
    sdk.stderr?.on("data", (chunk: Uint8Array) => text += new TextDecoder().decode(chunk));
    stderr = () => text;
    transport = sdk;
  } else {
    const deno = new DenoStdioTransport({ command, args, env });
    stderr = () => deno.stderr;
    badLines = deno.badLines;
    transport = deno;
  }
  const client = new Client(
    { name: "stdio-test-client", version: "1.0.0" },
    { capabilities: options.capabilities ?? {} },
  );
  options.setup?.(client);
  try {
    await client.connect(transport);
  } catch (error) {
    await client.close();
    throw new Error(`cannot connect through client mode: ${error}\n${stderr()}`);
  }
  const close = () => client.close();
  const waitForStderr = (pattern: RegExp, ms?: number) => waitForText("stderr", stderr, pattern, ms);
  return { client, stderr, waitForStderr, badLines, close, [Symbol.asyncDispose]: close };
}

/**
 * Runs `deno run PERMISSIONS main.ts [args] URL` with `lines` on stdin (objects as JSON), then the end of
 * input, and returns how it ended and what it wrote.
 */
export async function runClientModeWithInput(
  url: string,
  lines: (string | Record<string, unknown>)[],
  options: { args?: string[]; permissions?: readonly string[]; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(DENO, {
    args: ["run", ...(options.permissions ?? ["-A"]), "--quiet", MAIN, ...(options.args ?? []), url],
    env: options.env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const text = lines.map((line) => typeof line === "string" ? line : JSON.stringify(line)).join("\n") + "\n";
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const [status, stdout, stderr] = await Promise.all([
    child.status,
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  return { code: status.code, stdout, stderr };
}

/** A client-mode process fed by hand: see {@link startClientMode}. */
export interface HandFedClientMode {
  /** Writes one message to its stdin. */
  write(message: Record<string, unknown>): Promise<void>;
  /** Writes one line to its stdin, as it is. */
  writeLine(text: string): Promise<void>;
  /** The next message it writes to stdout; throws when its stdout ends first. */
  read(): Promise<Record<string, unknown>>;
  /** Ends its stdin and waits for it to exit (what is left on stdout is drained). */
  end(): Promise<{ code: number; stderr: string }>;
  /** Kills it (for a test that failed midway); `end` then returns at once. */
  kill(): void;
}

/** Starts `deno run -A main.ts [args] URL`, to be fed and read message by message. */
export function startClientMode(url: string, args: string[] = []): HandFedClientMode {
  const child = new Deno.Command(DENO, {
    args: ["run", "-A", "--quiet", MAIN, ...args, url],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stderr = new Response(child.stderr).text();
  let buffered = "";
  return {
    write: (message) => writer.write(new TextEncoder().encode(JSON.stringify(message) + "\n")),
    writeLine: (text) => writer.write(new TextEncoder().encode(text + "\n")),
    async read() {
      while (!buffered.includes("\n")) {
        const { done, value } = await lines.read();
        if (done) throw new Error("client mode's stdout ended");
        buffered += value;
      }
      const at = buffered.indexOf("\n");
      const line = buffered.slice(0, at);
      buffered = buffered.slice(at + 1);
      return JSON.parse(line);
    },
    async end() {
      await writer.close().catch(() => {});
      while (!(await lines.read()).done) {
        // Drain.
      }
      return { code: (await child.status).code, stderr: await stderr };
    },
    kill() {
      try {
        child.kill("SIGKILL");
      } catch {
        // Gone already.
      }
    },
  };
}
