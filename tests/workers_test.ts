// `--workers`: several isolates on one port (SO_REUSEPORT), with one CGI
// limit, one FastCGI pool, one access log, one shutdown, and crashed
// workers replaced (real processes, real sockets; Linux).
import assert from "node:assert/strict";
import { PHP_ROOT, startPhpFpm } from "./_helpers/php.ts";
import { makeCert, tcpSockets } from "./_helpers/net.ts";
import { tempDir, testdata } from "./_helpers/fs.ts";
import { waitFor } from "./_helpers/poll.ts";
import {
  children,
  commandLine,
  groupMembers,
  isAlive,
  MOD,
  REPO,
  runCli,
  type ServerProcess,
  startCli,
} from "./_helpers/process.ts";

const ROOT = testdata("workers");
/** Shows which worker answered, and lets a test crash one. */
const HOOKS = { env: { X_SERVE_TEST_HOOKS: "1" } };
const RUN = ["run", "--no-prompt", "-A", MOD];

/** The CLI on a free port with `--workers 2`, `flags` and the test hooks. */
function twoWorkers(flags: string[], root = ROOT): Promise<ServerProcess> {
  return startCli(
    [root, "--port", "0", "--workers", "2", ...flags],
    RUN,
    HOOKS,
  );
}

/** A request on a connection of its own (the kernel picks its worker). */
async function fresh(url: string, init: RequestInit = {}): Promise<Response> {
  const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  try {
    const res = await fetch(url, { ...init, client });
    const body = new Uint8Array(await res.arrayBuffer());
    return new Response(res.status === 204 ? null : body, {
      status: res.status,
      headers: res.headers,
    });
  } finally {
    client.close();
  }
}

/** The workers that answered `count` requests on fresh connections. */
async function workersSeen(url: string, count: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) {
    const res = await fresh(url);
    assert.equal(res.status, 200);
    seen.add(res.headers.get("x-serve-worker") ?? "none");
  }
  return seen;
}

async function stopped(server: ServerProcess): Promise<string> {
  const status = await server.stop("SIGTERM");
  const stderr = await server.stderr;
  assert.equal(status.code, 0, stderr);
  assert.doesNotMatch(stderr, /BadResource|Uncaught|crashed/, stderr);
  return stderr;
}

Deno.test("--workers 2: connections are answered by both isolates, one banner", async () => {
  const server = await twoWorkers([]);
  try {
    const seen = await workersSeen(`${server.base}/index.txt`, 40);
    assert.deepEqual([...seen].sort(), ["0", "1"]);
    assert.equal(
      server.lines.filter((l) => l.startsWith("Listening on")).length,
      1,
    );
    assert.ok(
      server.lines.includes("  Workers:     2 isolates sharing the port"),
      server.lines.join("\n"),
    );
  } finally {
    await stopped(server);
  }
});

Deno.test("--workers 2 --cert: both isolates answer HTTPS and HTTP/2, and a renewed certificate reaches both", async () => {
  await using dir = await tempDir();
  await using renewed = await tempDir();
  const { cert, key } = await makeCert(dir.path);
  const next = await makeCert(renewed.path);
  const server = await twoWorkers(["--cert", cert, "--key", key]);
  const port = new URL(server.base).port;
  const url = `https://localhost:${port}/index.txt`;
  let stderr = "";
  /** Workers seen over `count` fresh connections trusting `pem` only. */
  const seenWith = async (pem: string, count: number) => {
    const seen = new Set<string>();
    for (let i = 0; i < count; i++) {
      using client = Deno.createHttpClient({ caCerts: [pem] });
      try {
        const res = await fetch(url, { client });
        await res.body?.cancel();
        if (res.status === 200) seen.add(res.headers.get("x-serve-worker")!);
      } catch {
        seen.add("untrusted");
      }
    }
    return seen;
  };
  try {
    const oldPem = await Deno.readTextFile(cert);
    assert.deepEqual([...await seenWith(oldPem, 40)].sort(), ["0", "1"]);
    assert.ok(
      server.lines.includes("  Workers:     2 isolates sharing the port"),
      server.lines.join("\n"),
    );
    // HTTP/2 by ALPN, from both isolates (curl says which protocol).
    const h2 = new Set<string>();
    for (let i = 0; i < 40 && h2.size < 2; i++) {
      const out = await new Deno.Command("curl", {
        args: ["-sk", "--http2", "-o", "/dev/null", "-D", "-", url],
        stdout: "piped",
      }).output();
      const head = new TextDecoder().decode(out.stdout);
      assert.match(head, /^HTTP\/2 200/, head);
      h2.add(/x-serve-worker: (\d)/.exec(head)?.[1] ?? "none");
    }
    assert.deepEqual([...h2].sort(), ["0", "1"]);
    // Renewed files: checked once by the main thread, served by both.
    const newPem = await Deno.readTextFile(next.cert);
    await Deno.writeTextFile(key, await Deno.readTextFile(next.key));
    await Deno.writeTextFile(cert, newPem);
    await waitFor(async () => {
      const seen = await seenWith(newPem, 20);
      return seen.size === 2 && !seen.has("untrusted");
    }, { message: "both workers to present the renewed certificate" });
    assert.deepEqual([...await seenWith(oldPem, 10)], ["untrusted"]);
  } finally {
    stderr = await stopped(server);
  }
  assert.equal(
    stderr.match(/reloaded --cert/g)?.length,
    1,
    `one reload line, not one per worker: ${stderr}`,
  );
});

