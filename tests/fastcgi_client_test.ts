import assert from "node:assert/strict";
import {
  createFastCgiClient,
  type FastCgiClient,
  type FastCgiRequest,
} from "../cgi/fastcgi/client.ts";
import { FastCgiConnection } from "../cgi/fastcgi/connection.ts";
import { FastCgiError } from "../cgi/fastcgi/errors.ts";
import { exchange } from "../cgi/fastcgi/exchange.ts";
import {
  concatBytes,
  type FastCgiRecord,
  RecordReader,
  RecordType,
} from "../cgi/fastcgi/record.ts";
import { encodeRecord } from "../cgi/fastcgi/record.ts";
import { freePort, tcpSockets } from "./_helpers/net.ts";
import { eventually, waitFor } from "./_helpers/poll.ts";
import { createBackendBuffer, sharedBackend } from "../cli/shared_backends.ts";

const text = new TextEncoder();
const END = new Uint8Array(8);

/** One accepted connection of the fake responder. */
interface FakeConn {
  index: number;
  conn: Deno.Conn;
  reader: RecordReader;
  /** Reads one whole request: BEGIN, PARAMS…, STDIN… up to the empty STDIN. */
  readRequest(): Promise<{ begin: FastCgiRecord; stdin: number } | null>;
  send(...records: Uint8Array[]): Promise<void>;
}

