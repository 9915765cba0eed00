// `compress`: every compressible response (CGI, FastCGI, listings, error
// pages, static files) compressed once, by Accept-Encoding.
import assert from "node:assert/strict";
import { brotliDecompressSync, gunzipSync, gzipSync } from "node:zlib";
import {
  compose,
  compress,
  createHandler,
  type HandlerOptions,
  type Middleware,
} from "../mod.ts";
import { bodyKind } from "../server/body_kind.ts";
import { tempDir } from "./_helpers/fs.ts";
import { withServer } from "./_helpers/net.ts";
import { startPhpFpm } from "./_helpers/php.ts";
import { startCli } from "./_helpers/process.ts";

/** A parsed raw HTTP/1.1 response with its body as bytes (de-chunked). */
interface Wire {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

/** One request over a raw socket (`Connection: close`): exact bytes and headers. */
async function wire(
  port: number,
  target: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<Wire> {
  const lines = [
    `${method} ${target} HTTP/1.1`,
    "Host: 127.0.0.1",
    "Connection: close",
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n"));
  const raw = new Uint8Array(await new Response(conn.readable).arrayBuffer());
  let split = 0;
  while (
    split + 3 < raw.length &&
    !(raw[split] === 13 && raw[split + 1] === 10 && raw[split + 2] === 13 &&
      raw[split + 3] === 10)
  ) split++;
  const head = new TextDecoder().decode(raw.subarray(0, split)).split("\r\n");
  const out = new Headers();
  for (const line of head.slice(1)) {
    const i = line.indexOf(":");
    out.append(line.slice(0, i), line.slice(i + 1).trim());
  }
  let body: Uint8Array = raw.subarray(split + 4);
  if (out.get("transfer-encoding") === "chunked") body = _unchunk(body);
  return { status: Number(head[0]!.split(" ")[1]), headers: out, body };
}

function _unchunk(bytes: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    let nl = at;
    while (bytes[nl] !== 13) nl++;
    const size = parseInt(new TextDecoder().decode(bytes.subarray(at, nl)), 16);
    if (!size) break;
    parts.push(bytes.subarray(nl + 2, nl + 2 + size));
    at = nl + 2 + size + 2;
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let n = 0;
  for (const p of parts) {
    out.set(p, n);
    n += p.length;
  }
  return out;
}

/** The body decoded once by its Content-Encoding. */
function decoded(res: Wire): string {
  const coding = res.headers.get("content-encoding");
  const bytes = coding === "gzip"
    ? gunzipSync(res.body)
    : coding === "br"
    ? brotliDecompressSync(res.body)
    : coding === null
    ? res.body
    : assert.fail(`unexpected coding ${coding}`);
  return new TextDecoder().decode(bytes);
}

/**
 * Headers a HEAD must share with its GET (not the framing: Deno sends no
 * `Transfer-Encoding` without a body).
 */
const SAME = [
  "content-encoding",
  "content-type",
  "content-length",
  "vary",
  "etag",
];

function assertHeadLikeGet(head: Wire, get: Wire): void {
  for (const name of SAME) {
    assert.equal(head.headers.get(name), get.headers.get(name), name);
  }
  assert.equal(head.body.length, 0, "HEAD has no body");
}

const PAGE = "<p>Hello from a dynamic page, line after line.</p>\n".repeat(
  100,
); // 5 100 bytes, compressible

// --- CGI, FastCGI, error pages, listings and static files, on the wire ---

async function cgiSite() {
  const dir = await tempDir();
  const bin = `${dir.path}/cgi-bin`;
  await Deno.mkdir(bin);
  // PAGE, written by the script itself (no file it could outlive).
  const page = "i=0; while [ $i -lt 100 ]; do " +
    "echo '<p>Hello from a dynamic page, line after line.</p>'; " +
    "i=$((i + 1)); done";
  const script = async (name: string, text: string) => {
    const body = text.replaceAll("$PAGE", `{ ${page}; }`);
    await Deno.writeTextFile(`${bin}/${name}`, `#!/bin/sh\n${body}`);
    await Deno.chmod(`${bin}/${name}`, 0o755);
  };
  await script(
    "page.cgi",
    `printf 'Content-Type: text/html\\nVary: Cookie\\n\\n'\n$PAGE\n`,
  );
  await script(
    "small.cgi",
    "printf 'Content-Type: text/plain\\n\\nsmall\\n'\n",
  );
  await script(
    "range.cgi",
    `printf 'Status: 206 Partial Content\\nContent-Type: text/plain\\nContent-Range: bytes 0-5099/9000\\n\\n'\n$PAGE\n`,
  );
  await script(
    "encoded.cgi",
    `printf 'Content-Type: text/html\\nContent-Encoding: gzip\\n\\n'\n$PAGE | gzip -c\n`,
  );
  await script(
    "raw.cgi",
    `printf 'Content-Type: text/html\\nCache-Control: no-transform\\n\\n'\n$PAGE\n`,
  );
  await script(
    "png.cgi",
    `printf 'Content-Type: image/png\\n\\n'\n$PAGE\n`,
  );
  await script(
    "empty.cgi",
    "printf 'Status: 204 No Content\\nContent-Type: text/plain\\n\\n'\n",
  );
  return dir;
}

Deno.test("compress: CGI output is br/gzip encoded by q-value, identity when not accepted, Vary always", async () => {
  await using dir = await cgiSite();
  await using handler = createHandler({
    root: dir.path,
    cgi: {},
    compress: true,
  });
  await withServer(handler, async (port) => {
    const gz = await wire(port, "/cgi-bin/page.cgi", {
      "accept-encoding": "gzip",
    });
    assert.equal(gz.status, 200);
    assert.equal(gz.headers.get("content-encoding"), "gzip");
    assert.equal(gz.headers.get("vary"), "Cookie, Accept-Encoding", "merged");
    assert.equal(gz.headers.get("content-length"), null);
    assert.ok(gz.body.length < PAGE.length / 10, `${gz.body.length} bytes`);
    assert.equal(decoded(gz), PAGE);

    const br = await wire(port, "/cgi-bin/page.cgi", {
      "accept-encoding": "gzip;q=0.8, deflate, br",
    });
    assert.equal(br.headers.get("content-encoding"), "br");
    assert.equal(decoded(br), PAGE);

    const tie = await wire(port, "/cgi-bin/page.cgi", {
      "accept-encoding": "gzip, br",
    });
    assert.equal(tie.headers.get("content-encoding"), "br", "ties go to br");
    assert.equal(decoded(tie), PAGE);

    const noBr = await wire(port, "/cgi-bin/page.cgi", {
      "accept-encoding": "br;q=0, *",
    });
    assert.equal(noBr.headers.get("content-encoding"), "gzip");
    assert.equal(decoded(noBr), PAGE);

    for (const accept of [undefined, "identity", "deflate", "gzip;q=0"]) {
      const plain = await wire(
        port,
        "/cgi-bin/page.cgi",
        accept === undefined ? {} : { "accept-encoding": accept },
      );
      assert.equal(plain.headers.get("content-encoding"), null, accept);
      assert.equal(plain.headers.get("vary"), "Cookie, Accept-Encoding");
      assert.equal(new TextDecoder().decode(plain.body), PAGE);
    }
  });
});

Deno.test("compress: HEAD of CGI output gets the headers GET gets, and no body", async () => {
  await using dir = await cgiSite();
  await using handler = createHandler({
    root: dir.path,
    cgi: {},
    compress: true,
  });
  await withServer(handler, async (port) => {
    for (const accept of ["gzip", "br"]) {
      const h = { "accept-encoding": accept };
      const get = await wire(port, "/cgi-bin/page.cgi", h);
      assert.equal(get.headers.get("content-encoding"), accept);
      const head = await wire(port, "/cgi-bin/page.cgi", h, "HEAD");
      assertHeadLikeGet(head, get);
    }
    // Uncompressed, the coding and Vary still match. (The CGI gateway's
    // bodiless HEAD answer gets Deno's `Content-Length: 0`, where GET is
    // chunked: the gateway's, with or without compression.)
    const h = { "accept-encoding": "identity" };
    const get = await wire(port, "/cgi-bin/page.cgi", h);
    const head = await wire(port, "/cgi-bin/page.cgi", h, "HEAD");
    for (const name of ["content-encoding", "vary", "content-type"]) {
      assert.equal(head.headers.get(name), get.headers.get(name), name);
    }
  });
});

Deno.test("compress: leaves a 206, an encoded, a no-transform, a small, a 204 and an image response alone", async () => {
  await using dir = await cgiSite();
  await using handler = createHandler({
    root: dir.path,
    cgi: {},
    compress: true,
  });
  await withServer(handler, async (port) => {
    const h = { "accept-encoding": "gzip, br" };
    const range = await wire(port, "/cgi-bin/range.cgi", h);
    assert.equal(range.status, 206);
    assert.equal(range.headers.get("content-encoding"), null);
    assert.equal(range.headers.get("content-range"), "bytes 0-5099/9000");
    assert.equal(new TextDecoder().decode(range.body), PAGE);

    const encoded = await wire(port, "/cgi-bin/encoded.cgi", h);
    assert.equal(encoded.headers.get("content-encoding"), "gzip");
    assert.equal(decoded(encoded), PAGE, "gzip'd once, by the script");

    const raw = await wire(port, "/cgi-bin/raw.cgi", h);
    assert.equal(raw.headers.get("content-encoding"), null, "no-transform");
    assert.equal(raw.headers.get("vary"), null);
    assert.equal(new TextDecoder().decode(raw.body), PAGE);

    const png = await wire(port, "/cgi-bin/png.cgi", h);
    assert.equal(png.headers.get("content-encoding"), null, "not compressible");
    assert.equal(png.headers.get("vary"), null);

    const empty = await wire(port, "/cgi-bin/empty.cgi", h);
    assert.equal(empty.status, 204);
    assert.equal(empty.headers.get("content-encoding"), null);
    assert.equal(empty.body.length, 0);
  });
});

Deno.test("compress: PHP through php-fpm is gzip/br encoded when accepted, identity when not; PHP's own gzip is not compressed again", async () => {
  await using fpm = await startPhpFpm({ workers: 2 });
  await using dir = await tempDir();
  await Deno.chmod(dir.path, 0o755);
  await Deno.writeTextFile(
    `${dir.path}/page.php`,
    `<?php header('Content-Type: text/html; charset=UTF-8');
for ($i = 0; $i < 100; $i++) echo "<p>Hello from a dynamic page, line after line.</p>\\n";`,
  );
  await Deno.writeTextFile(
    `${dir.path}/zipped.php`,
    `<?php header('Content-Type: text/html'); header('Content-Encoding: gzip');
echo gzencode(str_repeat("<p>Hello from a dynamic page, line after line.</p>\\n", 100));`,
  );
  await using handler = createHandler({
    root: dir.path,
    fastcgi: { backends: [fpm.address] },
    compress: true,
  });
  await withServer(handler, async (port) => {
    for (const [accept, coding] of [["gzip", "gzip"], ["br, gzip", "br"]]) {
      const res = await wire(port, "/page.php", { "accept-encoding": accept! });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-encoding"), coding);
      assert.equal(res.headers.get("vary"), "Accept-Encoding");
      assert.equal(decoded(res), PAGE);
      const head = await wire(
        port,
        "/page.php",
        { "accept-encoding": accept! },
        "HEAD",
      );
      assertHeadLikeGet(head, res);
    }
    const plain = await wire(port, "/page.php", { "accept-encoding": "zstd" });
    assert.equal(plain.headers.get("content-encoding"), null);
    assert.equal(plain.headers.get("vary"), "Accept-Encoding");
    assert.equal(new TextDecoder().decode(plain.body), PAGE);

    const zipped = await wire(port, "/zipped.php", {
      "accept-encoding": "gzip, br",
    });
    assert.equal(zipped.headers.get("content-encoding"), "gzip");
    assert.equal(decoded(zipped), PAGE, "decoded once gives the page");
  });
});

Deno.test("compress: error pages (built-in and from the root) and listings are compressed", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/docs`);
  for (let i = 0; i < 40; i++) {
    await Deno.writeTextFile(`${dir.path}/docs/file-number-${i}.txt`, "x");
  }
  await Deno.mkdir(`${dir.path}/custom`);
  const h = { "accept-encoding": "gzip" };

  // Built-in page (about 1.3 KiB): with a threshold below it.
  await using builtIn = createHandler({
    root: dir.path,
    errorPages: { fromRoot: false },
    compress: { minSize: 256 },
  });
  await withServer(builtIn, async (port) => {
    const res = await wire(port, "/missing", h);
    assert.equal(res.status, 404);
    assert.equal(res.headers.get("content-encoding"), "gzip");
    assert.equal(res.headers.get("vary"), "Accept, Accept-Encoding");
    assert.match(decoded(res), /404 Not Found/);
    assertHeadLikeGet(await wire(port, "/missing", h, "HEAD"), res);
  });

  // A custom 404.html from the root, and a listing, with the defaults.
  const custom = `<!doctype html><h1>Not here</h1>${
    "<p>sorry</p>".repeat(200)
  }`;
  await Deno.writeTextFile(`${dir.path}/404.html`, custom);
  await using handler = createHandler({
    root: dir.path,
    serveStatic: { dirListing: true },
    compress: true,
  });
  await withServer(handler, async (port) => {
    const res = await wire(port, "/missing", h);
    assert.equal(res.status, 404);
    assert.equal(res.headers.get("content-encoding"), "gzip");
    assert.equal(decoded(res), custom);

    const listing = await wire(port, "/docs/", h);
    assert.equal(listing.status, 200);
    assert.equal(listing.headers.get("content-encoding"), "gzip");
    assert.equal(listing.headers.get("vary"), "Accept, Accept-Encoding");
    assert.match(decoded(listing), /file-number-39\.txt/);
    assertHeadLikeGet(await wire(port, "/docs/", h, "HEAD"), listing);
  });
});

Deno.test("compress: a static file is compressed exactly once, whoever owns it", async () => {
  await using dir = await tempDir();
  const small = "const answer = 42; // a script\n".repeat(100); // 3 100 bytes
  const big = "body { color: red; } /* a stylesheet */\n".repeat(1000); // 40 000
  await Deno.writeTextFile(`${dir.path}/app.js`, small);
  await Deno.writeTextFile(`${dir.path}/big.css`, big);
  await Deno.writeTextFile(`${dir.path}/pre.css`, big);
  await Deno.writeFile(`${dir.path}/pre.css.gz`, gzipSync(big));
  // [options, whether serveStatic's own path compresses files (its tags
  // name the coding) rather than the middleware]
  const configs: Array<[HandlerOptions, boolean]> = [
    // What --compress sets.
    [{ root: dir.path, serveStatic: { compress: true } }, true],
    [{ root: dir.path, compress: true }, true],
    [
      { root: dir.path, compress: true, serveStatic: { compress: false } },
      false,
    ],
  ];
  for (const [options, byStatic] of configs) {
    const label = JSON.stringify(options.serveStatic ?? {}) +
      JSON.stringify(options.compress ?? null);
    await using handler = createHandler(options);
    await withServer(handler, async (port) => {
      for (const [path, text] of [["/app.js", small], ["/big.css", big]]) {
        for (const accept of ["gzip", "br"]) {
          const h = { "accept-encoding": accept };
          const res = await wire(port, path!, h);
          assert.equal(res.headers.get("content-encoding"), accept, label);
          assert.equal(res.headers.get("vary"), "Accept-Encoding", label);
          assert.match(res.headers.get("etag")!, /^W\//, label);
          assert.equal(
            res.headers.get("etag")!.endsWith(`-${accept}"`),
            byStatic,
            label,
          );
          assert.equal(res.headers.get("content-length"), null, label);
          assert.equal(decoded(res), text, `${label} ${path} ${accept}`);
          assertHeadLikeGet(await wire(port, path!, h, "HEAD"), res);
          // Revalidation still works with the weak tag.
          const again = await wire(port, path!, {
            ...h,
            "if-none-match": res.headers.get("etag")!,
          });
          assert.equal(again.status, 304, label);
        }
      }
      // A precompressed sibling goes out as stored.
      const pre = await wire(port, "/pre.css", { "accept-encoding": "gzip" });
      assert.equal(pre.headers.get("content-encoding"), "gzip");
      assert.deepEqual(pre.body, new Uint8Array(gzipSync(big)), label);
      // A range is never compressed.
      const range = await wire(port, "/big.css", {
        "accept-encoding": "gzip",
        range: "bytes=0-99",
      });
      assert.equal(range.status, 206);
      assert.equal(range.headers.get("content-encoding"), null);
      assert.equal(new TextDecoder().decode(range.body), big.slice(0, 100));
    });
  }
});

