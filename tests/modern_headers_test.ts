import assert from "node:assert/strict";
import {
  envelopeVersion,
  headerDeclarations,
  headerValue,
  listAllTools,
  mendableCall,
  modernHeaders,
  PROTOCOL_VERSION_META_KEY,
  ToolHeaderDeclarations,
} from "../src/modern_headers.ts";
import type { JsonRpcMessage } from "../src/jsonrpc.ts";

const META = { [PROTOCOL_VERSION_META_KEY]: "2026-07-28" };

function request(method: string, params: Record<string, unknown> = {}): JsonRpcMessage {
  return { jsonrpc: "2.0", id: 1, method, params: { ...params, _meta: META } };
}

Deno.test("modern_headers: only a request naming a protocol version in its _meta is of revision 2026-07-28", () => {
  assert.equal(envelopeVersion(request("tools/list")), "2026-07-28");
  assert.equal(envelopeVersion({ jsonrpc: "2.0", id: 1, method: "tools/list" }), undefined);
  assert.equal(
    envelopeVersion({ jsonrpc: "2.0", id: 1, method: "x", params: { _meta: { other: 1 } } }),
    undefined,
  );
  assert.equal(envelopeVersion({ jsonrpc: "2.0", id: 1, method: "x", params: { _meta: [1] } }), undefined);
  // A notification and an answer carry none of these headers.
  assert.equal(
    envelopeVersion({ jsonrpc: "2.0", method: "notifications/x", params: { _meta: META } }),
    undefined,
  );
  assert.equal(envelopeVersion({ jsonrpc: "2.0", id: 1, result: { _meta: META } }), undefined);
  assert.equal(
    modernHeaders({ jsonrpc: "2.0", id: 1, method: "tools/list" }, new ToolHeaderDeclarations()),
    undefined,
  );
});

Deno.test("modern_headers: header values are plain printable ASCII, else the Base64 sentinel of their UTF-8", () => {
  assert.equal(headerValue("eu-west"), "eu-west");
  assert.equal(headerValue("a\tb c"), "a\tb c");
  assert.equal(headerValue("zürich"), `=?base64?${btoa("z\xc3\xbcrich")}?=`);
  assert.equal(headerValue("grüße"), "=?base64?Z3LDvMOfZQ==?=");
  // Spaces at either end would be stripped, an empty value is no value, and a sentinel must not pass as one.
  assert.equal(headerValue(" x"), `=?base64?${btoa(" x")}?=`);
  assert.equal(headerValue(""), "=?base64??=");
  assert.equal(headerValue("=?base64?eA==?="), `=?base64?${btoa("=?base64?eA==?=")}?=`);
  assert.equal(headerValue("a\r\nb"), `=?base64?${btoa("a\r\nb")}?=`);
});

Deno.test("modern_headers: MCP-Protocol-Version, Mcp-Method and Mcp-Name come from the request", () => {
  const tools = new ToolHeaderDeclarations();
  assert.deepEqual(modernHeaders(request("server/discover"), tools), {
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": "server/discover",
  });
  assert.deepEqual(modernHeaders(request("tools/call", { name: "grüße", arguments: {} }), tools), {
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": "tools/call",
    "Mcp-Name": "=?base64?Z3LDvMOfZQ==?=",
  });
  assert.equal(modernHeaders(request("prompts/get", { name: "p" }), tools)!["Mcp-Name"], "p");
  assert.equal(
    modernHeaders(request("resources/read", { uri: "memo://plain" }), tools)!["Mcp-Name"],
    "memo://plain",
  );
  assert.equal(modernHeaders(request("tasks/cancel", { taskId: "t-1" }), tools)!["Mcp-Name"], "t-1");
  // No name where the method has none, where its member is missing or not a string, or on a prototype key.
  for (
    const message of [
      request("tools/list", { name: "x" }),
      request("tools/call", { arguments: {} }),
      request("tools/call", { name: 7 }),
      request("constructor", { name: "x" }),
    ]
  ) {
    assert.equal(modernHeaders(message, tools)!["Mcp-Name"], undefined, JSON.stringify(message));
  }
});

Deno.test("modern_headers: x-mcp-header declarations only on properties reached through properties", () => {
  const schema = {
    type: "object",
    properties: {
      region: { type: "string", "x-mcp-header": "Region" },
      options: { type: "object", properties: { dry: { type: "boolean", "x-mcp-header": "Dry-Run" } } },
      count: { type: "integer", "x-mcp-header": "Count" },
      plain: { type: "string" },
    },
  };
  assert.deepEqual(headerDeclarations(schema), [
    { path: ["region"], header: "Region" },
    { path: ["options", "dry"], header: "Dry-Run" },
    { path: ["count"], header: "Count" },
  ]);
  assert.deepEqual(headerDeclarations({ type: "object" }), []);
  assert.deepEqual(headerDeclarations(undefined), []);
  const invalid = [
    { type: "object", "x-mcp-header": "Top" },
    { properties: { list: { type: "array", items: { type: "string", "x-mcp-header": "Item" } } } },
    { properties: { a: { anyOf: [{ type: "string", "x-mcp-header": "A" }] } } },
    { $defs: { a: { type: "string", "x-mcp-header": "A" } } },
    { properties: { a: { type: "string", "x-mcp-header": "has space" } } },
    { properties: { a: { type: "object", "x-mcp-header": "A" } } },
    { properties: { a: { "x-mcp-header": "A" } } },
    {
      properties: { a: { type: "string", "x-mcp-header": "A" }, b: { type: "string", "x-mcp-header": "a" } },
    },
  ];
  for (const bad of invalid) assert.equal(headerDeclarations(bad), undefined, JSON.stringify(bad));
});

