import assert from "node:assert/strict";
import { eraOf } from "../src/http/protocol_era.ts";
import type { JsonRpcMessage } from "../src/jsonrpc.ts";
import { decodedHeaderValue, headerValue, ToolHeaderDeclarations } from "../src/modern_headers.ts";

const MODERN = "2026-07-28";
const META = {
  "io.modelcontextprotocol/protocolVersion": MODERN,
  "io.modelcontextprotocol/clientCapabilities": {},
};

function era(
  message: Record<string, unknown> | Record<string, unknown>[],
  headers: Record<string, string> = {},
) {
  const batch = Array.isArray(message);
  const messages = (batch ? message : [message]).map((entry) => ({
    jsonrpc: "2.0",
    ...entry,
  })) as JsonRpcMessage[];
  return eraOf(messages, batch, new Headers(headers));
}

const STANDARD = { "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list" };

Deno.test("protocol_era: messages that name no modern version stay with the sessions", () => {
  assert.deepEqual(era({ id: 1, method: "initialize", params: { protocolVersion: "2025-11-25" } }), {
    era: "legacy",
  });
  assert.deepEqual(era({ id: 1, method: "tools/list" }, { "MCP-Protocol-Version": "2025-06-18" }), {
    era: "legacy",
  });
  assert.deepEqual(era({ id: 1, result: {} }, STANDARD), { era: "legacy" });
  assert.deepEqual(era([{ id: 1, method: "tools/list" }, { method: "notifications/initialized" }]), {
    era: "legacy",
  });
  // A claim of a 2025 revision is no modern request (the SDK reads it so too).
  const older = { ...META, "io.modelcontextprotocol/protocolVersion": "2025-11-25" };
  assert.deepEqual(era({ id: 1, method: "tools/list", params: { _meta: older } }), { era: "legacy" });
});

Deno.test("protocol_era: a request of the revision with agreeing headers is modern, whatever its method", () => {
  assert.deepEqual(era({ id: 1, method: "tools/list", params: { _meta: META } }, STANDARD), {
    era: "modern",
    version: MODERN,
  });
  // An initialize with the envelope is the revision's too: the child answers it (method not found).
  assert.deepEqual(
    era({ id: 1, method: "initialize", params: { _meta: META } }, {
      ...STANDARD,
      "Mcp-Method": "initialize",
    }),
    { era: "modern", version: MODERN },
  );
  // A later revision is modern as well (the child says whether it serves it).
  const later = { ...META, "io.modelcontextprotocol/protocolVersion": "2027-01-01" };
  assert.deepEqual(
    era({ id: 1, method: "tools/list", params: { _meta: later } }, {
      ...STANDARD,
      "MCP-Protocol-Version": "2027-01-01",
    }),
    { era: "modern", version: "2027-01-01" },
  );
  // Notifications need no headers, with the envelope or with the version header alone.
  assert.deepEqual(era({ method: "notifications/cancelled", params: { _meta: META, requestId: 1 } }), {
    era: "modern",
    version: MODERN,
  });
  assert.deepEqual(
    era({ method: "notifications/cancelled", params: { requestId: 1 } }, { "MCP-Protocol-Version": MODERN }),
    {
      era: "modern",
      version: MODERN,
    },
  );
});

Deno.test("protocol_era: what the revision refuses, with its codes and the request's id", () => {
  const refused = (decision: ReturnType<typeof era>) => {
    assert.equal(decision.era, "refused");
    return decision as { status: number; code: number; message: string; id: unknown };
  };
  const batch = refused(era([{ id: 1, method: "tools/list", params: { _meta: META } }]));
  assert.deepEqual([batch.status, batch.code, batch.id], [400, -32600, null]);
  const initialize = refused(
    era({ id: 2, method: "initialize", params: {} }, { "MCP-Protocol-Version": MODERN }),
  );
  assert.deepEqual([initialize.code, initialize.id], [-32020, 2]);
  const noEnvelope = refused(era({ id: "x", method: "tools/list" }, STANDARD));
  assert.deepEqual([noEnvelope.code, noEnvelope.id], [-32602, "x"]);
  const badVersion = { ...META, "io.modelcontextprotocol/protocolVersion": 20260728 };
  assert.equal(
    refused(era({ id: 3, method: "tools/list", params: { _meta: badVersion } }, STANDARD)).code,
    -32602,
  );
  const noCapabilities = { "io.modelcontextprotocol/protocolVersion": MODERN };
  assert.equal(
    refused(era({ id: 4, method: "tools/list", params: { _meta: noCapabilities } }, STANDARD)).code,
    -32602,
  );
  for (
    const headers of [
      {} as Record<string, string>,
      { "MCP-Protocol-Version": MODERN },
      { ...STANDARD, "MCP-Protocol-Version": "2026-09-01" },
      { ...STANDARD, "Mcp-Method": "prompts/list" },
    ]
  ) {
    const decision = refused(era({ id: 5, method: "tools/list", params: { _meta: META } }, headers));
    assert.deepEqual(
      [decision.status, decision.code, decision.id],
      [400, -32020, 5],
      JSON.stringify(headers),
    );
  }
  const notification = refused(
    era({ method: "notifications/cancelled", params: { _meta: META } }, {
      "Mcp-Method": "notifications/progress",
    }),
  );
  assert.deepEqual([notification.code, notification.id], [-32020, null]);
});

