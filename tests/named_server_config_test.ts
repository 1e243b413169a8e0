import assert from "node:assert/strict";
import { ConfigError, loadNamedServerConfig, parseNamedServerConfig } from "../src/named_server_config.ts";

const FILE = "servers.json";

function parseServers(mcpServers: unknown) {
  return parseNamedServerConfig(JSON.stringify({ mcpServers }), FILE);
}

/** Asserts that exactly one entry was skipped, with exactly this warning. */
function assertSkipped(mcpServers: unknown, warning: string) {
  assert.deepEqual(parseServers(mcpServers), { servers: [], warnings: [warning] });
}

function assertConfigError(text: string, message: string | RegExp) {
  assert.throws(() => parseNamedServerConfig(text, FILE), (error) => {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    if (typeof message === "string") assert.equal(error.message, message);
    else assert.match(error.message, message);
    return true;
  });
}

Deno.test("parseNamedServerConfig() turns a complete entry into a server spec", () => {
  const { servers, warnings } = parseServers({
    fetch: { command: "uvx", args: ["mcp-server-fetch", "--x"], env: { K: "V" }, cwd: "/srv/fetch" },
  });
  assert.deepEqual(servers, [
    { name: "fetch", command: "uvx", args: ["mcp-server-fetch", "--x"], env: { K: "V" }, cwd: "/srv/fetch" },
  ]);
  assert.deepEqual(warnings, []);
});

Deno.test("parseNamedServerConfig() defaults args and env to empty and leaves cwd out", () => {
  const { servers } = parseServers({ time: { command: "uvx" } });
  assert.deepEqual(servers, [{ name: "time", command: "uvx", args: [], env: {} }]);
  assert.equal("cwd" in servers[0], false);
});

Deno.test("parseNamedServerConfig() keeps the entries in file order", () => {
  const text =
    '{"mcpServers": {"zeta": {"command": "z"}, "alpha": {"command": "a"}, "mid": {"command": "m"}}}';
  const { servers } = parseNamedServerConfig(text, FILE);
  assert.deepEqual(servers.map((server) => server.name), ["zeta", "alpha", "mid"]);
});

Deno.test("parseNamedServerConfig() accepts an empty mcpServers object", () => {
  assert.deepEqual(parseServers({}), { servers: [], warnings: [] });
});

Deno.test("parseNamedServerConfig() accepts a leading byte-order mark", () => {
  const { servers } = parseNamedServerConfig('\uFEFF{"mcpServers": {"a": {"command": "x"}}}', FILE);
  assert.equal(servers.length, 1);
});

Deno.test("parseNamedServerConfig() rejects invalid JSON, naming the file and the position", () => {
  assertConfigError(
    '{\n  "mcpServers": {\n    "a": {"command": "x"}\n    "b": {}\n}}',
    `${FILE} is not valid JSON: Expected ',' or '}' after property value at line 4, column 5`,
  );
});

Deno.test("parseNamedServerConfig() reports a position even where JSON.parse gives none", () => {
  assertConfigError('{"mcpServers": {"a": }}', /^servers\.json is not valid JSON: .* at line 1, column 22$/);
  assertConfigError(
    '{"mcpServers": {"a": tru}}',
    /^servers\.json is not valid JSON: .* at line 1, column 25$/,
  );
  assertConfigError('{"mcpServers": {', /^servers\.json is not valid JSON: .* at line 1, column 17$/);
  assertConfigError(
    '{"mcpServers": {\n  "fetch": {"command": "uvx", "args": ["mcp-server-fetch"], "env": {}},\n  "time": [1,]\n}}',
    `${FILE} is not valid JSON: Unexpected token ']' at line 3, column 14`,
  );
  assertConfigError(
    '{"mcpServers": {\n  "a": {"command": "x"},\n',
    /^servers\.json is not valid JSON: .* at line 3, column 1$/,
  );
});

Deno.test("parseNamedServerConfig() quotes none of the text around a JSON error: it may hold a secret", () => {
  // Found by review: V8's excerpt of the text ("…"... or '…'...) was left in.
  const padding = `"pad": "${"p".repeat(40)}", `;
  for (
    const text of [
      `{"mcpServers": {"gh": {${padding}"env": {"T": ghp_SECRET_VALUE}}}}`,
      `{"mcpServers": {"gh": {${padding}"env": {"T": 'ghp_SECRET_VALUE'}}}}`,
      `{"mcpServers": {"gh": {"env": {"T": ghp_SECRET_VALUE}}}}`,
    ]
  ) {
    assertConfigError(text, /^servers\.json is not valid JSON: .* at line 1, column \d+$/);
    assert.throws(
      () => parseNamedServerConfig(text, FILE),
      (error: Error) => !error.message.includes("SECRET"),
    );
  }
});

