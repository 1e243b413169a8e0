import assert from "node:assert/strict";
import { EventStream, KEEP_ALIVE_MS } from "../src/http/event_stream.ts";

/** The next chunk of `reader`'s stream, as text. */
async function nextChunk(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<string> {
  return new TextDecoder().decode((await reader.read()).value);
}

/** A message event of `data`, as written. */
function event(data: string): string {
  return `event: message\ndata: ${data}\n\n`;
}

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

Deno.test("EventStream: an answer goes a turn after the progress before it; progress goes ahead of answers waiting", async () => {
  const stream = new EventStream();
  const reader = stream.body.getReader();
  const chunk = () => nextChunk(reader);
  // Found by QA: the SDK's SSE client, given a progress notification and its call's answer in one chunk,
  // handled the answer first and dropped the progress.
  stream.send("message", "p1", undefined, "progress");
  stream.send("message", "n1");
  stream.send("message", "a1", undefined, "answer");
  stream.send("message", "n2");
  stream.send("message", "p2", undefined, "progress");
  stream.send("message", "a2", undefined, "answer");
  assert.equal(await chunk(), event("p1") + event("n1") + event("p2"));
  assert.equal(await chunk(), event("a1") + event("n2") + event("a2"));
  // Answers and other notifications alone go together, in order.
  stream.send("message", "a3", undefined, "answer");
  stream.send("message", "n3");
  stream.send("message", "a4", undefined, "answer");
  stream.send("message", "p3", undefined, "progress");
  assert.equal(await chunk(), event("a3") + event("n3") + event("a4") + event("p3"));
  // What waits for a later turn goes out when the stream closes.
  stream.send("message", "p4", undefined, "progress");
  stream.send("message", "a5", undefined, "answer");
  stream.close();
  let rest = "";
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    rest += new TextDecoder().decode(read.value);
  }
  assert.equal(rest, event("p4") + event("a5"));
});

Deno.test("EventStream: many calls with progress take two chunks; events held behind one sent in pieces keep their kinds", async () => {
  const stream = new EventStream();
  const reader = stream.body.getReader();
  const chunk = () => nextChunk(reader);
  // Found by review: a chunk for each answer fell ever further behind; merged past a few, progress was lost.
  let progress = "", answers = "";
  for (let i = 0; i < 40; i++) {
    stream.send("message", `p${i}`, undefined, "progress");
    stream.send("message", `a${i}`, undefined, "answer");
    progress += event(`p${i}`);
    answers += event(`a${i}`);
  }
  assert.equal(await chunk(), progress);
  assert.equal(await chunk(), answers);

  const pieces = stream.sendInPieces("message", "answer");
  pieces.write(new TextEncoder().encode("big"));
  assert.equal(await chunk(), "event: message\ndata: big");
  // Found by review: held together, then a progress notification and the answer after it went in one chunk.
  stream.send("message", "p", undefined, "progress");
  stream.send("message", "a", undefined, "answer");
  pieces.write(new TextEncoder().encode("ger"));
  pieces.end();
  assert.equal(await chunk(), "ger\n\n" + event("p"));
  assert.equal(await chunk(), event("a"));
  stream.close();
  assert.equal((await reader.read()).done, true);
});

Deno.test("EventStream: an answer after progress waits a little while what went before it is not taken", async () => {
  const stream = new EventStream();
  const reader = stream.body.getReader();
  stream.send("message", "p", undefined, "progress");
  stream.send("message", "a", undefined, "answer");
  // Not read for a while (a large answer going out to a slow socket): the answer waits some turns, then
  // goes anyway (found by review: the two went out together behind a large answer).
  await new Promise((resolve) => setTimeout(resolve, 150));
  assert.equal(await nextChunk(reader), event("p"));
  assert.equal(await nextChunk(reader), event("a"));
  stream.close();
  assert.equal((await reader.read()).done, true);
});
