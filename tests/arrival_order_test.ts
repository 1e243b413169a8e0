import assert from "node:assert/strict";
import { ArrivalOrder, waitsForEarlierPosts } from "../src/http/arrival_order.ts";

const settled = async (promise: Promise<void> | undefined): Promise<boolean> => {
  if (promise === undefined) return true;
  let done = false;
  promise.then(() => done = true);
  await new Promise((resolve) => setTimeout(resolve, 0));
  return done;
};

Deno.test("a POST waits only for those that arrived before it and have not handed over", async () => {
  const order = new ArrivalOrder();
  const first = order.arrive();
  const second = order.arrive();
  assert.equal(order.after(first), undefined, "nothing came before the first");
  const waiting = order.after(second);
  assert.notEqual(waiting, undefined);
  assert.equal(await settled(waiting), false);
  order.handedOver(first);
  assert.equal(await settled(waiting), true);
  order.handedOver(second);
  // One arriving later waits for nothing: the earlier ones are done.
  const third = order.arrive();
  assert.equal(order.after(third), undefined);
  order.handedOver(third);
});

Deno.test("waiters go on oldest first, each once those before it have handed over", async () => {
  const order = new ArrivalOrder();
  const call = order.arrive();
  const a = order.arrive();
  const b = order.arrive();
  const went: string[] = [];
  // b asks first, a second: they still go in the order they arrived.
  const waitB = order.after(b)!.then(() => went.push("b"));
  const waitA = order.after(a)!.then(() => {
    went.push("a");
    order.handedOver(a);
  });
  order.handedOver(call);
  await Promise.all([waitA, waitB]);
  assert.deepEqual(went, ["a", "b"]);
  order.handedOver(b);
});

Deno.test("a ticket handed over out of turn lets go only the waiters nothing else holds back", async () => {
  const order = new ArrivalOrder();
  const slow = order.arrive();
  const quick = order.arrive();
  const late = order.arrive();
  const waiting = order.after(late);
  order.handedOver(quick);
  assert.equal(await settled(waiting), false, "the slow one is still coming");
  order.handedOver(slow);
  order.handedOver(slow); // Twice: no harm.
  assert.equal(await settled(waiting), true);
  order.handedOver(late);
});

Deno.test("a POST stalled mid-body is waited for once, up to the limit; the session's close ends every wait", async () => {
  const order = new ArrivalOrder();
  const stuck = order.arrive();
  const a = order.arrive();
  const b = order.arrive();
  const started = performance.now();
  const went: string[] = [];
  const waitB = order.after(b, 30)!.then(() => went.push("b"));
  const waitA = order.after(a, 60)!.then(() => {
    went.push("a");
    order.handedOver(a);
  });
  await Promise.all([waitA, waitB]);
  assert.ok(performance.now() - started >= 25, "they waited about the first limit");
  assert.deepEqual(went, ["a", "b"], "still in the order they came");
  order.handedOver(b);
  // Given up: a later one does not wait for it again (found by review: 10 s each).
  const later = order.arrive();
  assert.equal(order.after(later), undefined);
  order.handedOver(later);
  order.handedOver(stuck); // Its body came at last: no harm.

  const blocking = order.arrive();
  const closing = order.after(order.arrive());
  order.close();
  assert.equal(await settled(closing), true);
  assert.equal(order.after(order.arrive()), undefined, "closed: nobody waits");
  order.handedOver(blocking);
});

Deno.test("waitsForEarlierPosts: a POST with a notification, in a batch with requests too", () => {
  const notification = {
    jsonrpc: "2.0" as const,
    method: "notifications/cancelled",
    params: { requestId: 1 },
  };
  const request = { jsonrpc: "2.0" as const, id: 2, method: "ping" };
  const answer = { jsonrpc: "2.0" as const, id: 3, result: {} };
  assert.equal(waitsForEarlierPosts([notification]), true);
  assert.equal(waitsForEarlierPosts([answer, notification]), true);
  assert.equal(waitsForEarlierPosts([answer]), false, "a client's answer names no request of its");
  assert.equal(waitsForEarlierPosts([request]), false, "a request alone never waits");
  assert.equal(waitsForEarlierPosts([request, notification]), true, "found by QA: a batch's cancellation");
});
