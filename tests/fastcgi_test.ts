import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { fastcgi } from "../cgi/fastcgi/fastcgi.ts";
import { freePort, serve } from "./_helpers/net.ts";
import { chain, type LogLines, PHP_ROOT, startPhpFpm } from "./_helpers/php.ts";
import { eventually, waitFor } from "./_helpers/poll.ts";

type Info = {
  server: Record<string, string | null>;
  get: unknown;
  post: unknown;
  inputLen: number;
  inputMd5: string;
  pid: number;
};

function md5(bytes: Uint8Array): string {
  return createHash("md5").update(bytes).digest("hex");
}

Deno.test("fastcgi() passes the query and the CGI params to php-fpm over TCP", async () => {
  await using fpm = await startPhpFpm();
  await using php = fastcgi({
    backends: [fpm.address],
    params: { EXTRA_PARAM: "x" },
  });
  await using server = serve(chain(php));
  const res = await fetch(
    `${server.url}/info.php?a=1&b=%C3%A9t%C3%A9&arr[]=1&arr[]=2`,
    {
      headers: {
        "x-custom": "hello",
        proxy: "http://evil.example",
        authorization: "Bearer t0k",
      },
    },
  );
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/json");
  const info: Info = await res.json();
  assert.deepEqual(info.get, { a: "1", b: "été", arr: ["1", "2"] });
  const s = info.server;
  assert.equal(s.QUERY_STRING, "a=1&b=%C3%A9t%C3%A9&arr[]=1&arr[]=2");
  assert.equal(s.REQUEST_METHOD, "GET");
  assert.equal(s.REQUEST_URI, "/info.php?a=1&b=%C3%A9t%C3%A9&arr[]=1&arr[]=2");
  assert.equal(s.SCRIPT_NAME, "/info.php");
  assert.equal(s.DOCUMENT_URI, "/info.php");
  const root = await Deno.realPath(PHP_ROOT);
  assert.equal(s.SCRIPT_FILENAME, `${root}/info.php`);
  assert.equal(s.DOCUMENT_ROOT, root);
  assert.equal(s.GATEWAY_INTERFACE, "CGI/1.1");
  assert.equal(s.SERVER_PROTOCOL, "HTTP/1.1");
  assert.equal(s.SERVER_NAME, "127.0.0.1");
  assert.equal(s.SERVER_PORT, new URL(server.url).port);
  assert.equal(s.REMOTE_ADDR, "127.0.0.1");
  assert.match(s.REMOTE_PORT ?? "", /^\d+$/);
  assert.equal(s.HTTP_X_CUSTOM, "hello");
  assert.equal(s.HTTP_AUTHORIZATION, "Bearer t0k");
  assert.equal(s.HTTP_PROXY, null);
  assert.equal(s.CONTENT_LENGTH, null);
  assert.equal(s.EXTRA_PARAM, "x");
  assert.equal(s.REDIRECT_STATUS, "200");
});

Deno.test("fastcgi() posts a UTF-8 form to php-fpm over a unix socket", async () => {
  await using fpm = await startPhpFpm({ unix: true });
  await using php = fastcgi({ backends: [fpm.address] });
  const handler = chain(php);
  const res = await handler(
    new Request("http://localhost/info.php?q=1", {
      method: "POST",
      body: new URLSearchParams({ name: "Zoë ✓ 日本", age: "30" }),
    }),
  );
  assert.equal(res.status, 200);
  const info: Info = await res.json();
  assert.deepEqual(info.post, { name: "Zoë ✓ 日本", age: "30" });
  assert.deepEqual(info.get, { q: "1" });
  assert.equal(
    info.server.CONTENT_TYPE,
    "application/x-www-form-urlencoded;charset=UTF-8",
  );
  assert.equal(info.server.CONTENT_LENGTH, String(info.inputLen));
});

Deno.test("fastcgi() streams a 3 MiB upload with an exact CONTENT_LENGTH", async () => {
  await using fpm = await startPhpFpm();
  await using php = fastcgi({ backends: [fpm.address] });
  await using server = serve(chain(php));
  const body = new Uint8Array(3 * 1024 * 1024);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7919) & 0xff;
  const res = await fetch(`${server.url}/info.php`, {
    method: "POST",
    body,
    headers: { "content-type": "application/octet-stream" },
  });
  const info: Info = await res.json();
  assert.equal(info.server.CONTENT_LENGTH, String(body.length));
  assert.equal(info.inputLen, body.length);
  assert.equal(info.inputMd5, md5(body));
});

