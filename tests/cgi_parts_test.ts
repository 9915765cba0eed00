// The shared CGI building blocks on their own: env builder, response parser, request body, process groups.
import assert from "node:assert/strict";
import { prepareRequestBody } from "../cgi/body.ts";
import { HttpError } from "../server/errors.ts";
import { buildCgiEnv } from "../cgi/env.ts";
import { findSetsid, killGroup, spawnInGroup } from "../cgi/process.ts";
import { parseCgiResponse } from "../cgi/response.ts";
import { tempDir } from "./_helpers/fs.ts";
import { isAlive, waitForExit } from "./_helpers/process.ts";

const enc = new TextEncoder();

function streamOf(
  ...parts: (string | Uint8Array)[]
): ReadableStream<Uint8Array> {
  return ReadableStream.from(
    parts.map((p) => typeof p === "string" ? enc.encode(p) : p),
  );
}

Deno.test("buildCgiEnv() strips brackets from IPv6 addresses and keeps UTF-8 header values", () => {
  const req = new Request("http://[::1]:8080/x", {
    headers: { "x-name": "caf\u00c3\u00a9" },
  });
  const env = buildCgiEnv(req, {
    url: new URL(req.url),
    info: {
      remoteAddr: { transport: "tcp", hostname: "::1", port: 5555 },
      completed: Promise.resolve(),
    },
  }, { scriptName: "/x", contentLength: 0 });
  assert.equal(env.REMOTE_ADDR, "::1");
  assert.equal(env.REMOTE_PORT, "5555");
  assert.equal(env.SERVER_NAME, "[::1]");
  assert.equal(env.SERVER_PORT, "8080");
  assert.equal(env.HTTP_X_NAME, "café");
  assert.equal(env.CONTENT_LENGTH, "0");
});

Deno.test("buildCgiEnv() lets extra variables override computed ones", () => {
  const req = new Request("http://localhost/x");
  const env = buildCgiEnv(req, { url: new URL(req.url), info: undefined }, {
    extra: {
      SERVER_SOFTWARE: "custom",
      REMOTE_USER: "alice",
      AUTH_TYPE: "Basic",
    },
  });
  assert.equal(env.SERVER_SOFTWARE, "custom");
  assert.equal(env.REMOTE_USER, "alice");
  assert.equal(env.REMOTE_ADDR, undefined);
});

Deno.test("parseCgiResponse() finds the header block across chunk boundaries", async () => {
  const res = await parseCgiResponse(
    streamOf(
      "Content-Ty",
      "pe: text/plain\r",
      "\n",
      "X-A: 1\r\n\r",
      "\nbo",
      "dy",
    ),
  );
  assert.equal(res.headers.get("content-type"), "text/plain");
  assert.equal(res.headers.get("x-a"), "1");
  assert.equal(await new Response(res.body).text(), "body");
});

Deno.test("parseCgiResponse() enforces maxHeaderBytes", async () => {
  const long = "X-Long: " + "a".repeat(200) + "\n";
  await assert.rejects(
    () =>
      parseCgiResponse(streamOf("Content-Type: text/plain\n", long, "\nbody"), {
        maxHeaderBytes: 100,
      }),
    (e: Error & { status?: number }) => e.status === 502,
  );
  const ok = await parseCgiResponse(
    streamOf("Content-Type: text/plain\n", long, "\nbody"),
    { maxHeaderBytes: 300 },
  );
  assert.equal(await new Response(ok.body).text(), "body");
  // No line end at all: the cap still applies.
  await assert.rejects(
    () => parseCgiResponse(streamOf("a".repeat(1000)), { maxHeaderBytes: 100 }),
    (e: Error & { status?: number }) => e.status === 502,
  );
});

Deno.test("parseCgiResponse() classifies redirects as RFC 3875 §6.2 says", async () => {
  const local = await parseCgiResponse(streamOf("Location: /a?b=c\n\n"));
  assert.equal(local.localRedirect, "/a?b=c");
  await local.body.cancel();
  const network = await parseCgiResponse(
    streamOf("Location: //evil.example/x\n\n"),
  );
  assert.equal(network.localRedirect, undefined);
  assert.equal(network.status, 302);
  await network.body.cancel();
  const withStatus = await parseCgiResponse(
    streamOf("Status: 307\nLocation: /a\n\n"),
  );
  assert.equal(withStatus.localRedirect, undefined);
  assert.equal(withStatus.status, 307);
  await withStatus.body.cancel();
});

Deno.test("parseCgiResponse() reads an nph status line and rejects a missing one", async () => {
  const nph = await parseCgiResponse(
    streamOf("HTTP/1.0 203 Fine\r\nX-A: 1\r\n\r\nx"),
    { nph: true },
  );
  assert.equal(nph.status, 203);
  assert.equal(nph.statusText, "Fine");
  assert.equal(await new Response(nph.body).text(), "x");
  await assert.rejects(
    () =>
      parseCgiResponse(streamOf("Content-Type: text/plain\n\nx"), {
        nph: true,
      }),
    (e: Error & { status?: number }) => e.status === 502,
  );
});