Deno.test("protocol_era: Mcp-Name mirrors the name, URI or task id, decoded from Base64 where sent so", () => {
  const call = (name: string, headers: Record<string, string>) =>
    era(
      { id: 1, method: "tools/call", params: { _meta: META, name, arguments: {} } },
      { "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", ...headers },
    ).era;
  assert.equal(call("echo", { "Mcp-Name": "echo" }), "modern");
  assert.equal(call("grüße", { "Mcp-Name": headerValue("grüße") }), "modern");
  assert.equal(call("echo", {}), "refused");
  assert.equal(call("echo", { "Mcp-Name": "other" }), "refused");
  assert.equal(call("echo", { "Mcp-Name": "=?base64?!!?=" }), "refused");
  const read = (headers: Record<string, string>) =>
    era(
      { id: 1, method: "resources/read", params: { _meta: META, uri: "memo://café" } },
      { "MCP-Protocol-Version": MODERN, "Mcp-Method": "resources/read", ...headers },
    ).era;
  assert.equal(read({ "Mcp-Name": headerValue("memo://café") }), "modern");
  assert.equal(read({ "Mcp-Name": "memo://cafe" }), "refused");
});

Deno.test("modern_headers: Mcp-Param headers are checked against the arguments once tools/list declared them", () => {
  const tools = new ToolHeaderDeclarations();
  const check = (args: Record<string, unknown>, headers: Record<string, string>) =>
    tools.paramMismatch("t", args, new Headers(headers)) === undefined ? "agree" : "mismatch";
  // Unknown declarations: nothing to check.
  assert.equal(check({ region: "eu" }, {}), "agree");
  tools.learn({
    tools: [{
      name: "t",
      inputSchema: {
        type: "object",
        properties: {
          region: { type: "string", "x-mcp-header": "Region" },
          count: { type: "integer", "x-mcp-header": "Count" },
        },
      },
    }],
  });
  assert.equal(check({ region: "eu" }, { "Mcp-Param-Region": "eu" }), "agree");
  assert.equal(check({ region: "eu" }, {}), "mismatch");
  assert.equal(check({ region: "eu" }, { "Mcp-Param-Region": "us" }), "mismatch");
  assert.equal(check({ region: " eu" }, { "Mcp-Param-Region": headerValue(" eu") }), "agree");
  assert.equal(check({ region: "eu" }, { "Mcp-Param-Region": "=?base64?***?=" }), "mismatch");
  assert.equal(check({ count: 10 }, { "Mcp-Param-Count": "10" }), "agree");
  assert.equal(check({ count: 10 }, { "Mcp-Param-Count": "1e1" }), "agree");
  assert.equal(check({ count: 10 }, { "Mcp-Param-Count": "11" }), "mismatch");
  // An argument not given needs no header.
  assert.equal(check({}, {}), "agree");
});

Deno.test("modern_headers: a header value decodes back to its text; a broken Base64 sentinel to none", () => {
  for (const text of ["plain", "grüße", " spaced ", "", "=?base64?x?="]) {
    assert.equal(decodedHeaderValue(headerValue(text)), text);
  }
  assert.equal(decodedHeaderValue("=?base64?***?="), undefined);
  assert.equal(decodedHeaderValue(`=?base64?${btoa("\xff\xfe")}?=`), undefined); // Not UTF-8.
});
