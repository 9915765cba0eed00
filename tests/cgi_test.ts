// CGI gateway behaviour, through the composed handler (resolvePath → cgi → serveStatic).
import assert from "node:assert/strict";
import { cgi } from "../cgi/cgi.ts";
import { createHandler } from "../handler/create_handler.ts";
import { compose } from "../server/compose.ts";
import { resolvePath } from "../server/resolve.ts";
import { serveStatic } from "../static/serve_static.ts";
import { cgiHarness, parseEnv } from "./_helpers/cgi.ts";
import { tempDir, testdata } from "./_helpers/fs.ts";
import { eventually, waitFor } from "./_helpers/poll.ts";
import {
  children,
  readPids,
  waitForChildrenReaped,
  waitForExit,
  zombieChildren,
} from "./_helpers/process.ts";

const BASE = "http://localhost:8000";

/** One request to its end: the body read, the processes it started reaped. */
async function get(
  handler: (req: Request) => Promise<Response>,
  path: string,
  init?: RequestInit,
): Promise<{ res: Response; text: string }> {
  const before = children(Deno.pid);
  const res = await handler(new Request(BASE + path, init));
  const text = await res.text();
  await waitForChildrenReaped(before);
  return { res, text };
}

Deno.test("cgi() runs an executable script and returns its output", async () => {
  const { handler } = cgiHarness();
  const { res, text } = await get(handler, "/cgi-bin/env.cgi");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/plain");
  assert.match(text, /^GATEWAY_INTERFACE=CGI\/1\.1$/m);
  assert.doesNotMatch(text, /#!\/bin\/sh/);
});

Deno.test("cgi() sets the RFC 3875 meta-variables", async () => {
  const { handler } = cgiHarness();
  const { text } = await get(
    handler,
    "/cgi-bin/env.cgi/extra/p%20q?k=aa%2F%2Fbb&x=a?b",
  );
  const env = parseEnv(text);
  const root = await Deno.realPath(testdata());
  assert.equal(env.get("GATEWAY_INTERFACE"), "CGI/1.1");
  assert.equal(env.get("REQUEST_METHOD"), "GET");
  assert.equal(env.get("SCRIPT_NAME"), "/cgi-bin/env.cgi");
  assert.equal(env.get("PATH_INFO"), "/extra/p q");
  assert.equal(env.get("PATH_TRANSLATED"), `${root}/extra/p q`);
  assert.equal(env.get("QUERY_STRING"), "k=aa%2F%2Fbb&x=a?b");
  assert.equal(
    env.get("REQUEST_URI"),
    "/cgi-bin/env.cgi/extra/p%20q?k=aa%2F%2Fbb&x=a?b",
  );
  assert.equal(env.get("SERVER_NAME"), "localhost");
  assert.equal(env.get("SERVER_PORT"), "8000");
  assert.equal(env.get("SERVER_PROTOCOL"), "HTTP/1.1");
  assert.ok(env.get("SERVER_SOFTWARE"));
  assert.equal(env.get("REQUEST_SCHEME"), "http");
  assert.equal(env.get("HTTPS"), undefined);
  assert.equal(env.get("SCRIPT_FILENAME"), `${root}/cgi-bin/env.cgi`);
  assert.equal(env.get("DOCUMENT_ROOT"), root);
  assert.equal(env.get("REDIRECT_STATUS"), "200");
  assert.equal(env.get("CWD"), `${root}/cgi-bin`);
  assert.equal(env.get("ARGC"), "0");
  assert.equal(env.has("CONTENT_LENGTH"), false);
  assert.equal(env.has("CONTENT_TYPE"), false);
});

Deno.test("cgi() leaves PATH_TRANSLATED unset without PATH_INFO and sets PATH_INFO=/ for a trailing slash", async () => {
  const { handler } = cgiHarness();
  const plain = parseEnv((await get(handler, "/cgi-bin/env.cgi")).text);
  assert.equal(plain.get("PATH_INFO"), "");
  assert.equal(plain.has("PATH_TRANSLATED"), false);
  assert.equal(plain.get("QUERY_STRING"), "");
  const slash = parseEnv((await get(handler, "/cgi-bin/env.cgi/")).text);
  assert.equal(slash.get("PATH_INFO"), "/");
  const dots = parseEnv(
    (await get(handler, "/cgi-bin/./env.cgi/x/../y/./z")).text,
  );
  assert.equal(dots.get("SCRIPT_NAME"), "/cgi-bin/env.cgi");
  assert.equal(dots.get("PATH_INFO"), "/y/z");
});

Deno.test("cgi() sets HTTPS=on and REQUEST_SCHEME=https under TLS", async () => {
  const { handler } = cgiHarness();
  const before = children(Deno.pid);
  const res = await handler(new Request("https://example.org/cgi-bin/env.cgi"));
  const env = parseEnv(await res.text());
  await waitForChildrenReaped(before);
  assert.equal(env.get("HTTPS"), "on");
  assert.equal(env.get("REQUEST_SCHEME"), "https");
  assert.equal(env.get("SERVER_PORT"), "443");
  assert.equal(env.get("SERVER_NAME"), "example.org");
});

Deno.test("cgi() passes headers as HTTP_* but not Proxy, Authorization, Content-* or odd names", async () => {
  const { handler } = cgiHarness();
  const headers = new Headers([
    ["x-custom-header", "v1"],
    ["x-foo", "a"],
    ["x-foo", "b"],
    ["user-agent", "() { :; }; echo vulnerable"],
    ["proxy", "http://evil.example:8888"],
    ["proxy-authorization", "Basic eDp5"],
    ["authorization", "Basic YWxpY2U6c2VjcmV0"],
    ["content-type", "text/plain"],
  ]);
  const { text } = await get(handler, "/cgi-bin/env.cgi", {
    method: "POST",
    headers,
    body: "abc",
  });
  const env = parseEnv(text);
  assert.equal(env.get("HTTP_X_CUSTOM_HEADER"), "v1");
  assert.equal(env.get("HTTP_X_FOO"), "a, b");
  assert.equal(env.get("HTTP_USER_AGENT"), "() { :; }; echo vulnerable");
  assert.equal(env.get("CONTENT_TYPE"), "text/plain");
  assert.equal(env.get("CONTENT_LENGTH"), "3");
  for (
    const name of [
      "HTTP_PROXY",
      "HTTP_PROXY_AUTHORIZATION",
      "HTTP_AUTHORIZATION",
      "HTTP_CONTENT_TYPE",
      "HTTP_CONTENT_LENGTH",
      "REMOTE_USER",
      "AUTH_TYPE",
    ]
  ) {
    assert.equal(env.has(name), false, name);
  }
  assert.doesNotMatch(text, /^vulnerable$/m);
});

Deno.test("cgi() passes Authorization only when configured", async () => {
  const { handler } = cgiHarness({ passAuthorization: true });
  const { text } = await get(handler, "/cgi-bin/env.cgi", {
    headers: { authorization: "Basic YWxpY2U6c2VjcmV0" },
  });
  const env = parseEnv(text);
  assert.equal(env.get("HTTP_AUTHORIZATION"), "Basic YWxpY2U6c2VjcmV0");
  assert.equal(env.has("REMOTE_USER"), false);
});

Deno.test("cgi() builds the environment from scratch: only PATH, passEnv and env reach scripts", async () => {
  Deno.env.set("X_SERVE_SERVER_SECRET", "leaked");
  Deno.env.set("X_SERVE_PASSED", "passed");
  try {
    const { handler } = cgiHarness({
      passEnv: ["X_SERVE_PASSED", "X_SERVE_UNSET"],
      env: { FIXED: "1" },
      path: "/usr/bin:/bin",
    });
    const env = parseEnv((await get(handler, "/cgi-bin/env.cgi")).text);
    assert.equal(env.has("X_SERVE_SERVER_SECRET"), false);
    assert.equal(env.get("X_SERVE_PASSED"), "passed");
    assert.equal(env.has("X_SERVE_UNSET"), false);
    assert.equal(env.get("FIXED"), "1");
    assert.equal(env.get("PATH"), "/usr/bin:/bin");
    assert.equal(env.has("HOME"), false);
  } finally {
    Deno.env.delete("X_SERVE_SERVER_SECRET");
    Deno.env.delete("X_SERVE_PASSED");
  }
});

Deno.test("cgi() never turns the query string into arguments", async () => {
  const { handler } = cgiHarness();
  for (
    const query of [
      "-s",
      "word1+word2+%41%3B",
      "a=b+c",
      "-d+allow_url_include%3d1",
    ]
  ) {
    const env = parseEnv(
      (await get(handler, `/cgi-bin/env.cgi?${query}`)).text,
    );
    assert.equal(env.get("ARGC"), "0", query);
  }
  const php = await get(handler, "/cgi-bin/info.php?-s");
  assert.equal(php.res.status, 200);
  assert.match(php.text, /^php ok$/m);
  assert.doesNotMatch(php.text, /<\?php/);
});

Deno.test("cgi() runs scripts in subdirectories with PATH_INFO", async () => {
  const { handler } = cgiHarness();
  const env = parseEnv(
    (await get(handler, "/cgi-bin/subdir/nested.cgi/pi?n=1")).text,
  );
  assert.equal(env.get("SCRIPT_NAME"), "/cgi-bin/subdir/nested.cgi");
  assert.equal(env.get("PATH_INFO"), "/pi");
  assert.equal(
    env.get("CWD"),
    `${await Deno.realPath(testdata())}/cgi-bin/subdir`,
  );
});

Deno.test("cgi() answers 404 for missing scripts and 403 for directories", async () => {
  const { handler } = cgiHarness();
  for (
    const path of [
      "/cgi-bin/nothere.cgi",
      "/cgi-bin/nothere.cgi/x",
      "/cgi-bin/subdir/nothere",
      "/cgi-bin/env.cgi%00.txt",
    ]
  ) {
    const { res } = await get(handler, path);
    assert.ok(
      res.status === 404 || res.status === 400,
      `${path}: ${res.status}`,
    );
  }
  for (
    const path of [
      "/cgi-bin",
      "/cgi-bin/",
      "/cgi-bin/subdir",
      "/cgi-bin/subdir/",
    ]
  ) {
    const { res, text } = await get(handler, path);
    assert.equal(res.status, 403, path);
    assert.doesNotMatch(text, /env\.cgi/);
  }
});

Deno.test("cgi() answers 403 for a non-executable script without interpreter, never its source", async () => {
  const { handler } = cgiHarness();
  const { res, text } = await get(handler, "/cgi-bin/noexec.cgi");
  assert.equal(res.status, 403);
  assert.doesNotMatch(text, /Dumps the environment|printf/);
});

Deno.test("cgi() does not run a symlink that leads out of the CGI directory", async () => {
  const { handler } = cgiHarness();
  const { res, text } = await get(handler, "/cgi-bin/link.cgi");
  assert.equal(res.status, 404);
  assert.doesNotMatch(text, /OUTSIDE-EXECUTED/);
});

/** A site root with `cgi-bin/` inside it, served with the open-file cache. */
async function cachedCgiSite(followSymlinks: boolean) {
  const dir = await tempDir();
  const root = await Deno.realPath(dir.path);
  await Deno.mkdir(`${root}/cgi-bin`);
  await Deno.mkdir(`${root}/elsewhere`);
  const script = (text: string) =>
    `#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n${text}'\n`;
  const write = async (path: string, text: string) => {
    await Deno.writeTextFile(`${root}/${path}`, script(text));
    await Deno.chmod(`${root}/${path}`, 0o755);
  };
  const site = resolvePath({ root, followSymlinks, cache: {} });
  const handler = compose([
    site,
    cgi({ dirs: { "/cgi-bin/": `${root}/cgi-bin` } }),
    serveStatic(),
  ]);
  return {
    root,
    write,
    handler,
    async [Symbol.asyncDispose]() {
      await site.close();
      await dir[Symbol.asyncDispose]();
    },
  };
}

Deno.test("cgi() inside a root that follows symlinks still runs nothing linked out of the CGI directory", async () => {
  await using site = await cachedCgiSite(true);
  await site.write("elsewhere/out.cgi", "OUTSIDE-EXECUTED");
  await Deno.symlink("../elsewhere/out.cgi", `${site.root}/cgi-bin/link.cgi`);
  await site.write("cgi-bin/in.cgi", "inside");
  assert.equal((await get(site.handler, "/cgi-bin/in.cgi")).text, "inside");
  for (let i = 0; i < 2; i++) { // looked up, then from the cache
    const { res, text } = await get(site.handler, "/cgi-bin/link.cgi");
    assert.equal(res.status, 404);
    assert.doesNotMatch(text, /OUTSIDE-EXECUTED/);
  }
});

Deno.test("cgi() under the site's open-file cache sees a script removed, added or swapped for a symlink out", async () => {
  await using site = await cachedCgiSite(false);
  await site.write("cgi-bin/a.cgi", "a");
  await site.write("elsewhere/out.cgi", "OUTSIDE-EXECUTED");
  assert.equal((await get(site.handler, "/cgi-bin/a.cgi")).text, "a");
  assert.equal((await get(site.handler, "/cgi-bin/b.cgi")).res.status, 404);
  await Deno.remove(`${site.root}/cgi-bin/a.cgi`);
  // At once, even before the cache hears of it: a 404, never a 502.
  assert.equal((await get(site.handler, "/cgi-bin/a.cgi")).res.status, 404);
  await site.write("cgi-bin/b.cgi", "b");
  await eventually(async () => {
    assert.equal((await get(site.handler, "/cgi-bin/b.cgi")).text, "b");
  });
  assert.equal((await get(site.handler, "/cgi-bin/a.cgi")).res.status, 404);
  // Swapped for a symlink out and asked for at once: the lookup the site's
  // cache still holds must not let it run.
  await Deno.remove(`${site.root}/cgi-bin/b.cgi`);
  await Deno.symlink("../elsewhere/out.cgi", `${site.root}/cgi-bin/b.cgi`);
  for (let i = 0; i < 2; i++) {
    const { res, text } = await get(site.handler, "/cgi-bin/b.cgi");
    assert.doesNotMatch(text, /OUTSIDE-EXECUTED/);
    assert.equal(res.status, 404);
  }
});

Deno.test("cgi() under a cache that trusts lookups for a while still runs nothing swapped for a symlink out", async () => {
  const dir = await tempDir();
  const root = await Deno.realPath(dir.path);
  try {
    await Deno.mkdir(`${root}/cgi-bin/sub`, { recursive: true });
    await Deno.mkdir(`${root}/elsewhere`);
    const body = (text: string) =>
      `#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n${text}'\n`;
    for (
      const [path, text] of [
        ["cgi-bin/a.cgi", "a"],
        ["cgi-bin/sub/s.cgi", "s"],
        ["elsewhere/a.cgi", "OUTSIDE-EXECUTED"],
        ["elsewhere/s.cgi", "OUTSIDE-DIR-EXECUTED"],
      ]
    ) {
      await Deno.writeTextFile(`${root}/${path}`, body(text!));
      await Deno.chmod(`${root}/${path}`, 0o755);
    }
    const site = resolvePath({
      root,
      cache: { watch: false, validMs: 60_000 },
    });
    const handler = compose([
      site,
      cgi({ dirs: { "/cgi-bin/": `${root}/cgi-bin` } }),
    ]);
    assert.equal((await get(handler, "/cgi-bin/a.cgi")).text, "a");
    assert.equal((await get(handler, "/cgi-bin/sub/s.cgi")).text, "s");
    await Deno.remove(`${root}/cgi-bin/a.cgi`);
    await Deno.symlink("../elsewhere/a.cgi", `${root}/cgi-bin/a.cgi`);
    await Deno.remove(`${root}/cgi-bin/sub`, { recursive: true });
    await Deno.symlink("../elsewhere", `${root}/cgi-bin/sub`);
    for (const path of ["/cgi-bin/a.cgi", "/cgi-bin/sub/s.cgi"]) {
      const { res, text } = await get(handler, path);
      assert.doesNotMatch(text, /OUTSIDE/, path);
      assert.equal(res.status, 404, path);
    }
    await site.close();
  } finally {
    await dir[Symbol.asyncDispose]();
  }
});

Deno.test("cgi() never hands a CGI directory's files to static serving", async () => {
  // The same directory mounted at another prefix: its path under the docroot must stay closed.
  const { handler } = cgiHarness({
    dirs: { "/scripts/": testdata("cgi-bin") },
  });
  const env = parseEnv((await get(handler, "/scripts/env.cgi/x")).text);
  assert.equal(env.get("SCRIPT_NAME"), "/scripts/env.cgi");
  for (
    const path of [
      "/cgi-bin/env.cgi",
      "/cgi-bin/noexec.cgi",
      "/cgi-bin/subdir/nested.cgi",
    ]
  ) {
    const { res, text } = await get(handler, path);
    assert.equal(res.status, 403, path);
    assert.doesNotMatch(text, /printf/);
  }
  const { res, text } = await get(handler, "/cgi_static.txt");
  assert.equal(res.status, 200);
  assert.equal(text, "static text\n");
});

Deno.test("cgi() runs non-executable scripts through their interpreter (python3, perl, php-cgi)", async () => {
  const { handler } = cgiHarness();
  const py = await get(handler, "/cgi-bin/echo.py", {
    method: "POST",
    body: "from python",
  });
  assert.equal(py.res.status, 200);
  assert.equal(py.text, "from python");
  const pl = await get(handler, "/cgi-bin/readall.pl", {
    method: "POST",
    body: "12345",
  });
  assert.equal(pl.text, "read=5 content_length=5\n");
  const php = await get(handler, "/cgi-bin/info.php/p%20i?x=2", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: "a=1&b=two",
  });
  assert.equal(php.res.status, 200);
  assert.match(php.res.headers.get("x-php") ?? "", /^\d+\.\d+/);
  assert.match(php.text, /^REDIRECT_STATUS=200$/m);
  assert.match(php.text, /^SCRIPT_NAME=\/cgi-bin\/info\.php$/m);
  assert.match(php.text, /^PATH_INFO=\/p i$/m);
  assert.match(php.text, /^GET=\{"x":"2"\}$/m);
  assert.match(php.text, /^POST=\{"a":"1","b":"two"\}$/m);
});

