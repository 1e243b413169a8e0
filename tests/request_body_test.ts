import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { requestBody } from "../src/http/request_body.ts";

const logger = getLogger(["test"]);
const decoder = new TextDecoder();

function post(body: BodyInit, headers: Record<string, string> = {}): Request {
  return new Request("http://127.0.0.1/mcp", { method: "POST", body, headers });
}

Deno.test("requestBody: small and large, with a Content-Length or none (HTTP/2 may send none)", async () => {
  const large = "é".repeat(40_000);
  const length = String(new TextEncoder().encode(large).length);
  for (const text of ["{}", large]) {
    // Found by review: without a Content-Length, every body was refused.
    assert.equal(decoder.decode(await requestBody(post(text), logger)), text);
    const stream = new Blob([text]).stream();
    assert.equal(decoder.decode(await requestBody(post(stream), logger)), text);
  }
  assert.equal(decoder.decode(await requestBody(post(large, { "content-length": length }), logger)), large);
});

Deno.test("requestBody: a large body longer or shorter than its Content-Length cannot be read", async () => {
  const large = "x".repeat(100_000);
  assert.equal(await requestBody(post(large, { "content-length": "70000" }), logger), undefined);
  assert.equal(await requestBody(post(large, { "content-length": "150000" }), logger), undefined);
});
