import assert from "node:assert/strict";
import { DelayQueue } from "../src/delay_queue.ts";

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("each entry falls due its delay after it was added, in order; deleted ones never", async () => {
  const due: { entry: string; after: number }[] = [];
  const started = Date.now();
  const queue = new DelayQueue<string>(40, (entry) => due.push({ entry, after: Date.now() - started }));
  queue.add("a");
  await delay(15);
  queue.add("b");
  queue.add("c");
  queue.delete("b");
  assert.equal(queue.size, 2);
  await delay(80);
  assert.deepEqual(due.map(({ entry }) => entry), ["a", "c"]);
  // Not before its time: "c" was added 15 ms after "a", so the one timer was armed again for it.
  assert.ok(due[0].after >= 38, `a after ${due[0].after} ms`);
  assert.ok(due[1].after >= 53, `c after ${due[1].after} ms`);
  assert.equal(queue.size, 0);
});

Deno.test("adding an entry again starts its delay again", async () => {
  const due: string[] = [];
  const queue = new DelayQueue<string>(40, (entry) => due.push(entry));
  queue.add("a");
  await delay(25);
  queue.add("a");
  await delay(25);
  assert.deepEqual(due, []);
  await delay(40);
  assert.deepEqual(due, ["a"]);
});

Deno.test("clear forgets every entry and leaves no timer running", async () => {
  const due: string[] = [];
  const queue = new DelayQueue<string>(20, (entry) => due.push(entry));
  queue.add("a");
  queue.add("b");
  queue.clear();
  assert.equal(queue.size, 0);
  await delay(40);
  assert.deepEqual(due, []);
  // The op sanitizer fails this test if a timer were still armed.
});

Deno.test("an entry added while others fall due gets its own full delay, on one timer", async () => {
  const due: string[] = [];
  const queue: DelayQueue<string> = new DelayQueue<string>(30, (entry) => {
    due.push(entry);
    if (entry === "a") {
      // What a handler may do: drop everything, then start something new.
      queue.clear();
      queue.add("later");
    }
  });
  queue.add("a");
  queue.add("b");
  await delay(45);
  assert.deepEqual(due, ["a"]);
  await delay(40);
  assert.deepEqual(due, ["a", "later"]);
});
