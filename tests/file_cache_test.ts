import assert from "node:assert/strict";
import {
  type ClosableHandler,
  compose,
  type Context,
  createHandler,
  documentRoot,
  type FileCacheOptions,
  type Middleware,
  resolvePath,
  serveStatic,
} from "../mod.ts";
import { tempDir } from "./_helpers/fs.ts";
import { waitFor } from "./_helpers/poll.ts";

/** A handler whose cache only the watcher can invalidate (a 60 s window). */
function cached(root: string, cache: FileCacheOptions = { validMs: 60_000 }) {
  return createHandler({ root, cache });
}

async function text(handler: ClosableHandler, path: string): Promise<string> {
  const res = await handler(new Request(`http://x${path}`));
  const body = await res.text();
  return `${res.status} ${body}`;
}

/** "status length: the distinct byte values" of a GET (short to compare). */
async function summary(
  handler: ClosableHandler,
  path: string,
  headers?: HeadersInit,
): Promise<string> {
  const res = await handler(new Request(`http://x${path}`, { headers }));
  const bytes = new Uint8Array(await res.arrayBuffer());
  return `${res.status} ${bytes.length}: ${[...new Set(bytes)].join()}`;
}

/** `n` KiB of `byte`. */
const kib = (n: number, byte: number) => new Uint8Array(n * 1024).fill(byte);

/** Polls until `path` answers `expected` (the watcher reports asynchronously). */
async function seen(handler: ClosableHandler, path: string, expected: string) {
  let last = "";
  await waitFor(async () => (last = await text(handler, path)) === expected, {
    timeoutMs: 5000,
    message: `${path} to answer "${expected}" (last: "${last}")`,
  });
}

Deno.test("file cache keeps a lookup for its window when nothing reports a change", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/a.txt`, "one");
  await using handler = cached(dir.path, { validMs: 60_000, watch: false });
  assert.equal(await text(handler, "/a.txt"), "200 one");
  assert.match(await text(handler, "/new.txt"), /^404 /, "a miss, cached");
  await Deno.writeTextFile(`${dir.path}/new.txt`, "new");
  await Deno.remove(`${dir.path}/a.txt`);
  const miss = await handler(new Request("http://x/new.txt"));
  assert.equal(miss.status, 404, "still the cached miss within the window");
  await miss.body?.cancel();
  assert.equal(
    await text(handler, "/a.txt"),
    "200 one",
    "a deleted small file is still served from memory within the window",
  );
});

Deno.test("file cache sees a change after its window without a watcher", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/a.txt`, "one");
  await using handler = cached(dir.path, { validMs: 100, watch: false });
  assert.equal(await text(handler, "/a.txt"), "200 one");
  await Deno.writeTextFile(`${dir.path}/a.txt`, "second");
  await seen(handler, "/a.txt", "200 second");
});

Deno.test("file cache with validMs 0 is off: every request looks again", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/a.txt`, "one");
  await using handler = cached(dir.path, { validMs: 0 });
  assert.equal(await text(handler, "/a.txt"), "200 one");
  await Deno.writeTextFile(`${dir.path}/a.txt`, "second");
  assert.equal(await text(handler, "/a.txt"), "200 second");
});

Deno.test("file cache sees a changed file at once through the watcher", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/a.txt`, "one");
  await using handler = cached(dir.path);
  assert.equal(await text(handler, "/a.txt"), "200 one");
  await Deno.writeTextFile(`${dir.path}/a.txt`, "a longer second version");
  await seen(handler, "/a.txt", "200 a longer second version");
});