Deno.test("--workers in the config file, and bad values are usage errors", async () => {
  await using dir = await tempDir();
  const config = `${dir.path}/serve.json`;
  await Deno.writeTextFile(config, JSON.stringify({ workers: 2 }));
  const server = await startCli(
    [ROOT, "--port", "0", "--config", config],
    RUN,
    HOOKS,
  );
  try {
    const seen = await workersSeen(`${server.base}/index.txt`, 40);
    assert.deepEqual([...seen].sort(), ["0", "1"]);
  } finally {
    await stopped(server);
  }
  for (const bad of ["0", "two", "-1"]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [...RUN, ROOT, "--workers", bad],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 2);
    assert.match(
      new TextDecoder().decode(out.stderr),
      /Invalid --workers ".*": expected auto or a count/,
    );
  }
});

Deno.test("--workers 2 --live-reload serves with one isolate", async () => {
  const server = await twoWorkers(["--live-reload"]);
  try {
    const res = await fresh(`${server.base}/index.txt`);
    assert.equal(res.status, 200);
    // The main thread serves: no worker header.
    assert.equal(res.headers.get("x-serve-worker"), null);
  } finally {
    const status = await server.stop("SIGTERM");
    assert.equal(status.code, 0);
    assert.match(
      await server.stderr,
      /warning: --workers 2: --live-reload runs one worker; serving with one/,
    );
  }
});

Deno.test("--workers 2: --cgi-max-concurrent counts the scripts of both workers", async () => {
  const server = await twoWorkers([
    "--quiet",
    "--cgi",
    "--cgi-max-concurrent",
    "1",
  ]);
  try {
    // Both workers get some of the 12 connections; only one script runs.
    const answers = await Promise.all(
      Array.from(
        { length: 12 },
        () => fresh(`${server.base}/cgi-bin/wait.cgi?1`),
      ),
    );
    const statuses = answers.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, ...Array(11).fill(503)]);
    const workers = new Set(
      answers.map((r) => r.headers.get("x-serve-worker")),
    );
    assert.deepEqual([...workers].sort(), ["0", "1"]);
    // The slot is free again once the script ended.
    const again = await fresh(`${server.base}/cgi-bin/wait.cgi?0`);
    assert.equal(again.status, 200);
  } finally {
    await stopped(server);
  }
});

/** Two workers sharing one spawned pool of two php-cgi processes. */
const SPAWNED_PHP = [
  "--quiet",
  "--fastcgi-spawn",
  "php-cgi",
  "--fastcgi-workers",
  "2",
];

/** The php-cgi processes the server `pid` started. */
function phpCgi(pid: number): number[] {
  return children(pid).filter((child) =>
    commandLine(child).some((arg) => arg.endsWith("php-cgi"))
  );
}