Deno.test("prepareRequestBody() with streamBody streams a body of known length cut at Content-Length", async () => {
  const req = new Request("http://localhost/", {
    method: "POST",
    headers: { "content-length": "3" },
    body: streamOf("ab", "cdef"),
  });
  await using body = await prepareRequestBody(req, { streamBody: true });
  assert.equal(body.length, 3);
  assert.equal(await new Response(body.stream).text(), "abc");
});

Deno.test("prepareRequestBody() reads a body of known length in full before it resolves, cut at Content-Length", async () => {
  let pulled = 0;
  const chunks = ["ab", "cd", "ef"];
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = chunks[pulled++];
      if (next === undefined) controller.close();
      else controller.enqueue(new TextEncoder().encode(next));
    },
  }, { highWaterMark: 0 });
  const req = new Request("http://localhost/", {
    method: "POST",
    headers: { "content-length": "5" },
    body: source,
  });
  await using body = await prepareRequestBody(req);
  assert.ok(pulled >= 3, "read before the script could start");
  assert.equal(body.length, 5);
  assert.equal(await new Response(body.stream).text(), "abcde");
});

Deno.test("prepareRequestBody() answers 408 for a body that goes silent and 400 for one that ends short", async () => {
  const silent = new Request("http://localhost/", {
    method: "POST",
    headers: { "content-length": "10" },
    body: new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode("abc")); // then nothing
      },
    }),
  });
  await assert.rejects(
    prepareRequestBody(silent, { bodyTimeoutMs: 50 }),
    (e) => e instanceof HttpError && e.status === 408,
  );
  const short = new Request("http://localhost/", {
    method: "POST",
    headers: { "content-length": "10" },
    body: streamOf("abc"),
  });
  await assert.rejects(
    prepareRequestBody(short),
    (e) => e instanceof HttpError && e.status === 400,
  );
});

Deno.test("prepareRequestBody() spills a large chunked body to a temp file and removes it", async () => {
  await using dir = await tempDir();
  const req = new Request("http://localhost/", {
    method: "POST",
    body: streamOf("a".repeat(600), "b".repeat(600)),
  });
  const body = await prepareRequestBody(req, {
    bodyMemoryLimit: 1000,
    tempDir: dir.path,
  });
  assert.equal(body.length, 1200);
  const files = [];
  for await (const e of Deno.readDir(dir.path)) files.push(e.name);
  assert.equal(files.length, 1);
  assert.equal(
    await new Response(body.stream).text(),
    "a".repeat(600) + "b".repeat(600),
  );
  await body.dispose();
  for await (const e of Deno.readDir(dir.path)) {
    assert.fail(`left over: ${e.name}`);
  }
});

Deno.test("prepareRequestBody() reports no body as undefined length", async () => {
  await using body = await prepareRequestBody(new Request("http://localhost/"));
  assert.equal(body.length, undefined);
  assert.equal(body.stream, null);
});

Deno.test("killGroup() kills grandchildren that ignore SIGTERM", async () => {
  const child = spawnInGroup("/bin/sh", {
    args: ["-c", "trap '' TERM; (trap '' TERM; exec sleep 30) & echo $!; wait"],
  });
  const reader = child.stdout.getReader();
  const grandchild = Number(
    new TextDecoder().decode((await reader.read()).value).trim(),
  );
  assert.ok(await isAlive(grandchild));
  await killGroup(child, 300);
  await waitForExit([grandchild], {
    timeoutMs: 3000,
    message: "grandchild killed",
  });
  assert.equal((await child.status).signal, "SIGKILL");
  reader.releaseLock();
  await child.stdout.cancel();
  await child.stderr.cancel();
});

Deno.test("spawnInGroup() through setsid(1) leads a process group of its own under the same pid", async () => {
  const setsid = findSetsid();
  assert.ok(setsid, "setsid(1) is installed here (util-linux)");
  const child = spawnInGroup("sh", {
    args: ["-c", "cut -d' ' -f5,6 /proc/$$/stat"],
    env: { PATH: "/usr/bin:/bin" },
    setsid,
  });
  child.stderr.cancel();
  const [group, session] = (await new Response(child.stdout).text()).trim()
    .split(" ");
  assert.equal(group, String(child.pid), "its own group, led by its pid");
  assert.equal(session, String(child.pid), "and its own session");
  assert.equal((await child.status).code, 0);
  assert.throws(
    () => spawnInGroup("/nonexistent/python", { setsid }),
    Deno.errors.NotFound,
  );
});