Deno.test("fastcgi() buffers a chunked upload to set CONTENT_LENGTH, and answers 413 over the limit", async () => {
  await using fpm = await startPhpFpm();
  await using php = fastcgi({
    backends: [fpm.address],
    bodyMemoryLimit: 256 * 1024,
    maxBodySize: 2 * 1024 * 1024,
  });
  await using server = serve(chain(php));
  const piece = new Uint8Array(100_000).fill(97);
  const chunked = (n: number): ReadableStream<Uint8Array> =>
    ReadableStream.from((function* () {
      for (let i = 0; i < n; i++) yield piece;
    })());
  const res = await fetch(`${server.url}/info.php`, {
    method: "POST",
    body: chunked(15),
  });
  const info: Info = await res.json();
  assert.equal(info.server.CONTENT_LENGTH, "1500000");
  assert.equal(info.inputLen, 1_500_000);
  const over = await fetch(`${server.url}/info.php`, {
    method: "POST",
    body: chunked(30),
  });
  assert.equal(over.status, 413);
  await over.body?.cancel();
});

Deno.test("fastcgi() splits PATH_INFO off at the script", async () => {
  await using fpm = await startPhpFpm();
  await using php = fastcgi({ backends: [fpm.address] });
  const handler = chain(php);
  const res = await handler(
    new Request("http://localhost/info.php/a%20b/c/?z=9"),
  );
  const info: Info = await res.json();
  assert.equal(info.server.SCRIPT_NAME, "/info.php");
  assert.equal(info.server.PATH_INFO, "/a b/c/");
  assert.equal(info.server.PHP_SELF, "/info.php/a b/c/");
  assert.equal(
    info.server.PATH_TRANSLATED,
    `${await Deno.realPath(PHP_ROOT)}/a b/c/`,
  );
  assert.equal(info.server.REQUEST_URI, "/info.php/a%20b/c/?z=9");
  // A script-looking segment that is not a file is not a script.
  const missing = await handler(new Request("http://localhost/nope.php/a/b"));
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
});

Deno.test("fastcgi() runs index.php as the directory index", async () => {
  await using fpm = await startPhpFpm();
  await using php = fastcgi({ backends: [fpm.address] });
  const handler = chain(php);
  const root = await handler(new Request("http://localhost/?x=1"));
  assert.equal(await root.text(), "root index /index.php /?x=1\n");
  const sub = await handler(new Request("http://localhost/sub/"));
  assert.equal(await sub.text(), "sub index /sub/index.php\n");
  const redirect = await handler(new Request("http://localhost/sub?y=2"));
  assert.equal(redirect.status, 308);
  assert.equal(redirect.headers.get("location"), "/sub/?y=2");
});

Deno.test("fastcgi() sends unknown paths to the front controller and keeps static files static", async () => {
  await using fpm = await startPhpFpm();
  await using php = fastcgi({
    backends: [fpm.address],
    frontController: "/index.php",
  });
  const handler = chain(php, [], `${PHP_ROOT}/app`);
  const routed = await handler(new Request("http://localhost/users/42?tab=1"));
  assert.equal(routed.status, 200);
  assert.equal(await routed.text(), "front /users/42 script=/index.php\n");
  const css = await handler(new Request("http://localhost/style.css"));
  assert.equal(await css.text(), "body{}\n");
  assert.match(css.headers.get("content-type") ?? "", /text\/css/);
  const missingScript = await handler(
    new Request("http://localhost/missing.php"),
  );
  assert.equal(missingScript.status, 404);
  await missingScript.body?.cancel();
  // Without a front controller the same path is a plain 404.
  await using plain = fastcgi({ backends: [fpm.address] });
  const notFound = await chain(plain, [], `${PHP_ROOT}/app`)(
    new Request("http://localhost/users/42"),
  );
  assert.equal(notFound.status, 404);
  await notFound.body?.cancel();
});

Deno.test("fastcgi() passes the status, custom headers and two Set-Cookie", async () => {
  await using fpm = await startPhpFpm();
  await using php = fastcgi({ backends: [fpm.address] });
  await using server = serve(chain(php));
  const res = await fetch(`${server.url}/status.php?code=202`);
  assert.equal(res.status, 202);
  assert.equal(res.headers.get("x-custom"), "yes");
  assert.equal(res.headers.get("x-multi"), "one, two");
  assert.deepEqual(res.headers.getSetCookie(), ["a=1", "b=2"]);
  assert.equal(res.headers.get("status"), null);
  assert.equal(await res.text(), "code\n");
  const head = await fetch(`${server.url}/status.php?code=203`, {
    method: "HEAD",
  });
  assert.equal(head.status, 203);
  assert.equal(await head.text(), "");
});