/** A scripted FastCGI responder on a free port. */
function fakeResponder(
  script: (c: FakeConn) => Promise<void>,
  port = 0,
): AsyncDisposable & { address: string; accepted: () => number } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const tasks: Promise<void>[] = [];
  const conns = new Set<Deno.Conn>();
  let index = 0;
  const loop = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      const reader = new RecordReader(conn);
      const fake: FakeConn = {
        index: index++,
        conn,
        reader,
        async readRequest() {
          const begin = await reader.next();
          if (!begin) return null;
          let stdin = 0;
          while (true) {
            const r = await reader.next();
            if (!r) return null;
            if (r.type === RecordType.STDIN) {
              if (r.content.length === 0) return { begin, stdin };
              stdin += r.content.length;
            }
          }
        },
        async send(...records) {
          const bytes = concatBytes(records);
          let offset = 0;
          while (offset < bytes.length) {
            offset += await conn.write(bytes.subarray(offset));
          }
        },
      };
      tasks.push(
        script(fake).catch(() => {}).finally(() => {
          conns.delete(conn);
          try {
            conn.close();
          } catch {
            // closed by the script
          }
        }),
      );
    }
  })();
  return {
    address: `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    accepted: () => index,
    async [Symbol.asyncDispose]() {
      listener.close();
      await loop.catch(() => {});
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
      await Promise.all(tasks);
    },
  };
}

function stdout(body: string, id = 1): Uint8Array {
  return encodeRecord(RecordType.STDOUT, id, text.encode(body));
}

/** A whole text/plain answer: `body` on STDOUT, then END_REQUEST. */
function answer(body: string): Uint8Array[] {
  return [
    stdout(`Content-Type: text/plain\r\n\r\n${body}`),
    encodeRecord(RecordType.END_REQUEST, 1, END),
  ];
}

const GET: FastCgiRequest = {
  params: [["REQUEST_METHOD", "GET"], ["SCRIPT_FILENAME", "/x.php"]],
};

/** A connected TCP pair on loopback: our socket and the peer's end. */
async function socketPair(): Promise<
  { socket: Deno.TcpConn; peer: Deno.Conn }
> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const socket = await Deno.connect({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
  });
  const peer = await listener.accept();
  listener.close();
  return { socket, peer };
}

/** Reads what a peer still sends until it closes; returns the byte count. */
async function drain(conn: Deno.Conn): Promise<number> {
  let n = 0;
  const buf = new Uint8Array(65536);
  while (true) {
    const got = await conn.read(buf).catch(() => null);
    if (got === null) return n;
    n += got;
  }
}

Deno.test("createFastCgiClient() retries on a fresh connection when a kept one was closed before the request went out", async () => {
  let lateBytes = -1;
  const fake = fakeResponder(async (c) => {
    await c.readRequest();
    if (c.index === 0) {
      await c.send(...answer("first"));
      // The worker drops the kept connection right after answering (as a
      // recycled php-fpm worker does), but still counts what arrives.
      c.conn.closeWrite();
      lateBytes = await drain(c.conn);
      return;
    }
    await c.send(...answer("second"));
    await c.readRequest();
  });
  const client = createFastCgiClient({ backends: [fake.address] });
  try {
    assert.match(
      await new Response(await client.request(GET)).text(),
      /first$/,
    );
    const body = ReadableStream.from([text.encode("streamed")]);
    const second = await client.request({ ...GET, body });
    assert.match(await new Response(second).text(), /second$/);
    assert.equal(fake.accepted(), 2);
  } finally {
    client.close();
    await fake[Symbol.asyncDispose]();
  }
  assert.equal(lateBytes, 0, "no byte was written to the dead connection");
});

Deno.test("exchange() writes nothing to a kept connection the responder already closed, and marks it stale", async () => {
  const { socket, peer } = await socketPair();
  const conn = new FastCgiConnection(socket);
  conn.completed = 1; // a kept connection, not watched while idle
  peer.closeWrite(); // the responder dropped it…
  const { port } = socket.localAddr as Deno.NetAddr;
  await waitFor( // …its FIN reached the kept connection…
    () =>
      tcpSockets().some((s) =>
        s.localPort === port && s.state === "CLOSE_WAIT"
      ),
    { message: "the responder's FIN to reach the kept connection" },
  );
  // …which then sits idle before the next request (the scenario, not a wait
  // for some state): meanwhile the runtime's I/O poll notices the FIN, as
  // it would between any two requests on a kept connection. One event-loop
  // turn is not always enough for that.
  await new Promise((r) => setTimeout(r, 50));
  const late = drain(peer);
  let released: boolean | undefined;
  const error = await exchange(conn, GET, {
    onDone: (reusable) => released = reusable,
  }).catch((e) => e);
  assert.ok(error instanceof FastCgiError, String(error));
  assert.equal(error.stale, true);
  assert.equal(released, false);
  assert.equal(conn.sent, 0);
  assert.equal(await late, 0, "no byte of the request went out");
  peer.close();
});

Deno.test("createFastCgiClient() never retries a request the responder read before dying", async () => {
  let executions = 0;
  await using fake = fakeResponder(async (c) => {
    while (await c.readRequest()) {
      executions++;
      if (executions === 2) {
        // The script runs a while, then the worker dies without output
        // (the fake's behaviour, not a wait for some state).
        await new Promise((r) => setTimeout(r, 100));
        return;
      }
      await c.send(...answer("ok"));
    }
  });
  const logs: string[] = [];
  const client = createFastCgiClient({
    backends: [fake.address],
    log: (_l, m) => logs.push(m),
  });
  try {
    await new Response(await client.request(GET)).text();
    const error = await client.request(GET).catch((e) => e);
    assert.ok(error instanceof FastCgiError, String(error));
    assert.equal(error.status, 502);
    assert.equal(executions, 2, "the script ran once for the second request");
    assert.equal(fake.accepted(), 1);
    assert.ok(!logs.some((l) => l.includes("stale")), logs.join("\n"));
  } finally {
    client.close();
  }
});

Deno.test("createFastCgiClient() keeps the idle connections when a client aborts on a kept one", async () => {
  // The request to abort reached the responder; then its connection closed.
  const received = Promise.withResolvers<void>();
  const dropped = Promise.withResolvers<void>();
  await using fake = fakeResponder(async (c) => {
    while (true) {
      const request = await c.readRequest();
      if (!request) return;
      if (request.stdin > 0) {
        received.resolve();
        try {
          await c.reader.next(); // hang until the client closes
        } finally {
          dropped.resolve();
        }
        return;
      }
      // A script that takes a while (the fake's behaviour).
      await new Promise((r) => setTimeout(r, 20));
      await c.send(...answer("ok"));
    }
  });
  const logs: string[] = [];
  const client = createFastCgiClient({
    backends: [fake.address],
    keepAlive: 2,
    log: (_l, m) => logs.push(m),
  });
  try {
    const warm = await Promise.all([client.request(GET), client.request(GET)]);
    for (const out of warm) await new Response(out).text();
    assert.equal(client.stats()[0]!.idle, 2);
    const controller = new AbortController();
    const pending = client.request({
      ...GET,
      body: text.encode("x"),
      signal: controller.signal,
    });
    await received.promise;
    controller.abort();
    const error = await pending.catch((e) => e);
    assert.ok(error instanceof FastCgiError);
    // Once the responder saw the aborted connection close, the abort is
    // over: the other kept connection must still be there.
    await dropped.promise;
    assert.equal(client.stats()[0]!.idle, 1, "the other kept one stays");
    assert.equal(fake.accepted(), 2, "no new connection was opened");
    assert.ok(!logs.some((l) => l.includes("stale")), logs.join("\n"));
  } finally {
    client.close();
  }
});

Deno.test("createFastCgiClient() sends traffic to a down backend again once downTimeMs passed", async () => {
  const port = freePort();
  await using up = fakeResponder(async (c) => {
    await c.readRequest();
    await c.send(...answer("up"));
  });
  const client = createFastCgiClient({
    backends: [`127.0.0.1:${port}`, up.address],
    keepAlive: 0,
    downTimeMs: 400,
    log: () => {},
  });
  try {
    // The first backend refuses: it is marked down, the other one answers.
    assert.match(await new Response(await client.request(GET)).text(), /up$/);
    assert.equal(client.stats()[0]!.down, true);
    const markedAt = Date.now();
    await using back = fakeResponder(async (c) => {
      await c.readRequest();
      await c.send(...answer("back"));
    }, port);
    // While it is down it is skipped, although it listens again…
    for (let i = 0; i < 3; i++) {
      await new Response(await client.request(GET)).text();
    }
    assert.ok(Date.now() - markedAt < 400, "too slow to check the skipping");
    assert.equal(back.accepted(), 0);
    // …and once downTimeMs passed it takes its turn, without markUp().
    await waitFor(() => !client.stats()[0]!.down, {
      message: "the down time of backend 0 to pass",
    });
    const bodies = [];
    for (let i = 0; i < 2; i++) {
      bodies.push(await new Response(await client.request(GET)).text());
    }
    assert.ok(bodies.some((b) => b.endsWith("back")), bodies.join(","));
    assert.equal(back.accepted(), 1);
    assert.equal(client.stats()[0]!.down, false);
  } finally {
    client.close();
  }
});

Deno.test("createFastCgiClient() answers 504 when connecting takes longer than connectTimeoutMs", async () => {
  // A listener with a backlog of 0, filled: further SYNs are dropped, so a
  // connect hangs (Deno.listen has no backlog option, python3 does).
  const holder = new Deno.Command("python3", {
    args: [
      "-c",
      `import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)