Deno.test("compress: a body below minSize keeps its bytes and Content-Length", async () => {
  await using dir = await cgiSite();
  await Deno.writeTextFile(`${dir.path}/tiny.txt`, "tiny text file\n");
  await using handler = createHandler({
    root: dir.path,
    cgi: {},
    compress: true,
  });
  await withServer(handler, async (port) => {
    const h = { "accept-encoding": "gzip, br" };
    const tiny = await wire(port, "/tiny.txt", h);
    assert.equal(tiny.headers.get("content-encoding"), null);
    assert.equal(tiny.headers.get("content-length"), "15", "sent as bytes");
    assert.equal(tiny.headers.get("vary"), "Accept-Encoding");
    assert.equal(new TextDecoder().decode(tiny.body), "tiny text file\n");
    assertHeadLikeGet(await wire(port, "/tiny.txt", h, "HEAD"), tiny);
  });
  // A script's output has no length: it is streamed, so it is compressed
  // whatever its size.
  await withServer(handler, async (port) => {
    const small = await wire(port, "/cgi-bin/small.cgi", {
      "accept-encoding": "gzip",
    });
    assert.equal(small.headers.get("content-encoding"), "gzip");
    assert.equal(decoded(small), "small\n");
  });
});

Deno.test("compress: off by default — CGI output untouched, no Vary", async () => {
  await using dir = await cgiSite();
  await using handler = createHandler({ root: dir.path, cgi: {} });
  await withServer(handler, async (port) => {
    const res = await wire(port, "/cgi-bin/page.cgi", {
      "accept-encoding": "gzip, br",
    });
    assert.equal(res.headers.get("content-encoding"), null);
    assert.equal(res.headers.get("vary"), "Cookie");
    assert.equal(new TextDecoder().decode(res.body), PAGE);
  });
});

