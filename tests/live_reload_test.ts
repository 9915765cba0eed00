import assert from "node:assert/strict";
import { compose, createHandler, liveReload } from "../mod.ts";
import { tempDir } from "./_helpers/fs.ts";
import { withServer } from "./_helpers/net.ts";
import { eventually, withTimeout } from "./_helpers/poll.ts";
import { startCli, startProcess } from "./_helpers/process.ts";

const ENDPOINT = "/__serve/live-reload";

/** One server-sent event. */
interface SseEvent {
  event: string;
  data: string;
}

/** Reads server-sent events from a response body. */
function sseReader(res: Response) {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  // A read that lost a race to a timeout is kept for the next call.
  let pending: Promise<ReadableStreamReadResult<string>> | undefined;
  return {
    /** The next event, or undefined when the stream ended. */
    async next(timeout = 5_000): Promise<SseEvent | undefined> {
      const deadline = Date.now() + timeout;
      while (true) {
        const end = buffered.indexOf("\n\n");
        if (end !== -1) {
          const block = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const event: SseEvent = { event: "message", data: "" };
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) event.event = line.slice(7);
            if (line.startsWith("data: ")) event.data += line.slice(6);
          }
          return event;
        }
        pending ??= reader.read();
        const result = await withTimeout(
          pending,
          deadline - Date.now(),
          `no event within ${timeout} ms`,
        );
        pending = undefined;
        if (result.done) return undefined;
        buffered += result.value;
      }
    },
    cancel: () => reader.cancel(),
  };
}

const SCRIPT = /<script>\/\* @x\/serve live reload \*\/.*?<\/script>/;

