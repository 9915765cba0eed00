import assert from "node:assert/strict";
import {
  createBackendBuffer,
  releaseWorkerBackend,
  sharedBackend,
} from "../cli/shared_backends.ts";

Deno.test("sharedBackend() wait() stops counting as waiting when its signal aborts", async () => {
  const buffer = createBackendBuffer(2);
  const a = sharedBackend(buffer, 0);
  const b = sharedBackend(buffer, 1);
  const woken = new AbortController();
  const waited = a.wait(5_000, woken.signal);
  assert.equal(await b.demanded(0), true, "a waits");
  const started = Date.now();
  woken.abort();
  await waited;
  assert.ok(Date.now() - started < 1_000, "the abort ends the wait");
  assert.equal(await b.demanded(0), false, "a no longer counts as waiting");
  // Aborted before it starts: never counted.
  await a.wait(5_000, woken.signal);
  assert.equal(await b.demanded(0), false);
});

Deno.test("sharedBackend() givesWay() only to another isolate's waiting request that holds fewer places", () => {
  const buffer = createBackendBuffer(3);
  const [a, b] = [0, 1].map((i) => sharedBackend(buffer, i));
  assert.ok(a!.tryOpen(4) && a!.tryOpen(4)); // a holds 2 of 4
  assert.equal(a!.givesWay!(false), false, "no one else waits");
  const waiting = new AbortController();
  b!.hold!(waiting.signal); // b waits, holding none
  assert.equal(a!.givesWay!(false), true, "a releases to b");
  assert.equal(a!.givesWay!(true), true, "a opens none while b waits");
  assert.equal(b!.givesWay!(true), false, "b may open");
  assert.ok(b!.tryOpen(4)); // b holds 1, a 2: one apart is fair
  assert.equal(a!.givesWay!(false), false, "a keeps what it releases");
  assert.equal(a!.givesWay!(true), true, "a opens no third before b's next");
  waiting.abort();
  assert.equal(a!.givesWay!(true), false, "no one waits once the hold ends");
});

Deno.test("sharedBackend() givesWay() lets the isolate longest in line open first among equals", () => {
  const buffer = createBackendBuffer(3);
  const [a, b, c] = [0, 1, 2].map((i) => sharedBackend(buffer, i));
  const first = new AbortController();
  const second = new AbortController();
  a!.hold!(first.signal); // a waits first…
  b!.hold!(second.signal); // …then b, both holding none
  assert.equal(b!.givesWay!(true), true, "b opens after a");
  assert.equal(a!.givesWay!(true), false, "a opens first");
  assert.equal(c!.givesWay!(true), true, "c, not waiting, opens after both");
  first.abort(); // a's request took its place
  assert.equal(b!.givesWay!(true), false, "then b");
  second.abort();
});

Deno.test("sharedBackend() hold() counts as waiting until its signal aborts", async () => {
  const buffer = createBackendBuffer(2);
  const a = sharedBackend(buffer, 0);
  const b = sharedBackend(buffer, 1);
  const holding = new AbortController();
  a.hold!(holding.signal);
  assert.equal(await b.demanded(0), true, "a waits between its waits too");
  holding.abort();
  assert.equal(await b.demanded(0), false);
  a.hold!(holding.signal); // already aborted: never counted
  assert.equal(await b.demanded(0), false);
});

Deno.test("sharedBackend() wait() with `since` returns at once after a change it would have slept through", async () => {
  const buffer = createBackendBuffer(2);
  const a = sharedBackend(buffer, 0);
  const b = sharedBackend(buffer, 1);
  assert.ok(a.tryOpen(1));
  const seen = b.changes!(); // b looks for room: none…
  a.closed(); // …a place comes free before b starts to wait
  const started = Date.now();
  await b.wait(5_000, undefined, seen);
  assert.ok(Date.now() - started < 1_000, "the wait ended at once");
});

Deno.test("sharedBackend() wakes the others when an isolate leaves the line or a waiting worker dies", async () => {
  const buffer = createBackendBuffer(3);
  const [a, b] = [0, 1].map((i) => sharedBackend(buffer, i));
  const before = a!.changes!();
  const holding = new AbortController();
  b!.hold!(holding.signal);
  assert.equal(a!.changes!(), before, "joining the line changes nothing");
  holding.abort(); // b's last waiting request is done
  assert.notEqual(a!.changes!(), before, "leaving it wakes those who deferred");
  // A worker that dies while one of its requests waits.
  const gone = sharedBackend(buffer, 2);
  gone.hold!(new AbortController().signal);
  const woken = a!.wait(5_000, undefined, a!.changes!());
  const started = Date.now();
  releaseWorkerBackend(buffer, 2);
  await woken;
  assert.ok(Date.now() - started < 1_000, "its death woke the waiter");
  assert.equal(await a!.demanded(0), false, "and it no longer counts");
});
