/**
 * The order-keeping structures of client mode's relay: places done in any order, and pending places.
 */

import assert from "node:assert/strict";
import { PlacesDone, PlacesPending } from "../src/client/message_places.ts";
import { settlesWithin } from "./helpers/proxy_process.ts";

Deno.test("PlacesDone: a place waits until every place before it is done, in whatever order", async () => {
  const places = new PlacesDone(5000);
  assert.ok(places.allBefore(1));
  const third = places.before(3);
  let settled = false;
  third.then(() => settled = true);
  places.done(2);
  await Promise.resolve();
  assert.equal(settled, false, "1 is not done yet");
  assert.ok(!places.allBefore(3));
  places.done(1);
  assert.ok(await settlesWithin(third, 100));
  assert.ok(places.allBefore(3));
  // Done twice, or below the mark: nothing changes.
  places.done(1);
  places.done(2);
  assert.ok(places.allBefore(3) && !places.allBefore(4));
  places.close();
});

Deno.test("PlacesDone: a wait ends after its longest time, and at close", async () => {
  const places = new PlacesDone(50);
  const started = Date.now();
  await places.before(5);
  assert.ok(Date.now() - started >= 40);
  const waiting = places.before(7);
  places.close();
  assert.ok(await settlesWithin(waiting, 100));
  assert.ok(places.allBefore(1000), "closed: nothing waits any more");
});

Deno.test("PlacesPending: a place waits while one before it is pending, whatever the order they leave in", async () => {
  const pending = new PlacesPending();
  for (const place of [5, 2, 9]) pending.add(place);
  assert.ok(pending.anyBefore(3) && !pending.anyBefore(2));
  const at6 = pending.before(6);
  const at3 = pending.before(3);
  const at10 = pending.before(10);
  pending.delete(5);
  assert.ok(!(await settlesWithin(at3, 20)), "2 is still pending");
  pending.delete(2);
  assert.ok(await settlesWithin(at3, 100));
  assert.ok(await settlesWithin(at6, 100));
  assert.ok(!(await settlesWithin(at10, 20)), "9 is still pending");
  // Added again after it left: pending again.
  pending.add(2);
  assert.ok(pending.anyBefore(3));
  pending.clear();
  assert.ok(await settlesWithin(at10, 100));
  assert.equal(pending.size, 0);
  assert.ok(!pending.anyBefore(Infinity));
});

Deno.test("PlacesPending: thousands leaving in order cost little each", () => {
  const pending = new PlacesPending();
  const count = 50_000;
  for (let place = 1; place <= count; place++) pending.add(place);
  for (let place = 1; place <= count; place++) {
    assert.equal(pending.anyBefore(place + 1), true);
    pending.delete(place);
  }
  assert.equal(pending.size, 0);
});
