/**
 * `ModernServer` with real children: the SDK v2 stdio fixture, and commands that stop at once.
 */

import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { ModernServer } from "../src/modern_server.ts";
import { SupervisedServer } from "../src/supervised_server.ts";
import { DENO } from "./helpers/proxy_process.ts";

const MODERN_FIXTURE = new URL("./fixtures/modern_stdio_server.ts", import.meta.url).pathname;
const MODERN = ["run", "-A", "--quiet", MODERN_FIXTURE, "modern-only"];
/** A command that stops at once, as a crash or a 2025-era server that wants `initialize` first. */
const STOPS = ["eval", "Deno.exit(1)"];

/** A ModernServer whose children run `commands` in turn (the last one for the rest). */
function modernServer(
  commands: string[][],
  askAgainAfterStopMs = 200,
): { server: ModernServer; started: () => number } {
  let started = 0;
  const server = new ModernServer({
    name: "test",
    logger: getLogger(["test"]),
    askAgainAfterStopMs,
    create: (onToolsListed) =>
      new SupervisedServer({
        spec: {
          name: "test",
          command: DENO,
          args: commands[Math.min(started++, commands.length - 1)],
          env: {},
        },
        env: { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "/tmp" },
        policy: { enabled: false, initialDelayMs: 0, maxDelayMs: 0 },
        maxLineBytes: 1 << 20,
        supportedProtocolVersions: ["2025-11-25"],
        requestTimeoutMs: 0,
        modern: { onToolsListed },
        logger: getLogger(["test"]),
      }),
  });
  return { server, started: () => started };
}

Deno.test("ModernServer: a child that stops while asked counts as not serving, is asked once more later, then serves", async () => {
  const { server, started } = modernServer([STOPS, MODERN]);
  try {
    assert.equal(await server.available(10_000), false);
    assert.equal(server.status().revision, "not served");
    // Not asked again before its time: no child per request.
    assert.equal(await server.available(10_000), false);
    assert.equal(started(), 1);
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal(await server.available(20_000), true);
    assert.equal(started(), 2);
    assert.deepEqual(server.supportedVersions, ["2026-07-28"]);
    // Its tools were listed first: the x-mcp-header of `regional` is known.
    assert.ok(server.tools.declares("regional"));
  } finally {
    await server.stop("test over");
  }
});

Deno.test("ModernServer: a child that stops while asked twice counts as not serving for good", async () => {
  const { server, started } = modernServer([STOPS]);
  try {
    assert.equal(await server.available(10_000), false);
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal(await server.available(10_000), false);
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal(await server.available(10_000), false);
    assert.equal(started(), 2);
    assert.equal(server.status().revision, "not served");
  } finally {
    await server.stop("test over");
  }
});
