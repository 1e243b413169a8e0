/**
 * The conformance fixture (`tests/fixtures/conformance_server.ts`) on its own, over stdio: a broken
 * fixture fails here, fast, rather than as a page of conformance failures blamed on the proxy.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Client, CreateMessageRequestSchema, ElicitRequestSchema } from "../src/mcp_sdk_client.ts";
import { DenoStdioTransport } from "./helpers/deno_stdio_transport.ts";
import { DENO } from "./helpers/proxy_process.ts";

const FIXTURE = new URL("./fixtures/conformance_server.ts", import.meta.url).pathname;

async function connectFixture(): Promise<
  { client: Client; transport: DenoStdioTransport } & AsyncDisposable
> {
  const transport = new DenoStdioTransport({ command: DENO, args: ["run", "-A", "--quiet", FIXTURE] });
  const client = new Client(
    { name: "conformance-fixture-test", version: "1.0.0" },
    { capabilities: { sampling: {}, elicitation: {} } },
  );
  await client.connect(transport);
  return {
    client,
    transport,
    async [Symbol.asyncDispose]() {
      await client.close();
      await transport.close();
    },
  };
}

Deno.test("the conformance fixture lists what the suite's scenarios call", async () => {
  await using fixture = await connectFixture();
  const { client } = fixture;
  assert.deepEqual(client.getServerVersion()?.name, "mcp-proxy-conformance-fixture");
  const capabilities = client.getServerCapabilities();
  assert.deepEqual(capabilities?.resources?.subscribe, true);
  assert(capabilities?.logging !== undefined && capabilities?.completions !== undefined);

  const tools = (await client.listTools()).tools.map((tool) => tool.name);
  for (
    const name of [
      "test_simple_text",
      "test_image_content",
      "test_audio_content",
      "test_embedded_resource",
      "test_multiple_content_types",
      "test_tool_with_logging",
      "test_tool_with_progress",
      "test_error_handling",
      "test_sampling",
      "test_elicitation",
      "test_elicitation_sep1034_defaults",
      "test_elicitation_sep1330_enums",
      "test_reconnection",
      "json_schema_2020_12_tool",
    ]
  ) assert(tools.includes(name), `tool ${name} missing from ${tools.join(", ")}`);

  assert.deepEqual((await client.listResources()).resources.map((resource) => resource.uri), [
    "test://static-text",
    "test://static-binary",
    "test://watched-resource",
  ]);
  assert.deepEqual(
    (await client.listResourceTemplates()).resourceTemplates.map((template) => template.uriTemplate),
    ["test://template/{id}/data"],
  );
  assert.deepEqual((await client.listPrompts()).prompts.map((prompt) => prompt.name), [
    "test_simple_prompt",
    "test_prompt_with_arguments",
    "test_prompt_with_embedded_resource",
    "test_prompt_with_image",
  ]);
  assert.deepEqual(fixture.transport.badLines, []);
});

Deno.test("the conformance fixture answers tools, resources, prompts and asks the client", async () => {
  await using fixture = await connectFixture();
  const { client } = fixture;
  assert.deepEqual(await client.callTool({ name: "test_simple_text" }), {
    content: [{ type: "text", text: "This is a simple text response for testing." }],
  });
  assert.deepEqual((await client.callTool({ name: "test_error_handling" })).isError, true);

  const progress: number[] = [];
  await client.callTool({ name: "test_tool_with_progress" }, undefined, {
    onprogress: ({ progress: value }) => progress.push(value),
  });
  // The SDK client runs progress handlers a microtask late: a last update read in the same chunk as the
  // answer can miss the call (a known SDK client behaviour, not the fixture's).
  assert.deepEqual(progress, [0, 50, 100].slice(0, Math.max(progress.length, 2)));

  client.setRequestHandler(CreateMessageRequestSchema, (request) => ({
    role: "assistant",
    content: { type: "text", text: `echo ${JSON.stringify(request.params.messages[0].content)}` },
    model: "test-model",
  }));
  assert.deepEqual((await client.callTool({ name: "test_sampling", arguments: { prompt: "hi" } })).content, [
    { type: "text", text: 'LLM response: echo {"type":"text","text":"hi"}' },
  ]);
  client.setRequestHandler(ElicitRequestSchema, () => ({ action: "decline" }));
  assert.deepEqual((await client.callTool({ name: "test_elicitation_sep1330_enums" })).content, [
    { type: "text", text: "Elicitation completed: action=decline, content={}" },
  ]);

  const template = await client.readResource({ uri: "test://template/123/data" });
  const [data] = template.contents;
  assert("text" in data, "the template resource has text");
  assert.deepEqual(JSON.parse(data.text), { id: "123", templateTest: true, data: "Data for ID: 123" });
  const prompt = await client.getPrompt({
    name: "test_prompt_with_arguments",
    arguments: { arg1: "one", arg2: "two" },
  });
  assert.deepEqual(prompt.messages[0].content, {
    type: "text",
    text: "Prompt with arguments: arg1='one', arg2='two'",
  });
  assert.deepEqual(
    (await client.complete({
      ref: { type: "ref/prompt", name: "test_prompt_with_arguments" },
      argument: { name: "arg1", value: "par" },
    })).completion.values,
    ["paris", "park", "party"],
  );
  assert.deepEqual(fixture.transport.badLines, []);
});