Deno.test("fastcgi() answers 404 for a missing script without asking the responder", async () => {
  // Nothing listens on the backend: a forwarded request would be a 502.
  await using php = fastcgi({ backends: [`127.0.0.1:${freePort()}`] });
  const res = await chain(php)(new Request("http://localhost/nope.php"));
  assert.equal(res.status, 404);
  await res.body?.cancel();
  assert.equal(php.client.stats()[0]!.opened, 0);
});

Deno.test("fastcgi() passes a fatal error's 500 and logs STDERR without sending it", async () => {
  await using fpm = await startPhpFpm();
  await using php = fastcgi({ backends: [fpm.address] });
  const logs: LogLines = [];
  await using server = serve(chain(php, logs));
  const res = await fetch(`${server.url}/fatal.php`);
  assert.equal(res.status, 500);
  const text = await res.text();
  assert.equal(text, "before-fatal\n");
  assert.ok(!text.includes("secret-stderr-line"));
  assert.ok(
    logs.some((l) =>
      l.includes("secret-stderr-line") && l.includes("/fatal.php")
    ),
    logs.join("\n"),
  );
});

Deno.test("fastcgi() streams flushed output as it is produced", async () => {
  await using fpm = await startPhpFpm();
  await using php = fastcgi({ backends: [fpm.address] });
  await using server = serve(chain(php));
  const res = await fetch(`${server.url}/stream.php?n=3&ms=300`);
  const reader = res.body!.getReader();
  const start = Date.now();
  const first = await reader.read();
  assert.match(new TextDecoder().decode(first.value), /^chunk 0/);
  assert.ok(
    Date.now() - start < 250,
    "first chunk must not wait for the whole output",
  );
  while (!(await reader.read()).done) { /* drain */ }
});

Deno.test("fastcgi() keeps memory flat while streaming 16 MiB of output", async () => {
  await using fpm = await startPhpFpm();
  await using php = fastcgi({ backends: [fpm.address] });
  const res = await chain(php)(new Request("http://localhost/big.php?mb=16"));
  // Read slowly: the gateway must not run ahead of the client (it reads one
  // FastCGI record per chunk the client takes, never the whole output).
  let consumed = 0;
  let maxAhead = 0;
  let reads = 0;
  for await (const chunk of res.body!) {
    consumed += chunk.length;
    // The slow client under test: a pause every 8 chunks.
    if (++reads % 8 === 0) await new Promise((r) => setTimeout(r, 2));
    maxAhead = Math.max(maxAhead, php.client.stats()[0]!.received - consumed);
  }
  assert.equal(consumed, 16 * 1024 * 1024);
  assert.ok(
    maxAhead < 256 * 1024,
    `the gateway read ${maxAhead} bytes ahead of the client`,
  );
});

Deno.test("fastcgi() serves 100 concurrent requests over 4 php-fpm workers", async () => {
  await using fpm = await startPhpFpm({ workers: 4 });
  await using php = fastcgi({ backends: [fpm.address], keepAlive: 3 });
  await using server = serve(chain(php));
  const start = Date.now();
  const responses = await Promise.all(
    Array.from(
      { length: 100 },
      () =>
        fetch(`${server.url}/sleep.php?ms=40`).then(async (r) =>
          [r.status, await r.text()] as const
        ),
    ),
  );
  const elapsed = Date.now() - start;
  assert.ok(responses.every(([status]) => status === 200));
  const pids = new Set(
    responses.map(([, text]) => text.match(/pid=(\d+)/)?.[1]),
  );
  assert.equal(pids.size, 4, `served by ${pids.size} workers`);
  // 100 x 40 ms over 4 workers is 1 s; idle kept connections pinning
  // workers while others wait in php-fpm's backlog would make it 2-4 s.
  assert.ok(elapsed < 2500, `took ${elapsed} ms`);
  assert.ok(php.client.stats()[0]!.idle <= 3);
  const after = await fetch(`${server.url}/sleep.php?ms=1`);
  assert.equal(after.status, 200);
  await after.body?.cancel();
});

Deno.test("fastcgi() queues requests beyond maxConnections and reuses its connections", async () => {
  await using fpm = await startPhpFpm({ workers: 4 });
  await using php = fastcgi({
    backends: [fpm.address],
    keepAlive: 4,
    maxConnections: 4,
  });
  const handler = chain(php);
  const statuses = await Promise.all(
    Array.from({ length: 40 }, async () => {
      const res = await handler(new Request("http://localhost/sleep.php?ms=5"));
      await res.text();
      return res.status;
    }),
  );
  assert.ok(statuses.every((s) => s === 200));
  assert.equal(php.client.stats()[0]!.opened, 4);
});