Deno.test("cgi() uses a configured interpreter map and refuses unmapped extensions", async () => {
  const { handler } = cgiHarness({ interpreters: { ".pl": ["perl", "-w"] } });
  const pl = await get(handler, "/cgi-bin/stderr.pl");
  assert.equal(pl.text, "stdout body ok\n");
  const py = await get(handler, "/cgi-bin/echo.py");
  assert.equal(py.res.status, 403);
  assert.doesNotMatch(py.text, /CONTENT_LENGTH/);
});

Deno.test("cgi() streams a large POST to a script that echoes it without deadlock", async () => {
  const { handler } = cgiHarness();
  const size = 8 * 1024 * 1024;
  const body = new Uint8Array(size);
  for (let i = 0; i < size; i++) body[i] = i % 251;
  const before = children(Deno.pid);
  const res = await handler(
    new Request(BASE + "/cgi-bin/echo.py", {
      method: "POST",
      headers: { "content-length": String(size) },
      body,
    }),
  );
  assert.equal(res.headers.get("x-content-length"), String(size));
  const echoed = new Uint8Array(await res.arrayBuffer());
  await waitForChildrenReaped(before);
  assert.equal(echoed.length, size);
  assert.deepEqual(echoed, body);
});

Deno.test("cgi() buffers a chunked body to give the script its exact length", async () => {
  const { handler } = cgiHarness({ bodyMemoryLimit: 1000 });
  const parts = ["hello", " ", "world"].map((s) => new TextEncoder().encode(s));
  const small = await get(handler, "/cgi-bin/echo.py", {
    method: "POST",
    body: ReadableStream.from(parts),
  });
  assert.equal(small.res.headers.get("x-content-length"), "11");
  assert.equal(small.text, "hello world");
  // Past the memory limit the body goes to a temporary file.
  const big = new Uint8Array(300_000).fill(65);
  const chunks = [
    big.subarray(0, 100_000),
    big.subarray(100_000, 200_000),
    big.subarray(200_000),
  ];
  const spilled = await get(handler, "/cgi-bin/echo.py", {
    method: "POST",
    body: ReadableStream.from(chunks),
  });
  assert.equal(spilled.res.headers.get("x-content-length"), "300000");
  assert.equal(spilled.text.length, 300_000);
});

