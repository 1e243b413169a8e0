/**
 * Supervision in server mode: a child that exits is restarted with backoff and initialized again, so
 * sessions carry on; /status reports each server's state and /health answers 503 while one is down; a
 * named server that cannot start does not take the others down; --no-restart leaves it down.
 */

import assert from "node:assert/strict";
import {
  connectClient,
  FIXTURE,
  runProxy,
  serverPids,
  shellJoin,
  startProxy,
} from "./helpers/proxy_process.ts";

function textOf(result: unknown): string {
  return (result as { content: { text?: string }[] }).content.map((part) => part.text ?? "").join("\n");
}

/** The part of /status and /health these tests read. */
interface Report {
  status?: string;
  servers: Record<
    string,
    { state: string; pid: number | null; restarts: number; last_exit_code: number | null; sessions: number }
  >;
}

async function json(url: string): Promise<{ status: number; body: Report }> {
  const response = await fetch(url);
  return { status: response.status, body: await response.json() };
}

async function waitFor<T>(probe: () => Promise<T | undefined>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`not within ${ms} ms`);
}

Deno.test("a child that exits is restarted and initialized again; the session carries on", async () => {
  await using proxy = await startProxy(["--restart-delay", "0.2", "--", ...FIXTURE]);
  await using client = await connectClient(proxy.baseUrl(), "mcp");
  const before = (await json(`${proxy.origin}/status`)).body.servers.default;
  assert.equal(before.state, "running");
  assert.equal(before.sessions, 1);

  assert.equal(textOf(await client.callTool({ name: "exit", arguments: { code: 7 } })), "exiting");
  const down = await waitFor(async () => {
    const health = await json(`${proxy.origin}/health`);
    return health.status === 503 ? health : undefined;
  }, 5000);
  assert.equal(down.body.status, "degraded");
  assert.equal(down.body.servers.default.last_exit_code, 7);

  const after = await waitFor(async () => {
    const { body } = await json(`${proxy.origin}/status`);
    return body.servers.default.state === "running" && body.servers.default.restarts === 1
      ? body.servers.default
      : undefined;
  }, 5000);
  assert.notEqual(after.pid, before.pid);
  // The same session, unaware of the restart, keeps working against a child initialized once again.
  const initializations = await waitFor(async () => {
    try {
      return textOf(await client.callTool({ name: "initializations", arguments: {} }));
    } catch {
      return undefined;
    }
  }, 5000);
  assert.equal(initializations, "1", "the new child got the first client's initialize");
  assert.equal((await json(`${proxy.origin}/health`)).status, 200);
  await proxy.waitForStderr(/ERROR +server default exited with code 7/);
  await proxy.waitForStderr(/initialized again; its sessions carry on/);
});

Deno.test("a restarted child that refuses the replayed initialize is restarted again, not left serving errors", async () => {
  const marker = await Deno.makeTempFile();
  await Deno.remove(marker);
  try {
    await using proxy = await startProxy([
      "--restart-delay",
      "0.1",
      "--",
      ...FIXTURE,
      "--refuse-initialize-while",
      marker,
    ]);
    await using client = await connectClient(proxy.baseUrl(), "mcp");
    await Deno.writeTextFile(marker, "");
    assert.equal(textOf(await client.callTool({ name: "exit", arguments: { code: 7 } })), "exiting");
    await waitFor(() => Promise.resolve(/refused to initialize/.test(proxy.stderr()) || undefined), 5000);
    // Not reported healthy meanwhile: between its tries, it is restarting.
    await waitFor(async () => (await json(`${proxy.origin}/health`)).status === 503 || undefined, 5000);
    await Deno.remove(marker);
    // The next child started is initialized, and the session carries on.
    const initializations = await waitFor(async () => {
      try {
        return textOf(await client.callTool({ name: "initializations", arguments: {} }));
      } catch {
        return undefined;
      }
    }, 8000);
    assert.equal(initializations, "1");
    assert.equal((await json(`${proxy.origin}/health`)).status, 200);
    assert.match(
      proxy.stderr(),
      /server default refused to initialize after a restart: Error: not ready yet/,
    );
  } finally {
    await Deno.remove(marker).catch(() => {});
  }
});

Deno.test("a named server that cannot start does not take the others down; /health says which", async () => {
  await using proxy = await startProxy([
    "--restart-delay",
    "0.2",
    "--named-server",
    "broken",
    "no-such-mcp-server-xyz",
    "--named-server",
    "fine",
    shellJoin(FIXTURE),
  ]);
  await using client = await connectClient(proxy.baseUrl("fine"), "mcp");
  assert.equal(
    textOf(await client.callTool({ name: "echo", arguments: { text: "still here" } })),
    "still here",
  );
  const health = await json(`${proxy.origin}/health`);
  assert.equal(health.status, 503);
  assert.equal(health.body.servers.fine.state, "running");
  assert.equal(health.body.servers.broken.state, "restarting");
  await proxy.waitForStderr(/command not found: no-such-mcp-server-xyz/);
  const refused = await fetch(`${proxy.baseUrl("broken")}/mcp`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream" },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "t", version: "0" } },
    }),
  });
  assert.match(await refused.text(), /could not start/);
});