Deno.test("file cache sees created, deleted and renamed files", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/d`);
  await Deno.writeTextFile(`${dir.path}/d/old.txt`, "old");
  await using handler = cached(dir.path);
  assert.match(await text(handler, "/d/created.txt"), /^404 /);
  assert.equal(await text(handler, "/d/old.txt"), "200 old");
  assert.match(await text(handler, "/d/renamed.txt"), /^404 /);
  await Deno.writeTextFile(`${dir.path}/d/created.txt`, "created");
  await seen(handler, "/d/created.txt", "200 created");
  await Deno.rename(`${dir.path}/d/old.txt`, `${dir.path}/d/renamed.txt`);
  await seen(handler, "/d/renamed.txt", "200 old");
  await waitFor(async () => {
    const res = await handler(new Request("http://x/d/old.txt"));
    await res.body?.cancel();
    return res.status === 404;
  }, { message: "the renamed file's old name to answer 404" });
  await Deno.remove(`${dir.path}/d/created.txt`);
  await waitFor(async () => {
    const res = await handler(new Request("http://x/d/created.txt"));
    await res.body?.cancel();
    return res.status === 404;
  }, { message: "the deleted file to answer 404" });
});

Deno.test("file cache sees a renamed directory and everything below it", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/docs`);
  await Deno.writeTextFile(`${dir.path}/docs/a.txt`, "a");
  await using handler = cached(dir.path);
  assert.equal(await text(handler, "/docs/a.txt"), "200 a");
  await Deno.rename(`${dir.path}/docs`, `${dir.path}/moved`);
  await waitFor(async () => {
    const res = await handler(new Request("http://x/docs/a.txt"));
    await res.body?.cancel();
    return res.status === 404;
  }, { message: "the moved directory's file to answer 404" });
  assert.equal(await text(handler, "/moved/a.txt"), "200 a");
});

Deno.test("file cache sees a symlink swapped to point out of the root at once", async () => {
  await using outside = await tempDir();
  await using dir = await tempDir();
  await Deno.writeTextFile(`${outside.path}/secret.txt`, "SECRET");
  await Deno.writeTextFile(`${dir.path}/inside.txt`, "inside");
  await Deno.symlink(`${dir.path}/inside.txt`, `${dir.path}/link.txt`);
  await using handler = cached(dir.path);
  assert.equal(await text(handler, "/link.txt"), "200 inside");
  await Deno.remove(`${dir.path}/link.txt`);
  await Deno.symlink(`${outside.path}/secret.txt`, `${dir.path}/link.txt`);
  // Deno's watcher does not report a created symlink: a file reached
  // through one is never cached, so the very next request sees the swap.
  const res = await handler(new Request("http://x/link.txt"));
  const body = await res.text();
  assert.ok(!body.includes("SECRET"), "the outside file is never served");
  assert.equal(res.status, 404);
});

Deno.test("file cache drops a file reached through a symlinked directory when its target changes", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/real`);
  await Deno.writeTextFile(`${dir.path}/real/a.txt`, "one");
  await Deno.symlink(`${dir.path}/real`, `${dir.path}/alias`);
  await using handler = cached(dir.path);
  assert.equal(await text(handler, "/alias/a.txt"), "200 one");
  await Deno.writeTextFile(`${dir.path}/real/a.txt`, "second!");
  await seen(handler, "/alias/a.txt", "200 second!");
});

Deno.test("live reload with the file cache never reloads onto stale bytes", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/index.html`, "<body>v1</body>");
  const stopping = new AbortController();
  await using handler = createHandler({
    root: dir.path,
    cache: { validMs: 60_000 },
    liveReload: true,
    signal: stopping.signal,
  });
  assert.match(await text(handler, "/"), /v1/);
  const events = await handler(
    new Request("http://x/__serve/live-reload"),
  );
  const reader = events.body!.pipeThrough(new TextDecoderStream())
    .getReader();
  let received = "";
  while (!received.includes("event: hello")) {
    received += (await reader.read()).value ?? "";
  }
  await Deno.writeTextFile(`${dir.path}/index.html`, "<body>v2 longer</body>");
  while (!received.includes("event: reload")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("event stream ended before a reload");
    received += value;
  }
  assert.match(await text(handler, "/"), /v2 longer/, "the reload sees v2");
  stopping.abort();
  await reader.cancel();
});

