// accessLog() logs facts (issue 10): the body bytes actually sent, the time
// to the last byte or to the abort, and aborted responses marked, over real
// sockets, plus the library call without `Deno.ServeHandlerInfo`.
import assert from "node:assert/strict";
import {
  accessLog,
  type AccessLogFormat,
  compose,
  createHandler,
  type Middleware,
} from "../mod.ts";
import { tempDir } from "./_helpers/fs.ts";
import { makeCert, rawRequest, serve } from "./_helpers/net.ts";
import { waitFor, withTimeout } from "./_helpers/poll.ts";

const MIB = 1024 * 1024;
const CHUNK = 64 * 1024;

/** A lazily made body of `size` bytes (all `7`), and whether it was cancelled. */
function bigStream(size: number): {
  body: ReadableStream<Uint8Array>;
  cancelled: () => boolean;
} {
  let sent = 0;
  let cancelled = false;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      const n = Math.min(CHUNK, size - sent);
      if (n === 0) return controller.close();
      sent += n;
      controller.enqueue(new Uint8Array(n).fill(7));
    },
    cancel() {
      cancelled = true;
    },
  }, { highWaterMark: 0 });
  return { body, cancelled: () => cancelled };
}

/** One accessLog() per format, collecting its lines. */
function loggers(formats: AccessLogFormat[]): {
  chain: Middleware[];
  lines: Record<string, string[]>;
} {
  const lines: Record<string, string[]> = {};
  const chain = formats.map((format) => {
    const mine: string[] = lines[format] = [];
    return accessLog({ format, write: (l) => mine.push(l) });
  });
  return { chain, lines };
}

const _sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("accessLog() logs a download aborted mid-body with the bytes sent, the time to the abort and the mark, in every format", async () => {
  const full = 256 * MIB;
  const { chain, lines } = loggers(["text", "common", "combined", "json"]);
  let source: ReturnType<typeof bigStream> | undefined;
  await using server = serve(compose([...chain, () => {
    source = bigStream(full);
    return new Response(source.body, {
      headers: { "content-length": String(full) },
    });
  }]));

  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await conn.write(
    new TextEncoder().encode(
      "GET /big?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nReferer: http://ref/\r\n" +
        "User-Agent: facts/1\r\n\r\n",
    ),
  );
  let received = 0;
  let firstByte = 0;
  const buf = new Uint8Array(CHUNK);
  while (received < 2 * MIB) {
    const n = await conn.read(buf);
    assert.ok(n !== null, "the server closed early");
    if (firstByte === 0) firstByte = performance.now();
    received += n;
  }
  // Hold on (the server is stalled by backpressure), then vanish.
  await _sleep(300);
  conn.close();
  const untilAbort = performance.now() - firstByte;

  await waitFor(() => Object.values(lines).every((l) => l.length > 0), {
    message: "a line in every format",
  });
  // Written once, never again.
  await _sleep(100);
  for (const [format, got] of Object.entries(lines)) {
    assert.equal(got.length, 1, `${format}: ${got.join("\n")}`);
  }
  const entry = JSON.parse(lines.json![0]!);
  assert.equal(entry.aborted, true);
  assert.equal(entry.status, 200);
  assert.equal(entry.path, "/big?x=1");
  assert.ok(
    entry.bytes >= received && entry.bytes < full,
    `bytes ${entry.bytes}, received ${received}, full ${full}`,
  );
  assert.ok(
    entry.duration_ms >= untilAbort,
    `duration ${entry.duration_ms} ms, abort after ${untilAbort} ms`,
  );
  assert.equal(entry.referer, "http://ref/");
  assert.equal(entry.user_agent, "facts/1");

  const bytes = String(entry.bytes);
  assert.match(
    lines.text![0]!,
    new RegExp(` GET /big\\?x=1 200 ${bytes} [\\d.]+ms aborted$`),
  );
  const ms = Number(/ ([\d.]+)ms aborted$/.exec(lines.text![0]!)![1]);
  assert.ok(ms >= Math.floor(untilAbort * 10) / 10, `text duration ${ms}`);
  assert.match(
    lines.common![0]!,
    new RegExp(`"GET /big\\?x=1 HTTP/1\\.1" 200 ${bytes} aborted$`),
  );
  assert.match(
    lines.combined![0]!,
    new RegExp(
      `"GET /big\\?x=1 HTTP/1\\.1" 200 ${bytes} "http://ref/" "facts/1" aborted$`,
    ),
  );
  // The client left: the body's source was let go, not read on.
  await waitFor(() => source!.cancelled(), { message: "the source cancelled" });
});