Deno.test("cgi() answers 413 for a body over maxBodySize and runs nothing", async () => {
  await using dir = await tempDir();
  const { handler } = cgiHarness({
    maxBodySize: 10,
    bodyMemoryLimit: 4,
    tempDir: dir.path,
  }, dir.path);
  const chunked = await get(handler, "/cgi-bin/sleep.cgi?b413-0", {
    method: "POST",
    body: ReadableStream.from([new Uint8Array(8), new Uint8Array(8)]),
  });
  assert.equal(chunked.res.status, 413);
  const known = await get(handler, "/cgi-bin/sleep.cgi?c413-0", {
    method: "POST",
    headers: { "content-length": "11" },
    body: new Uint8Array(11),
  });
  assert.equal(known.res.status, 413);
  const left = [];
  for await (const entry of Deno.readDir(dir.path)) left.push(entry.name);
  assert.deepEqual(left, [], "no pid file (nothing ran) and no temp file left");
});

Deno.test("cgi() honours Status and rejects invalid header blocks with 502", async () => {
  const { handler, logs } = cgiHarness();
  const status = await get(handler, "/cgi-bin/status.cgi?404%20Not%20Here");
  assert.equal(status.res.status, 404);
  assert.equal(status.text, "status body\n");
  assert.equal(
    (await get(handler, "/cgi-bin/status.cgi?418%20I%20am%20a%20teapot")).res
      .status,
    418,
  );
  assert.equal(
    (await get(handler, "/cgi-bin/badhdr.cgi?status-noreason")).res.status,
    404,
  );
  for (
    const mode of [
      "nocolon",
      "space",
      "fold",
      "barecr",
      "nul",
      "long",
      "status-bogus",
      "status-short",
      "status-999",
      "noct",
      "empty",
      "dupct",
    ]
  ) {
    const { res, text } = await get(handler, `/cgi-bin/badhdr.cgi?${mode}`);
    assert.equal(res.status, 502, mode);
    assert.equal(res.headers.get("x-injected"), null, mode);
    assert.doesNotMatch(text, /^body$/m, mode);
  }
  assert.ok(
    logs.some((l) =>
      l.includes("/cgi-bin/badhdr.cgi") && l.includes("Invalid script response")
    ),
  );
  assert.ok(
    !logs.some((l) => l.includes(testdata())),
    "log lines name scripts by URL",
  );
});

