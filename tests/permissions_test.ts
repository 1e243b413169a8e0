/**
 * mcp-proxy works with exactly the permissions compiled binaries get (scripts/permissions.ts), including
 * the paths that need more than network and processes: node:https for --no-verify-ssl, node:crypto for
 * --api-key. `deno task start` uses the same list.
 */

import assert from "node:assert/strict";
import { PERMISSIONS, V8_FLAGS_ARGUMENT } from "../scripts/permissions.ts";
import denoJson from "../deno.json" with { type: "json" };
import { runClientModeWithInput } from "./helpers/client_mode.ts";
import { DENO, FIXTURE, freePort } from "./helpers/proxy_process.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const TLS = new URL("./fixtures/tls/", import.meta.url).pathname;

Deno.test("deno task start uses exactly the binaries' permissions and V8 flags", () => {
  assert.equal(denoJson.tasks.start, `deno run ${PERMISSIONS.join(" ")} ${V8_FLAGS_ARGUMENT} main.ts`);
});

Deno.test("client mode with --no-verify-ssl runs with the binaries' permissions", async () => {
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
    cert: Deno.readTextFileSync(`${TLS}cert.pem`),
    key: Deno.readTextFileSync(`${TLS}key.pem`),
  }, async (request) => {
    const body = await request.json();
    return Response.json({
      jsonrpc: "2.0",
      id: body.id,
      result: { serverInfo: { name: "tls", version: "1" } },
    });
  });
  try {
    const { code, stdout, stderr } = await runClientModeWithInput(
      `https://127.0.0.1:${server.addr.port}/mcp`,
      [{ jsonrpc: "2.0", id: 1, method: "ping" }],
      { args: ["--no-verify-ssl"], permissions: PERMISSIONS },
    );
    assert.equal(code, 0, stderr);
    assert.equal(JSON.parse(stdout).result.serverInfo.name, "tls", stderr);
  } finally {
    await server.shutdown();
  }
});

Deno.test("server mode with --api-key runs with the binaries' permissions", async () => {
  const port = freePort();
  const child = new Deno.Command(DENO, {
    args: ["run", ...PERMISSIONS, MAIN, "--port", String(port), "--api-key", "k", "--", ...FIXTURE],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      try {
        const response = await fetch(`http://127.0.0.1:${port}/status`, { headers: { "X-API-Key": "k" } });
        await response.body?.cancel();
        status = response.status;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    assert.equal(status, 200);
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await child.stderr.cancel();
  }
});
