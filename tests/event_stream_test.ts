import assert from "node:assert/strict";
import { EventStream, KEEP_ALIVE_MS } from "../src/http/event_stream.ts";

async function readSome(reader: ReadableStreamDefaultReader<string>, until: RegExp): Promise<string> {
  let text = "";
  while (!until.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  return text;
}

Deno.test("EventStream: events are framed as SSE and idle streams get keep-alive comments", async () => {
  assert.equal(KEEP_ALIVE_MS, 15_000);
  let closed = 0;
  const stream = new EventStream({ keepAliveMs: 20, onClose: () => closed++ });
  const reader = stream.body.pipeThrough(new TextDecoderStream()).getReader();
  stream.send("endpoint", "/messages/?session_id=abc");
  const first = await readSome(reader, /\n\n/);
  assert.equal(first, "event: endpoint\ndata: /messages/?session_id=abc\n\n");
  const ping = await readSome(reader, /\n\n/);
  assert.match(ping, /^: ping - \d{4}-\d\d-\d\dT[\d:.]+Z\n\n$/);
  stream.close();
  stream.send("message", "{}");
  assert.equal((await reader.read()).done, true);
  assert.equal(closed, 1);
});

Deno.test("EventStream: a client that goes away closes the stream once", async () => {
  let closed = 0;
  const stream = new EventStream({ onClose: () => closed++ });
  await stream.body.cancel();
  assert.equal(stream.closed, true);
  stream.close();
  assert.equal(closed, 1);
});
