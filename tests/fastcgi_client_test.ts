import assert from "node:assert/strict";
import {
  createFastCgiClient,
  type FastCgiRequest,
} from "../cgi/fastcgi/client.ts";
import { FastCgiError } from "../cgi/fastcgi/errors.ts";
import {
  _concat,
  type FastCgiRecord,
  RecordReader,
  RecordType,
} from "../cgi/fastcgi/record.ts";
import { encodeRecord } from "../cgi/fastcgi/record.ts";

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
): AsyncDisposable & { address: string; accepted: () => number } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
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
          const bytes = _concat(records);
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

const GET: FastCgiRequest = {
  params: [["REQUEST_METHOD", "GET"], ["SCRIPT_FILENAME", "/x.php"]],
};

Deno.test("createFastCgiClient() retries once on a fresh connection when a kept one died", async () => {
  await using fake = fakeResponder(async (c) => {
    if (c.index === 0) {
      await c.readRequest();
      await c.send(
        stdout("Content-Type: text/plain\r\n\r\nfirst"),
        encodeRecord(RecordType.END_REQUEST, 1, END),
      );
      // The worker dies just as the next request arrives: close on its BEGIN.
      await c.reader.next();
      return;
    }
    await c.readRequest();
    await c.send(
      stdout("Content-Type: text/plain\r\n\r\nsecond"),
      encodeRecord(RecordType.END_REQUEST, 1, END),
    );
    await c.readRequest();
  });
  const logs: string[] = [];
  const client = createFastCgiClient({
    backends: [fake.address],
    log: (_l, m) => logs.push(m),
  });
  try {
    assert.match(
      await new Response(await client.request(GET)).text(),
      /first$/,
    );
    const second = await client.request({
      ...GET,
      body: text.encode("replayable"),
    });
    assert.match(await new Response(second).text(), /second$/);
    assert.equal(fake.accepted(), 2);
    assert.ok(logs.some((l) => l.includes("stale")), logs.join("\n"));
  } finally {
    client.close();
  }
});

Deno.test("createFastCgiClient() does not retry once a streamed body was sent", async () => {
  await using fake = fakeResponder(async (c) => {
    await c.readRequest();
    if (c.index === 0) {
      await c.send(
        stdout("Content-Type: text/plain\r\n\r\nfirst"),
        encodeRecord(RecordType.END_REQUEST, 1, END),
      );
      await c.readRequest(); // the whole second request, body included, then die
      return;
    }
    await c.send(
      stdout("Content-Type: text/plain\r\n\r\nretried"),
      encodeRecord(RecordType.END_REQUEST, 1, END),
    );
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
    await c.send(
      stdout("Content-Type: text/plain\r\n\r\nok"),
      encodeRecord(RecordType.END_REQUEST, 1, END),
    );
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
    const deadline = Date.now() + 2000;
    while (client.stats()[0]!.open > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(client.stats()[0]!.open, 0);
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
    readTimeout: 150,
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
