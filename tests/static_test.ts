import assert from "node:assert/strict";
import { createHandler, type HandlerOptions } from "../mod.ts";
import { tempDir, testdata } from "./_helpers/fs.ts";

const root = testdata("www");

function handler(options: HandlerOptions = {}) {
  return createHandler({ root, ...options });
}

async function get(
  path: string,
  init: RequestInit = {},
  options: HandlerOptions = {},
): Promise<Response> {
  return await handler(options)(new Request(`http://localhost${path}`, init));
}

Deno.test("serveStatic() serves a file with type, length and validators", async () => {
  const res = await get("/hello.txt");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/plain; charset=UTF-8");
  assert.equal(res.headers.get("content-length"), "14");
  assert.equal(res.headers.get("accept-ranges"), "bytes");
  assert.match(res.headers.get("etag") ?? "", /^"[0-9a-f]+-e"$/);
  const mtime = (await Deno.stat(`${root}/hello.txt`)).mtime!;
  assert.equal(res.headers.get("last-modified"), mtime.toUTCString());
  assert.equal(await res.text(), "Hello, world!\n");
});

Deno.test("serveStatic() answers HEAD with GET's headers and no body", async () => {
  const res = await get("/hello.txt", { method: "HEAD" });
  const full = await get("/hello.txt");
  await full.body?.cancel();
  assert.equal(res.status, 200);
  for (
    const name of [
      "content-length",
      "content-type",
      "etag",
      "last-modified",
      "accept-ranges",
    ]
  ) {
    assert.equal(res.headers.get(name), full.headers.get(name), name);
  }
  assert.equal(res.headers.get("content-length"), "14");
  assert.equal(await res.text(), "");
});

Deno.test("serveStatic() streams a large file with an exact length", async () => {
  await using dir = await tempDir();
  const data = new Uint8Array(3 * 1024 * 1024 + 7).map((_, i) => i % 251);
  await Deno.writeFile(`${dir.path}/big.bin`, data);
  const res = await createHandler({ root: dir.path })(
    new Request("http://x/big.bin"),
  );
  assert.equal(res.headers.get("content-length"), String(data.length));
  const body = new Uint8Array(await res.arrayBuffer());
  assert.deepEqual(body, data);
});

Deno.test("serveStatic() sets content types, text as UTF-8 and unknown as octet-stream", async () => {
  const cases: Array<[string, string]> = [
    ["/index.html", "text/html; charset=UTF-8"],
    ["/data.json", "application/json; charset=UTF-8"],
    ["/mod.ts", "text/typescript; charset=UTF-8"],
    ["/docs/a.md", "text/markdown; charset=UTF-8"],
    ["/blob.bin", "application/octet-stream"],
    ["/empty.txt", "text/plain; charset=UTF-8"],
  ];
  for (const [path, type] of cases) {
    const res = await get(path);
    assert.equal(res.headers.get("content-type"), type, path);
    await res.body?.cancel();
  }
});

Deno.test("serveStatic() serves UTF-8, space, hash and percent names", async () => {
  const cases: Array<[string, string]> = [
    ["/%E4%B8%AD%E6%96%87.txt", "chinese\n"],
    ["/with%20space.txt", "space\n"],
    ["/a%23b.txt", "hash\n"],
    ["/100%25.txt", "percent\n"],
  ];
  for (const [path, body] of cases) {
    const res = await get(path);
    assert.equal(res.status, 200, path);
    assert.equal(await res.text(), body);
  }
});

Deno.test("serveStatic() serves an empty file", async () => {
  const res = await get("/empty.txt");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-length"), "0");
  assert.equal(await res.text(), "");
});

Deno.test("serveStatic() answers 405 with Allow for other methods, 204 for OPTIONS", async () => {
  const post = await get("/hello.txt", { method: "POST", body: "x" });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD, OPTIONS");
  await post.body?.cancel();
  const del = await get("/hello.txt", { method: "DELETE" });
  assert.equal(del.status, 405);
  await del.body?.cancel();
  const options = await get("/hello.txt", { method: "OPTIONS" });
  assert.equal(options.status, 204);
  assert.equal(options.headers.get("allow"), "GET, HEAD, OPTIONS");
});

Deno.test("serveStatic() returns 404 for missing files and a file with a trailing slash", async () => {
  for (const path of ["/nope.txt", "/hello.txt/", "/sub/nope/"]) {
    const res = await get(path);
    assert.equal(res.status, 404, path);
    await res.body?.cancel();
  }
});

Deno.test("serveStatic() redirects /dir to /dir/ keeping the query", async () => {
  const res = await get("/sub?a=1&b=2");
  assert.equal(res.status, 308);
  assert.equal(res.headers.get("location"), "/sub/?a=1&b=2");
});