Deno.test("parseNamedServerConfig() rejects an empty file", () => {
  assertConfigError("", /^servers\.json is empty; expected a JSON object/);
  assertConfigError(" \n\t\n", /^servers\.json is empty; expected a JSON object/);
});

Deno.test("parseNamedServerConfig() rejects a top level that is not an object", () => {
  assertConfigError('["a"]', `${FILE} must hold a JSON object at the top level, got a list of 1`);
  assertConfigError("null", `${FILE} must hold a JSON object at the top level, got null`);
  assertConfigError("42", `${FILE} must hold a JSON object at the top level, got a number`);
});

Deno.test("parseNamedServerConfig() rejects a file without an mcpServers object", () => {
  assertConfigError('{"servers": {}}', `${FILE} has no "mcpServers" object`);
  assertConfigError(
    '{"mcpServers": ["a"]}',
    `${FILE} has no "mcpServers" object; "mcpServers" is a list of 1`,
  );
  assertConfigError('{"mcpServers": null}', `${FILE} has no "mcpServers" object; "mcpServers" is null`);
});

Deno.test("parseNamedServerConfig() skips an entry that is not an object", () => {
  assertSkipped(
    { fetch: "uvx mcp-server-fetch" },
    `${FILE}: server "fetch" must be an object, got a string; skipped`,
  );
  assertSkipped({ fetch: null }, `${FILE}: server "fetch" must be an object, got null; skipped`);
  assertSkipped({ fetch: ["uvx"] }, `${FILE}: server "fetch" must be an object, got a list of 1; skipped`);
});

Deno.test("parseNamedServerConfig() skips an entry without a command", () => {
  assertSkipped(
    { fetch: { args: ["x"] } },
    `${FILE}: server "fetch": "command" must be a non-empty string, but it is missing; skipped`,
  );
});

Deno.test("parseNamedServerConfig() skips an entry whose command is not a non-empty string", () => {
  assertSkipped(
    { fetch: { command: "" } },
    `${FILE}: server "fetch": "command" must be a non-empty string, got ""; skipped`,
  );
  assertSkipped(
    { fetch: { command: "  " } },
    `${FILE}: server "fetch": "command" must be a non-empty string, got "  "; skipped`,
  );
  assertSkipped(
    { fetch: { command: ["uvx"] } },
    `${FILE}: server "fetch": "command" must be a non-empty string, got a list of 1; skipped`,
  );
});

Deno.test("parseNamedServerConfig() skips an entry whose args are not a list of strings", () => {
  assertSkipped(
    { fetch: { command: "uvx", args: "mcp-server-fetch" } },
    `${FILE}: server "fetch": "args" must be a list of strings, got a string; skipped`,
  );
  assertSkipped(
    { fetch: { command: "uvx", args: ["--port", 8080] } },
    `${FILE}: server "fetch": "args" must be a list of strings, but item 2 is a number; skipped`,
  );
});

Deno.test("parseNamedServerConfig() skips an entry whose env is not an object of strings, its values unshown", () => {
  assertSkipped(
    { fetch: { command: "uvx", env: ["K=V"] } },
    `${FILE}: server "fetch": "env" must be an object of string values, got a list of 1; skipped`,
  );
  assertSkipped(
    { fetch: { command: "uvx", env: { HOST: "h", PORT: 8080 } } },
    `${FILE}: server "fetch": "env" must be an object of string values, but "PORT" is a number; skipped`,
  );
  // Found by QA: a token written the wrong way was quoted in the warning.
  assertSkipped(
    { gh: { command: "npx", env: { GITHUB_TOKEN: { value: "ghp_secret" } } } },
    `${FILE}: server "gh": "env" must be an object of string values, but "GITHUB_TOKEN" is an object; skipped`,
  );
});

