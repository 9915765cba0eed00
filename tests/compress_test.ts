import assert from "node:assert/strict";
import { gunzipSync, gzipSync } from "node:zlib";
import { createHandler, type HandlerOptions } from "../mod.ts";
import { tempDir } from "./_helpers/fs.ts";
import { rawRequest, withServer } from "./_helpers/net.ts";

const text = "body { color: red; }\n".repeat(200); // 4200 bytes, compressible

async function site() {
  const dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/app.css`, text);
  await Deno.writeTextFile(`${dir.path}/small.css`, "a{}");
  await Deno.writeTextFile(`${dir.path}/plain.txt`, text);
  await Deno.writeFile(`${dir.path}/app.css.gz`, new Uint8Array([1, 2, 3]));
  await Deno.writeFile(`${dir.path}/app.css.br`, new Uint8Array([4, 5, 6, 7]));
  await Deno.writeFile(`${dir.path}/photo.png`, new Uint8Array(4000));
  return dir;
}

function get(
  options: HandlerOptions,
  path: string,
  headers: Record<string, string> = {},
  method = "GET",
) {
  return createHandler(options)(
    new Request(`http://x${path}`, { method, headers }),
  );
}

Deno.test("serveStatic() sends a precompressed sibling chosen by Accept-Encoding q-values", async () => {
  await using dir = await site();
  const o = { root: dir.path };
  const br = await get(o, "/app.css", { "accept-encoding": "gzip, br" });
  assert.equal(br.headers.get("content-encoding"), "br");
  assert.equal(br.headers.get("content-type"), "text/css; charset=UTF-8");
  assert.equal(br.headers.get("vary"), "Accept-Encoding");
  assert.deepEqual(
    new Uint8Array(await br.arrayBuffer()),
    new Uint8Array([4, 5, 6, 7]),
  );
  const gz = await get(o, "/app.css", { "accept-encoding": "br;q=0.1, gzip" });
  assert.equal(gz.headers.get("content-encoding"), "gzip");
  assert.equal(gz.headers.get("content-length"), "3");
  await gz.body?.cancel();
  const none = await get(o, "/app.css", { "accept-encoding": "identity" });
  assert.equal(none.headers.get("content-encoding"), null);
  assert.equal(none.headers.get("vary"), "Accept-Encoding");
  assert.equal(await none.text(), text);
  assert.notEqual(br.headers.get("etag"), gz.headers.get("etag"));
  assert.notEqual(br.headers.get("etag"), none.headers.get("etag"));
});

Deno.test("serveStatic() answers 304 per variant ETag", async () => {
  await using dir = await site();
  const o = { root: dir.path };
  const first = await get(o, "/app.css", { "accept-encoding": "br" });
  await first.body?.cancel();
  const again = await get(o, "/app.css", {
    "accept-encoding": "br",
    "if-none-match": first.headers.get("etag")!,
  });
  assert.equal(again.status, 304);
  assert.equal(again.headers.get("vary"), "Accept-Encoding");
  assert.equal(again.headers.get("etag"), first.headers.get("etag"));
  // No representation metadata on a 304 (RFC 9110 §15.4.5; nginx too).
  assert.equal(first.headers.get("content-encoding"), "br");
  assert.equal(again.headers.get("content-encoding"), null);
  const other = await get(o, "/app.css", {
    "accept-encoding": "gzip",
    "if-none-match": first.headers.get("etag")!,
  });
  assert.equal(
    other.status,
    200,
    "the br tag does not validate the gzip variant",
  );
  await other.body?.cancel();
});

