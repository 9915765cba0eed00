import assert from "node:assert/strict";
import { createBackendBuffer, sharedBackend } from "../cli/shared_backends.ts";

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

Deno.test("sharedBackend() fairShare() is every place until another isolate waits, then an even share", () => {
  const buffer = createBackendBuffer(3);
  const [a, b, c] = [0, 1, 2].map((i) => sharedBackend(buffer, i));
  assert.equal(a!.fairShare!(4), Infinity);
  const waiting = new AbortController();
  b!.hold!(waiting.signal);
  assert.equal(a!.fairShare!(4), 2, "4 places over 3 isolates, rounded up");
  assert.equal(c!.fairShare!(4), 2);
  assert.equal(b!.fairShare!(4), Infinity, "its own wait does not limit b");
  waiting.abort();
  assert.equal(a!.fairShare!(4), Infinity, "no one waits once the hold ends");
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