Deno.test("parseNamedServerConfig() skips an entry whose name cannot be part of a URL", () => {
  for (const name of ["my server", ".hidden", "-x", "a/b", "caf\u00e9", ""]) {
    const { servers, warnings } = parseServers({ [name]: { command: "uvx" } });
    assert.deepEqual(servers, [], `name ${JSON.stringify(name)}`);
    assert.equal(warnings.length, 1);
    assert.ok(
      warnings[0].startsWith(`${FILE}: server ${JSON.stringify(name)}: the name must match `),
      warnings[0],
    );
    assert.match(warnings[0], /\/servers\/NAME\/; skipped$/);
  }
});

Deno.test("parseNamedServerConfig() accepts every character allowed in a server name", () => {
  const { servers, warnings } = parseServers({ "A9.b_c~d-e": { command: "uvx" }, "0": { command: "uvx" } });
  assert.deepEqual(servers.map((server) => server.name).sort(), ["0", "A9.b_c~d-e"]);
  assert.deepEqual(warnings, []);
});

Deno.test("parseNamedServerConfig() skips an entry with enabled: false", () => {
  assertSkipped(
    { fetch: { command: "uvx", enabled: false } },
    `${FILE}: server "fetch" is disabled ("enabled": false), skipped`,
  );
});

Deno.test("parseNamedServerConfig() skips an entry with disabled: true", () => {
  assertSkipped(
    { fetch: { command: "uvx", disabled: true } },
    `${FILE}: server "fetch" is disabled ("disabled": true), skipped`,
  );
});

Deno.test("parseNamedServerConfig() runs entries with enabled: true or disabled: false", () => {
  const { servers, warnings } = parseServers({
    a: { command: "x", enabled: true },
    b: { command: "y", disabled: false },
  });
  assert.deepEqual(servers.map((server) => server.name), ["a", "b"]);
  assert.deepEqual(warnings, []);
});

Deno.test("parseNamedServerConfig() reports a disabled entry as disabled even when it is incomplete", () => {
  assertSkipped(
    { todo: { enabled: false } },
    `${FILE}: server "todo" is disabled ("enabled": false), skipped`,
  );
});

Deno.test("parseNamedServerConfig() takes an enabled that is not a boolean by its truth, as Python does", () => {
  const { servers, warnings } = parseServers({
    a: { command: "x", enabled: "true" },
    b: { command: "x", enabled: 1 },
    c: { command: "x", enabled: "yes" },
    d: { command: "x", enabled: 0 },
    e: { command: "x", enabled: null },
    f: { command: "x", enabled: "" },
    g: { command: "x", enabled: "False" },
    h: { command: "x", enabled: [] },
  });
  assert.deepEqual(servers.map((server) => server.name), ["a", "b", "c"]);
  assert.deepEqual(warnings, [
    `${FILE}: server "a": "enabled" "true" is taken as true, as the Python version does`,
    `${FILE}: server "b": "enabled" 1 is taken as true, as the Python version does`,
    `${FILE}: server "c": "enabled" "yes" is taken as true, as the Python version does`,
    `${FILE}: server "d" is disabled ("enabled": 0), skipped`,
    `${FILE}: server "e" is disabled ("enabled": null), skipped`,
    `${FILE}: server "f" is disabled ("enabled": ""), skipped`,
    `${FILE}: server "g" is disabled ("enabled": "False"), skipped`,
    `${FILE}: server "h" is disabled ("enabled": []), skipped`,
  ]);
});

Deno.test("parseNamedServerConfig() skips an entry whose disabled is not a boolean", () => {
  assertSkipped(
    { fetch: { command: "uvx", disabled: 1 } },
    `${FILE}: server "fetch": "disabled" must be true or false, got 1; skipped`,
  );
});

Deno.test("parseNamedServerConfig() accepts transportType stdio and ignores timeout", () => {
  const { servers, warnings } = parseServers({
    fetch: { command: "uvx", transportType: "stdio", timeout: 60 },
  });
  assert.deepEqual(servers, [{ name: "fetch", command: "uvx", args: [], env: {} }]);
  assert.deepEqual(warnings, []);
});

Deno.test("parseNamedServerConfig() runs an entry with another transportType over stdio, with a warning", () => {
  const { servers, warnings } = parseServers({ remote: { command: "uvx", transportType: "sse" } });
  assert.deepEqual(servers, [{ name: "remote", command: "uvx", args: [], env: {} }]);
  assert.deepEqual(warnings, [
    `${FILE}: server "remote": "transportType" "sse" is ignored; it is run over stdio`,
  ]);
});

