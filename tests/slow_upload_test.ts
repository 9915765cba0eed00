// Slow uploads are buffered before a CGI slot or a php-fpm worker is taken.
import assert from "node:assert/strict";
import { testdata } from "./_helpers/fs.ts";
import { PHP_ROOT, startPhpFpm } from "./_helpers/php.ts";
import { startCli } from "./_helpers/process.ts";

/**
 * Opens `n` uploads that send their head (`Content-Length: 100000`) and
 * then one byte every 200 ms; returns a stop function.
 */
async function trickle(base: string, path: string, n: number) {
  const port = Number(new URL(base).port);
  const conns: Deno.Conn[] = [];
  const head = new TextEncoder().encode(
    `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n` +
      "Content-Length: 100000\r\n\r\n",
  );
  for (let i = 0; i < n; i++) {
    const conn = await Deno.connect({ port });
    await conn.write(head);
    conns.push(conn);
  }
  const timer = setInterval(() => {
    for (const c of conns) c.write(Uint8Array.of(0x61)).catch(() => {});
  }, 200);
  return () => {
    clearInterval(timer);
    for (const c of conns) c.close();
  };
}

async function timedGet(url: string): Promise<{ status: number; ms: number }> {
  const start = Date.now();
  const res = await fetch(url);
  await res.arrayBuffer();
  return { status: res.status, ms: Date.now() - start };
}

Deno.test("CGI scripts are answered at once while 70 slow uploads trickle (bodies are buffered before a slot is taken)", async () => {
  const server = await startCli([
    testdata(),
    "--port",
    "0",
    "--quiet",
    "--cgi",
    "--cgi-max-concurrent",
    "8",
  ]);
  const stop = await trickle(server.base, "/cgi-bin/readall.pl", 70);
  try {
    for (let i = 0; i < 3; i++) {
      const { status, ms } = await timedGet(`${server.base}/cgi-bin/env.cgi`);
      assert.equal(status, 200, "no 503: no slot is held by an upload");
      assert.ok(ms < 2_000, `answered in ${ms} ms`);
    }
  } finally {
    stop();
    await server.stop();
  }
});

Deno.test("PHP pages are answered at once while 8 slow uploads trickle to a pool of 4 workers", async () => {
  await using fpm = await startPhpFpm({ workers: 4 });
  const server = await startCli([
    PHP_ROOT,
    "--port",
    "0",
    "--quiet",
    "--fastcgi",
    fpm.address,
  ]);
  const stop = await trickle(server.base, "/info.php", 8);
  try {
    for (let i = 0; i < 3; i++) {
      const { status, ms } = await timedGet(`${server.base}/info.php?i=${i}`);
      assert.equal(status, 200);
      assert.ok(ms < 2_000, `answered in ${ms} ms`);
    }
  } finally {
    stop();
    await server.stop();
  }
});