Deno.test("file cache keeps small files' bytes within maxBytes, and only those", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/small.txt`, "one");
  await Deno.writeTextFile(`${dir.path}/large.txt`, "0123456789");
  await using handler = cached(dir.path, {
    validMs: 60_000,
    watch: false,
    maxBytes: 4,
  });
  assert.equal(await text(handler, "/small.txt"), "200 one");
  assert.equal(await text(handler, "/large.txt"), "200 0123456789");
  // Same sizes, new bytes: only what the cache holds stays as it was.
  await Deno.writeTextFile(`${dir.path}/small.txt`, "two");
  await Deno.writeTextFile(`${dir.path}/large.txt`, "abcdefghij");
  assert.equal(await text(handler, "/small.txt"), "200 one", "held in memory");
  assert.equal(
    await text(handler, "/large.txt"),
    "200 abcdefghij",
    "over maxBytes: read from disk",
  );
});

Deno.test("file cache sends files above bufferBelow from memory up to maxFileSize, and streams larger ones", async () => {
  await using dir = await tempDir();
  await Deno.writeFile(`${dir.path}/kept.bin`, kib(100, 1));
  await Deno.writeFile(`${dir.path}/streamed.bin`, kib(200, 1));
  await using handler = cached(dir.path, {
    validMs: 60_000,
    watch: false,
    maxFileSize: 150 * 1024,
  });
  const body = (path: string, headers?: HeadersInit) =>
    summary(handler, path, headers);
  assert.equal(await body("/kept.bin"), "200 102400: 1");
  assert.equal(await body("/streamed.bin"), "200 204800: 1");
  // Same sizes, new bytes: only the file within maxFileSize stays as it was.
  await Deno.writeFile(`${dir.path}/kept.bin`, kib(100, 2));
  await Deno.writeFile(`${dir.path}/streamed.bin`, kib(200, 2));
  assert.equal(await body("/kept.bin"), "200 102400: 1", "held in memory");
  assert.equal(
    await body("/streamed.bin"),
    "200 204800: 2",
    "over maxFileSize: streamed from disk",
  );
  // A range of the kept file is still cut from the file.
  assert.equal(await body("/kept.bin", { range: "bytes=0-1" }), "206 2: 2");
});

Deno.test("file cache admits bytes while they fit maxBytes, without evicting what it holds, and counts concurrent first reads once", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/small.txt`, "one");
  await Deno.writeFile(`${dir.path}/a.bin`, kib(100, 1));
  await Deno.writeFile(`${dir.path}/b.bin`, kib(100, 1));
  await using handler = cached(dir.path, {
    validMs: 60_000,
    watch: false,
    maxBytes: 150 * 1024,
  });
  const body = (path: string) => summary(handler, path);
  assert.equal(await text(handler, "/small.txt"), "200 one");
  // A HEAD makes the lookup without reading the file; then eight first
  // reads of that lookup at once: one read, its bytes counted once
  // (counted eight times, they would overflow maxBytes and push out what
  // is held).
  const head = await handler(new Request("http://x/a.bin", { method: "HEAD" }));
  assert.equal(head.headers.get("content-length"), "102400");
  const first = await Promise.all(
    Array.from({ length: 8 }, () => body("/a.bin")),
  );
  assert.deepEqual(new Set(first), new Set(["200 102400: 1"]));
  // b.bin does not fit what is left: streamed, and nothing held goes.
  assert.equal(await body("/b.bin"), "200 102400: 1");
  await Deno.writeTextFile(`${dir.path}/small.txt`, "two");
  await Deno.writeFile(`${dir.path}/a.bin`, kib(100, 2));
  await Deno.writeFile(`${dir.path}/b.bin`, kib(100, 2));
  assert.equal(await text(handler, "/small.txt"), "200 one", "still held");
  assert.equal(await body("/a.bin"), "200 102400: 1", "still held");
  assert.equal(await body("/b.bin"), "200 102400: 2", "not admitted");
});