Deno.test("liveReload injects its script into HTML 200 responses only", async () => {
  await using dir = await tempDir();
  const root = dir.path;
  await Deno.writeTextFile(
    `${root}/index.html`,
    "<!DOCTYPE html><html><body><h1>Hi</h1></BODY></html>\n",
  );
  await Deno.writeTextFile(`${root}/bare.html`, "<p>no body tag</p>");
  await Deno.writeTextFile(`${root}/a.txt`, "plain </body>");
  await Deno.writeTextFile(`${root}/app.js`, "console.log('</body>')");
  await Deno.mkdir(`${root}/dir`);
  await Deno.writeTextFile(`${root}/dir/x.txt`, "x");
  // A precompressed sibling: served with Content-Encoding, left alone.
  await Deno.writeTextFile(`${root}/zipped.html`, "<body>z</body>");
  const gz = new Response(
    new Blob(["<body>z</body>"]).stream().pipeThrough(
      new CompressionStream("gzip"),
    ),
  );
  await Deno.writeFile(
    `${root}/zipped.html.gz`,
    new Uint8Array(await gz.arrayBuffer()),
  );
  const controller = new AbortController();
  await using handler = createHandler({
    root,
    serveStatic: { dirListing: true },
    liveReload: true,
    signal: controller.signal,
  });
  const get = (path: string, init?: RequestInit) =>
    handler(new Request(`http://localhost${path}`, init));

  const page = await get("/");
  const html = await page.text();
  assert.equal(page.status, 200);
  assert.match(html, /<h1>Hi<\/h1><script>.*<\/script><\/BODY><\/html>\n$/);
  assert.match(html, SCRIPT);
  assert.match(html, /new EventSource\("\/__serve\/live-reload"\)/);
  assert.equal(
    page.headers.get("content-length"),
    String(new TextEncoder().encode(html).byteLength),
  );
  assert.match(page.headers.get("etag") ?? "", /^W\//, "etag made weak");

  const bare = await (await get("/bare.html")).text();
  assert.match(bare, /^<p>no body tag<\/p><script>.*<\/script>$/);

  const listing = await (await get("/dir/")).text();
  assert.match(listing, SCRIPT, "directory listings reload too");

  for (const path of ["/a.txt", "/app.js"]) {
    const text = await (await get(path)).text();
    assert.doesNotMatch(text, /EventSource/, path);
  }

  const head = await get("/index.html", { method: "HEAD" });
  assert.equal(head.body, null);
  assert.match(head.headers.get("etag") ?? "", /^"/, "HEAD untouched");

  const range = await get("/index.html", { headers: { range: "bytes=0-9" } });
  assert.equal(range.status, 206);
  assert.equal(await range.text(), "<!DOCTYPE ");

  const zipped = await get("/zipped.html", {
    headers: { "accept-encoding": "gzip" },
  });
  assert.equal(zipped.headers.get("content-encoding"), "gzip");
  const unzipped = await new Response(
    zipped.body!.pipeThrough(new DecompressionStream("gzip")),
  ).text();
  assert.equal(unzipped, "<body>z</body>");

  const missing = await get("/nope.html");
  assert.equal(missing.status, 404);
  await missing.body?.cancel();

  const post = await get(ENDPOINT, { method: "POST" });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
  await post.body?.cancel();
  controller.abort();
});

Deno.test("liveReload injects once into a re-dispatched response", async () => {
  await using reload = liveReload();
  const handler = compose([
    reload,
    (_req, ctx) =>
      ctx.depth === 0
        ? ctx.dispatch(new Request("http://localhost/inner"))
        : new Response("<body>inner</body>", {
          headers: { "content-type": "text/html" },
        }),
  ]);
  const html = await (await handler(new Request("http://localhost/"))).text();
  assert.equal(html.match(/EventSource/g)?.length, 1, html);
});

Deno.test("liveReload is off unless asked for", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/index.html`, "<body>x</body>");
  await using handler = createHandler({ root: dir.path });
  const res = await handler(new Request("http://localhost/"));
  assert.equal(await res.text(), "<body>x</body>");
  const sse = await handler(new Request(`http://localhost${ENDPOINT}`));
  assert.equal(sse.status, 404);
  await sse.body?.cancel();
});

Deno.test("liveReload sends a reload event when a file in the root changes", async () => {
  await using dir = await tempDir();
  const root = dir.path;
  await Deno.mkdir(`${root}/sub`);
  await Deno.mkdir(`${root}/.git`);
  await Deno.writeTextFile(`${root}/sub/page.html`, "<body>v1</body>");
  await using reload = liveReload({ dir: root, debounceMs: 200 });
  const handler = compose([reload, () => new Response("fallback")]);
  await withServer(handler, async (_port, base) => {
    const res = await fetch(`${base}${ENDPOINT}`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
    const events = sseReader(res);
    // A failed assertion must not leave the server waiting for the stream.
    using _ = { [Symbol.dispose]: () => void reload.close() };
    const hello = await events.next();
    assert.equal(hello?.event, "hello");
    assert.match(hello?.data ?? "", /^[0-9a-f-]{36}$/);
    assert.equal(reload.clients, 1);

    // Dotfiles and .git/ are ignored: no event for them alone. A bounded
    // wait for what must not come: twice the 200 ms debounce, after which
    // an event for these writes would have been sent.
    await Deno.writeTextFile(`${root}/.git/HEAD`, "ref");
    await Deno.writeTextFile(`${root}/.hidden`, "x");
    await assert.rejects(() => events.next(400), /no event within/);

    // Several writes in a burst: one event.
    await Deno.writeTextFile(`${root}/sub/page.html`, "<body>v2</body>");
    await Deno.writeTextFile(`${root}/new.css`, "p{}");
    const event = await events.next();
    assert.equal(event?.event, "reload");
    const paths: string[] = JSON.parse(event?.data ?? "[]");
    assert.ok(paths.includes("/sub/page.html"), event?.data);
    assert.ok(paths.includes("/new.css"), event?.data);
    assert.ok(!paths.some((p) => p.includes(root)), "no absolute paths");

    // The page leaves: the watcher stops with the last client.
    await events.cancel();
    await eventually(() => assert.equal(reload.clients, 0), {
      timeoutMs: 1000,
    });
  });
});

Deno.test("liveReload close() ends open event streams", async () => {
  await using dir = await tempDir();
  const reload = liveReload({ dir: dir.path });
  const handler = compose([reload, () => new Response("fallback")], {
    log: () => {},
  });
  await withServer(handler, async (_port, base) => {
    const events = sseReader(await fetch(`${base}${ENDPOINT}`));
    using _ = { [Symbol.dispose]: () => void reload.close() };
    assert.equal((await events.next())?.event, "hello");
    await reload.close();
    assert.equal(await events.next(), undefined, "stream ended");
    const again = await fetch(`${base}${ENDPOINT}`);
    assert.equal(again.status, 503);
    await again.body?.cancel();
    await reload.close(); // twice is fine
  });
});

Deno.test("cli --live-reload: SIGTERM ends open event streams and exits", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/index.html`, "<body>x</body>");
  const server = await startCli([dir.path, "--port", "0", "--live-reload"]);
  let events: ReturnType<typeof sseReader> | undefined;
  try {
    const help = await (await fetch(`${server.base}/`)).text();
    assert.match(help, SCRIPT);
    events = sseReader(await fetch(`${server.base}${ENDPOINT}`));
    assert.equal((await events.next())?.event, "hello");
    const started = Date.now();
    const status = await server.stop();
    assert.equal(status.code, 0);
    assert.ok(Date.now() - started < 5_000, "no wait for the open page");
    assert.equal(await events.next(), undefined);
  } finally {
    await server.stop();
    await events?.cancel().catch(() => {});
  }
});

Deno.test("cli --help lists --live-reload", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../mod.ts", import.meta.url).pathname,
      "--help",
    ],
    stdout: "piped",
    stderr: "null",
  }).output();
  assert.match(new TextDecoder().decode(out.stdout), /--live-reload\s+\S/);
});

Deno.test("deno task dev ROOT serves ROOT with live reload", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
  );
  const start: string = config.tasks.start;
  const dev: string = config.tasks.dev;
  assert.equal(
    dev,
    start.replace("deno run ", "deno run --watch ") + " --live-reload",
    "dev = start + --watch + --live-reload",
  );

  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/index.html`, "<body>dev</body>");
  const server = await startProcess(["task", "dev", dir.path, "--port", "0"]);
  let events: ReturnType<typeof sseReader> | undefined;
  try {
    const html = await (await fetch(`${server.base}/`)).text();
    assert.match(html, /^<body>dev<script>.*<\/script><\/body>$/);
    events = sseReader(await fetch(`${server.base}${ENDPOINT}`));
    assert.equal((await events.next())?.event, "hello");
    await Deno.writeTextFile(`${dir.path}/index.html`, "<body>dev 2</body>");
    assert.equal((await events.next())?.event, "reload");
  } finally {
    await events?.cancel().catch(() => {});
    await server.stop();
  }
});