Deno.test("parseNamedServerConfig() ignores unknown keys silently", () => {
  const { servers, warnings } = parseServers({
    fetch: { command: "uvx", description: "web", autoApprove: ["fetch"], type: "stdio" },
  });
  assert.deepEqual(servers, [{ name: "fetch", command: "uvx", args: [], env: {} }]);
  assert.deepEqual(warnings, []);
});

Deno.test("parseNamedServerConfig() skips an entry whose cwd is not a non-empty string", () => {
  assertSkipped(
    { fetch: { command: "uvx", cwd: 7 } },
    `${FILE}: server "fetch": "cwd" must be a non-empty string, got 7; skipped`,
  );
  assertSkipped(
    { fetch: { command: "uvx", cwd: "" } },
    `${FILE}: server "fetch": "cwd" must be a non-empty string, got ""; skipped`,
  );
});

Deno.test("parseNamedServerConfig() keeps the good entries around a bad one", () => {
  const { servers, warnings } = parseServers({
    a: { command: "x" },
    b: { command: "y", args: "oops" },
    c: { command: "z" },
  });
  assert.deepEqual(servers.map((server) => server.name), ["a", "c"]);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /server "b": "args"/);
});

Deno.test("parseNamedServerConfig() shortens long bad values in warnings", () => {
  const { warnings } = parseServers({ fetch: { command: "uvx", cwd: ["x".repeat(500)] } });
  assert.ok(warnings[0].length < 150, warnings[0]);
  assert.match(warnings[0], /…; skipped$/);
});

Deno.test("ConfigError is an Error named ConfigError", () => {
  const error = new ConfigError("boom");
  assert.ok(error instanceof Error);
  assert.equal(error.name, "ConfigError");
  assert.equal(error.message, "boom");
});

Deno.test("loadNamedServerConfig() reads and parses a file", async () => {
  const path = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(
      path,
      JSON.stringify({ mcpServers: { fetch: { command: "uvx", args: ["mcp-server-fetch"] }, bad: 1 } }),
    );
    const { servers, warnings } = await loadNamedServerConfig(path);
    assert.deepEqual(servers, [{ name: "fetch", command: "uvx", args: ["mcp-server-fetch"], env: {} }]);
    assert.deepEqual(warnings, [`${path}: server "bad" must be an object, got a number; skipped`]);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("loadNamedServerConfig() refuses a file that is not UTF-8", async () => {
  const path = await Deno.makeTempFile({ suffix: ".json" });
  try {
    const text = new TextEncoder().encode('{"mcpServers": {"a": {"command": "x", "args": ["\u00ff"]}}}');
    await Deno.writeFile(path, Uint8Array.from([...text].map((byte) => byte === 0xc3 ? 0xff : byte)));
    await assert.rejects(loadNamedServerConfig(path), ConfigError, `${path} is not valid UTF-8`);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("loadNamedServerConfig() names the file in content errors", async () => {
  const path = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await assert.rejects(
      loadNamedServerConfig(path),
      new ConfigError(`${path} is empty; expected a JSON object with an "mcpServers" object`),
    );
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("loadNamedServerConfig() rejects a missing file with a ConfigError naming it", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/missing.json`;
  try {
    await assert.rejects(loadNamedServerConfig(path), (error) => {
      assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
      assert.ok(error.message.startsWith(`cannot read named-server config ${path}: `), error.message);
      assert.match(error.message, /No such file|not found|cannot find/i);
      return true;
    });
  } finally {
    await Deno.remove(dir);
  }
});

Deno.test("parseNamedServerConfig() skips an entry whose env or arguments cannot reach a process", () => {
  assertSkipped(
    { s: { command: "x", env: { "FOO=BAR": "x" } } },
    `${FILE}: server "s": "env" names a variable "FOO="…: a name must be non-empty, without "=" or NUL; skipped`,
  );
  assertSkipped(
    { s: { command: "x", env: { "": "y" } } },
    `${FILE}: server "s": "env" names a variable "": a name must be non-empty, without "=" or NUL; skipped`,
  );
  assertSkipped(
    { s: { command: "x", env: { A: "a\0b" } } },
    `${FILE}: server "s": "env" "A": the value must not contain NUL characters; skipped`,
  );
  assertSkipped(
    { s: { command: "x", args: ["a\0b"] } },
    `${FILE}: server "s": "command" and "args" must not contain NUL characters; skipped`,
  );
});
