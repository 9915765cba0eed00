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
