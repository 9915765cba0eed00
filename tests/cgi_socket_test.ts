// CGI gateway behaviour over real sockets: raw request targets, framing, disconnects, memory.
import assert from "node:assert/strict";
import { cgiHarness, parseEnv } from "./_helpers/cgi.ts";
import { tempDir } from "./_helpers/fs.ts";
import { rawExchange, rawRequest, withServer } from "./_helpers/net.ts";
import {
  children,
  readPids,
  waitForChildrenReaped,
  waitForExit,
} from "./_helpers/process.ts";

const encoder = new TextEncoder();

Deno.test("cgi() never runs a file outside the CGI directory, whatever the encoding of ..", async () => {
  const { handler } = cgiHarness();
  await withServer(handler, async (port) => {
    const targets = [
      "/cgi-bin/../cgi_outside.cgi",
      "/cgi-bin/%2e%2e/cgi_outside.cgi",
      "/cgi-bin/%2E%2E/cgi_outside.cgi",
      "/cgi-bin/..%2fcgi_outside.cgi",
      "/cgi-bin/%252e%252e/cgi_outside.cgi",
      "/cgi-bin/..%5ccgi_outside.cgi",
      "/cgi-bin/.%2e/cgi_outside.cgi",
      "/cgi-bin/subdir/../../cgi_outside.cgi",
      "/cgi-bin/../../../cgi_outside.cgi",
      "/cgi-bin%2f..%2fcgi_outside.cgi",
      "/cgi-bin/link.cgi",
      "/cgi-bin/env.cgi%00.txt",
      "//cgi-bin//..//cgi_outside.cgi",
    ];
    for (const target of targets) {
      const res = await rawRequest(port, target);
      assert.ok(
        res.status >= 200 && res.status < 600,
        `${target}: complete response`,
      );
      assert.doesNotMatch(res.body, /OUTSIDE-EXECUTED/, target);
    }
    // An encoded slash never routes into the CGI directory, and never shows source.
    const encoded = await rawRequest(port, "/cgi-bin%2fenv.cgi");
    assert.equal(encoded.status, 404);
    // Canonical forms of a CGI path run the script with the canonical SCRIPT_NAME.
    for (
      const target of [
        "/cgi-bin/./env.cgi",
        "//cgi-bin//env.cgi",
        "/nope/../cgi-bin/env.cgi",
        "/cgi-bin/%65nv.cgi",
      ]
    ) {
      const res = await rawRequest(port, target);
      assert.equal(res.status, 200, target);
      assert.equal(
        parseEnv(res.body).get("SCRIPT_NAME"),
        "/cgi-bin/env.cgi",
        target,
      );
    }
  });
});

Deno.test("cgi() sets REMOTE_ADDR, REMOTE_PORT and SERVER_PORT from the connection", async () => {
  const { handler } = cgiHarness();
  await withServer(handler, async (port) => {
    const raw = await rawExchange(
      port,
      `GET /cgi-bin/env.cgi HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX_Forwarded_For: 6.6.6.6\r\nConnection: close\r\n\r\n`,
    );
    const env = parseEnv(raw);
    assert.equal(env.get("REMOTE_ADDR"), "127.0.0.1");
    assert.match(env.get("REMOTE_PORT") ?? "", /^\d+$/);
    assert.equal(env.get("SERVER_NAME"), "127.0.0.1");
    assert.equal(env.get("SERVER_PORT"), String(port));
    assert.equal(env.has("HTTP_X_FORWARDED_FOR"), false);
    // HTTP/1.0 without Host still gets a server name and the real port.
    const raw10 = await rawExchange(
      port,
      "GET /cgi-bin/env.cgi HTTP/1.0\r\n\r\n",
    );
    const env10 = parseEnv(raw10);
    assert.ok(env10.get("SERVER_NAME"));
    assert.equal(env10.get("SERVER_PORT"), String(port));
  });
});