Deno.test("cgi() accepts LF, CRLF and mixed header lines, any case, trimmed values", async () => {
  const { handler } = cgiHarness();
  const lower = await get(handler, "/cgi-bin/badhdr.cgi?lowercase");
  assert.equal(lower.res.status, 202);
  assert.equal(lower.res.headers.get("content-type"), "text/x-lower");
  assert.equal(
    (await get(handler, "/cgi-bin/badhdr.cgi?crlf")).res.headers.get("x-crlf"),
    "yes",
  );
  const mixed = await get(handler, "/cgi-bin/badhdr.cgi?mixed");
  assert.equal(mixed.res.headers.get("x-mixed"), "yes");
  assert.equal(mixed.text, "body\n");
  const lead = await get(handler, "/cgi-bin/badhdr.cgi?leadspace");
  assert.equal(lead.res.headers.get("x-nospace"), "v");
  assert.equal(lead.res.headers.get("x-spaces"), "padded");
});

Deno.test("cgi() drops hop-by-hop headers from scripts and keeps repeated Set-Cookie", async () => {
  const { handler } = cgiHarness();
  const hop = await get(handler, "/cgi-bin/badhdr.cgi?hop");
  assert.equal(hop.res.status, 200);
  for (
    const name of [
      "connection",
      "transfer-encoding",
      "keep-alive",
      "upgrade",
      "content-length",
    ]
  ) {
    assert.equal(hop.res.headers.get(name), null, name);
  }
  assert.equal(hop.text, "six b\n");
  const cookies = await get(handler, "/cgi-bin/badhdr.cgi?cookies");
  assert.deepEqual(cookies.res.headers.getSetCookie(), ["a=1", "b=2"]);
});