Deno.test("cli --compress compresses CGI output and error pages too", async () => {
  await using dir = await cgiSite();
  await Deno.writeTextFile(`${dir.path}/404.html`, PAGE);
  const server = await startCli([
    dir.path,
    "--port",
    "0",
    "--quiet",
    "--cgi",
    "--compress",
  ]);
  try {
    const port = Number(new URL(server.base).port);
    const h = { "accept-encoding": "gzip" };
    const page = await wire(port, "/cgi-bin/page.cgi", h);
    assert.equal(page.headers.get("content-encoding"), "gzip");
    assert.equal(decoded(page), PAGE);
    const missing = await wire(port, "/nope", h);
    assert.equal(missing.status, 404);
    assert.equal(missing.headers.get("content-encoding"), "gzip");
    assert.equal(decoded(missing), PAGE);
  } finally {
    await server.stop();
  }
});

// --- The middleware on its own ---

function handle(
  inner: Middleware,
  headers: Record<string, string> = { "accept-encoding": "gzip" },
  method = "GET",
  options = {},
) {
  return compose([compress(options), inner])(
    new Request("http://localhost/", { method, headers }),
  );
}

const html = { "content-type": "text/html; charset=UTF-8" };

Deno.test("compress() does not touch the body of what it does not compress", async () => {
  const bytes = new TextEncoder().encode("x".repeat(100));
  let made: Response | undefined;
  const res = await handle(() => made = new Response(bytes, { headers: html }));
  assert.equal(res, made, "the same response");
  const kind = bodyKind(res);
  if (kind !== undefined) assert.equal(kind, 100, "still a bytes body");
  assert.equal(res.headers.get("vary"), "Accept-Encoding");
  await res.body?.cancel();

  let png: Response | undefined;
  const image = await handle(() =>
    png = new Response(new Uint8Array(4000), {
      headers: { "content-type": "image/png" },
    })
  );
  assert.equal(image, png);
  assert.equal(image.headers.get("vary"), null);
  if (bodyKind(image) !== undefined) assert.equal(bodyKind(image), 4000);
});

