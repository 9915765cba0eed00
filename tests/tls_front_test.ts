import assert from "node:assert/strict";
import net from "node:net";
import { serveTlsFront } from "../cli/tls_front.ts";
import { tempDir, testdata } from "./_helpers/fs.ts";
import { freePort, makeCert, tcpSockets } from "./_helpers/net.ts";
import { MOD, runCli, startCli } from "./_helpers/process.ts";
import { waitFor } from "./_helpers/poll.ts";

async function front(
  handler: Parameters<typeof serveTlsFront>[0],
): Promise<
  {
    port: number;
    innerPort: number;
    caCert: string;
    stop: () => Promise<void>;
  }
> {
  await using dir = await tempDir();
  const files = await makeCert(dir.path);
  const cert = await Deno.readTextFile(files.cert);
  const key = await Deno.readTextFile(files.key);
  const controller = new AbortController();
  let port = 0;
  const server = await serveTlsFront(handler, {
    hostname: "127.0.0.1",
    port: 0,
    cert,
    key,
    signal: controller.signal,
    onListen: (addr) => port = addr.port,
  });
  return {
    port,
    innerPort: server.innerPort,
    caCert: cert,
    async stop() {
      await server.shutdown();
      await server.finished;
    },
  };
}

Deno.test("serveTlsFront() gives the handler an https URL and the client's own address", async () => {
  const server = await front((req, info) =>
    Promise.resolve(
      new Response(
        `${req.method} ${req.url} ${(info!.remoteAddr as Deno.NetAddr).port} ${
          req.headers.get("x-a")
        }`,
      ),
    )
  );
  try {
    const conn = await Deno.connectTls({
      hostname: "localhost",
      port: server.port,
      caCerts: [server.caCert],
    });
    const mine = (conn.localAddr as Deno.NetAddr).port;
    await conn.write(
      new TextEncoder().encode(
        "GET /p?q=1 HTTP/1.1\r\nHost: localhost\r\nx-a: b\r\nConnection: close\r\n\r\n",
      ),
    );
    const text = await new Response(conn.readable).text();
    assert.match(text, /^HTTP\/1\.1 200/);
    assert.ok(
      text.endsWith(`GET https://localhost/p?q=1 ${mine} b`),
      text.slice(-80),
    );
  } finally {
    await server.stop();
  }
});

Deno.test("serveTlsFront() speaks HTTP/2 by ALPN and streams request bodies both ways", async () => {
  const server = await front(async (req) =>
    new Response(`${req.method} ${(await req.text()).length}`)
  );
  try {
    using client = Deno.createHttpClient({
      caCerts: [server.caCert],
      http2: true,
      http1: false,
    });
    const big = "x".repeat(200_000);
    const res = await fetch(`https://localhost:${server.port}/up`, {
      method: "POST",
      body: big,
      client,
    });
    assert.equal(await res.text(), "POST 200000");
    using h1 = Deno.createHttpClient({
      caCerts: [server.caCert],
      http2: false,
    });
    const again = await fetch(`https://localhost:${server.port}/`, {
      client: h1,
    });
    assert.equal(await again.text(), "GET 0");
  } finally {
    await server.stop();
  }
});