Deno.test("cgi() joins repeated request headers into one variable", async () => {
  const { handler } = cgiHarness();
  await withServer(handler, async (port) => {
    const raw = await rawExchange(
      port,
      "GET /cgi-bin/env.cgi HTTP/1.1\r\nHost: localhost\r\nCookie: a=1\r\nCookie: b=2\r\nX-Foo: v1\r\nX-Foo: v2\r\nConnection: close\r\n\r\n",
    );
    const env = parseEnv(raw);
    assert.equal(env.get("HTTP_COOKIE"), "a=1; b=2");
    assert.equal(env.get("HTTP_X_FOO"), "v1, v2");
  });
});

Deno.test("cgi() closes stdin after exactly CONTENT_LENGTH bytes", async () => {
  const { handler } = cgiHarness();
  await withServer(handler, async (port) => {
    const raw = await rawExchange(
      port,
      "POST /cgi-bin/readall.pl HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhelloEXTRA-BYTES",
    );
    assert.match(raw, /read=5 content_length=5/);
  });
});

Deno.test("cgi() de-chunks a chunked POST and sets CONTENT_LENGTH", async () => {
  const { handler } = cgiHarness();
  await withServer(handler, async (port) => {
    const raw = await rawExchange(
      port,
      "POST /cgi-bin/echo.py HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
        "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n",
    );
    assert.match(raw, /x-content-length: 11\r\n/i);
    assert.match(raw, /hello world/);
    assert.doesNotMatch(raw, /5\r\nhello\r\n1/);
  });
});

Deno.test("cgi() frames script headers with CRLF and never sends the script's framing", async () => {
  const { handler } = cgiHarness();
  await withServer(handler, async (port) => {
    const raw = await rawExchange(
      port,
      "GET /cgi-bin/badhdr.cgi?hop HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    const head = raw.slice(0, raw.indexOf("\r\n\r\n"));
    assert.doesNotMatch(head, /[^\r]\n/);
    assert.doesNotMatch(head, /content-length: 100/i);
    assert.doesNotMatch(head, /keep-alive|upgrade/i);
  });
});

Deno.test("cgi() aborts the connection, without a final chunk, when a script dies after its headers", async () => {
  const { handler } = cgiHarness();
  await withServer(handler, async (port) => {
    const raw = await rawExchange(
      port,
      "GET /cgi-bin/crash.cgi?afterheaders HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert.match(raw, /^HTTP\/1\.1 200/);
    assert.match(raw, /partial body/);
    assert.doesNotMatch(raw, /\r\n0\r\n\r\n$/);
  });
});

Deno.test("cgi() kills the script and its grandchild when the client disconnects", async () => {
  await using dir = await tempDir();
  const { handler } = cgiHarness({ killGraceMs: 500 }, dir.path);
  const before = children(Deno.pid);
  await withServer(handler, async (port) => {
    // After the first bytes of the body.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(
      encoder.encode(
        "GET /cgi-bin/sleep.cgi?s1-20-after HTTP/1.1\r\nHost: localhost\r\n\r\n",
      ),
    );
    const buf = new Uint8Array(4096);
    let got = "";
    while (!got.includes("first line")) {
      const n = await conn.read(buf);
      if (n === null) break;
      got += new TextDecoder().decode(buf.subarray(0, n));
    }
    const [pid, grandchild] = await readPids(dir.path, "s1");
    conn.close();
    await waitForExit([pid, grandchild], {
      timeoutMs: 4000,
      message: "s1 group killed",
    });
    // Before any header.
    const early = await Deno.connect({ hostname: "127.0.0.1", port });
    await early.write(
      encoder.encode(
        "GET /cgi-bin/sleep.cgi?s2-20 HTTP/1.1\r\nHost: localhost\r\n\r\n",
      ),
    );
    const [pid2, grandchild2] = await readPids(dir.path, "s2");
    early.close();
    await waitForExit([pid2, grandchild2], {
      timeoutMs: 4000,
      message: "s2 group killed",
    });
    await waitForChildrenReaped(before);
  });
  // Both groups are gone: nothing can write these files any more.
  await assert.rejects(() => Deno.stat(`${dir.path}/s1.finished`));
  await assert.rejects(() => Deno.stat(`${dir.path}/s2.finished`));
});

Deno.test("cgi() streams 1 GiB to a slow client with flat memory", async () => {
  const { handler } = cgiHarness();
  const childrenBefore = children(Deno.pid);
  await withServer(handler, async (port) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(
      encoder.encode(
        "GET /cgi-bin/big.cgi?1024 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
      ),
    );
    const buf = new Uint8Array(64 * 1024);
    let total = 0;
    const before = Deno.memoryUsage().rss;
    let peak = before;
    let slowPeak = before;
    // Slow phase: a trickle of reads while the script could write far more.
    for (let i = 0; i < 20; i++) {
      const n = await conn.read(buf);
      if (n === null) break;
      total += n;
      // The slow client under test: a pause between reads (not a wait for
      // some state).
      await new Promise((r) => setTimeout(r, 50));
      slowPeak = Math.max(slowPeak, Deno.memoryUsage().rss);
    }
    peak = slowPeak;
    // Then drain everything.
    const big = new Uint8Array(1024 * 1024);
    while (true) {
      const n = await conn.read(big);
      if (n === null) break;
      total += n;
      if (total % (64 * 1024 * 1024) < n) {
        peak = Math.max(peak, Deno.memoryUsage().rss);
      }
    }
    conn.close();
    const growth = (peak - before) / (1024 * 1024);
    const slowGrowth = (slowPeak - before) / (1024 * 1024);
    console.log(
      `rss before ${(before / 1048576).toFixed(0)} MiB, growth while slow ${
        slowGrowth.toFixed(1)
      } MiB, ` +
        `peak growth ${growth.toFixed(1)} MiB, wire bytes ${total}`,
    );
    assert.ok(
      slowGrowth < 16,
      `rss grew by ${slowGrowth.toFixed(1)} MiB while the client was slow`,
    );
    // Chunked framing adds a little on top of the 1 GiB body.
    assert.ok(total > 1024 * 1024 * 1024, `got ${total} bytes`);
    assert.ok(growth < 128, `rss grew by ${growth.toFixed(1)} MiB`);
    await waitForChildrenReaped(childrenBefore);
  });
});