Deno.test("serveStatic() serves index.html for a directory and honours custom index names", async () => {
  const res = await get("/sub/");
  assert.equal(await res.text(), "sub index\n");
  const custom = await get("/sub/", {}, {
    serveStatic: { index: ["nested.txt"] },
  });
  assert.equal(await custom.text(), "nested\n");
});

Deno.test("serveStatic() answers 404 for a directory without index when listing is off", async () => {
  const res = await get("/docs/");
  assert.equal(res.status, 404);
  await res.body?.cancel();
});

Deno.test("serveStatic() lists directories first, escaped, with size, mtime and parent link", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/zdir`);
  await Deno.mkdir(`${dir.path}/d`);
  await Deno.writeTextFile(`${dir.path}/d/a.txt`, "abc");
  await Deno.writeTextFile(
    `${dir.path}/d/<img src=x onerror=alert(1)>.txt`,
    "x",
  );
  await Deno.writeTextFile(`${dir.path}/d/x y#%.txt`, "x");
  await Deno.mkdir(`${dir.path}/d/zsub`);
  await Deno.writeTextFile(`${dir.path}/d/.hidden`, "x");
  const h = createHandler({
    root: dir.path,
    serveStatic: { dirListing: true },
  });
  const res = await h(new Request("http://x/d/"));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/html; charset=UTF-8");
  const html = await res.text();
  assert.match(html, /<meta name="viewport"/);
  assert.match(html, /href="\.\.\/"/);
  assert.ok(!html.includes("<img"), "names are escaped");
  assert.match(html, /&lt;img src=x onerror=alert\(1\)&gt;\.txt/);
  assert.match(html, /href="\.\/x%20y%23%25\.txt"/);
  assert.match(html, /3 B/);
  assert.ok(!html.includes(".hidden"));
  assert.ok(html.indexOf("zsub/") < html.indexOf("a.txt"), "directories first");
  const rootListing = await (await h(new Request("http://x/"))).text();
  assert.ok(!rootListing.includes('href="../"'), "no parent link at the root");
});

Deno.test("serveStatic() lists as JSON when the client asks for JSON", async () => {
  const res = await get("/docs/", { headers: { accept: "application/json" } }, {
    serveStatic: { dirListing: true },
  });
  assert.equal(
    res.headers.get("content-type"),
    "application/json; charset=UTF-8",
  );
  const entries = await res.json();
  assert.equal(entries.length, 1);
  assert.equal(entries[0].name, "a.md");
  assert.equal(entries[0].type, "file");
  assert.equal(entries[0].size, 6);
  assert.match(entries[0].mtime, /^\d{4}-\d\d-\d\dT/);
});

Deno.test("serveStatic() hides dotfiles by default and serves them with dotfiles on", async () => {
  for (const path of ["/.env", "/%2Eenv", "/sub/../.env"]) {
    const res = await get(path);
    assert.equal(res.status, 404, path);
    await res.body?.cancel();
  }
  const shown = await get("/.env", {}, { dotfiles: true });
  assert.equal(await shown.text(), "SECRET=1\n");
  const wellKnown = await get("/.well-known/token.txt");
  assert.equal(await wellKnown.text(), "acme\n");
});

Deno.test("serveStatic() hides dot-directories and their contents, in listings too", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/.git`);
  await Deno.writeTextFile(`${dir.path}/.git/config`, "[core]");
  await Deno.writeTextFile(`${dir.path}/visible.txt`, "v");
  const h = createHandler({
    root: dir.path,
    serveStatic: { dirListing: true },
  });
  const res = await h(new Request("http://x/.git/config"));
  assert.equal(res.status, 404);
  await res.body?.cancel();
  const dirRes = await h(new Request("http://x/.git/"));
  assert.equal(dirRes.status, 404);
  await dirRes.body?.cancel();
  const listing = await (await h(new Request("http://x/"))).text();
  assert.ok(!listing.includes(".git"));
  assert.ok(listing.includes("visible.txt"));
  const open = createHandler({
    root: dir.path,
    serveStatic: { dirListing: true },
    dotfiles: true,
  });
  assert.ok(
    (await (await open(new Request("http://x/"))).text()).includes(".git/"),
  );
});

Deno.test("serveStatic() does not follow symlinks out of the root unless allowed", async () => {
  await using outside = await tempDir();
  await using dir = await tempDir();
  await Deno.writeTextFile(`${outside.path}/secret.txt`, "secret");
  await Deno.writeTextFile(`${dir.path}/inside.txt`, "inside");
  await Deno.symlink(`${outside.path}/secret.txt`, `${dir.path}/out.txt`);
  await Deno.symlink(outside.path, `${dir.path}/outdir`);
  await Deno.symlink(`${dir.path}/inside.txt`, `${dir.path}/in.txt`);
  const h = createHandler({
    root: dir.path,
    serveStatic: { dirListing: true },
  });
  for (const path of ["/out.txt", "/outdir/secret.txt", "/outdir/"]) {
    const res = await h(new Request(`http://x${path}`));
    assert.equal(res.status, 404, path);
    await res.body?.cancel();
  }
  assert.equal(
    await (await h(new Request("http://x/in.txt"))).text(),
    "inside",
  );
  const listing = await (await h(new Request("http://x/"))).text();
  assert.ok(!listing.includes("out.txt") && !listing.includes("outdir"));
  const open = createHandler({ root: dir.path, followSymlinks: true });
  assert.equal(
    await (await open(new Request("http://x/out.txt"))).text(),
    "secret",
  );
});