/** A sparse file of `size` zero bytes. */
async function sparseFile(path: string, size: number): Promise<void> {
  await Deno.writeFile(path, new Uint8Array(0));
  await Deno.truncate(path, size);
}

/**
 * Serves `path` as static/file.ts serves a whole file: Deno's own file
 * stream (which Deno.serve sends natively), with a Content-Length unless
 * `length` is false. `bodies` collects the streams handed out.
 */
function serveFile(
  path: string,
  bodies: ReadableStream<Uint8Array>[],
  length = true,
): Middleware {
  return async () => {
    const { size } = await Deno.stat(path);
    const body = (await Deno.open(path)).readable;
    bodies.push(body);
    const headers = new Headers();
    if (length) headers.set("content-length", String(size));
    return new Response(body, { headers });
  };
}

/** Reads `conn` until `bytes` have come, and returns when the first one did. */
async function readSome(
  read: (buf: Uint8Array) => Promise<number | null>,
  bytes: number,
): Promise<{ received: number; firstByte: number }> {
  let received = 0;
  let firstByte = 0;
  const buf = new Uint8Array(CHUNK);
  while (received < bytes) {
    const n = await read(buf);
    assert.ok(n !== null, "the server closed early");
    if (firstByte === 0) firstByte = performance.now();
    received += n;
  }
  return { received, firstByte };
}

Deno.test("accessLog() logs a file Deno sends natively, downloaded whole, with its size and leaves it unwrapped", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/whole.bin`;
  const data = new Uint8Array(3 * MIB + 11).map((_, i) => i % 253);
  await Deno.writeFile(path, data);
  const { chain, lines } = loggers(["json", "common", "text"]);
  const bodies: ReadableStream<Uint8Array>[] = [];
  await using server = serve(compose([...chain, serveFile(path, bodies)]));

  const started = performance.now();
  const got = await (await fetch(`${server.url}/whole.bin`)).bytes();
  const took = performance.now() - started;
  assert.deepEqual(got, data);
  await waitFor(() => lines.json!.length === 1, { message: "the line" });
  const entry = JSON.parse(lines.json![0]!);
  assert.equal(entry.bytes, data.byteLength);
  assert.equal(entry.aborted, false);
  assert.ok(entry.duration_ms <= took, `${entry.duration_ms} / ${took} ms`);
  assert.match(lines.common![0]!, new RegExp(`" 200 ${data.byteLength}$`));
  assert.match(
    lines.text![0]!,
    new RegExp(` GET /whole\\.bin 200 ${data.byteLength} [\\d.]+ms$`),
  );
  // Sent by Deno itself: nothing in JS read (so locked) the stream.
  assert.equal(bodies.length, 1);
  assert.equal(bodies[0]!.locked, false, "the file stream was wrapped");

  // Without a Content-Length (sent chunked): the size is not known.
  const chunked: string[] = [];
  const unsized: ReadableStream<Uint8Array>[] = [];
  await using other = serve(compose([
    accessLog({ format: "json", write: (l) => chunked.push(l) }),
    serveFile(path, unsized, false),
  ]));
  const res = await rawRequest(other.port, "/");
  assert.equal(res.headers.get("transfer-encoding"), "chunked");
  await waitFor(() => chunked.length === 1, { message: "the chunked line" });
  assert.deepEqual(
    [JSON.parse(chunked[0]!).bytes, JSON.parse(chunked[0]!).aborted],
    [null, false],
  );
  assert.equal(unsized[0]!.locked, false, "the file stream was wrapped");
});