Deno.test("serveStatic() compresses on the fly only with compress on, above the threshold", async () => {
  await using dir = await site();
  const off = await get({ root: dir.path }, "/plain.txt", {
    "accept-encoding": "gzip",
  });
  assert.equal(off.headers.get("content-encoding"), null, "off by default");
  await off.body?.cancel();
  const o = { root: dir.path, serveStatic: { compress: true } };
  const gz = await get(o, "/plain.txt", { "accept-encoding": "gzip" });
  assert.equal(gz.headers.get("content-encoding"), "gzip");
  assert.equal(gz.headers.get("content-length"), null);
  assert.equal(gz.headers.get("vary"), "Accept-Encoding");
  assert.match(gz.headers.get("etag")!, /-gzip"$/);
  const bytes = new Uint8Array(await gz.arrayBuffer());
  assert.ok(bytes.length < text.length / 10);
  assert.equal(gunzipSync(bytes).toString(), text);
  const br = await get(o, "/plain.txt", {
    "accept-encoding": "gzip;q=0.5, br",
  });
  assert.equal(br.headers.get("content-encoding"), "br");
  const decoded = await new Response(
    br.body!.pipeThrough(
      new DecompressionStream("brotli" as CompressionFormat),
    ),
  )
    .text();
  assert.equal(decoded, text);
  const small = await get(o, "/small.css", { "accept-encoding": "gzip" });
  assert.equal(
    small.headers.get("content-encoding"),
    null,
    "below the threshold",
  );
  await small.body?.cancel();
  const png = await get(o, "/photo.png", { "accept-encoding": "gzip" });
  assert.equal(png.headers.get("content-encoding"), null, "not compressible");
  assert.equal(png.headers.get("vary"), null);
  await png.body?.cancel();
});

Deno.test("serveStatic() never compresses ranges and keeps HEAD consistent with GET", async () => {
  await using dir = await site();
  const o = { root: dir.path, serveStatic: { compress: true } };
  const range = await get(o, "/plain.txt", {
    "accept-encoding": "gzip",
    range: "bytes=0-9",
  });
  assert.equal(range.status, 206);
  assert.equal(range.headers.get("content-encoding"), null);
  assert.equal(await range.text(), text.slice(0, 10));
  const preRange = await get({ root: dir.path }, "/app.css", {
    "accept-encoding": "br",
    range: "bytes=0-3",
  });
  assert.equal(preRange.headers.get("content-encoding"), null);
  assert.equal(await preRange.text(), text.slice(0, 4));
  const head = await get(
    o,
    "/plain.txt",
    { "accept-encoding": "gzip" },
    "HEAD",
  );
  const getRes = await get(o, "/plain.txt", { "accept-encoding": "gzip" });
  await getRes.body?.cancel();
  for (
    const h of [
      "content-encoding",
      "etag",
      "vary",
      "content-type",
      "content-length",
    ]
  ) {
    assert.equal(head.headers.get(h), getRes.headers.get(h), h);
  }
  assert.equal(await head.text(), "");
});

Deno.test("serveStatic() never compresses twice (a stored .gz file is sent as is)", async () => {
  await using dir = await site();
  const res = await get(
    { root: dir.path, serveStatic: { compress: true } },
    "/app.css.gz",
    {
      "accept-encoding": "gzip",
    },
  );
  assert.equal(res.headers.get("content-encoding"), null);
  assert.equal(res.headers.get("content-type"), "application/gzip");
  assert.deepEqual(
    new Uint8Array(await res.arrayBuffer()),
    new Uint8Array([1, 2, 3]),
  );
});

Deno.test("serveStatic() sends .svgz as gzip-encoded SVG and never compresses it again", async () => {
  await using dir = await tempDir();
  const svg = `<svg xmlns="http://www.w3.org/2000/svg">${
    "<g/>".repeat(500)
  }</svg>`;
  await Deno.writeFile(`${dir.path}/logo.svgz`, gzipSync(svg));
  const res = await get(
    { root: dir.path, serveStatic: { compress: true } },
    "/logo.svgz",
    {
      "accept-encoding": "gzip, br",
    },
  );
  assert.equal(res.headers.get("content-type"), "image/svg+xml");
  assert.equal(res.headers.get("content-encoding"), "gzip");
  assert.equal(
    gunzipSync(new Uint8Array(await res.arrayBuffer())).toString(),
    svg,
  );
});

Deno.test("serveStatic() answers HEAD of a compressed response without a Content-Length on the wire", async () => {
  await using dir = await site();
  await withServer(
    createHandler({ root: dir.path, serveStatic: { compress: true } }),
    async (port) => {
      const head = await rawRequest(port, "/plain.txt", {
        method: "HEAD",
        headers: { "accept-encoding": "gzip" },
      });
      const get = await rawRequest(port, "/plain.txt", {
        headers: { "accept-encoding": "gzip" },
      });
      assert.equal(head.headers.get("content-encoding"), "gzip");
      assert.equal(
        head.headers.get("content-length"),
        null,
        "HEAD: no length, as GET has none",
      );
      assert.equal(get.headers.get("content-length"), null);
      assert.equal(head.headers.get("etag"), get.headers.get("etag"));
      assert.match(
        get.headers.get("etag")!,
        /^W\//,
        "on-the-fly output gets a weak tag",
      );
    },
  );
});
