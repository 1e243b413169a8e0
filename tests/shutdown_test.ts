/**
 * Shutdown: on SIGTERM, SIGINT or SIGHUP, with sessions open, calls in flight and a child that started a
 * grandchild which ignores SIGTERM, the proxy exits within 5 s and leaves no process behind.
 */

import assert from "node:assert/strict";
import {
  connectClient,
  FIXTURE,
  processExists,
  serverPids,
  shellJoin,
  startProxy,
} from "./helpers/proxy_process.ts";

async function waitUntilGone(pids: number[], ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  let alive = pids.filter(processExists);
  while (alive.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    alive = alive.filter(processExists);
  }
  return alive;
}

for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
  Deno.test(`${signal} with open sessions and a stubborn grandchild: exit within 5 s, no process left`, async () => {
    const proxy = await startProxy(["--named-server", "other", shellJoin(FIXTURE), "--", ...FIXTURE]);
    const pids = serverPids(proxy.stderr());
    assert.deepEqual(Object.keys(pids).sort(), ["default", "other"]);

    const sse = await connectClient(proxy.baseUrl(), "sse");
    const mcp = await connectClient(proxy.baseUrl("other"), "mcp");
    const spawned = await sse.callTool({ name: "spawn_grandchild", arguments: {} });
    const grandchild = Number((spawned.content as { text: string }[])[0].text);
    assert.ok(processExists(grandchild));
    // A call still running at the child when the signal arrives: it must fail at once, not time out.
    let settledAt = 0;
    const inFlight = mcp.callTool({ name: "sleep", arguments: { ms: 60_000 } }).then(
      () => "answered",
      (error) => `failed: ${error.message}`,
    ).finally(() => settledAt = performance.now());
    await new Promise((resolve) => setTimeout(resolve, 100));

    const stoppedAt = performance.now();
    const { status, ms } = await proxy.stop(signal);
    assert.equal(status.code, 0, proxy.stderr());
    assert.ok(ms < 5000, `took ${ms} ms`);
    assert.match(await inFlight, /^failed: .*shutting down/);
    assert.ok(settledAt - stoppedAt < 3000, `the call failed only after ${settledAt - stoppedAt} ms`);
    await sse.close();
    await mcp.close();
    const left = await waitUntilGone([pids.default, pids.other, grandchild], 1000);
    assert.deepEqual(left, [], `still running: ${left.join(", ")}`);
    // The escalation is said, for the child whose group needed it.
    assert.match(
      proxy.stderr(),
      new RegExp(
        `server default \\(pid ${pids.default}\\) or what it started outlived SIGTERM by 1 s: SIGKILL`,
      ),
    );
  });
}

Deno.test("a second signal during shutdown kills the servers and their process groups at once", async () => {
  const proxy = await startProxy(["--", ...FIXTURE]);
  const pids = serverPids(proxy.stderr());
  // The proxy dies under this client's streams: it must not schedule reconnections that outlive the test.
  const client = await connectClient(proxy.baseUrl(), "mcp", {}, false);
  const spawned = await client.callTool({ name: "spawn_grandchild", arguments: {} });
  const grandchild = Number((spawned.content as { text: string }[])[0].text);
  // The fixture stays alive for this call, so a graceful shutdown would wait its 2 s grace period.
  const inFlight = client.callTool({ name: "sleep", arguments: { ms: 60_000 } }).catch(() => "failed");
  await new Promise((resolve) => setTimeout(resolve, 100));
  Deno.kill(proxy.pid, "SIGTERM");
  await new Promise((resolve) => setTimeout(resolve, 300));
  const { status, ms } = await proxy.stop("SIGTERM");
  assert.equal(status.code, 130);
  assert.ok(ms < 1000, `took ${ms} ms`);
  assert.match(proxy.stderr(), /second SIGTERM: killing the servers/);
  await inFlight;
  await client.close();
  const left = await waitUntilGone([pids.default, grandchild], 1000);
  assert.deepEqual(left, [], `still running: ${left.join(", ")}`);
});