Deno.test("accessLog() logs a file Deno sends natively, abandoned mid-body over HTTP/2, as aborted with unknown bytes, in every format", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/big.bin`;
  const full = 256 * MIB;
  await sparseFile(path, full);
  const tls = await makeCert(dir.path);
  const cert = await Deno.readTextFile(tls.cert);
  const { chain, lines } = loggers(["text", "common", "combined", "json"]);
  const bodies: ReadableStream<Uint8Array>[] = [];
  // Stopped at once in the end, whatever state the stream is in.
  const stop = new AbortController();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: stop.signal,
    cert,
    key: await Deno.readTextFile(tls.key),
    onListen() {},
  }, compose([...chain, serveFile(path, bodies)]));
  try {
    using client = Deno.createHttpClient({
      caCerts: [cert],
      http2: true,
      http1: false,
    });
    const res = await withTimeout(
      fetch(`https://localhost:${server.addr.port}/big.bin`, {
        client,
        headers: { referer: "http://ref/", "user-agent": "facts/3" },
      }),
      10_000,
      "no HTTP/2 response",
    );
    const reader = res.body!.getReader();
    const { firstByte } = await readSome(async () => {
      const { done, value } = await reader.read();
      return done ? null : value.byteLength;
    }, 2 * MIB);
    // Hold on (the server is stalled by flow control), then reset the stream.
    await _sleep(300);
    await reader.cancel();
    const untilAbort = performance.now() - firstByte;

    await waitFor(() => Object.values(lines).every((l) => l.length > 0), {
      message: "a line in every format",
    });
    await _sleep(100);
    for (const [format, got] of Object.entries(lines)) {
      assert.equal(got.length, 1, `${format}: ${got.join("\n")}`);
    }
    const entry = JSON.parse(lines.json![0]!);
    assert.equal(entry.aborted, true);
    assert.equal(entry.bytes, null);
    assert.equal(entry.status, 200);
    assert.ok(
      entry.duration_ms >= untilAbort,
      `duration ${entry.duration_ms} ms, abort after ${untilAbort} ms`,
    );
    assert.match(lines.text![0]!, / GET \/big\.bin 200 - [\d.]+ms aborted$/);
    assert.match(
      lines.common![0]!,
      /"GET \/big\.bin HTTP\/1\.1" 200 - aborted$/,
    );
    assert.match(
      lines.combined![0]!,
      /"GET \/big\.bin HTTP\/1\.1" 200 - "http:\/\/ref\/" "facts\/3" aborted$/,
    );
    assert.equal(bodies[0]!.locked, false, "the file stream was wrapped");
  } finally {
    stop.abort();
    await withTimeout(
      server.finished,
      10_000,
      "the HTTP/2 server did not stop",
    );
  }
});

/**
 * GETs `/big.bin` over HTTP/1.1 on a raw connection, reads 2 MiB, and
 * leaves: the bytes received.
 */
async function abandonBigBin(port: number): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(
    new TextEncoder().encode(
      "GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ),
  );
  const { received } = await readSome((buf) => conn.read(buf), 2 * MIB);
  await _sleep(300);
  conn.close();
  return received;
}

Deno.test("accessLog() cannot see a file Deno sends natively abandoned mid-body over HTTP/1.1 (Deno 2.9.6 does not report it)", async () => {
  // Pins the limitation the README states. Deno 2.9.6 writes such a body
  // until a socket write fails and drops that failure: `info.completed`
  // resolves and `req.signal` stays unaborted. If this test fails, Deno now
  // reports the abort: drop this test and the README's caveat.
  await using dir = await tempDir();
  const path = `${dir.path}/big.bin`;
  const full = 256 * MIB;
  await sparseFile(path, full);
  const { chain, lines } = loggers(["json"]);
  const bodies: ReadableStream<Uint8Array>[] = [];
  let signal: AbortSignal | undefined;
  await using server = serve(compose([
    (req, _ctx, next) => {
      signal = req.signal;
      return next();
    },
    ...chain,
    serveFile(path, bodies),
  ]));

  const received = await abandonBigBin(server.port);

  await waitFor(() => lines.json!.length > 0, { message: "the line" });
  await _sleep(200);
  assert.equal(lines.json!.length, 1);
  const entry = JSON.parse(lines.json![0]!);
  assert.ok(received < full);
  assert.deepEqual([entry.bytes, entry.aborted], [full, false]);
  assert.equal(signal!.aborted, false, "req.signal aborted: Deno reports it");
  assert.equal(bodies[0]!.locked, false, "the file stream was wrapped");
});

Deno.test("accessLog() leaves a fetch body (also resource-backed) to Deno and logs its Content-Length", async () => {
  const size = 2 * MIB + 3;
  await using upstream = serve(() =>
    new Response(bigStream(size).body, {
      headers: { "content-length": String(size) },
    })
  );
  const { chain, lines } = loggers(["json"]);
  let body: ReadableStream<Uint8Array> | undefined;
  await using server = serve(compose([...chain, async () => {
    body = (await fetch(upstream.url)).body!;
    return new Response(body, {
      headers: { "content-length": String(size) },
    });
  }]));
  assert.equal((await (await fetch(server.url)).bytes()).byteLength, size);
  await waitFor(() => lines.json!.length === 1, { message: "the line" });
  assert.deepEqual(
    [JSON.parse(lines.json![0]!).bytes, JSON.parse(lines.json![0]!).aborted],
    [size, false],
  );
  assert.equal(body!.locked, false, "the fetch body was wrapped");
});