port = s.getsockname()[1]
fill = []
for _ in range(3):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(("127.0.0.1", port))
    except BlockingIOError: pass
    fill.append(c)
print(port, flush=True)
sys.stdin.read()`,
    ],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const lines = holder.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    const port = Number((await lines.read()).value?.trim());
    assert.ok(port > 0);
    await waitFor(
      () =>
        tcpSockets().some((s) =>
          s.localPort === port && s.state === "LISTEN" && s.rxQueue > s.txQueue
        ),
      { message: "the holder's accept queue to be full" },
    );
    const client = createFastCgiClient({
      backends: [`127.0.0.1:${port}`],
      connectTimeoutMs: 300,
      log: () => {},
    });
    try {
      const started = Date.now();
      const error = await client.request(GET).catch((e) => e);
      assert.ok(error instanceof FastCgiError, String(error));
      assert.equal(error.status, 504);
      assert.ok(Date.now() - started < 1500);
    } finally {
      client.close();
    }
  } finally {
    await holder.stdin.close();
    await lines.cancel();
    await holder.status;
  }
});

Deno.test("createFastCgiClient() does not retry once a streamed body was sent", async () => {
  await using fake = fakeResponder(async (c) => {
    await c.readRequest();
    if (c.index === 0) {
      await c.send(...answer("first"));
      await c.readRequest(); // the whole second request, body included, then die
      return;
    }
    await c.send(...answer("retried"));
  });
  const client = createFastCgiClient({ backends: [fake.address] });
  try {
    await new Response(await client.request(GET)).text();
    const body = ReadableStream.from([text.encode("once only")]);
    const error = await client.request({ ...GET, body }).catch((e) => e);
    assert.ok(error instanceof FastCgiError);
    assert.equal(error.status, 502);
    assert.equal(fake.accepted(), 1);
  } finally {
    client.close();
  }
});

Deno.test("createFastCgiClient() logs STDERR, skips padding, foreign ids and management records", async () => {
  await using fake = fakeResponder(async (c) => {
    await c.readRequest();
    await c.send(
      encodeRecord(RecordType.GET_VALUES_RESULT, 0, new Uint8Array()),
      encodeRecord(RecordType.STDERR, 1, text.encode("PHP message: warning")),
      stdout("Status: 201 Created\r\n", 1),
      stdout("ignored", 7),
      stdout("Content-Type: text/plain\r\n\r\n"),
      encodeRecord(RecordType.STDOUT, 1, new Uint8Array()),
      stdout("a"),
      stdout("b"),
      encodeRecord(RecordType.END_REQUEST, 1, END),
    );
  });
  const client = createFastCgiClient({
    backends: [fake.address],
    keepAlive: 0,
  });
  try {
    const stderr: string[] = [];
    const out = await client.request({
      ...GET,
      onStderr: (t) => stderr.push(t),
    });
    assert.equal(
      await new Response(out).text(),
      "Status: 201 Created\r\nContent-Type: text/plain\r\n\r\nab",
    );
    assert.deepEqual(stderr, ["PHP message: warning"]);
  } finally {
    client.close();
  }
});

for (
  const [name, reply] of [
    ["an unknown record type", [encodeRecord(42, 1, new Uint8Array(3))]],
    ["a foreign protocol version", [Uint8Array.of(2, 6, 0, 1, 0, 0, 0, 0)]],
    ["a rejected request (protocol status)", [
      encodeRecord(
        RecordType.END_REQUEST,
        1,
        Uint8Array.of(0, 0, 0, 0, 3, 0, 0, 0),
      ),
    ]],
    ["a connection closed before END_REQUEST", []],
  ] as const
) {
  Deno.test(`createFastCgiClient() fails cleanly with 502 on ${name}`, async () => {
    await using fake = fakeResponder(async (c) => {
      await c.readRequest();
      await c.send(...reply);
    });
    const client = createFastCgiClient({ backends: [fake.address] });
    try {
      const error = await client.request(GET).catch((e) => e);
      assert.ok(error instanceof FastCgiError, String(error));
      assert.equal(error.status, 502);
      assert.equal(client.stats()[0]!.open, 0);
    } finally {
      client.close();
    }
  });
}

Deno.test("createFastCgiClient() errors the body stream when the responder dies mid-response", async () => {
  await using fake = fakeResponder(async (c) => {
    await c.readRequest();
    await c.send(stdout("Content-Type: text/plain\r\n\r\npartial"));
  });
  const client = createFastCgiClient({ backends: [fake.address] });
  try {
    const out = await client.request(GET);
    await assert.rejects(new Response(out).text(), FastCgiError);
    assert.equal(client.stats()[0]!.open, 0);
  } finally {
    client.close();
  }
});

Deno.test("createFastCgiClient() drops a kept connection the responder closed while idle", async () => {
  await using fake = fakeResponder(async (c) => {
    await c.readRequest();
    await c.send(...answer("ok"));
    if (c.index === 0) return; // closes while the client keeps it idle
    await c.readRequest();
  });
  const logs: string[] = [];
  const client = createFastCgiClient({
    backends: [fake.address],
    log: (_l, m) => logs.push(m),
  });
  try {
    await new Response(await client.request(GET)).text();
    await eventually(() => assert.equal(client.stats()[0]!.open, 0), {
      timeoutMs: 2000,
    });
    assert.equal(
      await new Response(await client.request(GET)).text(),
      "Content-Type: text/plain\r\n\r\nok",
    );
    assert.ok(!logs.some((l) => l.includes("stale")), "no retry was needed");
  } finally {
    client.close();
  }
});

Deno.test("createFastCgiClient() returns 504 when the response stalls", async () => {
  await using fake = fakeResponder(async (c) => {
    await c.readRequest();
    await c.send(stdout("Content-Type: text/plain\r\n\r\nstart"));
    await c.reader.next(); // stall until the client gives up
  });
  const client = createFastCgiClient({
    backends: [fake.address],
    readTimeoutMs: 150,
  });
  try {
    const out = await client.request(GET);
    const error = await new Response(out).text().catch((e) => e);
    assert.ok(error instanceof FastCgiError);
    assert.equal(error.status, 504);
  } finally {
    client.close();
  }
});

Deno.test("exchange() sends a request without a body, or with a small buffered one, in one write", async () => {
  for (const body of [undefined, new TextEncoder().encode("a=1&b=2")]) {
    const { socket, peer } = await socketPair();
    const writes: Uint8Array[] = [];
    class Counting extends FastCgiConnection {
      override write(bytes: Uint8Array): Promise<void> {
        writes.push(bytes.slice());
        return super.write(bytes);
      }
    }
    const conn = new Counting(socket);
    const reply = (async () => {
      const reader = new RecordReader(peer);
      let ended = false;
      while (!ended) {
        const record = (await reader.next()) as FastCgiRecord | null;
        if (record === null) break;
        ended = record.type === RecordType.STDIN && record.content.length === 0;
      }
      const w = peer.writable.getWriter();
      await w.write(concatBytes(answer("ok")));
      w.releaseLock();
    })();
    const stream = await exchange(conn, { ...GET, body }, { keepConn: false });
    assert.match(await new Response(stream).text(), /ok$/);
    await reply;
    assert.equal(
      writes.length,
      1,
      `one write (body: ${body?.length ?? "none"})`,
    );
    peer.close();
  }
});

/**
 * `count` clients of `address` (as many isolates' worth) sharing one count
 * of `maxConnections` places (2 unless given).
 */
function sharingClients(
  address: string,
  options: {
    keepAlive: number;
    count?: number;
    maxConnections?: number;
    connectTimeoutMs?: number;
  },
): FastCgiClient[] {
  const { count = 2, maxConnections = 2 } = options;
  const buffer = createBackendBuffer(count);
  return Array.from({ length: count }, (_, index) =>
    createFastCgiClient({
      backends: [address],
      maxConnections,
      keepAlive: options.keepAlive,
      keepAliveTimeoutMs: 60_000,
      ...(options.connectTimeoutMs
        ? { connectTimeoutMs: options.connectTimeoutMs }
        : {}),
      shared: [sharedBackend(buffer, index)],
    }));
}

Deno.test("createFastCgiClient() with a shared count gives another client's waiting request a place beyond this one's share", async () => {
  // Connection 0 answers each request after 20 ms, connection 1 only at
  // the end; the others at once.
  const end = Promise.withResolvers<void>();
  await using fake = fakeResponder(async (c) => {
    while (true) {
      const request = await c.readRequest();
      if (!request) return;
      if (c.index === 0) await new Promise((r) => setTimeout(r, 20));
      if (c.index === 1) await end.promise;
      await c.send(...answer(`conn ${c.index}`));
    }
  });
  // Two clients (two isolates' worth) sharing 2 places: 1 each, fairly.
  const [a, b] = sharingClients(fake.address, { keepAlive: 2 }) as [
    FastCgiClient,
    FastCgiClient,
  ];
  const done: string[] = [];
  const started: Promise<string>[] = [];
  const run = (client: FastCgiClient, name: string) => {
    const answered = (async () => {
      const text = await new Response(await client.request(GET)).text();
      done.push(name);
      return text;
    })();
    started.push(answered);
    return answered;
  };
  try {
    // b takes both places and queues eight more requests of its own…
    const first = [run(b, "b0"), run(b, "b1")];
    await waitFor(() => fake.accepted() === 2, { message: "b's two" });
    const queued = Array.from({ length: 8 }, (_, i) => run(b, `b${i + 2}`));
    // …then a asks: b's next release is a's, not its own queue's.
    const mine = run(a, "a");
    await waitFor(() => done.includes("a"), {
      timeoutMs: 2_000,
      message: "a's request answered",
    });
    end.resolve();
    const texts = await Promise.all([...first, ...queued, mine]);
    assert.equal(texts.length, 11);
    // Answered in that order: a right after b's first, not behind its queue.
    assert.ok(
      done.indexOf("a") <= 2,
      `a should be served before b's queue: ${done.join(" ")}`,
    );
    assert.ok(texts.every((t) => /\r\n\r\nconn \d+$/.test(t)));
  } finally {
    end.resolve();
    await Promise.allSettled(started);
    a.close();
    b.close();
  }
});

