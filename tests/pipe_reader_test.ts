import assert from "node:assert/strict";
import { pipeReader } from "../cgi/pipe_reader.ts";

const text = (bytes: Uint8Array | undefined) => new TextDecoder().decode(bytes);

/** A real child whose stdout says `script` (sh). */
function child(script: string): Deno.ChildProcess {
  return new Deno.Command("sh", {
    args: ["-c", script],
    stdout: "piped",
    stderr: "null",
  }).spawn();
}

Deno.test("pipeReader() hands out copies that stay intact after later reads", async () => {
  const proc = child("printf abc; sleep 0.2; printf def");
  const reader = pipeReader(proc.stdout);
  const first = await reader.read();
  const second = await reader.read();
  assert.equal(text(first.value), "abc");
  assert.equal(text(second.value), "def");
  // Exactly the bytes read, not a view of a larger buffer.
  assert.equal(first.value?.buffer.byteLength, 3);
  assert.equal((await reader.read()).done, true);
  await proc.status;
});

Deno.test("pipeReader() without copies reads every chunk into the same reused buffer", async () => {
  const proc = child("printf abc; sleep 0.2; printf def");
  const reader = pipeReader(proc.stdout, { copy: false, initialBytes: 64 });
  const first = await reader.read();
  assert.equal(text(first.value), "abc");
  assert.equal(first.value?.buffer.byteLength, 64);
  const second = await reader.read();
  assert.equal(text(second.value), "def");
  // The first view's buffer went into the second read (transferred).
  assert.equal(first.value?.buffer.byteLength, 0);
  assert.equal((await reader.read()).done, true);
  await proc.status;
});

Deno.test("pipeReader() grows its buffer while reads fill it, never past maxBytes", async () => {
  const proc = child("head -c 300000 /dev/zero");
  const reader = pipeReader(proc.stdout, {
    initialBytes: 1024,
    maxBytes: 8192,
  });
  let total = 0;
  let largest = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    largest = Math.max(largest, value.byteLength);
  }
  assert.equal(total, 300000);
  assert.ok(largest > 1024 && largest <= 8192, `${largest}`);
  await proc.status;
});

Deno.test("pipeReader() reads a stream that is not a byte stream chunk by chunk", async () => {
  const chunks = [new Uint8Array([1, 2]), new Uint8Array([3])];
  const reader = pipeReader(ReadableStream.from(chunks));
  assert.deepEqual((await reader.read()).value, chunks[0]);
  assert.deepEqual((await reader.read()).value, chunks[1]);
  assert.equal((await reader.read()).done, true);
});

Deno.test("pipeReader() cancel reaches the child's pipe", async () => {
  const proc = child("yes");
  const reader = pipeReader(proc.stdout);
  assert.ok(((await reader.read()).value?.byteLength ?? 0) > 0);
  await reader.cancel();
  // `yes` dies of SIGPIPE once nobody reads its pipe.
  const status = await proc.status;
  assert.equal(status.success, false);
});
