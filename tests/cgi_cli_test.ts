// The CGI flags of the command-line interface, end to end.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { testdata } from "./_helpers.ts";
import { parseEnv } from "./_cgi_helpers.ts";

const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));

Deno.test("serve --cgi runs ROOT/cgi-bin scripts with the CLI's CGI flags", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      MOD,
      testdata(),
      "--port",
      "0",
      "--quiet",
      "--cgi",
      "--cgi-timeout",
      "5",
      "--cgi-interpreter",
      ".py=python3 -u",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!/Listening on (\S+)/.test(out)) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  const base = /Listening on (\S+)/.exec(out)?.[1]?.replace(/\/$/, "");
  try {
    assert.ok(base, `server did not start: ${out}`);
    const res = await fetch(`${base}/cgi-bin/env.cgi/x?y=1`);
    const env = parseEnv(await res.text());
    assert.equal(env.get("SCRIPT_NAME"), "/cgi-bin/env.cgi");
    assert.equal(env.get("PATH_INFO"), "/x");
    const echo = await fetch(`${base}/cgi-bin/echo.py`, {
      method: "POST",
      body: "hi",
    });
    assert.equal(await echo.text(), "hi");
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await reader.cancel();
    await child.stderr.cancel();
  }
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