Deno.test("createFastCgiClient() with a shared count serves every client when the cap is below their number", async () => {
  await using fake = fakeResponder(async (c) => {
    while (true) {
      if (!await c.readRequest()) return;
      await new Promise((r) => setTimeout(r, 5));
      await c.send(...answer(`conn ${c.index}`));
    }
  });
  // Three isolates' worth, two places, all three loaded.
  const clients = sharingClients(fake.address, {
    count: 3,
    keepAlive: 2,
    connectTimeoutMs: 1_000,
  });
  const served = [0, 0, 0];
  const failed: unknown[] = [];
  let stop = false;
  try {
    const loops = clients.flatMap((client, i) =>
      Array.from({ length: 3 }, async () => {
        while (!stop) {
          try {
            await new Response(await client.request(GET)).text();
            served[i]!++;
          } catch (error) {
            failed.push(error);
          }
        }
      })
    );
    await new Promise((r) => setTimeout(r, 1_500));
    stop = true;
    await Promise.all(loops);
    assert.deepEqual(failed, [], "no request gave up waiting");
    const total = served.reduce((a, b) => a + b, 0);
    for (const n of served) {
      assert.ok(n >= total / 10, `each client got its turn: ${served}`);
    }
  } finally {
    stop = true;
    for (const client of clients) client.close();
  }
});