Deno.test("file cache: lookups that miss together share one lookup (one entry, one read)", async () => {
  await using dir = await tempDir();
  await Deno.writeFile(`${dir.path}/a.bin`, kib(100, 1));
  await using root = documentRoot(await Deno.realPath(dir.path), {
    cache: { validMs: 60_000, watch: false },
  });
  const found = await Promise.all(
    Array.from({ length: 8 }, () => root.find(["a.bin"])),
  );
  assert.ok(found[0], "found");
  assert.ok(found.every((f) => f === found[0]), "one lookup for all");
  const reads = Array.from({ length: 8 }, () => root.read(found[0]!));
  assert.ok(reads.every((r) => r === reads[0]), "one read for all");
  assert.equal((await reads[0]!).byteLength, 102400);
  assert.equal(root.keeps?.(found[0]!), true);
});

Deno.test("file cache does not keep the bytes of a file changed between its lookup and its first read", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/a.bin`;
  await Deno.writeFile(path, kib(100, 1));
  await using handler = cached(dir.path, { validMs: 60_000, watch: false });
  // HEAD makes the lookup (stat) without reading the file.
  const head = await handler(new Request("http://x/a.bin", { method: "HEAD" }));
  assert.equal(head.status, 200);
  const change = async (byte: number, mtime: number) => {
    await Deno.writeFile(path, kib(100, byte));
    await Deno.utime(path, mtime, mtime);
  };
  await change(2, 2_000_000);
  // Within the window the lookup is trusted (as with any stat-then-read
  // server), but bytes that are not the looked-up file are not kept:
  assert.equal(await summary(handler, "/a.bin"), "200 102400: 2");
  await change(3, 3_000_000);
  assert.equal(await summary(handler, "/a.bin"), "200 102400: 3");
});

Deno.test("file cache serves new bytes of a small file once the watcher reports it", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/a.txt`, "one");
  await using handler = cached(dir.path);
  assert.equal(await text(handler, "/a.txt"), "200 one");
  assert.equal(await text(handler, "/a.txt"), "200 one", "now from memory");
  await Deno.writeTextFile(`${dir.path}/a.txt`, "two");
  await seen(handler, "/a.txt", "200 two");
});

Deno.test("file cache: a changed file gets new validators and length, and its old ETag no longer answers 304", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/a.txt`;
  await Deno.writeTextFile(file, "one");
  await Deno.utime(file, 1_000_000, 1_000_000);
  await using handler = cached(dir.path);
  const first = await handler(new Request("http://x/a.txt"));
  await first.body?.cancel();
  const etag = first.headers.get("etag")!;
  assert.equal(first.headers.get("content-length"), "3");
  // Answered from what was prepared for this lookup: 304, HEAD, 200 alike.
  const again = await handler(
    new Request("http://x/a.txt", { headers: { "if-none-match": etag } }),
  );
  assert.equal(again.status, 304);
  assert.equal(again.headers.get("etag"), etag);
  const head = await handler(new Request("http://x/a.txt", { method: "HEAD" }));
  assert.equal(head.headers.get("content-length"), "3");
  assert.equal(await head.text(), "");
  await Deno.writeTextFile(file, "a second, longer version");
  await seen(handler, "/a.txt", "200 a second, longer version");
  const changed = await handler(
    new Request("http://x/a.txt", { headers: { "if-none-match": etag } }),
  );
  assert.equal(changed.status, 200, "the old ETag is not the file's any more");
  assert.notEqual(changed.headers.get("etag"), etag);
  assert.equal(changed.headers.get("content-length"), "24");
  assert.notEqual(
    changed.headers.get("last-modified"),
    first.headers.get("last-modified"),
  );
  assert.equal(await changed.text(), "a second, longer version");
});

Deno.test("file cache keeps a rendered listing until its directory changes", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/d`);
  await Deno.writeTextFile(`${dir.path}/d/a.txt`, "a");
  const listing = (cache: FileCacheOptions) =>
    createHandler({ root: dir.path, cache, serveStatic: { dirListing: true } });
  await using frozen = listing({ validMs: 60_000, watch: false });
  await using watched = listing({ validMs: 60_000 });
  const names = async (handler: ClosableHandler, accept = "application/json") =>
    (await (await handler(new Request("http://x/d/", { headers: { accept } })))
      .json()).map((e: { name: string }) => e.name).join(",");
  assert.equal(await names(frozen), "a.txt");
  assert.equal(await names(watched), "a.txt");
  await Deno.writeTextFile(`${dir.path}/d/b.txt`, "b");
  assert.equal(await names(frozen), "a.txt", "kept within the window");
  let last = "";
  await waitFor(async () => (last = await names(watched)) === "a.txt,b.txt", {
    message: `the listing to show b.txt (last: ${last})`,
  });
  const html = await (await watched(new Request("http://x/d/"))).text();
  assert.match(html, /b\.txt/, "the HTML variant is fresh too");
  await Deno.remove(`${dir.path}/d/a.txt`);
  await waitFor(async () => (last = await names(watched)) === "b.txt", {
    message: `the listing to drop a.txt (last: ${last})`,
  });
});