Deno.test("--workers 2 --fastcgi-spawn starts its pool once, which both workers use", async () => {
  const server = await twoWorkers(SPAWNED_PHP, PHP_ROOT);
  let pool: number[] = [];
  try {
    const php = () => phpCgi(server.pid);
    await waitFor(() => php().length === 2, { message: "2 php-cgi workers" });
    pool = php();
    const workers = new Set<string | null>();
    const pids = new Set<number>();
    for (let i = 0; i < 40 && workers.size < 2; i++) {
      const res = await fresh(`${server.base}/info.php?i=${i}`);
      assert.equal(res.status, 200);
      workers.add(res.headers.get("x-serve-worker"));
      pids.add((await res.json()).pid);
    }
    assert.deepEqual([...workers].sort(), ["0", "1"]);
    assert.ok(
      [...pids].every((pid) => pool.includes(pid)),
      `${pids} in ${pool}`,
    );
    assert.deepEqual(php().sort(), pool.sort(), "still the same 2 workers");
  } finally {
    await stopped(server);
  }
  for (const pid of pool) {
    assert.ok(!(await isAlive(pid)), `php-cgi ${pid} stopped`);
  }
});

Deno.test("--workers 2 --fastcgi-spawn: worker 0 (the main isolate) crashing leaves the shared pool running", async () => {
  const server = await twoWorkers(SPAWNED_PHP, PHP_ROOT);
  try {
    const php = () => phpCgi(server.pid);
    await waitFor(() => php().length === 2, { message: "2 php-cgi workers" });
    const pool = php().sort();
    const port = Number(new URL(server.base).port);
    const run = await crashWorker(port, "0", "/info.php");
    await replaced(`${server.base}/info.php`, "0", run);
    assert.deepEqual(php().sort(), pool, "the same php-cgi workers");
    const stderr = await (async () => {
      assert.equal((await server.stop("SIGTERM")).code, 0);
      return await server.stderr;
    })();
    assert.match(stderr, /error: worker 0 crashed \(Uncaught Error: test hook/);
    assert.match(stderr, /info: worker 0 restarted/);
  } finally {
    await server.stop("SIGTERM");
  }
});

/** A kept-alive connection that worker `target` answered (a `HEAD`). */
async function connectionTo(
  port: number,
  target: string,
  path = "/index.txt",
): Promise<Deno.Conn> {
  for (let i = 0; i < 100; i++) {
    const conn = await Deno.connect({ port });
    await conn.write(
      new TextEncoder().encode(`HEAD ${path} HTTP/1.1\r\nHost: x\r\n\r\n`),
    );
    const head = await readHead(conn);
    if (/x-serve-worker: (\d+)/i.exec(head)?.[1] === target) return conn;
    conn.close();
  }
  throw new Error(`no connection reached worker ${target}`);
}

/** Reads a response head (to its blank line) from `conn`. */
async function readHead(conn: Deno.Conn): Promise<string> {
  const buf = new Uint8Array(4096);
  let text = "";
  while (!text.includes("\r\n\r\n")) {
    const n = await conn.read(buf);
    if (n === null) break;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  return text;
}

/** Asks for the 30 s script on `conn`: the response head (or a 503's). */
async function startSlowScript(conn: Deno.Conn): Promise<string> {
  await conn.write(
    new TextEncoder().encode(
      "GET /cgi-bin/slow.cgi HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
  );
  return await readHead(conn);
}

for (const target of ["0", "1"]) {
  Deno.test(`--workers 2 --max-connections 3: a crash of worker ${target} closes its open connections and gives their places back`, async () => {
    const server = await twoWorkers([
      "--quiet",
      "--cgi",
      "--max-connections",
      "3",
    ]);
    const port = Number(new URL(server.base).port);
    try {
      // A streamed script answer stays open on the worker that crashes.
      const slow = await connectionTo(port, target);
      assert.match(await startSlowScript(slow), /^HTTP\/1\.1 200/);
      const run = await crashWorker(port, target);
      // Its end comes at once, as when a process dies (not after the
      // script's 30 s, nor never).
      const buf = new Uint8Array(65536);
      const ended = (async () => {
        try {
          while ((await slow.read(buf)) !== null);
        } catch { /* reset */ }
        return true;
      })();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const closed = await Promise.race([
        ended,
        new Promise<false>((r) => timer = setTimeout(() => r(false), 3000)),
      ]);
      clearTimeout(timer);
      slow.close();
      assert.ok(closed, "the crashed worker's connection was closed");
      await replaced(`${server.base}/index.txt`, target, run);
      // Its places are back, and counted once: 3 connections held at once,
      // never more (the checks' own connections may take a moment to be
      // counted out after they closed).
      await waitFor(async () => {
        const { statuses, conns } = await heldConnections(port, 10);
        for (const conn of conns) conn.close();
        const served = statuses.filter((s) => s === 200).length;
        assert.ok(served <= 3, String(statuses));
        return served === 3;
      }, { message: "3 places held at once", intervalMs: 200 });
    } finally {
      await server.stop("SIGTERM");
    }
  });
}

for (const target of ["0", "1"]) {
  Deno.test(`--workers 2 --cgi-max-concurrent 2: worker ${target} crashing with a script running gives its slot back once`, async () => {
    const server = await twoWorkers([
      "--quiet",
      "--cgi",
      "--cgi-max-concurrent",
      "2",
    ]);
    const port = Number(new URL(server.base).port);
    const conns: Deno.Conn[] = [];
    try {
      const slow = await connectionTo(port, target);
      conns.push(slow);
      assert.match(await startSlowScript(slow), /^HTTP\/1\.1 200/);
      const run = await crashWorker(port, target);
      await replaced(`${server.base}/index.txt`, target, run);
      // Its script was killed: two slots free, and only two.
      const statuses = await Promise.all(
        Array.from({ length: 6 }, async () => {
          const conn = await Deno.connect({ port });
          conns.push(conn);
          const head = await startSlowScript(conn);
          return Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
        }),
      );
      assert.deepEqual(
        statuses.filter((s) => s === 200).length,
        2,
        String(statuses),
      );
    } finally {
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* closed by the crash */ }
      }
      await server.stop("SIGTERM");
    }
  });
}

Deno.test("--workers 2 --log-format json: lines under load are whole, on stdout and in --log-file", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/access.log`;
  // A long query makes each line longer than a pipe's atomic write.
  const query = "q=" + "x".repeat(6000);
  const requests = 300;
  for (const logFile of [undefined, file]) {
    const server = await twoWorkers([
      "--log-format",
      "json",
      ...(logFile ? ["--log-file", logFile] : []),
    ]);
    const workers = new Set<string | null>();
    try {
      for (let round = 0; round < requests / 30; round++) {
        const answers = await Promise.all(
          Array.from(
            { length: 30 },
            (_, i) =>
              fresh(`${server.base}/index.txt?n=${round * 30 + i}&${query}`),
          ),
        );
        for (const res of answers) {
          assert.equal(res.status, 200);
          workers.add(res.headers.get("x-serve-worker"));
        }
      }
    } finally {
      await stopped(server);
    }
    assert.deepEqual([...workers].sort(), ["0", "1"]);
    const lines = logFile
      ? (await Deno.readTextFile(logFile)).split("\n").filter(Boolean)
      : server.lines.filter((l) => l.startsWith("{"));
    assert.equal(lines.length, requests);
    const seen = new Set<number>();
    for (const line of lines) {
      const entry = JSON.parse(line);
      assert.equal(entry.status, 200);
      seen.add(Number(/[?&]n=(\d+)/.exec(entry.path)![1]));
    }
    assert.equal(seen.size, requests, "every request logged once");
  }
});

Deno.test("--workers 2: SIGTERM under load drains every worker and exits 0", async () => {
  const server = await twoWorkers(["--cgi", "--shutdown-grace", "10"]);
  const before = children(server.pid);
  // 10 scripts of 1 s in flight, over both workers.
  const answers = Array.from(
    { length: 10 },
    () => fresh(`${server.base}/cgi-bin/wait.cgi?1`),
  );
  await waitFor(
    () => children(server.pid).filter((p) => !before.includes(p)).length >= 10,
    { message: "10 scripts running" },
  );
  const stderr = await stopped(server);
  const done = await Promise.all(answers);
  assert.deepEqual(done.map((r) => r.status), Array(10).fill(200));
  assert.deepEqual(
    new Set(done.map((r) => r.headers.get("x-serve-worker"))).size,
    2,
    "both workers had requests in flight",
  );
  assert.deepEqual(
    server.lines.filter((l) => l.startsWith("stopping:")),
    ["stopping: 10 requests in flight"],
    stderr,
  );
});

/**
 * Crashes worker `target` through the test hook: a connection to it is
 * found first (a `HEAD` on each fresh one shows who answers), then the
 * crash is asked on that same connection. Resolves with the crashed run's
 * id (`x-serve-run`).
 */
async function crashWorker(
  port: number,
  target: string,
  path = "/index.txt",
): Promise<string> {
  const conn = await connectionTo(port, target, path);
  try {
    await conn.write(
      new TextEncoder().encode(
        "GET /__x_serve_test/crash HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      ),
    );
    const answer = await readHead(conn);
    assert.match(answer, /^HTTP\/1\.1 202/);
    assert.match(answer, new RegExp(`x-serve-worker: ${target}\r\n`, "i"));
    return /x-serve-run: ([\w-]+)/i.exec(answer)![1]!;
  } finally {
    conn.close();
  }
}

/**
 * Waits until worker `index` answers from a run other than `crashed` (its
 * replacement: the crashed run may still answer connections it accepted
 * before its listener closed), and the other workers answer too.
 */
async function replaced(
  url: string,
  index: string,
  crashed: string,
): Promise<void> {
  await waitFor(async () => {
    const seen = new Set<string>();
    let replacement = false;
    try {
      for (let i = 0; i < 20; i++) {
        const res = await fresh(url);
        assert.equal(res.status, 200);
        const worker = res.headers.get("x-serve-worker") ?? "none";
        seen.add(worker);
        if (worker === index && res.headers.get("x-serve-run") !== crashed) {
          replacement = true;
        }
      }
    } catch {
      return false; // reset: queued on the crashed worker's listener
    }
    return replacement && seen.size === 2;
  }, {
    message: `worker ${index} replaced, both answering`,
    timeoutMs: 10_000,
  });
}

for (
  const [dead, which] of [
    ["0", "worker 0 (the main isolate)"],
    ["1", "worker 1 (a Web Worker)"],
  ] as const
) {
  Deno.test(`--workers 2: ${which} that crashes is replaced, and its CGI scripts die with it`, async () => {
    const server = await twoWorkers([
      "--quiet",
      "--cgi",
      "--shutdown-grace",
      "1",
    ]);
    try {
      // Long scripts on both workers: their pid (= process group) first.
      const running: {
        worker: string;
        pgid: number;
        body: Promise<unknown>;
      }[] = [];
      for (
        let i = 0;
        i < 40 && new Set(running.map((r) => r.worker)).size < 2;
        i++
      ) {
        const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
        const res = await fetch(`${server.base}/cgi-bin/slow.cgi`, { client });
        const reader = res.body!.getReader();
        const first = new TextDecoder().decode((await reader.read()).value);
        running.push({
          worker: res.headers.get("x-serve-worker")!,
          pgid: Number(first.trim()),
          body: (async () => {
            try {
              while (!(await reader.read()).done);
            } catch { /* cut */ }
            client.close();
          })(),
        });
      }
      const run = await crashWorker(Number(new URL(server.base).port), dead);
      const victims = running.filter((r) => r.worker === dead);
      const survivors = running.filter((r) => r.worker !== dead);
      assert.ok(victims.length > 0 && survivors.length > 0);
      // The crashed worker's scripts are killed; the other worker's run on.
      for (const { pgid } of victims) {
        await waitFor(async () => (await groupMembers(pgid)).length === 0, {
          message: `script group ${pgid} of the crashed worker gone`,
        });
      }
      // And reaped (the worker cleans up before it ends): no zombie left.
      for (const { pgid } of victims) {
        await waitFor(() => !children(server.pid).includes(pgid), {
          message: `script ${pgid} of the crashed worker reaped`,
        });
      }
      for (const { pgid } of survivors) {
        assert.ok((await groupMembers(pgid)).length > 0, `script ${pgid} runs`);
      }
      await replaced(`${server.base}/index.txt`, dead, run);
      assert.equal((await server.stop("SIGTERM")).code, 0);
      await Promise.all(running.map((r) => r.body));
      for (const { pgid } of survivors) {
        await waitFor(async () => (await groupMembers(pgid)).length === 0, {
          message: `script group ${pgid} gone at shutdown`,
        });
      }
      const stderr = await server.stderr;
      assert.match(
        stderr,
        new RegExp(
          `error: worker ${dead} crashed \\(Uncaught Error: test hook: worker ${dead} crashed on purpose\\); restarting it in 100 ms`,
        ),
      );
      assert.match(stderr, new RegExp(`info: worker ${dead} restarted`));
    } finally {
      await server.stop("SIGTERM");
    }
  });
}

/**
 * Opens `count` connections at once, each sending one kept-alive request:
 * the statuses (0: closed without one), with the workers that answered.
 */
async function heldConnections(
  port: number,
  count: number,
): Promise<{ statuses: number[]; workers: Set<string>; conns: Deno.Conn[] }> {
  const conns: Deno.Conn[] = [];
  const workers = new Set<string>();
  const statuses = await Promise.all(
    Array.from({ length: count }, async () => {
      const conn = await Deno.connect({ port });
      conns.push(conn);
      await conn.write(
        new TextEncoder().encode("GET /index.txt HTTP/1.1\r\nHost: x\r\n\r\n"),
      );
      const buf = new Uint8Array(4096);
      const n = await conn.read(buf).catch(() => null);
      const head = new TextDecoder().decode(buf.subarray(0, n ?? 0));
      const worker = /x-serve-worker: (\d+)/i.exec(head)?.[1];
      if (worker !== undefined) workers.add(worker);
      return Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
    }),
  );
  return { statuses, workers, conns };
}

Deno.test("--workers 2: --max-connections and --max-connections-per-client count the connections of both workers", async () => {
  for (
    const [flag, cap] of [["--max-connections", 4], [
      "--max-connections-per-client",
      3,
    ]] as const
  ) {
    const server = await twoWorkers(["--quiet", flag, String(cap)]);
    const port = Number(new URL(server.base).port);
    try {
      // 16 at once: both workers get some; only `cap` are served (counted
      // per worker, up to twice as many would be).
      const held = await heldConnections(port, 16);
      const served = held.statuses.filter((s) => s === 200).length;
      assert.equal(served, cap, `${flag} ${cap}: ${held.statuses}`);
      assert.equal(
        held.statuses.filter((s) => s === 503).length,
        16 - cap,
        String(held.statuses),
      );
      for (const conn of held.conns) conn.close();
      // Given back once closed: served again, by both workers.
      await waitFor(async () => {
        const next = await heldConnections(port, cap);
        for (const conn of next.conns) conn.close();
        return next.statuses.every((s) => s === 200);
      }, { timeoutMs: 5_000, message: `${flag}: served again` });
      // Both workers serve again. One fresh connection after another: a
      // closed one counts until its worker has seen the close, so a 503 may
      // come in between (the cap holds); try again then.
      const seen = new Set<string>();
      await waitFor(async () => {
        // A refusal may also reach fetch before its request went out (the
        // 503 is written at accept): "unexpected message", try again.
        const res = await fresh(`${server.base}/index.txt`).catch((error) => {
          if (/unexpected message/.test(String(error?.cause ?? error))) {
            return undefined;
          }
          throw error;
        });
        if (res === undefined) return false;
        assert.ok(res.status === 200 || res.status === 503, String(res.status));
        if (res.status === 200) seen.add(res.headers.get("x-serve-worker")!);
        return seen.size === 2;
      }, { timeoutMs: 10_000, message: `${flag}: both workers serve again` });
    } finally {
      await stopped(server);
    }
  }
});

Deno.test("--workers 2: --fastcgi-max-connections and --fastcgi-keep-alive hold for the whole server (php-fpm)", async () => {
  await using fpm = await startPhpFpm({ workers: 4 });
  const fpmPort = Number(fpm.address.split(":")[1]);
  const server = await twoWorkers([
    "--quiet",
    "--fastcgi",
    fpm.address,
    "--fastcgi-max-connections",
    "2",
    "--fastcgi-keep-alive",
    "1",
  ], PHP_ROOT);
  // The server's connections to php-fpm (its side of them).
  const toFpm = () =>
    tcpSockets().filter((s) =>
      s.remotePort === fpmPort && s.state === "ESTABLISHED"
    ).length;
  try {
    let most = 0;
    let sampling = true;
    const sampler = (async () => {
      // A socket we closed may still read ESTABLISHED for a moment (the fd
      // goes when Deno drops the pending read): a count holds when two
      // samples 10 ms apart agree.
      let previous = 0;
      while (sampling) {
        const now = toFpm();
        most = Math.max(most, Math.min(previous, now));
        previous = now;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    const workers = new Set<string | null>();
    const started = Date.now();
    await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const res = await fresh(`${server.base}/sleep.php?ms=200&i=${i}`);
        assert.equal(res.status, 200, await res.text());
        workers.add(res.headers.get("x-serve-worker"));
      }),
    );
    const took = Date.now() - started;
    sampling = false;
    await sampler;
    assert.deepEqual([...workers].sort(), ["0", "1"]);
    // 12 scripts of 200 ms, 2 at a time: 1.2 s at least.
    assert.ok(most <= 2, `${most} connections to php-fpm at once`);
    assert.ok(took >= 1_150, `took ${took} ms`);
    // Idle: one kept connection for the whole server.
    await waitFor(() => toFpm() <= 1, {
      timeoutMs: 3_000,
      message: "one kept connection",
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.ok(toFpm() <= 1, `${toFpm()} kept`);
  } finally {
    await stopped(server);
  }
});

Deno.test("--workers 2 under exactly the --print-permissions flags runs 2 workers; without read on the package, one with a warning", async () => {
  const args = [ROOT, "--port", "0", "--workers", "2"];
  const out = await runCli([...args, "--print-permissions"]);
  assert.equal(out.code, 0, out.stderr);
  const printed = out.stdout.trim().split(" ");
  const folder = REPO.replace(/\/$/, "");
  // The root is inside this checkout: the package's folder covers it.
  assert.deepEqual(printed, [
    `--allow-read=${folder}`,
    "--allow-net=127.0.0.1",
  ]);
  // The hooks' variable only, to see which worker answers.
  const env = "--allow-env=X_SERVE_TEST_HOOKS";
  const server = await startCli(
    args,
    ["run", "--no-prompt", ...printed, env, MOD],
    HOOKS,
  );
  try {
    const seen = await workersSeen(`${server.base}/index.txt`, 40);
    assert.deepEqual([...seen].sort(), ["0", "1"]);
    assert.ok(server.lines.some((l) => /Workers: +2 isolates/.test(l)));
  } finally {
    await stopped(server);
  }
  const narrow = await startCli(
    args,
    [
      "run",
      "--no-prompt",
      `--allow-read=${ROOT}`,
      "--allow-net=127.0.0.1",
      env,
      MOD,
    ],
    HOOKS,
  );
  try {
    const seen = await workersSeen(`${narrow.base}/index.txt`, 10);
    assert.deepEqual([...seen], ["none"]);
  } finally {
    const status = await narrow.stop("SIGTERM");
    assert.equal(status.code, 0);
  }
  assert.match(
    await narrow.stderr,
    new RegExp(
      `warning: --workers 2: workers need --allow-read=${folder}; serving with one`,
    ),
  );
});

Deno.test("--workers 2: SIGTERM while a crashed worker restarts stops within the grace, the newcomer never serving", async () => {
  // The replacement starts 100 ms after the crash and loads for ~100 ms:
  // signal at moments on both sides of its "loaded".
  for (const delay of [150, 250, 300]) {
    const server = await twoWorkers(["--shutdown-grace", "2"]);
    const crash = await fresh(`${server.base}/__x_serve_test/crash`);
    assert.equal(crash.status, 202);
    await new Promise((resolve) => setTimeout(resolve, delay));
    const started = Date.now();
    const status = await server.stop("SIGTERM");
    const took = Date.now() - started;
    assert.equal(status.code, 0, await server.stderr);
    assert.ok(
      took < 4_000,
      `signalled at ${delay} ms: stopped after ${took} ms (grace 2 s)`,
    );
  }
});
