import assert from "node:assert/strict";
import { tempDir, testdata } from "./_helpers/fs.ts";
import { freePort, makeCert } from "./_helpers/net.ts";
import { waitFor } from "./_helpers/poll.ts";
import {
  cleanEnv,
  MOD,
  REPO,
  runCli,
  startCli,
  startProcess,
} from "./_helpers/process.ts";

const www = testdata("www");

Deno.test("cli --config reads flags and rules from JSON, and flags win", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/site`);
  await Deno.writeTextFile(`${dir.path}/site/index.html`, "<h1>home</h1>");
  await Deno.writeTextFile(`${dir.path}/site/app.js`, "1");
  await Deno.writeTextFile(
    `${dir.path}/serve.json`,
    JSON.stringify({
      root: "site",
      port: 0,
      cors: true,
      "dir-listing": false,
      header: ["X-From: file", "X-Both: file"],
      quiet: true,
      rules: [{
        path: "*.js",
        "cache-control": "max-age=60",
        headers: { "X-Rule": "yes" },
      }],
    }),
  );
  const server = await startCli([
    "--config",
    `${dir.path}/serve.json`,
    "--header",
    "X-Both: flag",
  ]);
  const res = await fetch(`${server.base}/app.js`);
  assert.equal(await res.text(), "1", "root is relative to the config file");
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
  assert.equal(res.headers.get("x-from"), "file");
  assert.equal(res.headers.get("x-both"), "flag", "the command line wins");
  assert.equal(res.headers.get("cache-control"), "max-age=60");
  assert.equal(res.headers.get("x-rule"), "yes");
  await server.stop();
});

Deno.test("cli --config rejects bad files with a message naming the key", async () => {
  await using dir = await tempDir();
  const cases: Array<[unknown, RegExp]> = [
    [{ prot: 8080 }, /serve\.json: unknown key "prot"/],
    [{ cors: "yes" }, /serve\.json: "cors" must be true or false/],
    [
      { port: "abc" },
      /serve\.json: "port": invalid value "abc": expected 0-65535$/,
    ],
    [
      { "cgi-timeout": -1, cgi: true },
      /serve\.json: "cgi-timeout": invalid value "-1": expected a number/,
    ],
    [
      { rules: [{ path: "*.js", cache: "x" }] },
      /unknown key "rules\[0\]\.cache"/,
    ],
    [{ rules: [{ headers: {} }] }, /"rules\[0\]\.headers" needs "path"/],
    [[1, 2], /expected a JSON object/],
  ];
  for (const [json, message] of cases) {
    await Deno.writeTextFile(`${dir.path}/serve.json`, JSON.stringify(json));
    const res = await runCli(["--config", `${dir.path}/serve.json`]);
    assert.equal(res.code, 2, JSON.stringify(json));
    assert.match(res.stderr.split("\n")[0]!, message);
  }
  await Deno.writeTextFile(`${dir.path}/broken.json`, "{ nope");
  const broken = await runCli(["--config", `${dir.path}/broken.json`]);
  assert.equal(broken.code, 2);
  assert.match(broken.stderr, /broken\.json: invalid JSON/);
  const missing = await runCli(["--config", `${dir.path}/none.json`]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /config file ".*none\.json" does not exist/);
});

Deno.test("cli --log-format writes common, combined and JSON lines", async () => {
  const expectations: Array<[string, RegExp]> = [
    [
      "common",
      /^127\.0\.0\.1 - - \[\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET \/hello\.txt\?a=1 HTTP\/1\.1" 200 14$/,
    ],
    [
      "combined",
      /^127\.0\.0\.1 - - \[.+\] "GET \/hello\.txt\?a=1 HTTP\/1\.1" 200 14 "http:\/\/ref\/" "test-agent\/1\.0"$/,
    ],
  ];
  for (const [format, pattern] of expectations) {
    const server = await startCli([www, "--port", "0", "--log-format", format]);
    await (await fetch(`${server.base}/hello.txt?a=1`, {
      headers: { referer: "http://ref/", "user-agent": "test-agent/1.0" },
    })).text();
    await server.stop();
    assert.ok(
      server.lines.some((l) => pattern.test(l)),
      `${format}: ${server.lines.join("\n")}`,
    );
  }
  const server = await startCli([www, "--port", "0", "--log-format", "json"]);
  await (await fetch(`${server.base}/nope`)).body?.cancel();
  await server.stop();
  const entry = JSON.parse(server.lines.find((l) => l.startsWith("{"))!);
  assert.equal(entry.method, "GET");
  assert.equal(entry.path, "/nope");
  assert.equal(entry.status, 404);
  assert.equal(typeof entry.duration_ms, "number");
  const bad = await runCli([www, "--log-format", "xml"]);
  assert.equal(bad.code, 2);
});

Deno.test("cli --log-file appends the access log to a file and keeps stdout for the banner", async () => {
  await using dir = await tempDir();
  const log = `${dir.path}/access.log`;
  const server = await startCli([www, "--port", "0", "--log-file", log]);
  await (await fetch(`${server.base}/hello.txt`)).text();
  await server.stop();
  const text = await Deno.readTextFile(log);
  assert.match(text, / GET \/hello\.txt 200 14 [\d.]+ms\n$/);
  assert.ok(!server.lines.some((l) => l.includes("GET /hello.txt")));
});

Deno.test("cli prints a banner with URLs, root, features and the permissions needed (granted -A beyond them)", async () => {
  const server = await startCli([
    www,
    "--port",
    "0",
    "--cors",
    "--compress",
    "--host",
    "0.0.0.0",
  ]);
  // The banner follows the Listening line (its last line is Permissions):
  // stop once it is all out.
  await waitFor(() => server.lines.some((l) => l.includes("Permissions:")), {
    message: "the whole banner",
  });
  await server.stop();
  const text = server.lines.join("\n");
  assert.match(
    server.lines[0]!,
    /^Listening on http:\/\/0\.0\.0\.0:\d+\/$/,
    "the first line stays for tools",
  );
  assert.match(text, /Local:\s+http:\/\/localhost:\d+\//);
  assert.match(
    text,
    new RegExp(`Root:\\s+${(await Deno.realPath(www)).replaceAll("/", "\\/")}`),
  );
  assert.match(text, /Features:.*directory listing.*CORS.*compression/);
  // What this configuration needs, and that -A grants more. Over one core
  // the default workers read this checkout's modules (which holds ROOT).
  const read = navigator.hardwareConcurrency > 1
    ? `/proc/net/tcp,/proc/net/tcp6,${REPO.replace(/\/$/, "")}`
    : `${www},/proc/net/tcp,/proc/net/tcp6`;
  assert.ok(
    server.lines.includes(
      `  Permissions: needs --allow-read=${read} --allow-net=0.0.0.0 ` +
        "--allow-sys=networkInterfaces; granted -A",
    ),
    text,
  );
  assert.doesNotMatch(text, /--allow-ffi/, "only what is needed is listed");
});

Deno.test("cli --spa, --clean-urls, --cache-control and --compress work end to end", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/index.html`, "<h1>app</h1>");
  await Deno.writeTextFile(`${dir.path}/about.html`, "<h1>about</h1>");
  await Deno.writeTextFile(`${dir.path}/big.txt`, "text ".repeat(2000));
  const server = await startCli([
    dir.path,
    "--port",
    "0",
    "--quiet",
    "--spa",
    "--clean-urls",
    "--compress",
    "--cache-control",
    "*.html=no-cache",
  ]);
  const about = await fetch(`${server.base}/about`);
  assert.equal(await about.text(), "<h1>about</h1>");
  assert.equal(about.headers.get("cache-control"), "no-cache");
  const route = await fetch(`${server.base}/some/route`);
  assert.equal(await route.text(), "<h1>app</h1>");
  const big = await fetch(`${server.base}/big.txt`, {
    headers: { "accept-encoding": "gzip" },
  });
  assert.equal(big.headers.get("content-encoding"), "gzip");
  assert.equal(await big.text(), "text ".repeat(2000), "fetch decodes gzip");
  await server.stop();
  const bad = await runCli([dir.path, "--cache-control", "nonsense"]);
  assert.equal(bad.code, 2);
  assert.match(
    bad.stderr,
    /Invalid --cache-control "nonsense": expected GLOB=VALUE/,
  );
});