Deno.test("cgi() answers client redirects with 302, or the script's status with its document", async () => {
  const { handler } = cgiHarness();
  const abs = await get(handler, "/cgi-bin/redirect.cgi?abs");
  assert.equal(abs.res.status, 302);
  assert.equal(abs.res.headers.get("location"), "http://example.org/target");
  const doc = await get(handler, "/cgi-bin/redirect.cgi?absdoc");
  assert.equal(doc.res.status, 301);
  assert.equal(doc.res.headers.get("location"), "http://example.org/moved");
  assert.equal(doc.text, "moved body\n");
  const see = await get(handler, "/cgi-bin/redirect.cgi?localstatus");
  assert.equal(see.res.status, 303);
  assert.equal(see.res.headers.get("location"), "/cgi-bin/env.cgi");
  const rel = await get(handler, "/cgi-bin/redirect.cgi?relative");
  assert.equal(rel.res.status, 302);
  assert.equal(rel.res.headers.get("location"), "static.txt");
});

Deno.test("cgi() re-dispatches a local redirect inside the server as GET", async () => {
  const { handler } = cgiHarness();
  const local = await get(handler, "/cgi-bin/redirect.cgi?local", {
    method: "POST",
    headers: { "content-type": "text/plain", "x-kept": "1" },
    body: "ignored",
  });
  assert.equal(local.res.status, 200);
  const env = parseEnv(local.text);
  assert.equal(env.get("QUERY_STRING"), "via=local-redirect");
  assert.equal(env.get("REQUEST_METHOD"), "GET");
  assert.equal(env.get("SCRIPT_NAME"), "/cgi-bin/env.cgi");
  assert.equal(env.has("CONTENT_LENGTH"), false);
  assert.equal(env.has("CONTENT_TYPE"), false);
  assert.equal(env.get("HTTP_X_KEPT"), "1");
  const withBody = await get(handler, "/cgi-bin/redirect.cgi?localbody");
  assert.equal(parseEnv(withBody.text).get("QUERY_STRING"), "via=localbody");
  assert.doesNotMatch(withBody.text, /discarded body/);
  const toStatic = await get(handler, "/cgi-bin/redirect.cgi?static");
  assert.equal(toStatic.res.status, 200);
  assert.equal(toStatic.text, "static text\n");
});