Deno.test("modern_headers: Mcp-Param headers of a call, as tools/list declared them", () => {
  const tools = new ToolHeaderDeclarations();
  const call = (name: string, args: unknown) =>
    modernHeaders(request("tools/call", { name, arguments: args }), tools)!;
  // Not declared yet: no Mcp-Param header.
  assert.equal(call("regional", { region: "eu-west" })["Mcp-Param-Region"], undefined);
  tools.learn({
    tools: [
      {
        name: "regional",
        inputSchema: {
          type: "object",
          properties: {
            region: { type: "string", "x-mcp-header": "Region" },
            n: { type: "integer", "x-mcp-header": "N" },
            on: { type: "boolean", "x-mcp-header": "On" },
          },
        },
      },
      { name: "broken", inputSchema: { properties: { a: { type: "array", "x-mcp-header": "A" } } } },
      "not a tool",
    ],
  });
  assert.deepEqual(call("regional", { region: "zürich", n: 42, on: false }), {
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": "tools/call",
    "Mcp-Name": "regional",
    "Mcp-Param-Region": `=?base64?${btoa("z\xc3\xbcrich")}?=`,
    "Mcp-Param-N": "42",
    "Mcp-Param-On": "false",
  });
  // Absent, null, non-primitive, unsafe and non-finite values have no header.
  const none = call("regional", { region: null, n: 2 ** 60, on: { x: 1 } });
  assert.deepEqual(Object.keys(none).filter((name) => name.startsWith("Mcp-Param-")), []);
  assert.deepEqual(
    Object.keys(call("broken", { a: "x" })).filter((name) => name.startsWith("Mcp-Param-")),
    [],
  );
  // A later page or list replaces a tool's declarations.
  tools.learn({ tools: [{ name: "regional", inputSchema: { type: "object" } }] });
  assert.equal(call("regional", { region: "eu-west" })["Mcp-Param-Region"], undefined);
  tools.learn(null);
  tools.learn({ tools: "x" });
});

Deno.test("modern_headers: a schema nested deep is not searched, and other keywords' objects are no schemas", () => {
  // Found by review: 5,000 levels overflowed the stack, and the tools/list answer was lost.
  let deep: Record<string, unknown> = { type: "string", "x-mcp-header": "Deep" };
  for (let i = 0; i < 20_000; i++) deep = { type: "object", properties: { a: deep } };
  assert.equal(headerDeclarations(deep), undefined);
  assert.deepEqual(
    headerDeclarations({
      properties: { a: { type: "string", "x-mcp-header": "A", default: { "x-mcp-header": "not a schema" } } },
      examples: [{ "x-mcp-header": "B" }],
    }),
    [{ path: ["a"], header: "A" }],
  );
});

Deno.test("modern_headers: a method or version that is no plain header value gets no headers", () => {
  const tools = new ToolHeaderDeclarations();
  for (const method of ["a\r\nX-Injected: 1", "tëst", "工具", " x"]) {
    assert.equal(modernHeaders(request(method), tools), undefined, method);
  }
  const message = {
    jsonrpc: "2.0",
    id: 1,
    method: "x",
    params: { _meta: { [PROTOCOL_VERSION_META_KEY]: "2026\r\n" } },
  };
  assert.equal(modernHeaders(message as JsonRpcMessage, tools), undefined);
});

Deno.test("modern_headers: mendableCall takes only a -32020 of a tool not known; listAllTools lists every page with the envelope", async () => {
  const regional = {
    name: "regional",
    inputSchema: { type: "object", properties: { region: { type: "string", "x-mcp-header": "Region" } } },
  };
  const pages: Record<string, unknown>[] = [
    { tools: [{ name: "plain", inputSchema: { type: "object" } }], nextCursor: "2" },
    { tools: [regional], nextCursor: "3" },
    { tools: [] },
  ];
  const asked: Record<string, unknown>[] = [];
  const ask = (method: string, params: Record<string, unknown>) => {
    assert.equal(method, "tools/list");
    asked.push(params);
    const cursor = params.cursor === undefined ? 0 : Number(params.cursor) - 1;
    return Promise.resolve({ result: pages[cursor] });
  };
  const capabilities = { "io.modelcontextprotocol/clientCapabilities": { sampling: {} } };
  const meta = {
    ...META,
    ...capabilities,
    progressToken: 7,
    "io.modelcontextprotocol/related-task": { taskId: "t" },
  };
  const call = (name: string) => ({ method: "tools/call", params: { _meta: meta, name, arguments: {} } });
  const refusal = { error: { code: -32020 } };
  const tools = new ToolHeaderDeclarations();
  assert.equal(mendableCall(call("regional"), { error: { code: -32602 } }, false), undefined);
  assert.equal(mendableCall({ method: "tools/list", params: { _meta: meta } }, refusal, false), undefined);
  // A call sent while its tool was known (its headers were given): the refusal is the server's own word.
  assert.equal(mendableCall(call("regional"), refusal, true), undefined);
  const mendable = mendableCall(call("regional"), refusal, tools.knows("regional"));
  // The envelope only, not the call's progress token or task.
  assert.deepEqual(mendable, { tool: "regional", envelope: { ...META, ...capabilities } });
  await listAllTools(ask, mendable!.envelope, tools);
  assert.deepEqual(asked, [
    { _meta: { ...META, ...capabilities } },
    { _meta: { ...META, ...capabilities }, cursor: "2" },
    { _meta: { ...META, ...capabilities }, cursor: "3" },
  ]);
  assert.ok(tools.declares("regional"));
  assert.ok(!tools.declares("plain"));
  // Both are known now, the one that declares none too: their calls' refusals are the server's own word.
  assert.ok(tools.knows("regional") && tools.knows("plain") && !tools.knows("other"));
});
