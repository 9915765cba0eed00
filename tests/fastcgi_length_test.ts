// A FastCGI responder's Content-Length, on the wire (issue 11), with a real
// php-fpm: kept when valid, the body sent exactly that long (longer cut,
// shorter → connection closed), 502 when invalid, chunked without one; and
// the same for a page that arrived whole (bytes).
import assert from "node:assert/strict";
import { fastcgi } from "../cgi/fastcgi/fastcgi.ts";
import { parseCgiResponse, toHttpResponse } from "../cgi/response.ts";
import { serve } from "./_helpers/net.ts";
import { chain, type LogLines, startPhpFpm } from "./_helpers/php.ts";
import { WireConn } from "./_helpers/wire.ts";

const MIB = 1024 * 1024;

Deno.test("fastcgi() keeps php's valid Content-Length for GET and HEAD, small and streamed", async () => {
  await using fpm = await startPhpFpm({ workers: 2 });
  await using php = fastcgi({ backends: [fpm.address] });
  const logs: LogLines = [];
  await using server = serve(chain(php, logs));
  using conn = await WireConn.open(server.port);
  for (const size of [11, 3 * MIB + 5]) {
    const path = `/length.php?cl=${size}&write=${size}`;
    const get = await conn.request("GET", path);
    assert.equal(get.status, 200);
    assert.equal(get.framing, "content-length", `${size}`);
    assert.equal(get.headers.get("content-length"), String(size));
    assert.equal(get.headers.get("transfer-encoding"), null);
    assert.equal(get.body.length, size);
    assert.ok(get.complete);
    const head = await conn.request("HEAD", path);
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(size));
  }
  // Several equal values count as one.
  const equal = await conn.request(
    "GET",
    "/length.php?cl=5&cl2=5%2C%205&write=5",
  );
  assert.equal(equal.headers.get("content-length"), "5");
  assert.equal(equal.body.length, 5);
  assert.equal(await conn.closesWithin(100), false, "connection kept");
  // A streamed exact page was read to its end: its connection is reused.
  const { opened } = php.client.stats()[0]!;
  await conn.request("GET", `/length.php?cl=${2 * MIB}&write=${2 * MIB}`);
  await conn.request("GET", "/length.php?cl=3&write=3");
  assert.equal(php.client.stats()[0]!.opened, opened);
  assert.deepEqual(logs.filter((l) => /Content-Length/.test(l)), []);
});

Deno.test("fastcgi() cuts a body longer than its Content-Length, whole or streamed", async () => {
  await using fpm = await startPhpFpm({ workers: 2 });
  await using php = fastcgi({ backends: [fpm.address] });
  const logs: LogLines = [];
  await using server = serve(chain(php, logs));
  using conn = await WireConn.open(server.port);
  const whole = await conn.request("GET", "/length.php?cl=5&write=11");
  assert.equal(whole.headers.get("content-length"), "5");
  assert.equal(whole.body.length, 5);
  const opened = php.client.stats()[0]!.opened;
  const streamed = await conn.request(
    "GET",
    `/length.php?cl=100000&write=${8 * MIB}`,
    { timeoutMs: 2000 },
  );
  assert.equal(streamed.headers.get("content-length"), "100000");
  assert.equal(streamed.body.length, 100000);
  assert.ok(streamed.ms < 2000, `${streamed.ms} ms`);
  // Nothing of the rest follows on the client's connection; the
  // responder's connection was closed (the next request opens one).
  const next = await conn.request("GET", "/length.php?cl=3&write=3");
  assert.equal(next.body.length, 3);
  assert.equal(php.client.stats()[0]!.opened, opened + 1);
  for (const length of [5, 100000]) {
    assert.ok(
      logs.includes(
        `warn FastCGI /length.php: output longer than its Content-Length ${length}: cut there`,
      ),
      logs.join("\n"),
    );
  }
});