Deno.test("accessLog() logs a complete streamed download with its full size and the time to the last byte", async () => {
  const size = 3 * MIB + 123;
  const { chain, lines } = loggers(["json", "common"]);
  await using server = serve(compose([...chain, () => {
    // The headers go out at once, the body in five parts 50 ms apart.
    const { body } = bigStream(size);
    const reader = body.getReader();
    let part = 0;
    return new Response(
      new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (part++ % 12 === 11) await _sleep(50);
          const { done, value } = await reader.read();
          if (done) controller.close();
          else controller.enqueue(value);
        },
      }, { highWaterMark: 0 }),
      { headers: { "content-length": String(size) } },
    );
  }]));
  const started = performance.now();
  const res = await fetch(`${server.url}/s`);
  const headersAt = performance.now() - started;
  assert.equal((await res.bytes()).byteLength, size);
  const bodyTook = performance.now() - started - headersAt;
  assert.ok(bodyTook >= 150, `the body took ${bodyTook} ms`);
  await waitFor(() => lines.json!.length > 0, { message: "the line" });
  const entry = JSON.parse(lines.json![0]!);
  assert.equal(entry.bytes, size);
  assert.equal(entry.aborted, false);
  assert.ok(
    entry.duration_ms >= bodyTook,
    `duration ${entry.duration_ms} ms is to the last byte (body ${bodyTook} ms)`,
  );
  assert.match(lines.common![0]!, new RegExp(`" 200 ${size}$`));
});

Deno.test("accessLog() logs a served file and a small body with their sizes, keeping Deno's Content-Length", async () => {
  await using dir = await tempDir();
  const big = new Uint8Array(MIB + 7).map((_, i) => i % 251);
  await Deno.writeFile(`${dir.path}/big.bin`, big);
  const lines: string[] = [];
  await using handler = createHandler({
    root: dir.path,
    accessLog: { format: "json", write: (l) => lines.push(l) },
  });
  await using server = serve(handler);
  const got = await (await fetch(`${server.url}/big.bin`)).bytes();
  assert.deepEqual(got, big, "the file arrives intact");
  await waitFor(() => lines.length === 1, { message: "the file's line" });
  assert.equal(JSON.parse(lines[0]!).bytes, big.byteLength);
  assert.equal(JSON.parse(lines[0]!).aborted, false);

  // A string body without Content-Length: its size is logged, and it still
  // goes out with Content-Length (not turned into a chunked stream).
  const small: string[] = [];
  await using plain = serve(compose([
    accessLog({ format: "json", write: (l) => small.push(l) }),
    () => new Response("é".repeat(500)),
  ]));
  const res = await rawRequest(plain.port, "/");
  assert.equal(res.headers.get("content-length"), "1000");
  assert.equal(res.headers.get("transfer-encoding"), null);
  await waitFor(() => small.length === 1, { message: "the string's line" });
  assert.equal(JSON.parse(small[0]!).bytes, 1000);
});

Deno.test("accessLog() logs 0 body bytes for HEAD", async () => {
  await using dir = await tempDir();
  await Deno.writeFile(`${dir.path}/big.bin`, new Uint8Array(MIB));
  const lines: string[] = [];
  await using handler = createHandler({
    root: dir.path,
    accessLog: { write: (l) => lines.push(l) },
  });
  await using server = serve(handler);
  const res = await fetch(`${server.url}/big.bin`, { method: "HEAD" });
  assert.equal(res.headers.get("content-length"), String(MIB));
  await res.body?.cancel();
  // A stream handed to a HEAD is not sent either.
  const streamed: string[] = [];
  await using other = serve(compose([
    accessLog({ format: "json", write: (l) => streamed.push(l) }),
    () => new Response(bigStream(MIB).body),
  ]));
  const head = await rawRequest(other.port, "/", { method: "HEAD" });
  assert.equal(head.body, "");
  await waitFor(() => lines.length === 1 && streamed.length === 1, {
    message: "both lines",
  });
  assert.match(lines[0]!, / HEAD \/big\.bin 200 0 [\d.]+ms$/);
  assert.equal(JSON.parse(streamed[0]!).bytes, 0);
  assert.equal(JSON.parse(streamed[0]!).aborted, false);
});

