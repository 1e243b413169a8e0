/**
 * The child environment policy, proved by a fixture server that reports its environment and working
 * directory: the safe base by default, `-e` for the default server, the config file's `env` for named
 * servers, `--pass-environment` for all, and `--cwd`.
 */

import assert from "node:assert/strict";
import { connectClient, FIXTURE, type RunningProxy, shellJoin, startProxy } from "./helpers/proxy_process.ts";

const SAFE_BASE = ["HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"];

/** The proxy's own environment in these tests: a secret, and a shell function export in SHELL. */
const PROXY_ENV = {
  MCP_PROXY_TEST_SECRET: "s3cret",
  SHELL: "() { echo exported function; }",
  TERM: "xterm-test",
};

async function childView(proxy: RunningProxy, name = "default") {
  await using client = await connectClient(proxy.baseUrl(name), "mcp");
  const result = await client.callTool({ name: "environment", arguments: {} });
  const [content] = result.content as { type: string; text: string }[];
  return JSON.parse(content.text) as { env: Record<string, string>; cwd: string };
}

Deno.test("by default a child gets only the safe base, without shell function exports", async () => {
  await using proxy = await startProxy(["--", ...FIXTURE], { env: PROXY_ENV });
  const { env, cwd } = await childView(proxy);
  const unexpected = Object.keys(env).filter((key) => !SAFE_BASE.includes(key));
  assert.deepEqual(unexpected, []);
  assert.equal(env.PATH, Deno.env.get("PATH"));
  assert.equal(env.HOME, Deno.env.get("HOME"));
  assert.equal(env.TERM, "xterm-test");
  assert.equal(env.SHELL, undefined, "a value starting with () is skipped");
  assert.equal(cwd, Deno.cwd());
});

Deno.test("-e and --cwd apply to the default server only; the config file's env to its server", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const workdir = await Deno.realPath(await Deno.makeTempDir({ dir }));
    const config = `${dir}/servers.json`;
    const [command, ...args] = FIXTURE;
    await Deno.writeTextFile(
      config,
      JSON.stringify({ mcpServers: { configured: { command, args, env: { FROM_CONFIG: "yes" } } } }),
    );
    await using proxy = await startProxy(
      [
        "-e",
        "FROM_FLAG",
        "one",
        "--env",
        "SECOND",
        "two",
        "--cwd",
        workdir,
        "--named-server-config",
        config,
        "--",
      ]
        .concat(FIXTURE),
      { env: PROXY_ENV },
    );
    const main = await childView(proxy);
    assert.equal(main.env.FROM_FLAG, "one");
    assert.equal(main.env.SECOND, "two");
    assert.equal(main.env.FROM_CONFIG, undefined);
    assert.equal(main.env.MCP_PROXY_TEST_SECRET, undefined);
    assert.equal(main.cwd, workdir);

    const named = await childView(proxy, "configured");
    assert.equal(named.env.FROM_CONFIG, "yes");
    assert.equal(named.env.FROM_FLAG, undefined);
    assert.equal(named.env.MCP_PROXY_TEST_SECRET, undefined);
    assert.equal(named.cwd, Deno.cwd());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--pass-environment gives every child the whole environment, -e still on top", async () => {
  await using proxy = await startProxy(
    ["--pass-environment", "-e", "TERM", "from-flag", "--named-server", "other", shellJoin(FIXTURE), "--"]
      .concat(FIXTURE),
    { env: PROXY_ENV },
  );
  const main = await childView(proxy);
  assert.equal(main.env.MCP_PROXY_TEST_SECRET, "s3cret");
  assert.equal(main.env.TERM, "from-flag");
  const other = await childView(proxy, "other");
  assert.equal(other.env.MCP_PROXY_TEST_SECRET, "s3cret");
  assert.equal(other.env.TERM, "xterm-test");
});