/** The bytes a response holds itself (not the copy JavaScript readers get). */
function held(res: Response): Promise<Uint8Array> {
  return Response.prototype.bytes.call(res);
}

Deno.test("file cache: responses of a kept file share one copy of its bytes; each has headers of its own, and readers get copies", async () => {
  await using dir = await tempDir();
  await Deno.writeFile(`${dir.path}/a.bin`, kib(100, 1));
  await using handler = cached(dir.path, { validMs: 60_000, watch: false });
  const get = (headers?: HeadersInit) =>
    handler(new Request("http://x/a.bin", { headers }));
  const first = await get();
  first.headers.set("x-first", "1");
  const second = await get();
  assert.equal(second.headers.get("x-first"), null, "not seen by the next");
  assert.equal(second.headers.get("content-length"), "102400");
  // Deno copies the bytes into every new Response; one made once and
  // cloned per request shares them.
  const bodies = [
    await held(first),
    await held(second),
    await held(await get()),
  ];
  assert.equal(bodies[0]!.byteLength, 102400);
  assert.ok(bodies.every((b) => b === bodies[0]), "one copy for all");
  // What JavaScript reads is its own: writing into it changes nothing else.
  new Uint8Array(await (await get()).arrayBuffer()).fill(7);
  (await (await get()).bytes()).fill(7);
  const reader = (await get()).body!.getReader();
  (await reader.read()).value!.fill(7);
  await reader.cancel();
  // A body cancelled unread is used up, as any response's.
  const cancelled = await get();
  await cancelled.body!.cancel();
  assert.equal(cancelled.bodyUsed, true);
  assert.equal(await summary(handler, "/a.bin"), "200 102400: 1");
  assert.deepEqual(new Set(bodies[0]), new Set([1]));
  // 304 and HEAD answers are made once too; each still its own.
  const etag = second.headers.get("etag")!;
  const notModified = await get({ "if-none-match": etag });
  assert.equal(notModified.status, 304);
  notModified.headers.set("x-304", "1");
  const again = await get({ "if-none-match": etag });
  assert.equal(again.status, 304);
  assert.equal(again.headers.get("x-304"), null);
  assert.equal(again.headers.get("etag"), etag);
});

Deno.test("file cache keeps the copy of a kept file's bytes that its responses share (one copy in memory)", async () => {
  await using dir = await tempDir();
  await Deno.writeFile(`${dir.path}/a.bin`, kib(100, 1));
  let seen: Context | undefined;
  const handler = compose([
    resolvePath({ root: dir.path, cache: { validMs: 60_000, watch: false } }),
    (_req, ctx, next) => {
      seen = ctx;
      return next();
    },
    serveStatic(),
  ]);
  const get = () => handler(new Request("http://x/a.bin"));
  const first = await get();
  const kept = await seen!.root!.read(seen!.file!);
  const sent = await held(await get());
  assert.equal(sent.byteLength, 102400);
  assert.ok(kept === sent, "the cache holds the responses' copy");
  await first.body?.cancel();
});

