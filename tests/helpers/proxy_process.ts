/**
 * Starts the real mcp-proxy (`deno run main.ts …`) for end-to-end tests, and the MCP servers they put
 * behind it.
 *
 * @module
 */

import { Client, SSEClientTransport, StreamableHTTPClientTransport } from "../../src/mcp_sdk_client.ts";

/** The deno running the tests; children use it by absolute path (their PATH is minimal). */
export const DENO = Deno.execPath();

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** Command line of the reference MCP server, `@modelcontextprotocol/server-everything`, over stdio. */
export const EVERYTHING: string[] = [
  DENO,
  "run",
  "-A",
  "--quiet",
  "npm:@modelcontextprotocol/server-everything@2026.8.31",
  "stdio",
];

/** Command line of `tests/fixtures/fixture_server.ts`. */
export const FIXTURE: string[] = [
  DENO,
  "run",
  "-A",
  "--quiet",
  new URL("../fixtures/fixture_server.ts", import.meta.url).pathname,
];

/** Quotes words for `--named-server NAME COMMAND_STRING`. */
export { joinShellWords as shellJoin } from "../../src/shell_split.ts";

const decoder = new TextDecoder();

async function collect(stream: ReadableStream<Uint8Array>, sink: { text: string }): Promise<void> {
  for await (const chunk of stream) sink.text += decoder.decode(chunk, { stream: true });
}

/** A proxy started by {@link startProxy}. */
export interface RunningProxy extends AsyncDisposable {
  /** `http://127.0.0.1:PORT`. */
  readonly origin: string;
  /** Base URL of a server: the origin for `default`, `origin/servers/NAME` otherwise. */
  baseUrl(name?: string): string;
  /** Everything the proxy wrote to stderr so far. */
  stderr(): string;
  /**
   * Resolves once stderr matches `pattern` (the proxy writes its log asynchronously: a line may come a
   * moment after what it tells of); throws, quoting stderr, after `ms`.
   */
  waitForStderr(pattern: RegExp, ms?: number): Promise<void>;
  /** Everything the proxy wrote to stdout so far. */
  stdout(): string;
  readonly pid: number;
  /** Sends `signal` and waits for the exit; returns the status and how long it took. */
  stop(signal?: Deno.Signal): Promise<{ status: Deno.CommandStatus; ms: number }>;
}

/** Options of {@link startProxy} and {@link runProxy}. */
export interface ProxyRunOptions {
  env?: Record<string, string>;
  cwd?: string;
  /**
   * For a proxy that logs nothing at INFO: the port it was told to use; it is ready once `/status`
   * answers there. Otherwise it is ready once it logged its status URL.
   */
  readyOnPort?: number;
}

/**
 * Resolves once `read()` matches `pattern` (a process's output, which comes when it comes); throws, quoting
 * what was read (as `what`), after `ms`.
 */
