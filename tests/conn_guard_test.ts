import assert from "node:assert/strict";
import { tempDir } from "./_helpers/fs.ts";
import { waitFor, withTimeout } from "./_helpers/poll.ts";
import { startCli } from "./_helpers/process.ts";
import { makeCert, tcpSockets } from "./_helpers/net.ts";

/** Starts the CLI on `root` with the guard on and short deadlines. */
function guarded(root: string, ...flags: string[]) {
  return startCli([
    root,
    "--port",
    "0",
    "--quiet",
    "--connection-guard",
    "on",
    ...flags,
  ]);
}

function port(base: string): number {
  return Number(new URL(base).port);
}

/** Resolves with the milliseconds until the server closes `conn`. */
async function closedAfter(conn: Deno.Conn): Promise<number> {
  const start = Date.now();
  const buf = new Uint8Array(64 * 1024);
  try {
    while (await conn.read(buf) !== null) { /* drain */ }
  } catch {
    // reset: closed too
  }
  return Date.now() - start;
}

async function site() {
  const dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/hello.txt`, "hello\n");
  return dir;
}

Deno.test("connection guard closes a connection whose request head never completes, while other clients are served", async () => {
  await using dir = await site();
  const server = await guarded(dir.path, "--header-timeout", "0.5");
  try {
    const slow = await Deno.connect({ port: port(server.base) });
    await slow.write(new TextEncoder().encode("GET /hello.txt HTTP/1.1\r\nHo"));
    const closing = closedAfter(slow);
    const res = await fetch(`${server.base}/hello.txt`);
    assert.equal(await res.text(), "hello\n", "others are served meanwhile");
    const ms = await withTimeout(closing, 5_000, "slow head not closed");
    assert.ok(ms >= 300, `closed after ${ms} ms, not before the deadline`);
    slow.close();
  } finally {
    await server.stop();
  }
});

Deno.test("connection guard closes a kept connection left idle after its response", async () => {
  await using dir = await site();
  const server = await guarded(dir.path, "--keepalive-timeout", "0.5");
  try {
    const conn = await Deno.connect({ port: port(server.base) });
    await conn.write(
      new TextEncoder().encode("GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"),
    );
    const buf = new Uint8Array(4096);
    const n = await conn.read(buf);
    assert.match(
      new TextDecoder().decode(buf.subarray(0, n!)),
      /^HTTP\/1\.1 200/,
    );
    const ms = await withTimeout(closedAfter(conn), 5_000, "idle not closed");
    assert.ok(ms >= 300, `closed after ${ms} ms`);
    conn.close();
  } finally {
    await server.stop();
  }
});

Deno.test("connection guard drops a client that stops reading a large download", async () => {
  await using dir = await site();
  const big = await Deno.open(`${dir.path}/big.bin`, {
    create: true,
    write: true,
  });
  await big.truncate(64 * 1024 * 1024);
  big.close();
  const server = await guarded(dir.path, "--send-timeout", "0.5");
  try {
    const conn = await Deno.connect({ port: port(server.base) });
    await conn.write(
      new TextEncoder().encode("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"),
    );
    const buf = new Uint8Array(1024);
    assert.ok((await conn.read(buf))! > 0, "the response started");
    // The client takes nothing more: the socket buffers fill, then the
    // server must give up within the send timeout (plus its sweep). Its
    // side of this connection then leaves ESTABLISHED.
    const mine = (conn.localAddr as Deno.NetAddr).port;
    const serverSide = () =>
      tcpSockets().find((s) =>
        s.localPort === port(server.base) && s.remotePort === mine
      );
    assert.equal(serverSide()?.state, "ESTABLISHED");
    const start = Date.now();
    await waitFor(() => serverSide()?.state !== "ESTABLISHED", {
      timeoutMs: 10_000,
      message: "stalled reader still connected",
    });
    assert.ok(Date.now() - start < 5_000);
    conn.close();
  } finally {
    await server.stop();
  }
});

/** Sends one kept-alive request on `conn` and reads its 200 answer. */
async function answered(conn: Deno.Conn): Promise<void> {
  await conn.write(
    new TextEncoder().encode("GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"),
  );
  const buf = new Uint8Array(4096);
  const n = await withTimeout(conn.read(buf), 5_000, "no answer");
  assert.match(
    new TextDecoder().decode(buf.subarray(0, n ?? 0)),
    /^HTTP\/1\.1 200/,
  );
}

Deno.test("connection guard refuses connections beyond --max-connections with a 503", async () => {
  await using dir = await site();
  const server = await guarded(dir.path, "--max-connections", "2");
  const held: Deno.Conn[] = [];
  try {
    // Each answered once: counted by the server. (With several workers
    // the kernel hands connections to their listeners in no set order: a
    // third one connected at once may be accepted before the second.)
    for (let i = 0; i < 2; i++) {
      const conn = await Deno.connect({ port: port(server.base) });
      held.push(conn);
      await answered(conn);
    }
    const third = await Deno.connect({ port: port(server.base) });
    const buf = new Uint8Array(1024);
    const n = await withTimeout(third.read(buf), 5_000, "no refusal");
    const text = new TextDecoder().decode(buf.subarray(0, n ?? 0));
    assert.match(text, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
    assert.match(text, /Connection: close/i);
    third.close();
    for (const c of held.splice(0)) c.close();
    // Once they are gone, new connections are served again.
    await waitFor(async () => {
      const res = await fetch(`${server.base}/hello.txt`).catch(() => null);
      const ok = res?.status === 200;
      await res?.body?.cancel();
      return ok;
    }, { timeoutMs: 5_000, message: "not served after the others closed" });
  } finally {
    for (const c of held) c.close();
    await server.stop();
  }
});

Deno.test("connection guard caps connections per client address", async () => {
  await using dir = await site();
  const server = await guarded(dir.path, "--max-connections-per-client", "1");
  try {
    const first = await Deno.connect({ port: port(server.base) });
    // Answered once: counted (see the test above).
    await answered(first);
    const second = await Deno.connect({ port: port(server.base) });
    const buf = new Uint8Array(1024);
    const n = await withTimeout(second.read(buf), 5_000, "no refusal");
    assert.match(
      new TextDecoder().decode(buf.subarray(0, n ?? 0)),
      /^HTTP\/1\.1 503/,
    );
    second.close();
    await first.write(
      new TextEncoder().encode("GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"),
    );
    const m = await first.read(buf);
    assert.match(
      new TextDecoder().decode(buf.subarray(0, m!)),
      /^HTTP\/1\.1 200/,
    );
    first.close();
  } finally {
    await server.stop();
  }
});

Deno.test("connection guard keeps the client's address and the access log", async () => {
  await using dir = await site();
  const server = await startCli([
    dir.path,
    "--port",
    "0",
    "--connection-guard",
    "on",
    "--log-format",
    "json",
  ]);
  try {
    const res = await fetch(`${server.base}/hello.txt`);
    assert.equal(await res.text(), "hello\n");
    await waitFor(() => server.lines.some((l) => l.includes('"/hello.txt"')), {
      message: "access log line",
    });
    const line = server.lines.find((l) => l.includes('"/hello.txt"'))!;
    assert.equal(JSON.parse(line).remote, "127.0.0.1");
    assert.ok(
      server.lines.some((l) => /Features:.*connection guard/.test(l)),
      "the banner says the guard is on",
    );
  } finally {
    assert.equal((await server.stop()).code, 0);
  }
});

Deno.test("connection guard over HTTPS closes a silent TLS connection and caps TLS sockets", async () => {
  await using dir = await site();
  const { cert, key } = await makeCert(dir.path);
  const server = await guarded(
    dir.path,
    "--cert",
    cert,
    "--key",
    key,
    "--header-timeout",
    "0.5",
    "--max-connections",
    "2",
  );
  const caCerts = [await Deno.readTextFile(cert)];
  const tlsPort = port(server.base);
  try {
    // A handshake, then no request: closed after the header timeout.
    const silent = await Deno.connectTls({
      hostname: "localhost",
      port: tlsPort,
      caCerts,
    });
    await silent.handshake();
    const ms = await withTimeout(closedAfter(silent), 5_000, "not closed");
    assert.ok(ms >= 300, `closed after ${ms} ms`);
    silent.close();
    // Two held connections fill the cap: a third is closed at once.
    const held = [];
    for (let i = 0; i < 2; i++) {
      const c = await Deno.connectTls({
        hostname: "localhost",
        port: tlsPort,
        caCerts,
      });
      await c.handshake();
      held.push(c);
    }
    const third = await Deno.connectTls({
      hostname: "localhost",
      port: tlsPort,
      caCerts,
    });
    const cut = await withTimeout(
      closedAfter(third).then(() => true),
      5_000,
      "third connection kept",
    );
    assert.ok(cut);
    third.close();
    for (const c of held) c.close();
    // Normal HTTPS requests are served.
    using client = Deno.createHttpClient({ caCerts });
    await waitFor(async () => {
      const res = await fetch(`https://localhost:${tlsPort}/hello.txt`, {
        client,
      })
        .catch(() => null);
      const ok = res?.status === 200 && (await res.text()) === "hello\n";
      return ok;
    }, { timeoutMs: 5_000, message: "HTTPS not served" });
  } finally {
    await server.stop();
  }
});