Deno.test("compress() weakens the ETag, drops Content-Length and Accept-Ranges, merges Vary", async () => {
  const res = await handle(() =>
    new Response(PAGE, {
      headers: {
        ...html,
        etag: '"abc"',
        "accept-ranges": "bytes",
        "content-length": String(PAGE.length),
        vary: "Origin",
      },
    })
  );
  assert.equal(res.headers.get("content-encoding"), "gzip");
  assert.equal(res.headers.get("etag"), 'W/"abc"');
  assert.equal(res.headers.get("accept-ranges"), null);
  assert.equal(res.headers.get("content-length"), null);
  assert.equal(res.headers.get("vary"), "Origin, Accept-Encoding");
  assert.equal(
    gunzipSync(new Uint8Array(await res.arrayBuffer())).toString(),
    PAGE,
  );
  const weak = await handle(() =>
    new Response(PAGE, { headers: { ...html, etag: 'W/"x"', vary: "*" } })
  );
  assert.equal(weak.headers.get("etag"), 'W/"x"');
  assert.equal(weak.headers.get("vary"), "*");
  await weak.body?.cancel();
  const already = await handle(() =>
    new Response(PAGE, { headers: { ...html, vary: "accept-encoding" } })
  );
  assert.equal(already.headers.get("vary"), "accept-encoding");
  await already.body?.cancel();
});

