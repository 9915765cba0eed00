import assert from "node:assert/strict";
import { cgiOptionsFromFlags } from "../cli/cgi_flags.ts";
import { fastCgiOptionsFromFlags } from "../cli/fastcgi_flags.ts";
import {
  comparePermissions,
  neededPermissions,
  type PermissionConfig,
  type PermissionFacts,
  permissionFlags,
  shellLine,
} from "../cli/permissions.ts";
import { tempDir, testdata } from "./_helpers/fs.ts";
import { freePort, makeCert } from "./_helpers/net.ts";
import { PHP_ROOT, startPhpFpm } from "./_helpers/php.ts";
import { waitFor } from "./_helpers/poll.ts";
import {
  MOD,
  readPids,
  REPO,
  runCli,
  startCli,
  waitForExit,
} from "./_helpers/process.ts";

// --- the pure computation -------------------------------------------------

const FACTS: PermissionFacts = {
  cwd: "/srv",
  tmpDir: "/tmp",
  setsid: "/usr/bin/setsid",
  programs: {
    "php-cgi": "/usr/bin/php-cgi",
    python3: "/usr/bin/python3",
    perl: "/usr/bin/perl",
  },
  realPaths: {},
};

function flags(
  config: Partial<PermissionConfig>,
  facts: Partial<PermissionFacts> = {},
): string[] {
  return permissionFlags(neededPermissions(
    { root: "www", host: "127.0.0.1", port: 8000, handler: {}, ...config },
    { ...FACTS, ...facts },
  ));
}

Deno.test("permissions: a static site reads only its root and listens on its address", () => {
  assert.deepEqual(flags({}), [
    "--allow-read=/srv/www",
    "--allow-net=127.0.0.1:8000",
  ]);
  // Port 0 picks a port at start: only the host can be named.
  assert.deepEqual(flags({ port: 0 }), [
    "--allow-read=/srv/www",
    "--allow-net=127.0.0.1",
  ]);
  // IPv6 in brackets (Deno refuses a bare ::1 in a list).
  assert.deepEqual(flags({ host: "::1", port: 8080 }), [
    "--allow-read=/srv/www",
    "--allow-net=[::1]:8080",
  ]);
});

Deno.test("permissions: several isolates read the package's modules (a local copy; none for a remote one)", () => {
  const config = { root: "/srv", host: "127.0.0.1", port: 80, handler: {} };
  const facts: PermissionFacts = {
    cwd: "/",
    tmpDir: "/tmp",
    setsid: undefined,
    programs: {},
    realPaths: {},
    moduleFolder: "/opt/serve",
  };
  const read = (c: PermissionConfig, f = facts) => neededPermissions(c, f).read;
  assert.deepEqual(read({ ...config, isolates: 2 }), ["/srv", "/opt/serve"]);
  assert.deepEqual(read({ ...config, isolates: 1 }), ["/srv"]);
  assert.deepEqual(read(config), ["/srv"]);
  assert.deepEqual(
    read({ ...config, isolates: 4 }, { ...facts, moduleFolder: undefined }),
    ["/srv"],
  );
});

Deno.test("permissions: a symlinked root is read by its real path too", () => {
  assert.deepEqual(
    flags({ root: "/srv/current" }, {
      realPaths: { "/srv/current": "/srv/releases/42" },
    }),
    [
      "--allow-read=/srv/current,/srv/releases/42",
      "--allow-net=127.0.0.1:8000",
    ],
  );
});

Deno.test("permissions: the config file, certificate and key are read, the log file written", () => {
  assert.deepEqual(
    flags({
      configFile: "serve.json",
      cert: "/etc/tls/cert.pem",
      key: "/etc/tls/key.pem",
      logFile: "/var/log/serve/access.log",
    }),
    [
      "--allow-read=/srv/www,/srv/serve.json,/etc/tls/cert.pem,/etc/tls/key.pem",
      "--allow-write=/var/log/serve/access.log",
      // The TLS front's inner server on 127.0.0.1 covers the listen address.
      "--allow-net=127.0.0.1",
    ],
  );
  assert.deepEqual(
    flags({ host: "0.0.0.0", port: 443, cert: "c.pem", key: "k.pem" })
      .find((f) => f.startsWith("--allow-net")),
    "--allow-net=0.0.0.0:443,127.0.0.1",
  );
});

