/**
 * An MCP client transport that runs a command with `Deno.Command` and speaks JSON lines over its
 * stdin and stdout, like the SDK's `StdioClientTransport`, but closes everything it opened before
 * `close()` resolves (the test sanitizers check that), and checks every line the command writes to
 * stdout: each must be one JSON-RPC message.
 *
 * @module
 */

import { JsonLineWriter, readJsonLines } from "../../src/json_lines.ts";
import type { JSONRPCMessage } from "../../src/mcp_sdk_client.ts";

/** See the module documentation. */
export class DenoStdioTransport {
  onmessage?: (message: JSONRPCMessage) => void;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  /** Every stdout line that was not a JSON-RPC message, as it was. */
  readonly badLines: string[] = [];
  #child: Deno.ChildProcess | undefined;
  #stdin: JsonLineWriter | undefined;
  #stderr = "";
  #reading: Promise<unknown> | undefined;
  #closing: Promise<void> | undefined;
  readonly #command: string;
  readonly #args: string[];
  readonly #env: Record<string, string> | undefined;

  constructor(options: { command: string; args: string[]; env?: Record<string, string> }) {
    this.#command = options.command;
    this.#args = options.args;
    this.#env = options.env;
  }

  /** What the command wrote to stderr so far. */
  get stderr(): string {
    return this.#stderr;
  }

  start(): Promise<void> {
    const child = new Deno.Command(this.#command, {
      args: this.#args,
      env: this.#env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.#stdin = new JsonLineWriter(child.stdin, (error) => this.onerror?.(error as Error));
    const stdout = readJsonLines(child.stdout, 1 << 26, {
      onMessage: (message) => this.onmessage?.(message as JSONRPCMessage),
      onInvalid: (why, line) => {
        this.badLines.push(line);
        this.onerror?.(new Error(`stdout line is not JSON-RPC (${why}): ${line}`));
      },
      onOversize: (bytes) => this.onerror?.(new Error(`stdout line of ${bytes} bytes`)),
      onError: (error) => this.onerror?.(error as Error),
    });
    const stderr = (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) this.#stderr += chunk;
    })();
    this.#reading = Promise.all([stdout, stderr]);
    child.status.then(() => this.onclose?.());
    return Promise.resolve();
  }

  send(message: JSONRPCMessage): Promise<void> {
    this.#stdin?.write(message as never);
    return Promise.resolve();
  }

  /**
   * Closes stdin (the proxy then ends its session and exits); kills it if it has not exited in 5 s.
   * Every call returns the same promise: the SDK's `Client` closes its transport by itself, without
   * waiting, when initialize fails.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    await this.#stdin?.close();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      child.status.then(() => true),
      new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), 5000)),
    ]);
    clearTimeout(timer);
    if (!exited) child.kill("SIGKILL");
    await child.status;
    await this.#reading;
  }
}
