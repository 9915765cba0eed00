// A CGI script's Content-Length, on the wire (issue 11): kept when valid,
// the body sent exactly that long (longer cut, shorter → connection closed),
// 502 when invalid, chunked without one.
import assert from "node:assert/strict";
import { exactLength } from "../cgi/stream.ts";
import { cgiHarness } from "./_helpers/cgi.ts";
import { serve } from "./_helpers/net.ts";
import { children, waitForChildrenReaped } from "./_helpers/process.ts";
import { WireConn } from "./_helpers/wire.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

Deno.test("cgi() keeps a script's valid Content-Length for GET and HEAD, on a kept connection", async () => {
  const { handler, logs } = cgiHarness();
  await using server = serve(handler);
  using conn = await WireConn.open(server.port);
  const get = await conn.request("GET", "/cgi-bin/length.cgi?exact");
  assert.equal(get.status, 200);
  assert.equal(get.framing, "content-length");
  assert.equal(get.headers.get("content-length"), "11");
  assert.equal(get.headers.get("transfer-encoding"), null);
  assert.equal(text(get.body), "hello world");
  assert.ok(get.complete);
  const head = await conn.request("HEAD", "/cgi-bin/length.cgi?exact");
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-length"), "11");
  assert.equal(head.headers.get("transfer-encoding"), null);
  // Several equal values count as one; 0 is a length too; nph scripts too.
  const equal = await conn.request("GET", "/cgi-bin/length.cgi?equal");
  assert.equal(equal.headers.get("content-length"), "5");
  assert.equal(text(equal.body), "hello");
  const zero = await conn.request("GET", "/cgi-bin/length.cgi?zero");
  assert.equal(zero.headers.get("content-length"), "0");
  assert.equal(zero.body.length, 0);
  const nph = await conn.request("GET", "/cgi-bin/nph-length.cgi");
  assert.equal(nph.headers.get("content-length"), "9");
  assert.equal(text(nph.body), "nph body\n");
  assert.equal(await conn.closesWithin(100), false, "connection kept");
  assert.deepEqual(logs.filter((l) => /Content-Length/.test(l)), []);
});

Deno.test("cgi() keeps a long download's Content-Length, and HEAD's", async () => {
  const { handler } = cgiHarness();
  await using server = serve(handler);
  using conn = await WireConn.open(server.port);
  const size = 3 * 1024 * 1024 + 7;
  const before = children(Deno.pid);
  const get = await conn.request(
    "GET",
    `/cgi-bin/length.pl?declared=${size}&write=${size}`,
  );
  assert.equal(get.headers.get("content-length"), String(size));
  assert.equal(get.body.length, size);
  assert.ok(get.complete);
  const head = await conn.request(
    "HEAD",
    `/cgi-bin/length.pl?declared=${size}&write=${size}`,
  );
  assert.equal(head.headers.get("content-length"), String(size));
  assert.equal(conn.leftover, 0);
  assert.equal(await conn.closesWithin(100), false);
  await waitForChildrenReaped(before);
});

Deno.test("cgi() cuts a body longer than its Content-Length and keeps the connection", async () => {
  const { handler, logs } = cgiHarness();
  await using server = serve(handler);
  using conn = await WireConn.open(server.port);
  const before = children(Deno.pid);
  const longer = await conn.request("GET", "/cgi-bin/length.cgi?longer");
  assert.equal(longer.headers.get("content-length"), "5");
  assert.equal(text(longer.body), "hello");
  // Nothing of the rest follows: the next response starts right there.
  const next = await conn.request("GET", "/cgi-bin/length.cgi?exact");
  assert.equal(text(next.body), "hello world");
  await waitForChildrenReaped(before);
  assert.ok(
    logs.some((l) =>
      /^warn cgi \/cgi-bin\/length\.cgi: output longer than its Content-Length 5: cut there$/
        .test(l)
    ),
    logs.join("\n"),
  );
  // Cut, not "client went away": the script is left to end, not killed.
  assert.deepEqual(logs.filter((l) => /killing/.test(l)), []);
});