Deno.test("serveTlsFront() drops a failed handshake and keeps serving", async () => {
  const server = await front(() => Promise.resolve(new Response("ok")));
  try {
    const raw = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    await raw.write(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
    const buf = new Uint8Array(64);
    await raw.read(buf).catch(() => null);
    raw.close();
    using client = Deno.createHttpClient({ caCerts: [server.caCert] });
    const res = await fetch(`https://localhost:${server.port}/`, { client });
    assert.equal(await res.text(), "ok");
  } finally {
    await server.stop();
  }
});

Deno.test("serveTlsFront() answers 421 to a connection that bypasses TLS", async () => {
  let reached = false;
  const server = await front(() => {
    reached = true;
    return Promise.resolve(new Response("secret"));
  });
  try {
    const res = await fetch(`http://127.0.0.1:${server.innerPort}/`);
    assert.equal(res.status, 421);
    assert.equal(await res.text(), "");
    assert.equal(reached, false, "the handler never ran");
  } finally {
    await server.stop();
  }
});

Deno.test("serveTlsFront() answers 421 to another loopback address that borrows a relayed connection's port", async () => {
  let reached = 0;
  const server = await front(() => {
    reached++;
    return Promise.resolve(new Response("secret"));
  });
  const client = await Deno.connectTls({
    hostname: "localhost",
    port: server.port,
    caCerts: [server.caCert],
  });
  try {
    // A relayed connection, held open: its inner local port is registered.
    await client.write(
      new TextEncoder().encode("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    );
    const buf = new Uint8Array(1024);
    assert.match(
      new TextDecoder().decode(buf.subarray(0, (await client.read(buf))!)),
      /secret/,
    );
    const relayed = tcpSockets().find((s) =>
      s.remotePort === server.innerPort && s.state === "ESTABLISHED"
    );
    assert.ok(relayed, "the relayed connection to the inner port");
    // Another local process on 127.0.0.2 with that same port number.
    const impostor = net.connect({
      host: "127.0.0.1",
      port: server.innerPort,
      localAddress: "127.0.0.2",
      localPort: relayed.localPort,
    });
    const answer = await new Promise<string>((resolve, reject) => {
      let text = "";
      impostor.on(
        "connect",
        () =>
          impostor.write(
            "GET /admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
          ),
      );
      impostor.on(
        "data",
        (chunk: Uint8Array) => text += new TextDecoder().decode(chunk),
      );
      impostor.on("end", () => resolve(text));
      impostor.on("error", reject);
    });
    assert.match(answer, /^HTTP\/1\.1 421 /);
    assert.equal(reached, 1, "only the relayed request reached the handler");
  } finally {
    client.close();
    await server.stop();
  }
});

Deno.test("cli serves HTTPS with a net permission scoped to its own port (Deno's TLS listener then)", async () => {
  await using dir = await tempDir();
  const { cert, key } = await makeCert(dir.path);
  const port = freePort();
  const server = await startCli(
    [testdata("www"), "--port", String(port), "--cert", cert, "--key", key],
    [
      "run",
      "--no-prompt",
      `--allow-net=127.0.0.1:${port}`,
      "--allow-read",
      MOD,
    ],
  );
  try {
    using client = Deno.createHttpClient({
      caCerts: [await Deno.readTextFile(cert)],
    });
    const res = await fetch(`https://localhost:${port}/hello.txt`, { client });
    assert.equal(await res.text(), "Hello, world!\n");
  } finally {
    await server.stop();
  }
});

/** The CLI serving testdata/www over HTTPS with `cert` and `key`. */
async function startHttps(cert: string, key: string) {
  const server = await startCli([
    testdata("www"),
    "--port",
    "0",
    "--quiet",
    "--cert",
    cert,
    "--key",
    key,
  ]);
  const port = new URL(server.base).port;
  /** Whether /hello.txt is served on a new connection trusting only `pem`. */
  const trusting = async (pem: string) => {
    using client = Deno.createHttpClient({ caCerts: [pem] });
    try {
      const res = await fetch(`https://localhost:${port}/hello.txt`, {
        client,
      });
      return (await res.text()) === "Hello, world!\n";
    } catch {
      return false;
    }
  };
  return { server, trusting };
}

Deno.test("cli reloads a renewed certificate for new connections without a restart", async () => {
  await using dir = await tempDir();
  await using renewed = await tempDir();
  const { cert, key } = await makeCert(dir.path);
  const next = await makeCert(renewed.path);
  const { server, trusting } = await startHttps(cert, key);
  try {
    const oldPem = await Deno.readTextFile(cert);
    const newPem = await Deno.readTextFile(next.cert);
    assert.equal(await trusting(oldPem), true);
    assert.equal(await trusting(newPem), false, "not yet the new one");
    await Deno.writeTextFile(key, await Deno.readTextFile(next.key));
    await Deno.writeTextFile(cert, newPem);
    await waitFor(() => trusting(newPem), {
      message: "a new connection to present the renewed certificate",
    });
  } finally {
    await server.stop();
  }
});

Deno.test("cli refuses a --cert and --key that do not belong together, in one line", async () => {
  await using dir = await tempDir();
  await using other = await tempDir();
  const { cert } = await makeCert(dir.path);
  const { key } = await makeCert(other.path);
  const out = await runCli([
    testdata("www"),
    "--port",
    "0",
    "--cert",
    cert,
    "--key",
    key,
  ]);
  assert.equal(out.code, 1, out.stderr);
  assert.equal(
    out.stderr.trim(),
    `error: --cert "${cert}" / --key "${key}": the key does not match the certificate`,
  );
});

Deno.test("cli keeps serving the old certificate when a renewed key does not match it", async () => {
  await using dir = await tempDir();
  await using other = await tempDir();
  const { cert, key } = await makeCert(dir.path);
  const stranger = await makeCert(other.path);
  const { server, trusting } = await startHttps(cert, key);
  const pem = await Deno.readTextFile(cert);
  let stderr = "";
  try {
    assert.equal(await trusting(pem), true);
    // Only the key is replaced (a botched renewal): refused, reported.
    await Deno.writeTextFile(key, await Deno.readTextFile(stranger.key));
    // Past the reload's debounce (200 ms), new connections keep getting
    // the old, working pair.
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      assert.equal(await trusting(pem), true, "the old pair stays");
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await server.stop();
    stderr = await server.stderr;
  }
  assert.match(
    stderr,
    /cannot reload --cert "[^"]+" \/ --key "[^"]+" \(keeping the old pair\): the key does not match the certificate/,
  );
  assert.doesNotMatch(stderr, /reloaded --cert/);
});