export async function waitForText(
  what: string,
  read: () => string,
  pattern: RegExp,
  ms = 10_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pattern.test(read())) {
    if (Date.now() > deadline) throw new Error(`${what} never matched ${pattern}:\n${read()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Whether `promise` settles within `ms`; its timer is cleared either way (the op sanitizer checks). */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise.then(() => true),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A port that was free a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function answersStatus(origin: string): Promise<boolean> {
  try {
    const response = await fetch(`${origin}/status`);
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

/** `deno run main.ts ARGS`, with stdout and stderr piped and no stdin. */
function proxyCommand(args: string[], options: ProxyRunOptions): Deno.Command {
  return new Deno.Command(DENO, {
    args: ["run", "-A", "--quiet", MAIN, ...args],
    env: options.env,
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/** Starts `deno run main.ts ARGS` and waits until it logged its status URL (it is then serving). */
export async function startProxy(args: string[], options: ProxyRunOptions = {}): Promise<RunningProxy> {
  const child = proxyCommand(args, options).spawn();
  const stderr = { text: "" };
  const stdout = { text: "" };
  const reading = Promise.all([collect(child.stderr, stderr), collect(child.stdout, stdout)]);
  let exited = false;
  const status = child.status.then((status) => {
    exited = true;
    return status;
  });

  const deadline = Date.now() + 30_000;
  let origin: string | undefined;
  while (origin === undefined) {
    if (options.readyOnPort !== undefined) {
      const candidate = `http://127.0.0.1:${options.readyOnPort}`;
      if (await answersStatus(candidate)) origin = candidate;
    } else {
      origin = /status: (http:\/\/\S+)\/status/.exec(stderr.text)?.[1];
    }
    if (origin !== undefined) break;
    if (exited || Date.now() > deadline) {
      if (!exited) child.kill("SIGKILL");
      await status;
      await reading;
      throw new Error(`the proxy did not start (args: ${args.join(" ")}):\n${stderr.text}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }

  let stopped: Promise<{ status: Deno.CommandStatus; ms: number }> | undefined;
  const stop = (signal: Deno.Signal = "SIGTERM") => {
    stopped ??= (async () => {
      const start = performance.now();
      if (!exited) child.kill(signal);
      const result = await status;
      const ms = performance.now() - start;
      await reading;
      return { status: result, ms };
    })();
    return stopped;
  };

  return {
    origin: origin!,
    pid: child.pid,
    baseUrl: (name = "default") => name === "default" ? origin! : `${origin}/servers/${name}`,
    stderr: () => stderr.text,
    stdout: () => stdout.text,
    waitForStderr: (pattern: RegExp, ms?: number) => waitForText("stderr", () => stderr.text, pattern, ms),
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}

/** Runs `deno run main.ts ARGS` to completion (for start-up errors, `--help`, `--version`). */
export async function runProxy(
  args: string[],
  options: ProxyRunOptions = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await proxyCommand(args, options).output();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}

/**
 * A `fetch` that remembers the response bodies it handed out, and `settled()`, which makes sure every
 * one of them is closed: the SDK's client transports abort their streams on `close()` but do not
 * always wait for (or get) the body's end, and the test sanitizers want each body closed in its test.
 */
export function trackingFetch(): { fetch: typeof fetch; settled(): Promise<void> } {
  const open = new Map<ReadableStreamDefaultReader<Uint8Array>, Promise<void>>();
  return {
    fetch: async (input, init) => {
      const response = await fetch(input, init);
      if (response.body === null) return response;
      const reader = response.body.getReader();
      let done!: () => void;
      open.set(reader, new Promise<void>((resolve) => done = resolve));
      const finish = () => {
        open.delete(reader);
        done();
      };
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          try {
            const { done, value } = await reader.read();
            if (done) {
              controller.close();
              finish();
            } else {
              controller.enqueue(value);
            }
          } catch (error) {
            controller.error(error);
            finish();
          }
        },
        async cancel(reason) {
          await reader.cancel(reason).catch(() => {});
          finish();
        },
      });
      return new Response(body, response);
    },
    async settled() {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise((resolve) => timer = setTimeout(resolve, 200));
      await Promise.race([Promise.all(open.values()), grace]);
      clearTimeout(timer);
      await Promise.all([...open.keys()].map((reader) => reader.cancel().catch(() => {})));
      open.clear();
    },
  };
}

/** An SDK client connected through `/sse` or `/mcp` of `baseUrl`; close it with `await using`. */
export async function connectClient(
  baseUrl: string,
  transport: "sse" | "mcp",
  capabilities: Record<string, unknown> = {},
  /** Streamable HTTP: whether the SDK client reconnects broken streams (its close() leaves that timer). */
  reconnect = true,
): Promise<Client & AsyncDisposable> {
  const client = new Client({ name: "mcp-proxy-test", version: "1.0.0" }, { capabilities });
  const url = new URL(`${baseUrl}/${transport}`);
  const tracked = trackingFetch();
  await client.connect(
    transport === "sse"
      ? new SSEClientTransport(url, { fetch: tracked.fetch, eventSourceInit: { fetch: tracked.fetch } })
      : new StreamableHTTPClientTransport(url, {
        fetch: tracked.fetch,
        ...(reconnect ? {} : {
          reconnectionOptions: {
            maxRetries: 0,
            initialReconnectionDelay: 1000,
            maxReconnectionDelay: 1000,
            reconnectionDelayGrowFactor: 1,
          },
        }),
      }),
  );
  const close = client.close.bind(client);
  return Object.assign(client, {
    close: async () => {
      await close();
      await tracked.settled();
    },
    [Symbol.asyncDispose]: async () => {
      await close();
      await tracked.settled();
    },
  });
}

/** True while a process with `pid` runs; a zombie (exited, not yet reaped) counts as gone. */
export function processExists(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
  } catch {
    return false;
  }
  try {
    // Field 3 of /proc/PID/stat is the state; the command name before it is in parentheses.
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return Deno.build.os !== "linux";
  }
}

/** The pids of the servers the proxy started, from its log lines `started server NAME: … (pid N)`. */
export function serverPids(stderr: string): Record<string, number> {
  const pids: Record<string, number> = {};
  for (const match of stderr.matchAll(/started server (\S+): .* \(pid (\d+)\)/g)) {
    pids[match[1]] = Number(match[2]);
  }
  return pids;
}

/**
 * The JSON-RPC messages in the body of a Streamable HTTP answer: a JSON object or array (the answer came
 * first), or the `data:` lines of an SSE stream.
 */
export function messagesInBody(text: string): Record<string, unknown>[] {
  const trimmed = text.trimStart();
  if (trimmed.startsWith("{") || trimmed.startsWith("[")) return [JSON.parse(trimmed)].flat();
  return [...text.matchAll(/^data: (.+)$/gm)].map((match) => JSON.parse(match[1]));
}