Deno.test("cgi() stops a local redirect loop with 500", async () => {
  const { handler } = cgiHarness();
  // get() also waits for every script of the loop to be reaped.
  const { res } = await get(handler, "/cgi-bin/redirect.cgi?loop");
  assert.equal(res.status, 500);
});

Deno.test("cgi() sends no body for HEAD or for 204", async () => {
  const { handler } = cgiHarness();
  const before = children(Deno.pid);
  const head = await handler(
    new Request(BASE + "/cgi-bin/badhdr.cgi?head", { method: "HEAD" }),
  );
  assert.equal(head.status, 200);
  assert.equal(await head.text(), "");
  // No length of its own: none is made up (a null body would say 0).
  assert.equal(head.headers.get("content-length"), null);
  assert.equal(head.headers.get("content-type"), "text/plain");
  const none = await handler(
    new Request(BASE + "/cgi-bin/badhdr.cgi?nocontent"),
  );
  assert.equal(none.status, 204);
  assert.equal(none.body, null);
  // The scripts whose output was discarded end on their own.
  await waitForChildrenReaped(before);
});

Deno.test("cgi() passes an nph- script's own status line and headers", async () => {
  const { handler } = cgiHarness();
  const { res, text } = await get(handler, "/cgi-bin/nph-hello.cgi");
  assert.equal(res.status, 299);
  assert.equal(res.headers.get("x-nph"), "yes");
  assert.equal(res.headers.get("connection"), null);
  assert.equal(text, "nph body\n");
});

Deno.test("cgi() answers 502 when a script dies before its header block", async () => {
  const { handler, logs } = cgiHarness();
  for (const mode of ["none", "signal", "partial"]) {
    const { res, text } = await get(handler, `/cgi-bin/crash.cgi?${mode}`);
    assert.equal(res.status, 502, mode);
    assert.doesNotMatch(text, /Content-Type: text\/plain/);
  }
  assert.ok(logs.some((l) => l.includes("crash.cgi: killed by SIGKILL")));
  assert.ok(logs.some((l) => l.includes("crash.cgi: exited with code 1")));
});

Deno.test("cgi() cuts the response off when a script fails after its headers", async () => {
  const { handler, logs } = cgiHarness();
  for (const mode of ["afterheaders", "exit3"]) {
    const res = await handler(new Request(BASE + `/cgi-bin/crash.cgi?${mode}`));
    assert.equal(res.status, 200);
    await assert.rejects(() => res.text(), mode);
  }
  await eventually(() =>
    assert.ok(logs.some((l) => l.includes("crash.cgi: exited with code 3")))
  );
});

Deno.test("cgi() answers 502 when the program cannot start", async () => {
  const { handler, logs } = cgiHarness({
    interpreters: { ".py": "/nonexistent/python" },
  });
  const { res, text } = await get(handler, "/cgi-bin/echo.py");
  assert.equal(res.status, 502);
  assert.doesNotMatch(text, /nonexistent/);
  assert.ok(logs.some((l) => l.includes("cannot start")));
});

Deno.test("cgi() sends stderr to the log, never to the client", async () => {
  const { handler, logs } = cgiHarness();
  const { text } = await get(handler, "/cgi-bin/stderr.pl");
  assert.equal(text, "stdout body ok\n");
  assert.ok(
    logs.some((l) =>
      l.includes("cgi /cgi-bin/stderr.pl: stderr: STDERR-MARKER-7f3a")
    ),
  );
  const started = Date.now();
  const flood = await get(handler, "/cgi-bin/stderr.pl?flood");
  assert.equal(flood.text, "stdout body ok\n");
  assert.ok(Date.now() - started < 5000);
  assert.ok(logs.some((l) => l.includes("more bytes not logged")));
});

Deno.test("cgi() streams output before the script ends", async () => {
  const { handler } = cgiHarness();
  const before = children(Deno.pid);
  const started = Date.now();
  const res = await handler(new Request(BASE + "/cgi-bin/stream.cgi"));
  const reader = res.body!.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  const firstAt = Date.now() - started;
  let rest = "";
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    rest += new TextDecoder().decode(r.value);
  }
  const lastAt = Date.now() - started;
  await waitForChildrenReaped(before);
  assert.equal(first, "first\n");
  assert.equal(rest, "second\n");
  assert.ok(
    lastAt - firstAt >= 800,
    `first at ${firstAt} ms, last at ${lastAt} ms`,
  );
});

