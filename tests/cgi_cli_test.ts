// The CGI flags of the command-line interface, end to end.
import assert from "node:assert/strict";
import { parseEnv } from "./_helpers/cgi.ts";
import { testdata } from "./_helpers/fs.ts";
import { waitFor } from "./_helpers/poll.ts";
import { children, commandLine, MOD, startCli } from "./_helpers/process.ts";

Deno.test("serve --cgi runs ROOT/cgi-bin scripts, and each CGI flag takes effect", async () => {
  const server = await startCli(
    [
      testdata(),
      "--port",
      "0",
      "--quiet",
      "--cgi",
      "--cgi-timeout",
      "1",
      "--cgi-max-concurrent",
      "1",
      "--cgi-interpreter",
      ".sh=sh -e",
      "--cgi-pass-env",
      "X_SERVE_CLI_PASSED",
    ],
    ["run", "-A", "--quiet", MOD],
    {
      env: { X_SERVE_CLI_PASSED: "yes", X_SERVE_CLI_SECRET: "hunter2" },
    },
  );
  const base = server.base;
  try {
    const res = await fetch(`${base}/cgi-bin/env.cgi/x?y=1`);
    const env = parseEnv(await res.text());
    assert.equal(env.get("SCRIPT_NAME"), "/cgi-bin/env.cgi");
    assert.equal(env.get("PATH_INFO"), "/x");
    // --cgi-pass-env: only the named variable of the server's environment.
    assert.equal(env.get("X_SERVE_CLI_PASSED"), "yes");
    assert.equal(env.get("X_SERVE_CLI_SECRET"), undefined);
    // --cgi-interpreter: hello.sh is not executable and .sh has no default.
    const hello = await fetch(`${base}/cgi-bin/hello.sh`);
    assert.equal(hello.status, 200);
    assert.equal(await hello.text(), "hello from sh\n");
    // --cgi-max-concurrent 1: a second script while one runs → 503.
    const started = Date.now();
    const slow = fetch(`${base}/cgi-bin/sleep.cgi?cli-5`);
    // The script runs (a child of the server): it holds the only slot.
    await waitFor(
      () =>
        children(server.pid).some((pid) =>
          commandLine(pid).some((arg) => arg.endsWith("/sleep.cgi"))
        ),
      { message: "sleep.cgi to start" },
    );
    const busy = await fetch(`${base}/cgi-bin/env.cgi`);
    assert.equal(busy.status, 503);
    assert.ok(busy.headers.get("retry-after"));
    await busy.body?.cancel();
    // --cgi-timeout 1: the 5 s script is killed after about 1 s → 504.
    const timedOut = await slow;
    assert.equal(timedOut.status, 504);
    await timedOut.body?.cancel();
    const took = Date.now() - started;
    assert.ok(took >= 900 && took < 3000, `took ${took} ms`);
  } finally {
    await server.stop();
  }
});

Deno.test("serve --cgi without --allow-run exits 1 naming --allow-run", async () => {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-env",
      "--allow-sys",
      "--quiet",
      MOD,
      testdata(),
      "--port",
      "0",
      "--cgi",
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(code, 1);
  assert.match(new TextDecoder().decode(stderr), /--allow-run/);
});

Deno.test("serve --help lists the CGI flags and rejects invalid ones", async () => {
  const help = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MOD, "--help"],
  }).output();
  const text = new TextDecoder().decode(help.stdout);
  for (
    const flag of [
      "--cgi ",
      "--cgi-dir",
      "--cgi-timeout",
      "--cgi-interpreter",
      "--cgi-max-concurrent",
      "--cgi-pass-env",
    ]
  ) {
    assert.ok(text.includes(flag), flag);
  }
  const bad = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MOD, "--cgi-dir", "no-equals"],
  }).output();
  assert.equal(bad.code, 2);
  assert.match(new TextDecoder().decode(bad.stderr), /Invalid --cgi-dir/);
});