Deno.test("permissions: 0.0.0.0 and :: need networkInterfaces for the banner, unless --quiet", () => {
  assert.deepEqual(flags({ host: "0.0.0.0" }), [
    "--allow-read=/srv/www",
    "--allow-net=0.0.0.0:8000",
    "--allow-sys=networkInterfaces",
  ]);
  assert.ok(flags({ host: "::" }).includes("--allow-sys=networkInterfaces"));
  assert.deepEqual(flags({ host: "0.0.0.0", quiet: true }), [
    "--allow-read=/srv/www",
    "--allow-net=0.0.0.0:8000",
  ]);
});

Deno.test("permissions: CGI reads its folders, setsid and the interpreters setsid resolves, and runs anything", () => {
  const cgi = cgiOptionsFromFlags({
    cgi: true,
    "cgi-dir": ["/tools/=/opt/tools"],
    "cgi-pass-env": ["APP_MODE"],
    "cgi-interpreter": [".pl=", ".rb=/opt/ruby/bin/ruby -w"],
  }, "www");
  assert.deepEqual(flags({ handler: { cgi } }), [
    // ROOT/cgi-bin is inside ROOT; /tmp for request bodies over 1 MiB.
    "--allow-read=/srv/www,/opt/tools,/tmp,/usr/bin/setsid,/usr/bin/php-cgi,/usr/bin/python3,/opt/ruby/bin/ruby",
    "--allow-write=/tmp",
    "--allow-net=127.0.0.1:8000",
    "--allow-env=APP_MODE",
    // Any program in a folder, and Deno.kill for the script's group.
    "--allow-run",
  ]);
});

Deno.test("permissions: CGI without setsid reads no program (scripts and interpreters are started directly)", () => {
  const cgi = cgiOptionsFromFlags({ cgi: true }, "www");
  assert.deepEqual(flags({ handler: { cgi } }, { setsid: undefined }), [
    "--allow-read=/srv/www,/tmp",
    "--allow-write=/tmp",
    "--allow-net=127.0.0.1:8000",
    "--allow-run",
  ]);
});

Deno.test("permissions: FastCGI over TCP reaches only its backends", () => {
  const fastcgi = fastCgiOptionsFromFlags({
    fastcgi: ["127.0.0.1:9000", "10.0.0.5:9000", "[::1]:9001"],
  });
  assert.deepEqual(flags({ handler: { fastcgi } }), [
    "--allow-read=/srv/www,/tmp",
    "--allow-write=/tmp",
    "--allow-net=127.0.0.1:8000,127.0.0.1:9000,10.0.0.5:9000,[::1]:9001",
  ]);
});

Deno.test("permissions: a unix FastCGI socket needs read, write and net on its path", () => {
  const fastcgi = fastCgiOptionsFromFlags({
    fastcgi: ["unix:/run/php/php8.2-fpm.sock"],
  });
  assert.deepEqual(flags({ handler: { fastcgi } }), [
    "--allow-read=/srv/www,/tmp,/run/php/php8.2-fpm.sock",
    "--allow-write=/tmp,/run/php/php8.2-fpm.sock",
    "--allow-net=127.0.0.1:8000,unix:/run/php/php8.2-fpm.sock",
  ]);
});

Deno.test("permissions: spawned FastCGI workers get PATH, need net for their random sockets and run for Deno.kill", () => {
  const fastcgi = fastCgiOptionsFromFlags({
    "fastcgi-spawn": "php-cgi -d memory_limit=256M",
    "fastcgi-pass-env": ["APP_ENV"],
  });
  assert.deepEqual(flags({ handler: { fastcgi } }), [
    "--allow-read=/srv/www,/tmp",
    "--allow-write=/tmp",
    "--allow-net",
    "--allow-env=PATH,APP_ENV",
    "--allow-run",
  ]);
});

Deno.test("permissions: a path with a comma cannot be scoped (Deno has no escape for it)", () => {
  assert.deepEqual(flags({ root: "/srv/a,b" }), [
    "--allow-read",
    "--allow-net=127.0.0.1:8000",
  ]);
});