Deno.test("createFastCgiClient() with a shared count leaves no place free while only some clients want them", async () => {
  let busy = 0;
  let peak = 0;
  let counting = false;
  await using fake = fakeResponder(async (c) => {
    while (true) {
      if (!await c.readRequest()) return;
      busy++;
      if (counting) peak = Math.max(peak, busy);
      await new Promise((r) => setTimeout(r, 20));
      busy--;
      await c.send(...answer(`conn ${c.index}`));
    }
  });
  // Four isolates' worth sharing eight places; two of them loaded, each
  // with twelve requests in flight all along.
  const clients = sharingClients(fake.address, {
    count: 4,
    keepAlive: 8,
    maxConnections: 8,
  });
  let stop = false;
  try {
    const loops = [clients[0]!, clients[1]!].flatMap((client) =>
      Array.from({ length: 12 }, async () => {
        while (!stop) await new Response(await client.request(GET)).text();
      })
    );
    // Past the first burst (which any rule fills), in the steady state.
    await new Promise((r) => setTimeout(r, 300));
    counting = true;
    await new Promise((r) => setTimeout(r, 500));
    stop = true;
    await Promise.all(loops);
    assert.ok(peak >= 7, `the places in use at once (of 8): ${peak}`);
  } finally {
    stop = true;
    for (const client of clients) client.close();
  }
});

