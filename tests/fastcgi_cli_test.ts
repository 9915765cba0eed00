import assert from "node:assert/strict";
import { PHP_ROOT, startPhpFpm } from "./_helpers/php.ts";
import { MOD, pidExists, runCli, startCli } from "./_helpers/process.ts";

Deno.test("serve --fastcgi-spawn php-cgi serves PHP and stops its workers on SIGTERM", async () => {
  const server = await startCli([
    PHP_ROOT,
    "--port",
    "0",
    "--quiet",
    "--fastcgi-spawn",
    "php-cgi",
    "--fastcgi-workers",
    "2",
  ], ["run", "-A", MOD]);
  let stopped = false;
  try {
    const url = server.base;
    const pids = new Set<number>();
    for (let i = 0; i < 4; i++) {
      const res: Response = await fetch(`${url}/info.php?i=${i}`);
      assert.equal(res.status, 200);
      pids.add((await res.json()).pid);
    }
    assert.equal(pids.size, 2);
    const missing = await fetch(`${url}/nope.php`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    stopped = true;
    assert.equal((await server.stop("SIGTERM")).code, 0);
    assert.ok(![...pids].some(pidExists), "php-cgi workers are stopped");
  } finally {
    // SIGTERM (not KILL) even on failure, so the server stops its workers.
    if (!stopped) await server.stop("SIGTERM");
  }
});

Deno.test("serve rejects invalid --fastcgi flags with a usage error", async () => {
  for (
    const args of [
      ["--fastcgi", "not-an-address"],
      ["--fastcgi-workers", "2"],
      ["--fastcgi", "127.0.0.1:9000", "--fastcgi-spawn", "php-cgi"],
      ["--fastcgi-spawn", "php-cgi", "--fastcgi-workers", "0"],
      ["--fastcgi", "127.0.0.1:9000", "--fastcgi-keep-alive", "-1"],
      ["--fastcgi", "127.0.0.1:9000", "--fastcgi-max-connections", "many"],
      ["--fastcgi-keep-alive", "2"],
      ["--fastcgi-spawn", "php-cgi", "--fastcgi-max-connections", "2"],
    ]
  ) {
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MOD, PHP_ROOT, ...args],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(code, 2, args.join(" "));
    assert.match(new TextDecoder().decode(stderr), /fastcgi/);
  }
});

Deno.test("serve --fastcgi-pass-env passes only the named variables to spawned workers", async () => {
  Deno.env.set("X_SERVE_PASSED", "passed-value");
  Deno.env.set("X_SERVE_SECRET", "secret-value");
  try {
    const server = await startCli([
      PHP_ROOT,
      "--port",
      "0",
      "--quiet",
      "--fastcgi-spawn",
      "php-cgi",
      "--fastcgi-workers",
      "1",
      "--fastcgi-pass-env",
      "X_SERVE_PASSED",
    ]);
    try {
      const text = await (await fetch(`${server.base}/env.php`)).text();
      assert.ok(
        text.includes("passed-value"),
        "the named variable reaches PHP",
      );
      assert.ok(
        !text.includes("secret-value"),
        "nothing else of the server's environment does",
      );
    } finally {
      await server.stop();
    }
  } finally {
    Deno.env.delete("X_SERVE_PASSED");
    Deno.env.delete("X_SERVE_SECRET");
  }
  const bad = await runCli([PHP_ROOT, "--fastcgi-pass-env", "X"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^error: --fastcgi-pass-env needs --fastcgi/);
});

Deno.test("serve --fastcgi-max-connections 1 --fastcgi-keep-alive 1 runs every request on one kept php-fpm connection", async () => {
  await using fpm = await startPhpFpm({ workers: 4 });
  const server = await startCli([
    PHP_ROOT,
    "--port",
    "0",
    "--quiet",
    "--fastcgi",
    fpm.address,
    "--fastcgi-keep-alive",
    "1",
    "--fastcgi-max-connections",
    "1",
    // One isolate: a connection cannot move between isolates, so with
    // several the one place passes from one isolate's connection to
    // another's (the cap across workers: tests/workers_test.ts).
    "--workers",
    "1",
  ], ["run", "-A", MOD]);
  try {
    // Concurrent requests queue for the one connection; a kept connection
    // stays with the php-fpm worker that accepted it.
    const pids = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const res = await fetch(`${server.base}/info.php?i=${i}`);
        assert.equal(res.status, 200);
        return (await res.json()).pid as number;
      }),
    );
    assert.equal(new Set(pids).size, 1, `one worker served all: ${pids}`);
  } finally {
    await server.stop("SIGTERM");
  }
});

Deno.test("serve --fastcgi-index and --fastcgi-param set the index script and extra params (like fastcgi_index / fastcgi_param)", async () => {
  await using fpm = await startPhpFpm({ workers: 2 });
  const server = await startCli([
    PHP_ROOT,
    "--port",
    "0",
    "--quiet",
    "--fastcgi",
    fpm.address,
    "--fastcgi-index",
    "info.php",
    "--fastcgi-param",
    "SERVER_SOFTWARE=nginx/1.22.1",
    "--fastcgi-param",
    "EXTRA_PARAM=a=b",
  ], ["run", "-A", MOD]);
  try {
    const res = await fetch(`${server.base}/`);
    assert.equal(res.status, 200);
    const info = await res.json();
    assert.equal(info.server.SCRIPT_NAME, "/info.php", "the index script ran");
    assert.equal(info.server.SERVER_SOFTWARE, "nginx/1.22.1", "overrides ours");
    assert.equal(info.server.EXTRA_PARAM, "a=b");
  } finally {
    await server.stop("SIGTERM");
  }
  for (
    const args of [
      ["--fastcgi-param", "NO_EQUALS"],
      ["--fastcgi-param", "1BAD=x"],
      ["--fastcgi-index", "../x.php"],
    ]
  ) {
    const res = await runCli([PHP_ROOT, "--fastcgi", "127.0.0.1:9", ...args]);
    assert.equal(res.code, 2, args.join(" "));
    assert.match(
      res.stderr,
      new RegExp(`^error: Invalid --${args[0]!.slice(2)} `),
    );
  }
});
