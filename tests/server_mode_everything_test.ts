/**
 * Server mode in front of the reference server `@modelcontextprotocol/server-everything`, driven by the
 * SDK's own `Client` over both HTTP transports: the default server, named servers from the command
 * line and from a config file, stateless mode, and many concurrent sessions on one shared child.
 */

import assert from "node:assert/strict";
import {
  connectClient,
  EVERYTHING,
  FIXTURE,
  messagesInBody,
  type RunningProxy,
  shellJoin,
  startProxy,
} from "./helpers/proxy_process.ts";

const TRANSPORTS = ["mcp", "sse"] as const;

/** Lists and calls tools, reads a resource and gets a prompt through one transport. */
async function exerciseEverything(baseUrl: string, transport: "sse" | "mcp"): Promise<void> {
  await using client = await connectClient(baseUrl, transport);
  assert.equal(client.getServerVersion()?.name, "mcp-servers/everything");

  const { tools } = await client.listTools();
  const names = tools.map((tool) => tool.name);
  assert.ok(names.includes("echo") && names.includes("get-sum"), `tools: ${names.join(", ")}`);

  const echoed = await client.callTool({ name: "echo", arguments: { message: `via ${transport}` } });
  assert.deepEqual(echoed.content, [{ type: "text", text: `Echo: via ${transport}` }]);
  const sum = await client.callTool({ name: "get-sum", arguments: { a: 19, b: 23 } });
  assert.match(JSON.stringify(sum.content), /42/);

  const { resources } = await client.listResources();
  assert.ok(resources.length > 0);
  const read = await client.readResource({ uri: resources[0].uri });
  assert.equal(read.contents[0].uri, resources[0].uri);
  assert.ok(JSON.stringify(read.contents[0]).length > 100);

  const prompt = await client.getPrompt({ name: "args-prompt", arguments: { city: "Lisbon" } });
  assert.match(JSON.stringify(prompt.messages), /Lisbon/);
}

async function exerciseAll(proxy: RunningProxy, names: string[]): Promise<void> {
  for (const name of names) {
    for (const transport of TRANSPORTS) await exerciseEverything(proxy.baseUrl(name), transport);
  }
  assert.equal(proxy.stdout(), "", "server mode writes nothing to stdout");
}

Deno.test("default server: tools, resources and prompts over /mcp and /sse", async () => {
  await using proxy = await startProxy(["--", ...EVERYTHING]);
  await exerciseAll(proxy, ["default"]);
});

Deno.test("two named servers from --named-server, next to a default server", async () => {
  await using proxy = await startProxy([
    "--named-server",
    "alpha",
    shellJoin(EVERYTHING),
    "--named-server",
    "beta",
    shellJoin(EVERYTHING),
    "--",
    ...FIXTURE,
  ]);
  await exerciseAll(proxy, ["alpha", "beta"]);
  // The default server is the fixture, a different child: the mounts are not mixed up.
  await using fixture = await connectClient(proxy.baseUrl(), "mcp");
  assert.equal(fixture.getServerVersion()?.name, "fixture-server");
  const status = await (await fetch(`${proxy.origin}/status`)).json();
  assert.deepEqual(status.server_instances, {
    default: "configured",
    alpha: "configured",
    beta: "configured",
  });
});

Deno.test("two named servers from --named-server-config", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = `${dir}/servers.json`;
    const [command, ...args] = EVERYTHING;
    await Deno.writeTextFile(
      config,
      JSON.stringify({
        mcpServers: {
          one: { command, args },
          two: { command, args, enabled: true, timeout: 60, transportType: "stdio" },
          off: { command, args, disabled: true },
        },
      }),
    );
    await using proxy = await startProxy(["--named-server-config", config]);
    await exerciseAll(proxy, ["one", "two"]);
    const disabled = await fetch(`${proxy.baseUrl("off")}/mcp`, { method: "POST" });
    await disabled.body?.cancel();
    assert.equal(disabled.status, 404);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--stateless: the SDK client works over /mcp, and /sse still works", async () => {
  await using proxy = await startProxy(["--stateless", "--", ...EVERYTHING]);
  await exerciseAll(proxy, ["default"]);
  const get = await fetch(`${proxy.origin}/mcp`, { headers: { Accept: "text/event-stream" } });
  await get.body?.cancel();
  assert.equal(get.status, 405);
});

Deno.test("16 concurrent sessions × 100 calls on one shared child each get exactly their own answers", async () => {
  await using proxy = await startProxy(["--", ...EVERYTHING]);
  const sessions = await Promise.all(
    Array.from({ length: 16 }, (_, i) => connectClient(proxy.baseUrl(), i % 2 === 0 ? "mcp" : "sse")),
  );
  try {
    await Promise.all(sessions.map(async (client, session) => {
      // Each session keeps several calls in flight at once, so that ids interleave at the child.
      for (let batch = 0; batch < 10; batch++) {
        await Promise.all(Array.from({ length: 10 }, async (_, i) => {
          const message = `session ${session} call ${batch * 10 + i}`;
          const result = await client.callTool({ name: "echo", arguments: { message } });
          assert.deepEqual(result.content, [{ type: "text", text: `Echo: ${message}` }]);
        }));
      }
    }));
  } finally {
    await Promise.all(sessions.map((client) => client.close()));
  }
});

Deno.test("raw sessions reusing the same request ids get their own answers under their own ids", async () => {
  await using proxy = await startProxy(["--", ...FIXTURE]);
  const headers = { "Content-Type": "application/json", Accept: "application/json, text/event-stream" };
  const post = async (body: unknown, sessionId?: string) => {
    const response = await fetch(`${proxy.origin}/mcp`, {
      method: "POST",
      headers: sessionId === undefined ? headers : { ...headers, "Mcp-Session-Id": sessionId },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    return {
      sessionId: response.headers.get("mcp-session-id"),
      message: messagesInBody(text)[0] as { id: unknown; result: { content: { text: string }[] } },
    };
  };
  const init = (id: number | string) => ({
    jsonrpc: "2.0",
    id,
    method: "initialize",
    params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "0" } },
  });
  const a = await post(init(1));
  const b = await post(init("1"));
  assert.equal(a.message.id, 1);
  assert.equal(b.message.id, "1");
  assert.notEqual(a.sessionId, b.sessionId);
  const calls = [];
  for (let id = 0; id < 50; id++) {
    for (const [name, session] of [["a", a.sessionId!], ["b", b.sessionId!]] as const) {
      const request = {
        jsonrpc: "2.0",
        id,
        method: "tools/call",
        params: { name: "echo", arguments: { text: `${name}${id}` }, _meta: { trace: `${name}-${id}` } },
      };
      calls.push(
        post(request, session).then(({ message }) => {
          assert.equal(message.id, id);
          assert.equal(message.result.content[0].text, `${name}${id}`);
        }),
      );
    }
  }
  await Promise.all(calls);
});