Deno.test("fastcgi() reuses kept connections and closes idle ones on a timer", async () => {
  await using fpm = await startPhpFpm();
  await using php = fastcgi({
    backends: [fpm.address],
    keepAlive: 1,
    keepAliveTimeoutMs: 300,
  });
  const handler = chain(php);
  for (let i = 0; i < 20; i++) {
    const res = await handler(new Request("http://localhost/status.php"));
    assert.equal(res.status, 201);
    await res.text();
  }
  assert.equal(php.client.stats()[0]!.opened, 1);
  assert.equal(php.client.stats()[0]!.idle, 1);
  await eventually(() => {
    assert.equal(php.client.stats()[0]!.idle, 0);
    assert.equal(php.client.stats()[0]!.open, 0);
  }, { message: "the idle timer to close the kept connection" });
});

Deno.test("fastcgi() closes a kept connection keepAliveTimeoutMs after its last use, not its first", async () => {
  await using fpm = await startPhpFpm();
  await using php = fastcgi({
    backends: [fpm.address],
    keepAlive: 1,
    keepAliveTimeoutMs: 1_000,
  });
  const handler = chain(php);
  const get = async () => {
    const res = await handler(new Request("http://localhost/status.php"));
    assert.equal(res.status, 201);
    await res.text();
  };
  await get(); // idle from here: the sweep is armed for 1 s from now
  await new Promise((r) => setTimeout(r, 600));
  await get(); // used again, idle again
  await new Promise((r) => setTimeout(r, 600));
  // 1.2 s after its first use, 0.6 s after its last: still kept.
  assert.equal(php.client.stats()[0]!.opened, 1);
  assert.equal(php.client.stats()[0]!.idle, 1);
  await eventually(() => {
    assert.equal(php.client.stats()[0]!.open, 0);
  }, { message: "the idle timer to close the kept connection" });
});

Deno.test("fastcgi() returns 502 when php-fpm is stopped and recovers once it is back", async () => {
  await using fpm = await startPhpFpm();
  const logs: LogLines = [];
  await using php = fastcgi({
    backends: [fpm.address],
    log: (_level, message) => logs.push(message),
  });
  const handler = chain(php, logs);
  const ok = await handler(new Request("http://localhost/status.php"));
  assert.equal(ok.status, 201);
  await ok.text();
  await fpm.stop();
  const down = await handler(new Request("http://localhost/status.php"));
  assert.equal(down.status, 502);
  const page = await down.text();
  assert.ok(
    !page.includes(fpm.address),
    "the error page must not name the backend",
  );
  await fpm.start();
  const back = await handler(new Request("http://localhost/status.php"));
  assert.equal(back.status, 201);
  await back.text();
  assert.ok(logs.some((l) => l.includes("Cannot connect")), logs.join("\n"));
});

Deno.test("fastcgi() round-robins two backends and skips the one that is down", async () => {
  await using tcp = await startPhpFpm({ workers: 2 });
  await using unix = await startPhpFpm({ unix: true, workers: 2 });
  const logs: LogLines = [];
  await using php = fastcgi({
    backends: [tcp.address, unix.address],
    keepAlive: 0,
    downTimeMs: 60_000,
    log: (_level, message) => logs.push(message),
  });
  const handler = chain(php);
  const hit = async (n: number): Promise<number[]> => {
    const statuses = [];
    for (let i = 0; i < n; i++) {
      const res = await handler(new Request("http://localhost/status.php"));
      statuses.push(res.status);
      await res.body?.cancel();
    }
    return statuses;
  };
  assert.deepEqual(await hit(4), [201, 201, 201, 201]);
  assert.deepEqual(php.client.stats().map((s) => s.opened), [2, 2]);
  await unix.stop();
  assert.deepEqual(await hit(6), [201, 201, 201, 201, 201, 201]);
  const [a, b] = php.client.stats();
  assert.equal(a!.opened, 8);
  assert.equal(b!.down, true);
  assert.equal(b!.opened, 2);
  assert.equal(logs.filter((l) => l.includes("is down")).length, 1);
  // Back up: once it is marked usable again, traffic returns to it.
  await unix.start();
  php.client.markUp(1);
  assert.deepEqual(await hit(4), [201, 201, 201, 201]);
  assert.equal(php.client.stats()[1]!.opened, 4);
});

Deno.test("fastcgi() returns 504 when the first byte takes too long", async () => {
  await using fpm = await startPhpFpm();
  await using php = fastcgi({
    backends: [fpm.address],
    firstByteTimeoutMs: 200,
  });
  const res = await chain(php)(
    new Request("http://localhost/sleep.php?ms=1500"),
  );
  assert.equal(res.status, 504);
  await res.body?.cancel();
});