Deno.test("accessLog() json lines carry every field", async () => {
  const lines: string[] = [];
  await using server = serve(compose([
    accessLog({ format: "json", write: (l) => lines.push(l) }),
    () => new Response("nope", { status: 404 }),
  ]));
  await (await fetch(`${server.url}/x?y=1`, {
    headers: { "user-agent": "facts/2" },
  })).text();
  await waitFor(() => lines.length === 1, { message: "the line" });
  const entry = JSON.parse(lines[0]!);
  assert.deepEqual(Object.keys(entry), [
    "time",
    "remote",
    "method",
    "path",
    "status",
    "bytes",
    "duration_ms",
    "aborted",
    "referer",
    "user_agent",
  ]);
  assert.match(entry.time, /^\d{4}-\d\d-\d\dT/);
  assert.equal(entry.remote, "127.0.0.1");
  assert.equal(entry.method, "GET");
  assert.equal(entry.path, "/x?y=1");
  assert.equal(entry.status, 404);
  assert.equal(entry.bytes, 4);
  assert.equal(typeof entry.duration_ms, "number");
  assert.equal(entry.aborted, false);
  assert.equal(entry.referer, null);
  assert.equal(entry.user_agent, "facts/2");
});

Deno.test("accessLog() called without info logs a body once its reader is done with it", async () => {
  const lines: string[] = [];
  const handler = compose([
    accessLog({ format: "json", write: (l) => lines.push(l) }),
    (req) =>
      new URL(req.url).pathname === "/text"
        ? new Response("hello")
        : new Response(bigStream(4 * CHUNK).body),
  ]);
  // A string body: at once, whole.
  const text = await handler(new Request("http://x/text"));
  assert.equal(lines.length, 1);
  assert.equal(JSON.parse(lines[0]!).bytes, 5);
  assert.equal(await text.text(), "hello");

  // A stream read to its end: complete, full size, once.
  const whole = await handler(new Request("http://x/whole"));
  assert.equal(lines.length, 1, "not before the body is read");
  assert.equal((await whole.bytes()).byteLength, 4 * CHUNK);
  assert.equal(lines.length, 2);
  assert.deepEqual(
    [JSON.parse(lines[1]!).bytes, JSON.parse(lines[1]!).aborted],
    [4 * CHUNK, false],
  );

  // A stream cancelled after one chunk: aborted, one chunk.
  const cut = await handler(new Request("http://x/cut"));
  const reader = cut.body!.getReader();
  await reader.read();
  await reader.cancel();
  assert.equal(lines.length, 3);
  assert.deepEqual(
    [JSON.parse(lines[2]!).bytes, JSON.parse(lines[2]!).aborted],
    [CHUNK, true],
  );
  await reader.cancel();
  assert.equal(lines.length, 3, "written once");
});

Deno.test("accessLog() marks a streamed body that fails midway as aborted", async () => {
  const lines: string[] = [];
  const handler = compose([
    accessLog({ write: (l) => lines.push(l) }),
    () => {
      let part = 0;
      return new Response(
        new ReadableStream<Uint8Array>({
          pull(controller) {
            if (part++ === 2) throw new Error("disk gone");
            controller.enqueue(new Uint8Array(CHUNK));
          },
        }, { highWaterMark: 0 }),
      );
    },
  ]);
  const res = await handler(new Request("http://x/f"));
  await assert.rejects(res.bytes(), /disk gone/);
  assert.equal(lines.length, 1);
  assert.match(
    lines[0]!,
    new RegExp(` GET /f 200 ${2 * CHUNK} [\\d.]+ms aborted$`),
  );
});

Deno.test("accessLog() reports a write that throws to the chain's log", async () => {
  const logged: string[] = [];
  await using server = serve(compose([
    accessLog({
      write: () => {
        throw new Error("disk full");
      },
    }),
    () => new Response("ok"),
  ], { log: (level, message) => logged.push(`${level}: ${message}`) }));
  assert.equal(await (await fetch(server.url)).text(), "ok");
  await waitFor(() => logged.length === 1, { message: "the error" });
  assert.match(logged[0]!, /^error: access log: Error: disk full$/);
});

Deno.test("accessLog() counts a stream without taking its chunks' buffers", async () => {
  const shared = new Uint8Array(1000).fill(9);
  const lines: string[] = [];
  await using server = serve(compose([
    accessLog({ format: "json", write: (l) => lines.push(l) }),
    () =>
      new Response(
        new ReadableStream<Uint8Array>({
          start(controller) {
            // The same bytes twice: a byte-stream wrapper would detach them.
            controller.enqueue(shared);
            controller.enqueue(shared);
            controller.close();
          },
        }),
      ),
  ]));
  const got = await (await fetch(server.url)).bytes();
  assert.equal(got.byteLength, 2000);
  assert.ok(got.every((b) => b === 9));
  assert.equal(shared.byteLength, 1000, "still attached");
  await waitFor(() => lines.length === 1, { message: "the line" });
  assert.equal(JSON.parse(lines[0]!).bytes, 2000);
});