Deno.test("cgi() kills the process group on timeout and answers 504", async () => {
  await using dir = await tempDir();
  const { handler } = cgiHarness(
    { timeoutMs: 500, killGraceMs: 500 },
    dir.path,
  );
  const started = Date.now();
  const { res } = await get(handler, "/cgi-bin/sleep.cgi?t1-30");
  assert.equal(res.status, 504);
  assert.ok(Date.now() - started < 3000);
  const [pid, grandchild] = await readPids(dir.path, "t1");
  await waitForExit([pid, grandchild], { timeoutMs: 3000 });
});

Deno.test("cgi() cuts the response off when a script goes silent after its headers", async () => {
  await using dir = await tempDir();
  const { handler } = cgiHarness(
    { timeoutMs: 500, killGraceMs: 500 },
    dir.path,
  );
  const before = children(Deno.pid);
  const res = await handler(
    new Request(BASE + "/cgi-bin/sleep.cgi?t2-30-after"),
  );
  assert.equal(res.status, 200);
  await assert.rejects(() => res.text());
  const [pid, grandchild] = await readPids(dir.path, "t2");
  await waitForExit([pid, grandchild], { timeoutMs: 3000 });
  await waitForChildrenReaped(before);
});

Deno.test("cgi() kills the process group when the client leaves before the headers", async () => {
  await using dir = await tempDir();
  const { handler } = cgiHarness({ killGraceMs: 500 }, dir.path);
  const before = children(Deno.pid);
  const controller = new AbortController();
  const pending = handler(
    new Request(BASE + "/cgi-bin/sleep.cgi?d1-30", {
      signal: controller.signal,
    }),
  );
  const [pid, grandchild] = await readPids(dir.path, "d1");
  controller.abort();
  await waitForExit([pid, grandchild], { timeoutMs: 3000 });
  await (await pending).body?.cancel();
  await waitForChildrenReaped(before);
  // The whole group is gone: nothing can write the file any more.
  await assert.rejects(() => Deno.stat(`${dir.path}/d1.finished`));
});

Deno.test("cgi() kills the process group when the client stops reading the body", async () => {
  await using dir = await tempDir();
  const { handler } = cgiHarness({ killGraceMs: 500 }, dir.path);
  const before = children(Deno.pid);
  const res = await handler(
    new Request(BASE + "/cgi-bin/sleep.cgi?d2-30-after"),
  );
  const reader = res.body!.getReader();
  assert.equal(
    new TextDecoder().decode((await reader.read()).value),
    "first line\n",
  );
  const [pid, grandchild] = await readPids(dir.path, "d2");
  await reader.cancel();
  await waitForExit([pid, grandchild], { timeoutMs: 3000 });
  await waitForChildrenReaped(before);
  // The whole group is gone: nothing can write the file any more.
  await assert.rejects(() => Deno.stat(`${dir.path}/d2.finished`));
});

Deno.test("cgi() answers 503 with Retry-After over the concurrency limit", async () => {
  await using dir = await tempDir();
  const { handler } = cgiHarness({
    maxConcurrent: 1,
    retryAfterMs: 7000,
    killGraceMs: 200,
  }, dir.path);
  const controller = new AbortController();
  const first = handler(
    new Request(BASE + "/cgi-bin/sleep.cgi?c1-30", {
      signal: controller.signal,
    }),
  );
  await readPids(dir.path, "c1");
  const { res } = await get(handler, "/cgi-bin/env.cgi");
  assert.equal(res.status, 503);
  assert.equal(res.headers.get("retry-after"), "7");
  controller.abort();
  await (await first).body?.cancel();
  // The slot is free again once the script is gone (503 until then).
  await eventually(async () =>
    assert.equal((await get(handler, "/cgi-bin/env.cgi")).res.status, 200)
  );
});

Deno.test("cgi() runs 64 concurrent requests and leaves no zombies", async () => {
  const { handler } = cgiHarness({ maxConcurrent: 64 });
  // Warm up once so lazily opened resources do not count as leaks.
  await get(handler, "/cgi-bin/env.cgi");
  const fdsBefore = await _openFds();
  const results = await Promise.all(
    Array.from(
      { length: 64 },
      (_, i) => get(handler, `/cgi-bin/env.cgi?n=${i}`),
    ),
  );
  results.forEach(({ res, text }, i) => {
    assert.equal(res.status, 200);
    assert.equal(parseEnv(text).get("QUERY_STRING"), `n=${i}`);
  });
  // The last pipes close just after the scripts are reaped.
  await eventually(async () => {
    assert.deepEqual(await zombieChildren(), []);
    assert.equal(await _openFds(), fdsBefore, "no leaked file descriptors");
  });
});

async function _openFds(): Promise<number> {
  let n = 0;
  for await (const _ of Deno.readDir("/proc/self/fd")) n++;
  return n;
}