Deno.test("createFastCgiClient() with a shared count gives a waiting client a free place at once, not after a round", async () => {
  const gate = Promise.withResolvers<void>();
  await using fake = fakeResponder(async (c) => {
    while (true) {
      if (!await c.readRequest()) return;
      if (c.index === 0) await gate.promise; // b's first, until the end
      else await new Promise((r) => setTimeout(r, 30));
      await c.send(...answer(`conn ${c.index}`));
    }
  });
  const [a, b] = sharingClients(fake.address, { keepAlive: 2 }) as [
    FastCgiClient,
    FastCgiClient,
  ];
  try {
    const b1 = b.request(GET).then((o) => new Response(o).text());
    await waitFor(() => fake.accepted() === 1, { message: "b's first" });
    const a1 = a.request(GET).then((o) => new Response(o).text());
    await waitFor(() => fake.accepted() === 2, { message: "a's" });
    // Both places taken: b's second waits. a's ends after 30 ms and a
    // wants no more: its connection must be b's, not kept idle for a.
    const started = Date.now();
    assert.match(await new Response(await b.request(GET)).text(), /conn \d+$/);
    const waited = Date.now() - started;
    assert.ok(
      waited < 200,
      `b's second waited ${waited} ms (one round is 250)`,
    );
    await a1;
    gate.resolve();
    await b1;
  } finally {
    gate.resolve();
    a.close();
    b.close();
  }
});