Deno.test("--no-restart: a child that exits stays down and is reported failed", async () => {
  await using proxy = await startProxy(["--no-restart", "--", ...FIXTURE]);
  await using client = await connectClient(proxy.baseUrl(), "sse");
  await client.callTool({ name: "exit", arguments: { code: 0 } });
  const status = await waitFor(async () => {
    const { body } = await json(`${proxy.origin}/status`);
    return body.servers.default.state === "failed" ? body.servers.default : undefined;
  }, 5000);
  assert.equal(status.restarts, 0);
  assert.equal(status.pid, null);
  await assert.rejects(client.callTool({ name: "echo", arguments: { text: "x" } }), /not running/);
  // A new session is refused at its initialize, not answered from the cache and then failed call by call.
  await assert.rejects(connectClient(proxy.baseUrl(), "mcp"), /not running \(exited with code 0\)/);
  // Unasked, but no failure by its own word: a warning.
  assert.match(proxy.stderr(), /WARNING +server default exited with code 0\n/);
});

Deno.test("the started line names the command and counts its arguments; only debug shows them (a secret, say)", async () => {
  const script = "read line; echo started-once >&2; exec cat >/dev/null";
  const started = (log: string) => log.split("\n").filter((line) => /started server default/.test(line));
  await using proxy = await startProxy(["--", "sh", "-c", script, "sh", "--api-key=sk-secret"]);
  await proxy.waitForStderr(/started server default/);
  assert.deepEqual(started(proxy.stderr()).map((line) => line.replace(/^\S+ /, "")), [
    `INFO     started server default: sh, 4 arguments (pid ${serverPids(proxy.stderr()).default})`,
  ]);
  assert.doesNotMatch(proxy.stderr(), /sk-secret/);
  await proxy.stop();

  await using debug = await startProxy(["--debug", "--", "sh", "-c", script, "sh", "--api-key=sk-secret"]);
  await debug.waitForStderr(
    /server default runs sh -c 'read line; echo started-once >&2; exec cat >\/dev\/null' sh --api-key=sk-secret/,
  );
});

Deno.test("when no server can start at all, mcp-proxy says why once for each and exits 1, announcing no restart", async () => {
  const result = await runProxy(["--named-server", "a", "no-such-a", "--named-server", "b", "no-such-b"]);
  assert.equal(result.code, 1);
  assert.equal(result.stderr.match(/command not found: no-such-a/g)?.length, 1, result.stderr);
  assert.equal(result.stderr.match(/command not found: no-such-b/g)?.length, 1, result.stderr);
  assert.match(result.stderr, /none of the 2 servers could start/);
  assert.doesNotMatch(result.stderr, /restarting/);

  const one = await runProxy(["--", "no-such-mcp-server-xyz"]);
  assert.equal(one.code, 1);
  assert.equal(one.stderr.match(/command not found/g)?.length, 1, one.stderr);
  assert.doesNotMatch(one.stderr, /restarting/);
});

/** The processes whose command line is exactly `command`. */
async function processesRunning(command: string): Promise<number> {
  const { stdout } = await new Deno.Command("pgrep", { args: ["-xf", command], stdout: "piped" }).output();
  return new TextDecoder().decode(stdout).trim().split("\n").filter((line) => line !== "").length;
}

Deno.test({
  name: "what a child that exits left running is stopped before it restarts, not piled up through restarts",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const helper = "sleep 787.25";
    await using proxy = await startProxy(["--restart-delay", "0.2", "--", "sh", "-c", `${helper} & exit 3`]);
    // Several exits and restarts.
    for (let restarts = 0; restarts < 3;) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      restarts = (proxy.stderr().match(/exited with code 3/g) ?? []).length;
    }
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.ok(await processesRunning(helper) <= 1, "at most the newest child's helper is left");
    await proxy.stop();
    assert.equal(await processesRunning(helper), 0);
  },
});

Deno.test({
  name: "a child that closes its stdout but keeps running is stopped and restarted, not left to hang calls",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await using proxy = await startProxy(["--restart-delay", "0.2", "--", "sh", "-c", "exec 1>&-; sleep 30"]);
    const deadline = Date.now() + 10_000;
    while (!/killed by SIGTERM/.test(proxy.stderr()) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.match(proxy.stderr(), /server default closed its stdout but keeps running: stopping it/);
    assert.match(proxy.stderr(), /server default killed by SIGTERM/);
  },
});
