/** The README's "see it work" command, `deno task demo`, works on this checkout. */

import assert from "node:assert/strict";
import { DENO } from "./helpers/proxy_process.ts";

Deno.test("deno task demo: the proxy serves server-everything over /mcp and /sse", async () => {
  const output = await new Deno.Command(DENO, {
    args: ["run", "-A", new URL("../scripts/demo.ts", import.meta.url).pathname, "--check"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  assert.match(stdout, /Streamable HTTP +http:\/\/127\.0\.0\.1:\d+\/mcp/);
  assert.match(stdout, /✓ \/mcp +\d+ tools; echo → "Echo: hello over \/mcp"/);
  assert.match(stdout, /✓ \/sse +\d+ tools; echo → "Echo: hello over \/sse"/);
});
