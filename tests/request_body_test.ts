import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { requestBody, setBodyIdleLimit } from "../src/http/request_body.ts";

const logger = getLogger(["test"]);
const decoder = new TextDecoder();

/** The text of a body read whole; throws for one that was not. */
async function textOf(reading: ReturnType<typeof requestBody>): Promise<string> {
  const bytes = await reading;
  if (!(bytes instanceof Uint8Array)) throw new Error(`not read: ${bytes}`);
  return decoder.decode(bytes);
}

function post(body: BodyInit, headers: Record<string, string> = {}): Request {
  return new Request("http://127.0.0.1/mcp", { method: "POST", body, headers });
}

Deno.test("requestBody: small and large, with a Content-Length or none (HTTP/2 may send none)", async () => {
  const large = "é".repeat(40_000);
  const length = String(new TextEncoder().encode(large).length);
  for (const text of ["{}", large]) {
    // Found by review: without a Content-Length, every body was refused.
    assert.equal(await textOf(requestBody(post(text), logger)), text);
    const stream = new Blob([text]).stream();
    assert.equal(await textOf(requestBody(post(stream), logger)), text);
  }
  assert.equal(await textOf(requestBody(post(large, { "content-length": length }), logger)), large);
});

Deno.test("requestBody: a large body longer or shorter than its Content-Length cannot be read", async () => {
  const large = "x".repeat(100_000);
  assert.equal(await requestBody(post(large, { "content-length": "70000" }), logger), undefined);
  assert.equal(await requestBody(post(large, { "content-length": "150000" }), logger), undefined);
});

/** A body that gives `first` bytes, then `more` pieces of 1,000 bytes `everyMs` apart, then stops (or ends). */
function slowBody(first: number, more: number, everyMs: number, end: boolean): ReadableStream<Uint8Array> {
  let sent = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  return new ReadableStream({
    async pull(controller) {
      if (sent === 0) {
        sent++;
        controller.enqueue(new Uint8Array(first).fill(32));
        return;
      }
      if (sent > more) {
        if (end) controller.close();
        // Else it never gives more: a stalled client.
        return await new Promise(() => {});
      }
      sent++;
      await new Promise((resolve) => timer = setTimeout(resolve, everyMs));
      controller.enqueue(new Uint8Array(1000).fill(32));
    },
    cancel: () => clearTimeout(timer),
  });
}

Deno.test("requestBody: a large body no part of which comes for the idle limit is given up; a slow one that comes is read", async () => {
  const previous = setBodyIdleLimit(150, 25);
  try {
    const length = 70_000 + 8 * 1000;
    const started = Date.now();
    // Found by QA: POSTs that stopped mid-body were held for ever, each with its memory.
    const stalled = await requestBody(
      post(slowBody(70_000, 3, 20, false), { "content-length": String(length) }),
      logger,
    );
    assert.equal(stalled, "stalled");
    assert.ok(Date.now() - started < 1000);
    // Slower in all than the limit, but never idle that long.
    const slow = await requestBody(
      post(slowBody(70_000, 8, 60, true), { "content-length": String(length) }),
      logger,
    );
    assert.ok(slow instanceof Uint8Array && slow.length === length);
  } finally {
    setBodyIdleLimit(previous.limitMs, previous.sweepMs);
  }
});