Deno.test("permissions: the shell line quotes only what a shell would interpret", () => {
  assert.equal(
    shellLine(["--allow-read=/srv/www", "--allow-net=127.0.0.1:8000"]),
    "--allow-read=/srv/www --allow-net=127.0.0.1:8000",
  );
  assert.equal(
    shellLine(["--allow-read=/srv/it's here", "--allow-net=[::1]:80"]),
    `'--allow-read=/srv/it'\\''s here' '--allow-net=[::1]:80'`,
  );
});

Deno.test("permissions: the comparison names -A, broader kinds and what is missing", () => {
  const needed = neededPermissions(
    { root: "www", host: "0.0.0.0", port: 8000, handler: {} },
    FACTS,
  );
  assert.deepEqual(comparePermissions(needed, () => true), {
    broader: ["-A"],
    missing: [],
  });
  // `deno task start`'s set, less sys.
  const task = new Set(["read", "write", "net", "env", "run"]);
  assert.deepEqual(
    comparePermissions(needed, (d) => task.has(d.name)),
    {
      broader: [
        "--allow-read",
        "--allow-write",
        "--allow-net",
        "--allow-env",
        "--allow-run",
      ],
      missing: ["--allow-sys=networkInterfaces"],
    },
  );
  const exact = (d: Deno.PermissionDescriptor) =>
    (d.name === "read" && d.path === "/srv/www") ||
    (d.name === "net" && d.host === "0.0.0.0:8000") ||
    (d.name === "sys" && d.kind === "networkInterfaces");
  assert.deepEqual(comparePermissions(needed, exact), {
    broader: [],
    missing: [],
  });
});

// --- the CLI ----------------------------------------------------------------

/**
 * What the `--workers` isolates read (the default is one per core: over
 * one, each loads this checkout's modules), as the end of a read list.
 */
const MODULES = navigator.hardwareConcurrency > 1
  ? `,${REPO.replace(/\/$/, "")}`
  : "";

/** The flags `--print-permissions` prints for `args` (run under -A). */
async function printed(args: string[]): Promise<string[]> {
  const out = await runCli([...args, "--print-permissions"]);
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stderr, "");
  const lines = out.stdout.trim().split("\n");
  assert.equal(lines.length, 1, `one line: ${out.stdout}`);
  assert.ok(!lines[0]!.includes("'"), "plain paths are not quoted");
  return lines[0]!.split(" ");
}

/** Starts the CLI under exactly `permissions`. */
function startUnder(permissions: string[], args: string[]) {
  return startCli(args, ["run", "--no-prompt", ...permissions, MOD]);
}

/** The banner's permission line, once it is out. */
async function permissionLine(lines: string[]): Promise<string> {
  await waitFor(() => lines.some((l) => l.includes("Permissions:")), {
    message: "the banner's permission line",
  });
  return lines.find((l) => l.includes("Permissions:"))!.trim();
}