Deno.test("file cache: past its window an unchanged file keeps its lookup and bytes (one stat, no read); a changed one, or one changed just before its lookup, is looked up and read again", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/a.txt`;
  await Deno.writeTextFile(path, "one");
  await using root = documentRoot(await Deno.realPath(dir.path), {
    cache: { validMs: 50, watch: false },
  });
  const pause = (ms = 80) => new Promise((r) => setTimeout(r, ms));
  // Written a moment ago: its times may not have settled (a change in the
  // same clock step would not show), so it is not renewed yet.
  const fresh = await root.find(["a.txt"]);
  await root.read(fresh!);
  await pause();
  const again = await root.find(["a.txt"]);
  assert.ok(again !== fresh, "looked up again while its times settle");
  // Two seconds on, a lookup made then is renewed.
  await pause(2_100);
  await pause(); // the window of the lookup just made
  const first = await root.find(["a.txt"]);
  const bytes = await root.read(first!);
  await pause();
  const renewed = await root.find(["a.txt"]);
  assert.ok(renewed === first, "the same lookup, renewed");
  assert.ok((await root.read(renewed!)) === bytes, "its bytes, not read again");
  // Same size, new bytes, the old mtime put back: only ctime moved.
  const { mtime } = await Deno.stat(path);
  await Deno.writeTextFile(path, "two");
  await Deno.utime(path, mtime!, mtime!);
  assert.equal((await Deno.stat(path)).mtime?.getTime(), mtime!.getTime());
  await pause();
  const changed = await root.find(["a.txt"]);
  assert.ok(changed !== first, "a new lookup");
  assert.equal(new TextDecoder().decode(await root.read(changed!)), "two");
  // A miss stays a miss, and a file that appears is found.
  assert.equal(await root.find(["b.txt"]), undefined);
  await pause();
  assert.equal(await root.find(["b.txt"]), undefined);
  await Deno.writeTextFile(`${dir.path}/b.txt`, "b");
  await pause();
  assert.equal((await root.find(["b.txt"]))?.info.size, 1);
});

Deno.test("file cache: a kept file whose body a middleware only looked at is still sent whole (live reload on a stylesheet, through Deno.serve)", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/a.css`, "body { color: red }\n");
  await using handler = createHandler({
    root: dir.path,
    cache: { validMs: 60_000, watch: false },
    liveReload: true,
  });
  // Live reload looks at `res.body` of every 200 GET, and passes a
  // stylesheet on as it is.
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req, info) => handler(req, info),
  );
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`http://127.0.0.1:${server.addr.port}/a.css`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "body { color: red }\n");
  }
});

Deno.test("file cache: two static servers over one cached root keep one copy of a file's bytes (the second sends copies)", async () => {
  await using dir = await tempDir();
  await Deno.writeFile(`${dir.path}/a.bin`, kib(100, 1));
  let seen: Context | undefined;
  const resolve = resolvePath({
    root: dir.path,
    cache: { validMs: 60_000, watch: false },
  });
  const spy: Middleware = (_req, ctx, next) => {
    seen = ctx;
    return next();
  };
  const first = compose([resolve, spy, serveStatic()]);
  const second = compose([resolve, serveStatic()]);
  const get = (h: typeof first) => h(new Request("http://x/a.bin"));
  const sent: Uint8Array[] = [];
  for (let i = 0; i < 3; i++) {
    sent.push(await held(await get(first)));
    const other = await held(await get(second));
    assert.equal(other.byteLength, 102400);
    assert.ok(other !== sent[0], "the second server's are copies");
  }
  const kept = await seen!.root!.read(seen!.file!);
  assert.ok(sent.every((b) => b === kept), "the first's share the kept copy");
  await resolve.close();
});