Deno.test("cgi() passes the raw request target as REQUEST_URI and the canonical one as SCRIPT_NAME", async () => {
  const { handler } = cgiHarness();
  await withServer(handler, async (port) => {
    const res = await rawRequest(port, "/x/../cgi-bin/./env.cgi/a%20b?q=%2e");
    const env = parseEnv(res.body);
    assert.equal(env.get("REQUEST_URI"), "/x/../cgi-bin/./env.cgi/a%20b?q=%2e");
    assert.equal(env.get("SCRIPT_NAME"), "/cgi-bin/env.cgi");
    assert.equal(env.get("PATH_INFO"), "/a b");
    assert.equal(env.get("QUERY_STRING"), "q=%2e");
  });
});

Deno.test("cgi() kills a script whose client stops reading (without closing) after the timeout", async () => {
  await using dir = await tempDir();
  const { handler, logs } = cgiHarness(
    { timeoutMs: 1000, killGraceMs: 300 },
    dir.path,
  );
  const before = children(Deno.pid);
  await withServer(handler, async (port) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await conn.write(
        encoder.encode(
          "GET /cgi-bin/flood.cgi?st HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ),
      );
      // Read the start of the answer, then stop reading but stay connected.
      const n = await conn.read(new Uint8Array(4096));
      assert.ok(n !== null && n > 0);
      const [pid] = await readPids(dir.path, "st");
      const started = Date.now();
      await waitForExit([pid], { timeoutMs: 6000, message: "flood killed" });
      assert.ok(Date.now() - started < 5000);
      assert.ok(
        logs.some((l) => l.includes("client took no bytes")),
        logs.join("\n"),
      );
    } finally {
      conn.close();
    }
    await waitForChildrenReaped(before);
  });
});