Deno.test("liveReload() passes a streamed page larger than maxInjectSize through untouched", async () => {
  await using reload = liveReload({ maxInjectSize: 100 });
  const page = "<html><body>" + "x".repeat(1000) + "</body></html>";
  let pulled = 0;
  const handler = compose([reload, () => {
    const bytes = new TextEncoder().encode(page);
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (pulled >= bytes.length) return controller.close();
        controller.enqueue(bytes.subarray(pulled, pulled + 64));
        pulled += 64;
      },
    });
    return new Response(body, { headers: { "content-type": "text/html" } });
  }]);
  const res = await handler(new Request("http://x/page.html"));
  assert.ok(
    pulled <= 256,
    `only about maxInjectSize was read before answering (${pulled})`,
  );
  assert.equal(await res.text(), page, "no script, nothing lost");
});

Deno.test("createHandler() with liveReload gives the endpoint's errors the root's custom pages", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/405.html`, "<h1>custom 405</h1>");
  const controller = new AbortController();
  await using handler = createHandler({
    root: dir.path,
    liveReload: true,
    signal: controller.signal,
  });
  const res = await handler(
    new Request("http://localhost/__serve/live-reload", { method: "POST" }),
  );
  assert.equal(res.status, 405);
  assert.equal(await res.text(), "<h1>custom 405</h1>");
  controller.abort();
});

Deno.test("liveReload widens a page's own CSP to allow its script and event stream", async () => {
  const { _allowingScript } = await import("../middleware/live_reload.ts");
  assert.equal(
    _allowingScript(
      "default-src 'none'; style-src 'sha256-a'; script-src 'sha256-b'",
      "'sha256-x'",
    ),
    "default-src 'none'; style-src 'sha256-a'; script-src 'sha256-b' 'sha256-x'; connect-src 'self'",
  );
  // Only default-src: the new directives start from it ('none' dropped).
  assert.equal(
    _allowingScript("default-src 'none'", "'sha256-x'"),
    "default-src 'none'; script-src 'sha256-x'; connect-src 'self'",
  );
});