Deno.test("compress() compresses streams of unknown length, not a known-short one, nor 304, empty or event-stream responses", async () => {
  const stream = (text: string) =>
    new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode(text));
        c.close();
      },
    });
  const unknown = await handle(() =>
    new Response(stream("short"), { headers: html })
  );
  assert.equal(unknown.headers.get("content-encoding"), "gzip");
  assert.equal(
    gunzipSync(new Uint8Array(await unknown.arrayBuffer())).toString(),
    "short",
  );
  const known = await handle(() =>
    new Response(stream("short"), {
      headers: { ...html, "content-length": "5" },
    })
  );
  assert.equal(known.headers.get("content-encoding"), null);
  assert.equal(await known.text(), "short");
  const lower = await handle(
    () => new Response(stream("short"), { headers: html }),
    { "accept-encoding": "gzip" },
    "GET",
    { minSize: 0 },
  );
  assert.equal(lower.headers.get("content-encoding"), "gzip");
  await lower.body?.cancel();
  const notModified = await handle(() =>
    new Response(null, { status: 304, headers: { ...html, etag: '"a"' } })
  );
  assert.equal(notModified.headers.get("etag"), '"a"');
  assert.equal(notModified.headers.get("vary"), null);
  const events = await handle(() =>
    new Response(stream("data: x\n\n".repeat(200)), {
      headers: { "content-type": "text/event-stream" },
    })
  );
  assert.equal(events.headers.get("content-encoding"), null);
  await events.body?.cancel();
  const nothing = await handle(() =>
    new Response(null, { status: 200, headers: html })
  );
  assert.equal(nothing.headers.get("content-encoding"), null);
});

Deno.test("compress() cancels the inner stream when the client goes away", async () => {
  const cancelled = Promise.withResolvers<unknown>();
  const res = await handle(() =>
    new Response(
      new ReadableStream<Uint8Array>({
        pull(c) {
          c.enqueue(new TextEncoder().encode(PAGE));
        },
        cancel(reason) {
          cancelled.resolve(reason);
        },
      }),
      { headers: html },
    )
  );
  const reader = res.body!.getReader();
  await reader.read();
  await reader.cancel("gone");
  assert.equal(await cancelled.promise, "gone");
});
