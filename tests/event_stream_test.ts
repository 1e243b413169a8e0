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

Deno.test("EventStream: an answer goes a turn after the notifications before it; the rest of a turn as one chunk", async () => {
  const stream = new EventStream();
  const reader = stream.body.getReader();
  const decoder = new TextDecoder();
  const chunk = async () => decoder.decode((await reader.read()).value);
  // Found by QA: the SDK's SSE client, given a progress notification and its call's answer in one chunk,
  // handled the answer first and dropped the progress.
  stream.send("message", "p1", undefined, "notification");
  stream.send("message", "p2", undefined, "notification");
  stream.send("message", "a1", undefined, "answer");
  stream.send("message", "a2", undefined, "answer");
  stream.send("message", "p3", undefined, "notification");
  stream.send("message", "a3", undefined, "answer");
  assert.equal(await chunk(), "event: message\ndata: p1\n\nevent: message\ndata: p2\n\n");
  assert.equal(
    await chunk(),
    "event: message\ndata: a1\n\nevent: message\ndata: a2\n\nevent: message\ndata: p3\n\n",
  );
  assert.equal(await chunk(), "event: message\ndata: a3\n\n");
  // Answers alone, or before a notification, go together.
  stream.send("message", "a4", undefined, "answer");
  stream.send("message", "a5", undefined, "answer");
  stream.send("message", "p4", undefined, "notification");
  assert.equal(
    await chunk(),
    "event: message\ndata: a4\n\nevent: message\ndata: a5\n\nevent: message\ndata: p4\n\n",
  );
  // What waits for a later turn goes out when the stream closes.
  stream.send("message", "p5", undefined, "notification");
  stream.send("message", "a6", undefined, "answer");
  stream.close();
  let rest = "";
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    rest += decoder.decode(read.value);
  }
  assert.equal(rest, "event: message\ndata: p5\n\nevent: message\ndata: a6\n\n");
});

Deno.test("EventStream: events held behind one sent in pieces keep what they carry; past 4 batches, answers wait no more", async () => {
  const stream = new EventStream();
  const reader = stream.body.getReader();
  const decoder = new TextDecoder();
  const chunk = async () => decoder.decode((await reader.read()).value);
  const pieces = stream.sendInPieces("message", "answer");
  pieces.write(new TextEncoder().encode("big"));
  assert.equal(await chunk(), "event: message\ndata: big");
  // Found by review: held together, then a notification and the answer after it went in one chunk.
  stream.send("message", "p1", undefined, "notification");
  stream.send("message", "a1", undefined, "answer");
  pieces.write(new TextEncoder().encode("ger"));
  pieces.end();
  assert.equal(await chunk(), "ger\n\nevent: message\ndata: p1\n\n");
  assert.equal(await chunk(), "event: message\ndata: a1\n\n");

  // A turn with many notification and answer pairs: 4 chunks, the last with the rest, all in order.
  let sent = "";
  for (let i = 0; i < 40; i++) {
    stream.send("message", `p${i}`, undefined, "notification");
    stream.send("message", `a${i}`, undefined, "answer");
    sent += `event: message\ndata: p${i}\n\nevent: message\ndata: a${i}\n\n`;
  }
  const chunks: string[] = [];
  while (chunks.join("") !== sent) chunks.push(await chunk());
  assert.equal(chunks.length, 4);
  stream.close();
  assert.equal((await reader.read()).done, true);
});