Deno.test("createFastCgiClient() with a shared count does not hold other clients back on a backend it has marked down", async () => {
  const port = freePort(); // x: nothing listens there yet
  const gate = Promise.withResolvers<void>();
  await using y = fakeResponder(async (c) => {
    while (true) {
      if (!await c.readRequest()) return;
      await gate.promise;
      await c.send(...answer(`y ${c.index}`));
    }
  });
  const buffers = [createBackendBuffer(2), createBackendBuffer(2)];
  const client = (i: number) =>
    createFastCgiClient({
      backends: [`127.0.0.1:${port}`, y.address],
      maxConnections: 1,
      keepAlive: 1,
      connectTimeoutMs: 2_000,
      shared: buffers.map((buffer) => sharedBackend(buffer, i)),
    });
  const a = client(0);
  const b = client(1);
  const pending: Promise<unknown>[] = [];
  try {
    // b: x refuses (b marks it down), y takes the request and holds it.
    pending.push(b.request(GET).then((o) => new Response(o).text()));
    await waitFor(() => y.accepted() === 1, { message: "b's first on y" });
    await using x = fakeResponder(async (c) => {
      while (true) {
        if (!await c.readRequest()) return;
        await c.send(...answer(`x ${c.index}`));
      }
    }, port);
    // b's second waits for y only: x is down for b.
    pending.push(
      b.request(GET).then((o) => new Response(o).text(), () => ""),
    );
    await new Promise((r) => setTimeout(r, 50));
    // x is up for a, with its one place free.
    const started = Date.now();
    assert.match(await new Response(await a.request(GET)).text(), /x \d+$/);
    const waited = Date.now() - started;
    assert.ok(waited < 1_000, `a waited ${waited} ms for a free backend`);
    assert.equal(x.accepted(), 1);
  } finally {
    gate.resolve();
    await Promise.allSettled(pending);
    a.close();
    b.close();
  }
});

Deno.test("createFastCgiClient() ends a request's wait for a place as soon as its signal aborts", async () => {
  const gate = Promise.withResolvers<void>();
  await using fake = fakeResponder(async (c) => {
    while (true) {
      if (!await c.readRequest()) return;
      await gate.promise;
      await c.send(...answer(`conn ${c.index}`));
    }
  });
  const client = createFastCgiClient({
    backends: [fake.address],
    maxConnections: 1,
  });
  try {
    const first = client.request(GET); // takes the one place
    await waitFor(() => fake.accepted() === 1, { message: "the first" });
    const controller = new AbortController();
    const waiting = client.request({ ...GET, signal: controller.signal });
    await new Promise((r) => setTimeout(r, 20)); // it waits in its round
    const started = Date.now();
    controller.abort();
    const error = await waiting.catch((e) => e);
    assert.ok(error instanceof FastCgiError, String(error));
    const took = Date.now() - started;
    assert.ok(took < 150, `the wait ended ${took} ms after the abort`);
    gate.resolve();
    await new Response(await first).text();
  } finally {
    gate.resolve();
    client.close();
  }
});

Deno.test("createFastCgiClient() with a shared count keeps at most keepAlive idle after a waiter was woken by another client", async () => {
  // Each connection answers its requests when its gate opens (index order).
  const gates = [0, 1, 2].map(() => Promise.withResolvers<void>());
  await using fake = fakeResponder(async (c) => {
    while (true) {
      const request = await c.readRequest();
      if (!request) return;
      await gates[c.index]?.promise;
      await c.send(...answer(`conn ${c.index}`));
    }
  });
  // Two clients (two isolates' worth) sharing one count: 2 open, 1 idle.
  const [a, b] = sharingClients(fake.address, { keepAlive: 1 }) as [
    FastCgiClient,
    FastCgiClient,
  ];
  const idle = () => a.stats()[0]!.idle + b.stats()[0]!.idle;
  try {
    // b holds both places; a's request waits for one.
    const b1 = b.request(GET);
    const b2 = b.request(GET);
    await waitFor(() => fake.accepted() === 2, { message: "b's two" });
    const a1 = a.request(GET);
    // b's first connection goes idle; a's wait makes b close it, and a
    // connects (woken by the shared count, not by its own pool).
    gates[0]!.resolve();
    assert.match(await new Response(await b1).text(), /\r\n\r\nconn 0$/);
    await waitFor(() => fake.accepted() === 3, { message: "a's connection" });
    // b's second goes idle (the one idle place), then a's ends: with no
    // one waiting, a must not keep it beside b's.
    gates[1]!.resolve();
    assert.match(await new Response(await b2).text(), /\r\n\r\nconn 1$/);
    gates[2]!.resolve();
    assert.match(await new Response(await a1).text(), /\r\n\r\nconn 2$/);
    await waitFor(() => a.stats()[0]!.open + b.stats()[0]!.open <= 1, {
      timeoutMs: 1_000,
      message: "one open connection",
    });
    assert.equal(idle(), 1);
  } finally {
    a.close();
    b.close();
  }
});