Deno.test("cli --print-permissions prints the flags of flags and --config file together, and exits 0", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/site`);
  await Deno.writeTextFile(
    `${dir.path}/serve.json`,
    JSON.stringify({ root: "site", port: 9123, "log-file": "/dev/null" }),
  );
  assert.deepEqual(
    await printed(["--config", `${dir.path}/serve.json`, "--host", "0.0.0.0"]),
    [
      // 0.0.0.0: the connection guard is on and samples /proc/net/tcp.
      `--allow-read=${dir.path}/site,${dir.path}/serve.json,/proc/net/tcp,/proc/net/tcp6${MODULES}`,
      "--allow-write=/dev/null",
      "--allow-net=0.0.0.0:9123",
      "--allow-sys=networkInterfaces",
    ],
  );
  // It only makes sense on the command line.
  await Deno.writeTextFile(
    `${dir.path}/bad.json`,
    JSON.stringify({ "print-permissions": true }),
  );
  const bad = await runCli(["--config", `${dir.path}/bad.json`]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown key "print-permissions"/);
  assert.match((await runCli(["--help"])).stdout, /--print-permissions/);
});

Deno.test("cli under exactly the printed flags serves ROOT, writes its log, and Deno refuses a symlink out of ROOT (403; -A serves it)", async () => {
  await using site = await tempDir();
  await using outside = await tempDir();
  await using logs = await tempDir();
  await Deno.writeTextFile(`${site.path}/hello.txt`, "hello");
  await Deno.writeTextFile(`${outside.path}/secret.txt`, "secret");
  await Deno.symlink(`${outside.path}/secret.txt`, `${site.path}/out.txt`);
  const port = freePort();
  const args = [
    site.path,
    "--port",
    String(port),
    "--follow-symlinks",
    "--log-file",
    `${logs.path}/access.log`,
  ];
  const permissions = await printed(args);
  assert.deepEqual(permissions, [
    `--allow-read=${site.path}${MODULES}`,
    `--allow-write=${logs.path}/access.log`,
    `--allow-net=127.0.0.1:${port}`,
  ]);
  const server = await startUnder(permissions, args);
  try {
    const hello = await fetch(`${server.base}/hello.txt`);
    assert.equal(hello.status, 200);
    assert.equal(await hello.text(), "hello");
    // realPath(out.txt) is outside every granted path: Deno's NotCapable,
    // which the server answers 403 (without a log line on stderr).
    const out = await fetch(`${server.base}/out.txt`);
    assert.equal(out.status, 403);
    await out.body?.cancel();
    assert.equal(
      await permissionLine(server.lines),
      `Permissions: ${permissions.join(" ")}`,
      "exactly what it needs, nothing more",
    );
  } finally {
    await server.stop();
  }
  const log = await Deno.readTextFile(`${logs.path}/access.log`);
  assert.match(log, / GET \/hello\.txt 200 /);
  assert.match(log, / GET \/out\.txt 403 /);
  assert.doesNotMatch(await server.stderr, /error/i);

  const all = await startCli([
    site.path,
    "--port",
    "0",
    "--quiet",
    "--follow-symlinks",
  ]);
  try {
    const res = await fetch(`${all.base}/out.txt`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "secret");
  } finally {
    await all.stop();
  }
});

Deno.test("cli CGI under exactly the printed flags: scripts, interpreters, a chunked body spilled to the temporary directory, a timed-out script's group killed", async () => {
  await using dir = await tempDir();
  const port = freePort();
  const args = [
    testdata(),
    "--port",
    String(port),
    "--cgi",
    "--cgi-timeout",
    "1",
    "--cgi-pass-env",
    "CGI_TEST_DIR",
  ];
  const permissions = await printed(args);
  // Unscoped: Deno.kill (the script's process group) needs it.
  assert.ok(permissions.includes("--allow-run"));
  assert.ok(permissions.includes("--allow-env=CGI_TEST_DIR"));
  if (Deno.statSync("/usr/bin/setsid").isFile) {
    assert.match(permissions[0]!, /^--allow-read=\S*\/usr\/bin\/setsid/);
  }
  const server = await startCli(args, [
    "run",
    "--no-prompt",
    ...permissions,
    MOD,
  ], {
    env: { CGI_TEST_DIR: dir.path },
  });
  try {
    const status = await fetch(`${server.base}/cgi-bin/status.cgi?200`);
    assert.equal(status.status, 200);
    assert.equal(await status.text(), "status body\n");
    const php = await fetch(`${server.base}/cgi-bin/info.php`);
    assert.equal(php.status, 200);
    assert.match(await php.text(), /^php ok/);
    // 2 MiB chunked: over the 1 MiB kept in memory, so a temporary file.
    const size = 2 * 1024 * 1024;
    const body = new Blob([new Uint8Array(size).fill(0x61)]).stream();
    const echo = await fetch(`${server.base}/cgi-bin/echo.py`, {
      method: "POST",
      body,
    });
    assert.equal(echo.status, 200);
    assert.equal(echo.headers.get("x-content-length"), String(size));
    assert.equal((await echo.arrayBuffer()).byteLength, size);
    // Silent for 30 s: killed after 1 s with its background child.
    const slow = await fetch(`${server.base}/cgi-bin/sleep.cgi?t-30`);
    assert.equal(slow.status, 504);
    await slow.body?.cancel();
    await waitForExit(await readPids(dir.path, "t"));
    assert.equal(
      await permissionLine(server.lines),
      `Permissions: ${permissions.join(" ")}`,
    );
  } finally {
    await server.stop();
  }
  assert.doesNotMatch(await server.stderr, /NotCapable|Requires/);
});

Deno.test("cli FastCGI over a unix socket under exactly the printed flags", async () => {
  await using fpm = await startPhpFpm({ unix: true, workers: 1 });
  const args = [PHP_ROOT, "--port", "0", "--quiet", "--fastcgi", fpm.address];
  const permissions = await printed(args);
  const socket = fpm.address.slice("unix:".length);
  assert.ok(
    permissions.some((f) =>
      f.startsWith("--allow-net=") && f.includes(`unix:${socket}`)
    ),
  );
  const server = await startUnder(permissions, args);
  try {
    const res = await fetch(`${server.base}/info.php`);
    assert.equal(res.status, 200);
    const info = await res.json();
    assert.equal(info.sapi, "fpm-fcgi");
    assert.equal(info.server.SCRIPT_NAME, "/info.php");
  } finally {
    await server.stop();
  }
});

Deno.test("cli --fastcgi-spawn under exactly the printed flags serves PHP and stops its workers", async () => {
  const args = [
    PHP_ROOT,
    "--port",
    "0",
    "--quiet",
    "--fastcgi-spawn",
    "php-cgi",
    "--fastcgi-workers",
    "1",
  ];
  const permissions = await printed(args);
  assert.ok(permissions.includes("--allow-run"));
  assert.ok(permissions.includes("--allow-env=PATH"));
  const server = await startUnder(permissions, args);
  let pid: number | undefined;
  try {
    const res = await fetch(`${server.base}/info.php`);
    assert.equal(res.status, 200);
    const info = await res.json();
    assert.equal(info.sapi, "cgi-fcgi");
    assert.equal(info.server.SCRIPT_NAME, "/info.php");
    pid = info.pid;
  } finally {
    // SIGTERM: the server stops its workers (Deno.kill on their group).
    assert.equal((await server.stop("SIGTERM")).code, 0);
  }
  await waitForExit([pid!]);
});

Deno.test("cli HTTPS under exactly the printed flags uses the TLS front, and the banner says HTTPS and HTTP/2", async () => {
  await using dir = await tempDir();
  const { cert, key } = await makeCert(dir.path);
  const site = `${dir.path}/site`;
  await Deno.mkdir(site);
  await Deno.writeTextFile(`${site}/hello.txt`, "Hello, world!\n");
  const port = freePort();
  const args = [
    site,
    "--port",
    String(port),
    "--cert",
    cert,
    "--key",
    key,
  ];
  const permissions = await printed(args);
  // Every worker runs a TLS front of its own (reading this checkout).
  assert.deepEqual(permissions, [
    `--allow-read=${site},${cert},${key}${MODULES}`,
    "--allow-net=127.0.0.1",
  ]);
  // The same whatever the printing process itself may do.
  const underReadOnly = await runCli(
    [...args, "--print-permissions"],
    ["--allow-read"],
  );
  assert.equal(underReadOnly.stdout.trim(), permissions.join(" "));
  const server = await startUnder(permissions, args);
  try {
    using client = Deno.createHttpClient({
      caCerts: [await Deno.readTextFile(cert)],
    });
    const res = await fetch(`https://localhost:${port}/hello.txt`, { client });
    assert.equal(await res.text(), "Hello, world!\n");
    const line = await permissionLine(server.lines);
    assert.equal(
      line,
      `Permissions: ${permissions.join(" ")}`,
      "nothing missing",
    );
    assert.match(server.lines.join("\n"), /Features:\s+HTTPS, HTTP\/2, /);
    if (MODULES) {
      assert.match(server.lines.join("\n"), /Workers:\s+\d+ isolates/);
    }
  } finally {
    await server.stop();
  }
});

Deno.test("cli banner names what is missing when the TLS front may not listen on 127.0.0.1", async () => {
  await using dir = await tempDir();
  const { cert, key } = await makeCert(dir.path);
  const port = freePort();
  const server = await startUnder(
    [`--allow-read`, `--allow-net=127.0.0.1:${port}`],
    [testdata("www"), "--port", String(port), "--cert", cert, "--key", key],
  );
  try {
    assert.match(
      await permissionLine(server.lines),
      /^Permissions: needs --allow-read=\S+ --allow-net=127\.0\.0\.1; granted --allow-read; missing --allow-net=127\.0\.0\.1$/,
    );
  } finally {
    await server.stop();
  }
});
