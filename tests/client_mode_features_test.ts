/**
 * Client mode as a stdio MCP client sees it: the SDK's `Client`, through `StdioClientTransport`
 * spawning mcp-proxy, against real remote servers — server-everything's own Streamable HTTP and legacy
 * SSE transports, and this project's server mode in front of it (the chain of the original README's
 * "Testing" section). Every feature in both directions: tools, resources with subscriptions, prompts,
 * completion, logging, progress, sampling, elicitation, roots; and through server mode in front of the
 * fixture: pagination cursors, cancellation, and the InitializeResult exactly as sent.
 */

import assert from "node:assert/strict";
import {
  type Client,
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from "../src/mcp_sdk_client.ts";
import { connectThroughClientMode, startRemoteEverything } from "./helpers/client_mode.ts";
import { EVERYTHING, FIXTURE, startProxy } from "./helpers/proxy_process.ts";

const CAPABILITIES = { sampling: {}, elicitation: {}, roots: { listChanged: true } };
const ROOTS = [{ uri: "file:///tmp/mcp-proxy-test-root", name: "test root" }];

function registerClientHandlers(client: Client): void {
  client.setRequestHandler(CreateMessageRequestSchema, (request) => ({
    model: "stdio-test-model",
    role: "assistant",
    content: {
      type: "text",
      text: `sampled: ${JSON.stringify(request.params.messages).length} bytes of prompt`,
    },
  }));
  client.setRequestHandler(ElicitRequestSchema, () => ({ action: "decline" }));
  client.setRequestHandler(ListRootsRequestSchema, () => ({ roots: ROOTS }));
}

function textOf(result: unknown): string {
  const content = (result as { content: { text?: string }[] }).content;
  return content.map((part) => part.text ?? "").join("\n");
}

function waitFor<T>(what: string, ms: number, register: (resolve: (value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
    register((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

/** Every feature of server-everything, in both directions, through client mode to `url`. */
async function exerciseEverything(url: string, args: string[] = [], sdkTransport = false): Promise<string> {
  await using stdio = await connectThroughClientMode(url, {
    args,
    sdkTransport,
    capabilities: CAPABILITIES,
    setup: registerClientHandlers,
  });
  const { client } = stdio;
  assert.equal(client.getServerVersion()?.name, "mcp-servers/everything");
  assert.match(client.getInstructions() ?? "", /Everything Server/);

  // Tools, resources, prompts, completion.
  const tools = (await client.listTools()).tools.map((tool) => tool.name);
  for (const name of ["echo", "trigger-sampling-request", "trigger-elicitation-request", "get-roots-list"]) {
    assert.ok(tools.includes(name), `${name} in ${tools.join(", ")}`);
  }
  assert.equal(
    textOf(await client.callTool({ name: "echo", arguments: { message: "stdio" } })),
    "Echo: stdio",
  );
  const { resources } = await client.listResources();
  const read = await client.readResource({ uri: resources[0].uri });
  assert.equal(read.contents[0].uri, resources[0].uri);
  const prompt = await client.getPrompt({ name: "args-prompt", arguments: { city: "Porto" } });
  assert.match(JSON.stringify(prompt.messages), /Porto/);
  const completion = await client.complete({
    ref: { type: "ref/prompt", name: "completable-prompt" },
    argument: { name: "department", value: "E" },
  });
  assert.ok(completion.completion.values.includes("Engineering"), JSON.stringify(completion));

  // Progress notifications arrive before the answer, with the client's own token.
  const progress: number[] = [];
  await client.callTool(
    { name: "trigger-long-running-operation", arguments: { duration: 1, steps: 3 } },
    undefined,
    { onprogress: (update) => progress.push(update.progress) },
  );
  // The SDK client may drop the last update when it arrives with the answer (server_mode_sessions_test).
  assert.deepEqual(progress, [1, 2, 3].slice(0, Math.max(progress.length, 2)));

  // Server → client requests, answered by this stdio client.
  const sampled = await client.callTool({
    name: "trigger-sampling-request",
    arguments: { prompt: "hello", maxTokens: 10 },
  });
  assert.match(textOf(sampled), /stdio-test-model/);
  const elicited = await client.callTool({ name: "trigger-elicitation-request", arguments: {} });
  assert.match(textOf(elicited), /decline/i);
  const roots = await client.callTool({ name: "get-roots-list", arguments: {} });
  assert.match(textOf(roots), /mcp-proxy-test-root/);

  // Logging level and messages; resource subscriptions and updates (both every 5 s on the server).
  const logged = waitFor<{ params: { level: string } }>(
    "log message",
    12_000,
    (resolve) =>
      client.setNotificationHandler(
        LoggingMessageNotificationSchema,
        (notification) => resolve(notification),
      ),
  );
  const updated = waitFor<string>(
    "resource update",
    12_000,
    (resolve) =>
      client.setNotificationHandler(
        ResourceUpdatedNotificationSchema,
        (notification) => resolve(notification.params.uri),
      ),
  );
  await client.setLoggingLevel("debug");
  await client.subscribeResource({ uri: resources[0].uri });
  await client.callTool({ name: "toggle-simulated-logging", arguments: {} });
  await client.callTool({ name: "toggle-subscriber-updates", arguments: {} });
  const [message, uri] = await Promise.all([logged, updated]);
  assert.ok(message.params.level);
  assert.equal(uri, resources[0].uri);
  await client.callTool({ name: "toggle-simulated-logging", arguments: {} });
  await client.callTool({ name: "toggle-subscriber-updates", arguments: {} });

  assert.deepEqual(stdio.badLines, [], "every stdout line is a JSON-RPC message");
  return stdio.stderr();
}

Deno.test({
  name: "client mode ⇄ server-everything over Streamable HTTP, through the SDK's StdioClientTransport",
  // The SDK's StdioClientTransport leaves a 2 s timer behind on close and reports its child closed
  // late; every other client-mode test uses DenoStdioTransport with both sanitizers on.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using remote = await startRemoteEverything("streamableHttp");
    const log = await exerciseEverything(remote.url, [], true);
    assert.doesNotMatch(log, /legacy SSE/);
  },
});

Deno.test("client mode ⇄ server-everything over Streamable HTTP: every feature, every stdout line checked", async () => {
  await using remote = await startRemoteEverything("streamableHttp");
  await exerciseEverything(remote.url);
});

Deno.test("client mode ⇄ server-everything over legacy SSE (auto falls back): every feature", async () => {
  await using remote = await startRemoteEverything("sse");
  const log = await exerciseEverything(remote.url);
  assert.match(log, /using the legacy SSE transport/);
});

Deno.test("the chain: client mode ⇄ server mode ⇄ server-everything, over /mcp and /sse", async () => {
  await using proxy = await startProxy(["--", ...EVERYTHING]);
  await exerciseEverything(`${proxy.origin}/mcp`, ["--transport", "streamablehttp"]);
  await exerciseEverything(`${proxy.origin}/sse`, ["--transport", "sse"]);
});

Deno.test("pagination cursors, cancellation and the InitializeResult pass through unchanged", async () => {
  await using proxy = await startProxy(["--", ...FIXTURE]);
  for (const transport of ["streamablehttp", "sse"]) {
    await using stdio = await connectThroughClientMode(
      `${proxy.origin}/${transport === "sse" ? "sse" : "mcp"}`,
      {
        args: ["--transport", transport],
      },
    );
    const { client } = stdio;
    assert.deepEqual(client.getServerVersion(), {
      name: "fixture-server",
      version: "1.2.3",
      title: "Fixture",
    });
    assert.equal(client.getInstructions(), "Fixture instructions: untouched by the proxy.");
    assert.deepEqual(client.getServerCapabilities(), {
      tools: {},
      resources: {},
      experimental: { fixture: { version: 1 } },
    });

    const uris: string[] = [];
    const cursors: (string | undefined)[] = [];
    let cursor: string | undefined;
    do {
      const page = await client.listResources(cursor === undefined ? {} : { cursor });
      uris.push(...page.resources.map((resource) => resource.uri));
      cursor = page.nextCursor;
      cursors.push(cursor);
    } while (cursor !== undefined);
    assert.deepEqual(cursors, ["2", "4", undefined]);
    assert.equal(uris.length, 5);

    const abort = new AbortController();
    const call = client.callTool({ name: "sleep", arguments: { ms: 30_000 } }, undefined, {
      signal: abort.signal,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    abort.abort("changed my mind");
    await assert.rejects(call);
    const seen = JSON.parse(textOf(await client.callTool({ name: "cancellations", arguments: {} })));
    assert.equal(seen.at(-1).wasRunning, true, JSON.stringify(seen));
    assert.match(String(seen.at(-1).reason), /changed my mind/);
    assert.deepEqual(stdio.badLines, []);
  }
});

Deno.test("--request-timeout: a call without an answer in time gets error -32001 and is cancelled upstream", async () => {
  await using proxy = await startProxy(["--", ...FIXTURE]);
  await using stdio = await connectThroughClientMode(`${proxy.origin}/mcp`, {
    args: ["--request-timeout", "0.5"],
  });
  const started = Date.now();
  await assert.rejects(
    stdio.client.callTool({ name: "sleep", arguments: { ms: 20_000 } }),
    (error: Error & { code?: number }) => error.code === -32001 && /--request-timeout/.test(error.message),
  );
  assert.ok(Date.now() - started < 5000);
  const seen = JSON.parse(textOf(await stdio.client.callTool({ name: "cancellations", arguments: {} })));
  assert.equal(seen.at(-1).wasRunning, true, JSON.stringify(seen));
});