Deno.test("cgi() can mount a directory at any prefix, in a custom chain", async () => {
  const handler = compose([
    resolvePath({ root: testdata("www") }),
    cgi({ dirs: { "/app/run/": testdata("cgi-bin") } }),
    serveStatic(),
  ], { log: () => {} });
  const env = parseEnv((await get(handler, "/app/run/env.cgi/z")).text);
  assert.equal(env.get("SCRIPT_NAME"), "/app/run/env.cgi");
  assert.equal(env.get("PATH_INFO"), "/z");
  assert.equal(env.get("DOCUMENT_ROOT"), await Deno.realPath(testdata("www")));
  const missing = await handler(new Request(BASE + "/cgi-bin/env.cgi"));
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
});

Deno.test("cgi() frees the slot when a background child keeps stderr open after the script exited", async () => {
  await using dir = await tempDir();
  const { handler, logs } = cgiHarness(
    { maxConcurrent: 1, killGraceMs: 200 },
    dir.path,
  );
  const first = await get(handler, "/cgi-bin/bgerr.cgi");
  assert.equal(first.text, "ok\n");
  const [, background] = await readPids(dir.path, "bg");
  // Within the short grace after the exit, then the group is killed.
  await waitForExit([background], {
    timeoutMs: 4000,
    message: "background job killed",
  });
  await waitFor(
    async () => (await get(handler, "/cgi-bin/env.cgi")).res.status === 200,
    { timeoutMs: 2000, message: "slot freed" },
  );
  assert.ok(
    logs.some((l) => l.includes("pipes stayed open")),
    logs.join("\n"),
  );
});

Deno.test("cgi() buffers a slow chunked body before taking a slot, and answers 408 past bodyTimeoutMs", async () => {
  const { handler } = cgiHarness({ maxConcurrent: 1, bodyTimeoutMs: 500 });
  // A chunked upload that stalls after one chunk.
  let stall!: ReadableStreamDefaultController<Uint8Array>;
  // Asked for more once the gateway took the first chunk: it is buffering.
  const buffering = Promise.withResolvers<void>();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      stall = controller;
      controller.enqueue(new TextEncoder().encode("part"));
    },
    pull() {
      buffering.resolve();
    },
  });
  const started = Date.now();
  const slow = handler(
    new Request(BASE + "/cgi-bin/env.cgi", { method: "POST", body }),
  );
  await buffering.promise;
  // The slow upload holds no slot: another script runs meanwhile.
  const other = await get(handler, "/cgi-bin/env.cgi");
  assert.equal(other.res.status, 200);
  const res = await slow;
  assert.equal(res.status, 408);
  await res.body?.cancel();
  assert.ok(Date.now() - started < 2000);
  try {
    stall.close();
  } catch {
    // cancelled by the gateway
  }
  assert.equal((await get(handler, "/cgi-bin/env.cgi")).res.status, 200);
});

Deno.test("cgi() notices a CGI directory created after the first request", async () => {
  await using dir = await tempDir();
  const scripts = `${dir.path}/scripts`;
  const handler = compose([
    resolvePath({ root: testdata("www") }),
    cgi({ dirs: { "/run/": scripts } }),
    serveStatic(),
  ], { log: () => {} });
  const before = await handler(new Request(BASE + "/run/hi.cgi"));
  assert.equal(before.status, 404);
  await before.body?.cancel();
  await Deno.mkdir(scripts);
  await Deno.writeTextFile(
    `${scripts}/hi.cgi`,
    "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhi'\n",
    { mode: 0o755 },
  );
  const after = await get(handler, "/run/hi.cgi");
  assert.equal(after.res.status, 200);
  assert.equal(after.text, "hi");
});

Deno.test("cgi() leaves a static file that vanished after path resolution to static serving", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/gone.txt`, "x");
  const handler = compose([
    resolvePath({ root: dir.path }),
    async (_req, ctx, next) => {
      if (ctx.file) await Deno.remove(ctx.file.path);
      return next();
    },
    cgi({ dirs: { "/cgi-bin/": testdata("cgi-bin") } }),
    // Stands in for serveStatic(), which then answers 404 itself.
    () => new Response("handed on"),
  ], { log: () => {} });
  const res = await handler(new Request(BASE + "/gone.txt"));
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "handed on");
});

Deno.test("cgi() keeps a CGI directory's files from static fallbacks too (clean URLs, index files)", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/scripts`);
  await Deno.writeTextFile(`${dir.path}/scripts/foo.html`, "SCRIPT-SOURCE");
  await Deno.writeTextFile(`${dir.path}/scripts/index.html`, "SCRIPT-INDEX");
  await Deno.writeTextFile(`${dir.path}/about.html`, "about");
  await using handler = createHandler({
    root: dir.path,
    cgi: { dirs: { "/x/": `${dir.path}/scripts` } },
    serveStatic: { cleanUrls: true },
  });
  for (const path of ["/scripts/foo.html", "/scripts/foo", "/scripts/"]) {
    const res = await handler(new Request(`http://x${path}`));
    const body = await res.text();
    assert.equal(res.status, 403, path);
    assert.ok(!body.includes("SCRIPT-"), `${path}: the source is not sent`);
  }
  const about = await handler(new Request("http://x/about"));
  assert.equal(await about.text(), "about", "other clean URLs still work");
});