Deno.test("cgi() cuts a script writing far more than its Content-Length, which then ends at once", async () => {
  // One slot: a script left blocked on its full pipe would hold it (503).
  const { handler, logs } = cgiHarness({ maxConcurrent: 1 });
  await using server = serve(handler);
  using conn = await WireConn.open(server.port);
  const before = children(Deno.pid);
  const cut = await conn.request(
    "GET",
    "/cgi-bin/length.pl?declared=100000&write=50000000",
    { timeoutMs: 2000 },
  );
  assert.equal(cut.headers.get("content-length"), "100000");
  assert.equal(cut.body.length, 100000);
  assert.ok(cut.complete);
  assert.ok(cut.ms < 2000, `${cut.ms} ms`);
  await waitForChildrenReaped(before);
  const next = await conn.request("GET", "/cgi-bin/length.cgi?exact");
  assert.equal(next.status, 200, "the slot is free again");
  // Its pipe closed, it died of SIGPIPE on its own: no kill, no timeout.
  assert.deepEqual(logs.filter((l) => /killing|timed out/.test(l)), []);
});

Deno.test("cgi() ends an exact body at once, though the script goes on running", async () => {
  const { handler, logs } = cgiHarness();
  await using server = serve(handler);
  using conn = await WireConn.open(server.port);
  const before = children(Deno.pid);
  const res = await conn.request(
    "GET",
    "/cgi-bin/length.pl?declared=70000&write=70000&linger=1",
    { timeoutMs: 800 },
  );
  assert.equal(res.body.length, 70000);
  assert.ok(res.ms < 800, `${res.ms} ms`);
  // The connection serves the next request while the script still runs.
  const next = await conn.request("GET", "/cgi-bin/length.cgi?exact", {
    timeoutMs: 800,
  });
  assert.equal(text(next.body), "hello world");
  await waitForChildrenReaped(before);
  // It ran to its end (Deno alone would cancel the body: a kill).
  assert.deepEqual(logs, []);
});

Deno.test("cgi() closes the connection within a second when the body is shorter than its Content-Length", async () => {
  const { handler, logs } = cgiHarness();
  await using server = serve(handler);
  for (
    const [path, declared, got] of [
      ["/cgi-bin/length.cgi?short", 100, 17],
      ["/cgi-bin/length.pl?declared=1000000&write=500000", 1000000, 500000],
      ["/cgi-bin/nph-length.cgi?short", 10, 9],
    ] as const
  ) {
    using conn = await WireConn.open(server.port);
    const before = children(Deno.pid);
    const res = await conn.request("GET", path, { timeoutMs: 1000 });
    assert.equal(res.status, 200, path);
    assert.equal(res.headers.get("content-length"), String(declared), path);
    assert.equal(res.body.length, got, path);
    assert.ok(res.closed && !res.complete, `${path}: connection closed`);
    assert.ok(res.ms < 1000, `${path}: ${res.ms} ms`);
    await waitForChildrenReaped(before);
  }
  assert.ok(
    logs.some((l) =>
      l ===
        "warn cgi /cgi-bin/length.cgi: output ended after 17 of its Content-Length 100 bytes: closing the connection"
    ),
    logs.join("\n"),
  );
});

Deno.test("cgi() answers 502 for an invalid or ambiguous Content-Length", async () => {
  const { handler, logs } = cgiHarness();
  await using server = serve(handler);
  using conn = await WireConn.open(server.port);
  for (
    const query of [
      "differ",
      "differ-list",
      "letters",
      "negative",
      "plus",
      "exponent",
      "hex",
      "inner-space",
      "empty-element",
      "unsafe",
    ]
  ) {
    const before = children(Deno.pid);
    const res = await conn.request("GET", `/cgi-bin/length.cgi?${query}`);
    assert.equal(res.status, 502, query);
    assert.doesNotMatch(text(res.body), /hello/, query);
    await waitForChildrenReaped(before);
  }
  assert.equal(
    logs.filter((l) => /cgi \/cgi-bin\/length\.cgi: .*Content-Length/.test(l))
      .length,
    10,
    logs.join("\n"),
  );
});