Deno.test("cli serves HTTP/2 over TLS to curl --http2", async () => {
  await using dir = await tempDir();
  const { cert, key } = await makeCert(dir.path);
  const server = await startCli([
    www,
    "--port",
    "0",
    "--quiet",
    "--cert",
    cert,
    "--key",
    key,
  ]);
  const out = await new Deno.Command("curl", {
    args: [
      "-sS",
      "--http2",
      "--cacert",
      cert,
      "-w",
      "\n%{http_version}",
      `${server.base}/hello.txt`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  await server.stop();
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  assert.equal(text, "Hello, world!\n\n2");
});

Deno.test("cli config with TLS and two CGI mappings: scripts see HTTPS=on", async () => {
  await using dir = await tempDir();
  const { cert, key } = await makeCert(dir.path);
  await Deno.mkdir(`${dir.path}/www`);
  await Deno.writeTextFile(
    `${dir.path}/serve.json`,
    JSON.stringify({
      root: "www",
      port: 0,
      quiet: true,
      cert,
      key,
      "cgi-dir": [
        `/one/=${testdata("cgi-bin")}`,
        `/two/=${testdata("cgi-bin", "subdir")}`,
      ],
    }),
  );
  const server = await startCli(["--config", `${dir.path}/serve.json`]);
  using client = Deno.createHttpClient({
    caCerts: [await Deno.readTextFile(cert)],
  });
  const env = await (await fetch(`${server.base}/one/env.cgi`, { client }))
    .text();
  assert.match(env, /^HTTPS=on$/m);
  assert.match(env, /^REQUEST_SCHEME=https$/m);
  assert.match(env, /^SCRIPT_NAME=\/one\/env\.cgi$/m);
  const second = await fetch(`${server.base}/two/nested.cgi`, { client });
  assert.equal(second.status, 200);
  assert.match(await second.text(), /^SCRIPT_NAME=\/two\/nested\.cgi$/m);
  await server.stop();
});

Deno.test("cli keeps serving when the log file fails, and says so once", async () => {
  const server = await startCli([
    www,
    "--port",
    "0",
    "--log-file",
    "/dev/full",
  ]);
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`${server.base}/hello.txt`);
    assert.equal(await res.text(), "Hello, world!\n");
  }
  const status = await server.stop();
  assert.equal(status.code, 0);
  const stderr = await server.stderr;
  assert.equal(
    stderr.match(/cannot write to --log-file "\/dev\/full"/g)?.length,
    1,
  );
  assert.ok(
    server.lines.some((l) => l.includes("GET /hello.txt 200")),
    "the log goes on on stdout",
  );
});

Deno.test("cli accepts --allow-net scoped to the exact host and port", async () => {
  const port = freePort();
  const server = await startCli([www, "--port", String(port), "--quiet"], [
    "run",
    "--no-prompt",
    `--allow-net=127.0.0.1:${port}`,
    `--allow-read`,
    MOD,
  ]);
  assert.equal(
    await (await fetch(`${server.base}/hello.txt`)).text(),
    "Hello, world!\n",
  );
  await server.stop();
  const noWrite = await runCli([www, "--log-file", "/tmp/x-serve-denied.log"], [
    "--allow-net",
    "--allow-read",
  ]);
  assert.equal(noWrite.code, 1);
  assert.match(
    noWrite.stderr,
    /missing permission: run with --allow-write=\/tmp\/x-serve-denied\.log/,
  );
});

Deno.test("cli rejects a bad --host or --cache-control value with exit 2", async () => {
  for (
    const args of [["--host", "not a host!"], [
      "--cache-control",
      "*.html=no-cache\nX-Evil: 1",
    ]]
  ) {
    const res = await runCli([www, ...args]);
    assert.equal(res.code, 2, args.join(" "));
    assert.match(res.stderr, /^error: Invalid --(host|cache-control)/);
  }
});

/** Runs the CLI (on a pseudo-terminal via `script`, or piped) without NO_COLOR; returns stdout after one request. */
async function _logOutput(tty: boolean): Promise<string> {
  const args = ["run", "-A", MOD, www, "--port", "0"];
  const server = await startProcess(
    tty ? ["-qfec", [Deno.execPath(), ...args].join(" "), "/dev/null"] : args,
    {
      program: tty ? "script" : Deno.execPath(),
      clearEnv: true,
      env: cleanEnv(),
      stdin: "piped",
    },
  );
  try {
    await (await fetch(`${server.base}/hello.txt`)).text();
    await waitFor(
      () => server.lines.some((l) => /GET \/hello\.txt.*ms/.test(l)),
      { message: "the access-log line" },
    );
  } finally {
    await server.stop();
  }
  return server.lines.join("\n");
}

Deno.test("cli colours the access-log status on a terminal only", async () => {
  const tty = await _logOutput(true);
  // deno-lint-ignore no-control-regex
  assert.match(tty, /GET \/hello\.txt \x1b\[32m200\x1b\[0m 14/);
  const piped = await _logOutput(false);
  assert.match(piped, /GET \/hello\.txt 200 14/);
  assert.ok(
    !piped.includes("\x1b["),
    "no escape codes when stdout is not a terminal",
  );
});

Deno.test("deno task start resolves a relative ROOT from the caller's folder", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/site`);
  await Deno.writeTextFile(`${dir.path}/site/where.txt`, "caller's folder");
  const server = await startProcess([
    "task",
    "--quiet",
    "--config",
    `${REPO}deno.json`,
    "start",
    "./site",
    "--port",
    "0",
    "--quiet",
  ], {
    cwd: dir.path,
    // `deno task` keeps an INIT_CWD it inherits (this suite may itself run
    // under `deno task test`): start from a clean environment.
    clearEnv: true,
    env: cleanEnv(),
  });
  try {
    assert.equal(
      await (await fetch(`${server.base}/where.txt`)).text(),
      "caller's folder",
    );
  } finally {
    await server.stop();
  }
});

Deno.test("cli --quiet still writes the access log to --log-file", async () => {
  await using dir = await tempDir();
  const server = await startCli([
    www,
    "--port",
    "0",
    "--quiet",
    "--log-file",
    `${dir.path}/a.log`,
  ]);
  await (await fetch(`${server.base}/hello.txt`)).text();
  await server.stop();
  assert.deepEqual(
    server.lines.filter((l) => l.trim() !== ""),
    server.lines.slice(0, 1),
    "only the Listening line",
  );
  assert.match(
    await Deno.readTextFile(`${dir.path}/a.log`),
    /GET \/hello\.txt 200/,
  );
});

Deno.test("cli names an unknown flag plainly", async () => {
  const res = await runCli(["--bogus"]);
  assert.equal(res.code, 2);
  assert.equal(res.stderr.split("\n")[0], 'error: Unknown flag "--bogus"');
});