Deno.test("fastcgi() returns 504 when no connection frees up in time", async () => {
  await using fpm = await startPhpFpm();
  await using php = fastcgi({
    backends: [fpm.address],
    maxConnections: 1,
    connectTimeoutMs: 200,
  });
  const handler = chain(php);
  const slow = handler(new Request("http://localhost/sleep.php?ms=800"));
  await waitFor(() => php.client.stats()[0]!.open === 1, {
    message: "the slow request to take the only connection",
  });
  const waiting = await handler(new Request("http://localhost/status.php"));
  assert.equal(waiting.status, 504);
  await waiting.body?.cancel();
  const first = await slow;
  assert.equal(first.status, 200);
  await first.text();
});

Deno.test("fastcgi() closes the responder connection when the client goes away", async () => {
  await using fpm = await startPhpFpm();
  await using php = fastcgi({ backends: [fpm.address] });
  await using server = serve(chain(php));
  const controller = new AbortController();
  const res = await fetch(`${server.url}/stream.php?n=20&ms=50`, {
    signal: controller.signal,
  });
  const reader = res.body!.getReader();
  await reader.read();
  assert.equal(php.client.stats()[0]!.open, 1);
  controller.abort();
  await reader.closed.catch(() => {});
  await eventually(() => assert.equal(php.client.stats()[0]!.open, 0), {
    timeoutMs: 2000,
  });
});

Deno.test("fastcgi() closes the responder connection when the client leaves before the headers", async () => {
  await using fpm = await startPhpFpm();
  await using php = fastcgi({ backends: [fpm.address] });
  await using server = serve(chain(php));
  const controller = new AbortController();
  const pending = fetch(`${server.url}/sleep.php?ms=3000`, {
    signal: controller.signal,
  });
  await eventually(
    () =>
      assert.equal(
        php.client.stats()[0]!.open,
        1,
        "the request reached php-fpm",
      ),
    { timeoutMs: 2000 },
  );
  controller.abort();
  await pending.catch(() => {});
  await eventually(
    () =>
      assert.equal(
        php.client.stats()[0]!.open,
        0,
        "closed long before the script's 3 s are up",
      ),
    { timeoutMs: 1500 },
  );
});

Deno.test("fastcgi() sends params larger than one record without splitting a pair", async () => {
  await using fpm = await startPhpFpm();
  await using php = fastcgi({ backends: [fpm.address] });
  const big = "v".repeat(40_000);
  const res = await chain(php)(
    new Request("http://localhost/info.php", {
      headers: { "x-custom": big, "x-other": big },
    }),
  );
  assert.equal(res.status, 200);
  const info: Info = await res.json();
  assert.equal(info.server.HTTP_X_CUSTOM, big);
});

Deno.test("fastcgi() re-dispatches a local redirect as GET, keeping HEAD a HEAD", async () => {
  await using fpm = await startPhpFpm({ workers: 2 });
  await using php = fastcgi({ backends: [fpm.address] });
  const handler = chain(php);
  const get = await handler(new Request("http://localhost/redirect.php"));
  assert.equal(get.status, 200);
  assert.equal(get.headers.get("x-method"), "GET");
  assert.equal(get.headers.get("x-query"), "from=redirect");
  assert.equal(await get.text(), "method page\n");
  const head = await handler(
    new Request("http://localhost/redirect.php", { method: "HEAD" }),
  );
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("x-method"), "HEAD");
  assert.equal(await head.text(), "");
  const post = await handler(
    new Request("http://localhost/redirect.php", {
      method: "POST",
      body: "a=1",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    }),
  );
  assert.equal(post.headers.get("x-method"), "GET");
  await post.body?.cancel();
});

Deno.test("fastcgi() sends a small page that arrived whole with its Content-Length", async () => {
  await using fpm = await startPhpFpm();
  await using php = fastcgi({ backends: [fpm.address] });
  await using server = serve(chain(php));
  const get = await fetch(`${server.url}/info.php?x=1`);
  const body = await get.text();
  assert.equal(get.status, 200);
  assert.equal(get.headers.get("content-length"), String(body.length));
  assert.equal(get.headers.get("transfer-encoding"), null);
  const head = await fetch(`${server.url}/info.php?x=1`, { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), "");
  // A page streamed over many records still streams (no length up front).
  const big = await fetch(`${server.url}/big.php`);
  assert.equal(big.headers.get("content-length"), null);
  assert.ok((await big.arrayBuffer()).byteLength > 1_000_000);
});
