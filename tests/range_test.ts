import assert from "node:assert/strict";
import { createHandler } from "../mod.ts";
import { testdata } from "./_helpers/fs.ts";

const handler = createHandler({ root: testdata("www") });
const content = await Deno.readTextFile(testdata("www", "range.txt"));

async function range(value: string, path = "/range.txt", method = "GET") {
  return await handler(
    new Request(`http://localhost${path}`, {
      method,
      headers: { range: value },
    }),
  );
}

Deno.test("serveFile() answers a single range with 206 and Content-Range", async () => {
  const res = await range("bytes=0-99");
  assert.equal(res.status, 206);
  assert.equal(res.headers.get("content-range"), "bytes 0-99/1000");
  assert.equal(res.headers.get("content-length"), "100");
  assert.equal(await res.text(), content.slice(0, 100));
});

Deno.test("serveFile() answers suffix, open and clamped ranges", async () => {
  const suffix = await range("bytes=-10");
  assert.equal(suffix.headers.get("content-range"), "bytes 990-999/1000");
  assert.equal(await suffix.text(), content.slice(990));
  const open = await range("bytes=995-");
  assert.equal(open.headers.get("content-range"), "bytes 995-999/1000");
  assert.equal(await open.text(), content.slice(995));
  const clamped = await range("bytes=900-5000");
  assert.equal(clamped.headers.get("content-range"), "bytes 900-999/1000");
  assert.equal(await clamped.text(), content.slice(900));
  const bigSuffix = await range("bytes=-5000");
  assert.equal(bigSuffix.headers.get("content-range"), "bytes 0-999/1000");
  await bigSuffix.body?.cancel();
});

Deno.test("serveFile() answers several ranges as multipart/byteranges", async () => {
  const res = await range("bytes=0-1, 10-12,-2");
  assert.equal(res.status, 206);
  const type = res.headers.get("content-type")!;
  const boundary = /^multipart\/byteranges; boundary=(\S+)$/.exec(type)?.[1];
  assert.ok(boundary);
  const body = await res.text();
  assert.equal(
    new TextEncoder().encode(body).length,
    Number(res.headers.get("content-length")),
  );
  const parts = body.split(`--${boundary}`);
  assert.equal(parts.length, 5); // "", 3 parts, "--\r\n"
  assert.match(
    parts[1]!,
    /Content-Type: text\/plain; charset=UTF-8\r\nContent-Range: bytes 0-1\/1000\r\n\r\n01\r\n$/,
  );
  assert.match(parts[2]!, /Content-Range: bytes 10-12\/1000\r\n\r\n012\r\n$/);
  assert.match(parts[3]!, /Content-Range: bytes 998-999\/1000\r\n\r\n89\r\n$/);
  assert.equal(parts[4], "--\r\n");
});

Deno.test("serveFile() coalesces overlapping ranges", async () => {
  const res = await range("bytes=0-9,5-19");
  assert.equal(res.status, 206);
  assert.equal(res.headers.get("content-range"), "bytes 0-19/1000");
  assert.equal(await res.text(), content.slice(0, 20));
});

Deno.test("serveFile() answers 416 with Content-Range for unsatisfiable ranges", async () => {
  for (
    const value of [
      "bytes=1000-",
      "bytes=5000-6000",
      "bytes=-0",
      "bytes=500-200",
    ]
  ) {
    const res = await range(value);
    assert.equal(res.status, 416, value);
    assert.equal(res.headers.get("content-range"), "bytes */1000");
    await res.body?.cancel();
  }
});

Deno.test("serveFile() ignores malformed ranges and serves the whole file", async () => {
  for (
    const value of [
      "bytes=abc",
      "items=0-1",
      "bytes=",
      "bytes=1",
      "bytes=--1",
      "0-10",
    ]
  ) {
    const res = await range(value);
    assert.equal(res.status, 200, value);
    assert.equal(res.headers.get("content-range"), null);
    assert.equal((await res.text()).length, 1000);
  }
});

Deno.test("serveFile() ignores Range on an empty file and on HEAD", async () => {
  const empty = await range("bytes=0-10", "/empty.txt");
  assert.equal(empty.status, 200);
  assert.equal(await empty.text(), "");
  const head = await range("bytes=0-10", "/range.txt", "HEAD");
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-length"), "1000");
});

Deno.test("serveFile() ignores more than 64 ranges", async () => {
  const many = Array.from({ length: 65 }, (_, i) => `${i * 10}-${i * 10 + 1}`)
    .join(",");
  const res = await range(`bytes=${many}`);
  assert.equal(res.status, 200);
  await res.body?.cancel();
});