Deno.test("cgi() sends the body chunked without a Content-Length, or when Transfer-Encoding overrides it", async () => {
  const { handler } = cgiHarness();
  await using server = serve(handler);
  using conn = await WireConn.open(server.port);
  const none = await conn.request("GET", "/cgi-bin/length.cgi?none");
  assert.equal(none.framing, "chunked");
  assert.equal(none.headers.get("content-length"), null);
  assert.equal(text(none.body), "no length\n");
  const chunked = await conn.request("GET", "/cgi-bin/length.cgi?chunked");
  assert.equal(chunked.framing, "chunked");
  assert.equal(chunked.headers.get("content-length"), null);
  assert.equal(text(chunked.body), "six b\n");
  assert.ok(chunked.complete);
});

Deno.test("cgi() sends no Content-Length and no body with a 204, no body with a 304", async () => {
  const { handler } = cgiHarness();
  await using server = serve(handler);
  using conn = await WireConn.open(server.port);
  const noContent = await conn.request("GET", "/cgi-bin/length.cgi?nocontent");
  assert.equal(noContent.status, 204);
  assert.equal(noContent.headers.get("content-length"), null);
  const notModified = await conn.request(
    "GET",
    "/cgi-bin/length.cgi?notmodified",
  );
  assert.equal(notModified.status, 304);
  // Nothing of the bodies was sent: the next response follows at once.
  const next = await conn.request("GET", "/cgi-bin/length.cgi?exact");
  assert.equal(text(next.body), "hello world");
});

Deno.test("exactLength() passes a cancel on, and waits for the end once every byte is out", async () => {
  let cancelled: unknown = "no";
  let pulls = 0;
  const source = (chunks: string[]) =>
    new ReadableStream<Uint8Array>({
      pull(controller) {
        pulls++;
        const chunk = chunks.shift();
        if (chunk === undefined) controller.close();
        else controller.enqueue(new TextEncoder().encode(chunk));
      },
      cancel(reason) {
        cancelled = reason;
      },
    }, { highWaterMark: 0 });
  // Cancelled by the consumer: the source is too, with the reason.
  const reader = exactLength(source(["ab", "cd"]), 4).getReader();
  await reader.read();
  await reader.cancel("gone");
  assert.equal(cancelled, "gone");
  // Exact: closed after the last byte, the source read to its end.
  cancelled = "no";
  pulls = 0;
  const exact = await new Response(exactLength(source(["ab", "", "cd"]), 4))
    .text();
  assert.equal(exact, "abcd");
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(pulls, 4);
  assert.equal(cancelled, "no");
  // Excess after the last byte: cancelled with the cut reason.
  let excess = 0;
  const cut = exactLength(source(["ab", "cd", "ef"]), 4, {
    cutReason: "cut",
    onExcess: () => excess++,
  });
  assert.equal(await new Response(cut).text(), "abcd");
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(excess, 1);
  assert.equal(cancelled, "cut");
});

Deno.test("cgi() answers HEAD without a script Content-Length with no length at all, not 0", async () => {
  const { handler } = cgiHarness();
  await using server = serve(handler);
  using conn = await WireConn.open(server.port);
  const get = await conn.request("GET", "/cgi-bin/length.cgi?none");
  assert.ok(get.body.length > 0);
  const head = await conn.request("HEAD", "/cgi-bin/length.cgi?none");
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-length"), null);
  assert.equal(head.headers.get("transfer-encoding"), null);
  assert.equal(head.body.length, 0);
  // The connection stays usable: HEAD has no body, whatever its headers.
  const again = await conn.request("GET", "/cgi-bin/length.cgi?none");
  assert.equal(text(again.body), text(get.body));
});