Deno.test("serveStatic() serves a symlinked root's files", async () => {
  await using dir = await tempDir();
  await using links = await tempDir();
  await Deno.writeTextFile(`${dir.path}/a.txt`, "a");
  await Deno.symlink(dir.path, `${links.path}/site`);
  const h = createHandler({ root: `${links.path}/site` });
  assert.equal(await (await h(new Request("http://x/a.txt"))).text(), "a");
});

Deno.test("listDirectory() caps a huge folder and renderListing() says how many were left out", async () => {
  const { listDirectory, renderListing } = await import("../static/mod.ts");
  const { documentRoot } = await import("../server/resolve.ts");
  await using dir = await tempDir();
  for (let i = 0; i < 40; i++) {
    await Deno.writeTextFile(
      `${dir.path}/f${String(i).padStart(2, "0")}.txt`,
      "x",
    );
  }
  await Deno.mkdir(`${dir.path}/zz-dir`);
  const root = documentRoot(await Deno.realPath(dir.path));
  const entries = await listDirectory(root, [], { maxEntries: 5 });
  assert.deepEqual(entries.map((e) => e.name), [
    "zz-dir",
    "f00.txt",
    "f01.txt",
    "f02.txt",
    "f03.txt",
  ]);
  const html = await (await renderListing(new Request("http://x/"), root, [], {
    maxEntries: 5,
  })).text();
  assert.match(html, /36 more entries are not listed/);
  const json = await renderListing(
    new Request("http://x/", { headers: { accept: "application/json" } }),
    root,
    [],
    { maxEntries: 5 },
  );
  assert.equal(json.headers.get("x-listing-omitted"), "36");
  assert.equal((await json.json()).length, 5);
});

Deno.test("serveStatic() lists what resolution serves: .well-known shown, other dot entries hidden", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/.well-known`);
  await Deno.writeTextFile(`${dir.path}/.well-known/token.txt`, "t");
  await Deno.writeTextFile(`${dir.path}/.env`, "SECRET=1");
  const h = createHandler({
    root: dir.path,
    serveStatic: { dirListing: true },
  });
  const listing = await (await h(new Request("http://x/"))).text();
  assert.ok(listing.includes(".well-known/"), "listed, as it is served");
  assert.ok(!listing.includes(".env"));
  const token = await h(new Request("http://x/.well-known/token.txt"));
  assert.equal(await token.text(), "t");
});

Deno.test("serveStatic() applies the root's symlink policy to index files and precompressed siblings", async () => {
  await using outside = await tempDir();
  await using dir = await tempDir();
  await Deno.writeTextFile(`${outside.path}/index.html`, "OUTSIDE-INDEX");
  await Deno.writeTextFile(`${outside.path}/app.js.gz`, "OUTSIDE-GZ");
  await Deno.mkdir(`${dir.path}/d`);
  await Deno.symlink(`${outside.path}/index.html`, `${dir.path}/d/index.html`);
  await Deno.writeTextFile(`${dir.path}/app.js`, "x".repeat(2000));
  await Deno.symlink(`${outside.path}/app.js.gz`, `${dir.path}/app.js.gz`);
  const gzip = { headers: { "accept-encoding": "gzip" } };
  const closed = createHandler({ root: dir.path });
  const index = await closed(new Request("http://x/d/"));
  assert.equal(index.status, 404, "the index symlink leads out");
  await index.body?.cancel();
  const js = await closed(new Request("http://x/app.js", gzip));
  assert.equal(js.headers.get("content-encoding"), null);
  assert.equal((await js.text()).length, 2000);
  const open = createHandler({ root: dir.path, followSymlinks: true });
  assert.equal(
    await (await open(new Request("http://x/d/"))).text(),
    "OUTSIDE-INDEX",
  );
  const gz = await open(new Request("http://x/app.js", gzip));
  assert.equal(gz.headers.get("content-encoding"), "gzip");
  await gz.body?.cancel();
});
