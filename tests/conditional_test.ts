import assert from "node:assert/strict";
import { createHandler } from "../mod.ts";
import { serveFile } from "../static/mod.ts";
import { testdata } from "./_helpers/fs.ts";

const handler = createHandler({ root: testdata("www") });

async function req(
  path: string,
  headers: Record<string, string> = {},
  method = "GET",
) {
  return await handler(
    new Request(`http://localhost${path}`, { method, headers }),
  );
}

async function validators() {
  const res = await req("/hello.txt");
  await res.body?.cancel();
  return {
    etag: res.headers.get("etag")!,
    lastModified: res.headers.get("last-modified")!,
  };
}

Deno.test("serveFile() answers 304 for a matching If-None-Match, lists, * and weak tags", async () => {
  const { etag } = await validators();
  for (const value of [etag, `"zzz", ${etag}`, "*", `W/${etag}`]) {
    const res = await req("/hello.txt", { "if-none-match": value });
    assert.equal(res.status, 304, value);
    assert.equal(res.headers.get("etag"), etag);
    assert.equal(await res.text(), "");
  }
});

Deno.test("serveFile() answers 304 with the validators only, without Accept-Ranges (as nginx)", async () => {
  const { etag, lastModified } = await validators();
  // Twice: the first 304 is made, the second cloned from it.
  for (const round of [1, 2]) {
    const res = await req("/hello.txt", { "if-none-match": etag });
    assert.equal(res.status, 304);
    assert.equal(res.headers.get("etag"), etag, `round ${round}`);
    assert.equal(res.headers.get("last-modified"), lastModified);
    assert.equal(res.headers.get("accept-ranges"), null);
    assert.equal(res.headers.get("content-type"), null);
    assert.equal(res.headers.get("content-length"), null);
  }
  // serveFile() itself (what serveStatic() streams: larger files).
  const path = testdata("www", "hello.txt");
  const res = await serveFile(
    new Request("http://localhost/", { headers: { "if-none-match": etag } }),
    path,
    await Deno.stat(path),
  );
  assert.equal(res.status, 304);
  assert.equal(res.headers.get("etag"), etag);
  assert.equal(res.headers.get("last-modified"), lastModified);
  assert.equal(res.headers.get("accept-ranges"), null);
});

Deno.test("serveFile() answers 304 to HEAD with a matching If-None-Match", async () => {
  const { etag } = await validators();
  const res = await req("/hello.txt", { "if-none-match": etag }, "HEAD");
  assert.equal(res.status, 304);
});

Deno.test("serveFile() answers 200 for a non-matching If-None-Match even when If-Modified-Since matches", async () => {
  const { lastModified } = await validators();
  const res = await req("/hello.txt", {
    "if-none-match": '"other"',
    "if-modified-since": lastModified,
  });
  assert.equal(res.status, 200);
  await res.body?.cancel();
});

Deno.test("serveFile() uses If-Modified-Since when there is no If-None-Match", async () => {
  const { lastModified } = await validators();
  const same = await req("/hello.txt", { "if-modified-since": lastModified });
  assert.equal(same.status, 304);
  const older = await req("/hello.txt", {
    "if-modified-since": new Date(0).toUTCString(),
  });
  assert.equal(older.status, 200);
  await older.body?.cancel();
  const invalid = await req("/hello.txt", {
    "if-modified-since": "not a date",
  });
  assert.equal(invalid.status, 200);
  await invalid.body?.cancel();
});

Deno.test("serveFile() answers 412 when If-Match or If-Unmodified-Since fail", async () => {
  const { etag, lastModified } = await validators();
  const bad = await req("/hello.txt", { "if-match": '"other"' });
  assert.equal(bad.status, 412);
  await bad.body?.cancel();
  const weak = await req("/hello.txt", { "if-match": `W/${etag}` });
  assert.equal(weak.status, 412, "If-Match uses strong comparison");
  await weak.body?.cancel();
  const good = await req("/hello.txt", { "if-match": etag });
  assert.equal(good.status, 200);
  await good.body?.cancel();
  const star = await req("/hello.txt", { "if-match": "*" });
  assert.equal(star.status, 200);
  await star.body?.cancel();
  const ius = await req("/hello.txt", {
    "if-unmodified-since": new Date(0).toUTCString(),
  });
  assert.equal(ius.status, 412);
  await ius.body?.cancel();
  const iusOk = await req("/hello.txt", {
    "if-unmodified-since": lastModified,
  });
  assert.equal(iusOk.status, 200);
  await iusOk.body?.cancel();
});

Deno.test("serveFile() honours If-Range only when it names the current file", async () => {
  const { etag, lastModified } = await validators();
  const fresh = await req("/hello.txt", {
    range: "bytes=0-4",
    "if-range": etag,
  });
  assert.equal(fresh.status, 206);
  assert.equal(await fresh.text(), "Hello");
  const byDate = await req("/hello.txt", {
    range: "bytes=0-4",
    "if-range": lastModified,
  });
  assert.equal(byDate.status, 206);
  await byDate.body?.cancel();
  const stale = await req("/hello.txt", {
    range: "bytes=0-4",
    "if-range": '"stale"',
  });
  assert.equal(stale.status, 200);
  assert.equal(await stale.text(), "Hello, world!\n");
  const oldDate = await req("/hello.txt", {
    range: "bytes=0-4",
    "if-range": new Date(0).toUTCString(),
  });
  assert.equal(oldDate.status, 200);
  await oldDate.body?.cancel();
});

Deno.test("checkPreconditions() lets If-Match: * match a representation without an ETag", async () => {
  const { checkPreconditions } = await import("../static/mod.ts");
  const req = new Request("http://x/", { headers: { "if-match": "*" } });
  assert.equal(
    checkPreconditions(req, { etag: undefined, lastModified: new Date() }),
    undefined,
  );
  const named = new Request("http://x/", { headers: { "if-match": '"a"' } });
  assert.equal(
    checkPreconditions(named, { etag: undefined, lastModified: new Date() }),
    412,
  );
});