Deno.test("fastcgi() closes the connection within a second when the body is shorter than its Content-Length", async () => {
  await using fpm = await startPhpFpm({ workers: 2 });
  await using php = fastcgi({ backends: [fpm.address] });
  const logs: LogLines = [];
  await using server = serve(chain(php, logs));
  for (
    const [declared, written] of [[100, 17], [2 * MIB, MIB]] as const
  ) {
    using conn = await WireConn.open(server.port);
    const res = await conn.request(
      "GET",
      `/length.php?cl=${declared}&write=${written}`,
      { timeoutMs: 1000 },
    );
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-length"), String(declared));
    assert.equal(res.body.length, written);
    assert.ok(res.closed && !res.complete, `${declared}: connection closed`);
    assert.ok(res.ms < 1000, `${declared}: ${res.ms} ms`);
    assert.ok(
      logs.includes(
        `warn FastCGI /length.php: output ended after ${written} of its Content-Length ${declared} bytes: closing the connection`,
      ),
      logs.join("\n"),
    );
  }
});

Deno.test("fastcgi() answers 502 for an invalid or ambiguous Content-Length", async () => {
  await using fpm = await startPhpFpm({ workers: 2 });
  await using php = fastcgi({ backends: [fpm.address] });
  const logs: LogLines = [];
  await using server = serve(chain(php, logs));
  using conn = await WireConn.open(server.port);
  for (
    const query of [
      "cl=abc&write=5",
      "cl=-1&write=5",
      "cl=5&cl2=6&write=5",
      "cl=5%2C6&write=5",
      "cl=9007199254740992&write=5",
      `cl=abc&write=${2 * MIB}`,
    ]
  ) {
    const res = await conn.request("GET", `/length.php?${query}`);
    assert.equal(res.status, 502, query);
  }
  assert.equal(
    logs.filter((l) =>
      /^error GET \/length\.php: HttpError: Invalid script response: .*Content-Length/
        .test(l)
    ).length,
    6,
    logs.join("\n"),
  );
});

Deno.test("fastcgi() streams chunked without a Content-Length; a small page gets its bytes' length", async () => {
  await using fpm = await startPhpFpm({ workers: 2 });
  await using php = fastcgi({ backends: [fpm.address] });
  await using server = serve(chain(php));
  using conn = await WireConn.open(server.port);
  const streamed = await conn.request("GET", `/length.php?write=${2 * MIB}`);
  assert.equal(streamed.framing, "chunked");
  assert.equal(streamed.headers.get("content-length"), null);
  assert.equal(streamed.body.length, 2 * MIB);
  assert.ok(streamed.complete);
  const small = await conn.request("GET", "/length.php?write=20");
  assert.equal(small.headers.get("content-length"), "20");
  assert.equal(small.body.length, 20);
});

Deno.test("toHttpResponse() trusts whole bytes for a shorter Content-Length, and closes for a longer one", async () => {
  const logs: string[] = [];
  const encoder = new TextEncoder();
  await using server = serve(async (req) => {
    const declared = new URL(req.url).searchParams.get("cl");
    const output = encoder.encode(
      `Content-Type: text/plain\r\nContent-Length: ${declared}\r\n\r\nhello world`,
    );
    const parsed = await parseCgiResponse(output);
    assert.ok(parsed.body instanceof Uint8Array);
    return toHttpResponse(parsed, req.method, {
      tag: "whole",
      log: (level, message) => logs.push(`${level} ${message}`),
    });
  });
  using conn = await WireConn.open(server.port);
  const exact = await conn.request("GET", "/?cl=11");
  assert.equal(exact.headers.get("content-length"), "11");
  assert.equal(new TextDecoder().decode(exact.body), "hello world");
  const shorter = await conn.request("GET", "/?cl=5");
  assert.equal(shorter.headers.get("content-length"), "5");
  assert.equal(new TextDecoder().decode(shorter.body), "hello");
  const head = await conn.request("HEAD", "/?cl=20");
  assert.equal(head.headers.get("content-length"), "20");
  assert.equal(await conn.closesWithin(100), false);
  const longer = await conn.request("GET", "/?cl=20", { timeoutMs: 1000 });
  assert.equal(longer.headers.get("content-length"), "20");
  assert.equal(new TextDecoder().decode(longer.body), "hello world");
  assert.ok(longer.closed && !longer.complete);
  assert.ok(longer.ms < 1000, `${longer.ms} ms`);
  assert.deepEqual(logs, [
    "warn whole: output longer than its Content-Length 5: cut there",
    "warn whole: output ended after 11 of its Content-Length 20 bytes: closing the connection",
  ]);
});
