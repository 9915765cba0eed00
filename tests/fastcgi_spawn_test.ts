import assert from "node:assert/strict";
import { fastcgi } from "../cgi/fastcgi/fastcgi.ts";
import { spawnFastCgiWorkers, splitCommand } from "../cgi/fastcgi/spawn.ts";
import { chain, type LogLines } from "./_helpers/php.ts";
import { waitFor } from "./_helpers/poll.ts";
import { isAlive, pidExists, waitForExit } from "./_helpers/process.ts";

Deno.test("fastcgi() spawns php-cgi workers, serves PHP through them and stops them on close", async () => {
  const logs: LogLines = [];
  await using php = fastcgi({
    spawn: "php-cgi",
    workers: 2,
    log: (_l, m) => logs.push(m),
  });
  const handler = chain(php, logs);
  await php.workers!.ready;
  const pids = php.workers!.pids() as number[];
  assert.equal(pids.length, 2);
  assert.ok(pids.every(pidExists));
  const sockets = php.workers!.addresses.map((a) =>
    a.transport === "unix" ? a.path : ""
  );
  const seen = new Set<number>();
  for (let i = 0; i < 6; i++) {
    const res = await handler(
      new Request(`http://localhost/info.php/p?i=${i}`),
    );
    assert.equal(res.status, 200);
    const info = await res.json();
    assert.equal(info.sapi, "cgi-fcgi");
    assert.equal(info.server.PATH_INFO, "/p");
    assert.deepEqual(info.get, { i: String(i) });
    seen.add(info.pid);
  }
  assert.deepEqual(
    [...seen].sort(),
    [...pids].sort(),
    "requests take turns over both workers",
  );
  const missing = await handler(new Request("http://localhost/nope.php"));
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
  await php.close();
  assert.ok(!pids.some(pidExists), "workers are gone after close()");
  for (const socket of sockets) assert.throws(() => Deno.statSync(socket));
});

Deno.test("fastcgi() restarts a spawned worker killed mid-load", async () => {
  const logs: LogLines = [];
  await using php = fastcgi({
    spawn: ["php-cgi"],
    workers: 2,
    log: (_l, m) => logs.push(m),
  });
  const handler = chain(php, logs);
  await php.workers!.ready;
  const [victim] = php.workers!.pids() as number[];
  const statuses: number[] = [];
  const load = (async () => {
    for (let i = 0; i < 30; i++) {
      const batch = await Promise.all([0, 1, 2].map(async () => {
        const res = await handler(
          new Request("http://localhost/sleep.php?ms=10"),
        );
        await res.body?.cancel();
        return res.status;
      }));
      statuses.push(...batch);
    }
  })();
  await waitFor(() => statuses.length > 0, {
    message: "the first answers of the load",
  });
  Deno.kill(victim!, "SIGKILL");
  await load;
  // Only what the killed worker held fails: the request it was running and
  // at most one connection already queued in its listen backlog. The rest go
  // to the other worker while it restarts.
  assert.ok(
    statuses.filter((s) => s !== 200).length <= 2,
    `statuses: ${statuses.join(",")}\n${logs.join("\n")}`,
  );
  assert.ok(statuses.filter((s) => s !== 200).every((s) => s === 502));
  await waitFor(
    () =>
      php.workers!.restarts()[0] === 1 && php.workers!.pids()[0] !== undefined,
    { message: "worker 0 to be restarted" },
  );
  const replacement = php.workers!.pids()[0]!;
  assert.notEqual(replacement, victim);
  assert.ok(
    logs.some((l) => l.includes("worker 0") && l.includes("exited")),
    logs.join("\n"),
  );
  // The restarted worker takes traffic again.
  await waitFor(() => !php.client.stats()[0]!.down, {
    message: "worker 0 to be up again",
  });
  const pids = new Set<string>();
  for (let i = 0; i < 6; i++) {
    const res = await handler(new Request("http://localhost/sleep.php?ms=1"));
    pids.add((await res.text()).match(/pid=(\d+)/)?.[1] ?? "");
  }
  assert.ok(pids.has(String(replacement)), `served by ${[...pids]}`);
});

Deno.test("splitCommand() honours quotes and rejects an unterminated one", () => {
  assert.deepEqual(splitCommand(`php-cgi -d 'a b' "c\\"d"`), [
    "php-cgi",
    "-d",
    "a b",
    'c"d',
  ]);
  assert.deepEqual(splitCommand("  x   y "), ["x", "y"]);
  assert.throws(() => splitCommand(`php-cgi "x`), SyntaxError);
});

Deno.test("fastcgi() keeps the server's environment from spawned workers, except passed variables", async () => {
  Deno.env.set("X_SERVE_TEST_SECRET", "hunter2");
  Deno.env.set("X_SERVE_TEST_PASSED", "visible");
  try {
    await using php = fastcgi({
      spawn: "php-cgi",
      workers: 1,
      spawnPassEnv: ["X_SERVE_TEST_PASSED"],
      spawnEnv: { APP_ENV: "test" },
      log: () => {},
    });
    await php.workers!.ready;
    const res = await chain(php)(new Request("http://localhost/env.php"));
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.doesNotMatch(text, /hunter2|X_SERVE_TEST_SECRET/);
    const { getenv } = JSON.parse(text);
    assert.equal(getenv.X_SERVE_TEST_PASSED, "visible");
    assert.equal(getenv.APP_ENV, "test");
    assert.equal(getenv.PATH, Deno.env.get("PATH"));
  } finally {
    Deno.env.delete("X_SERVE_TEST_SECRET");
    Deno.env.delete("X_SERVE_TEST_PASSED");
  }
});

Deno.test("spawnFastCgiWorkers() kills a worker that never listens and restarts it", async () => {
  const logs: string[] = [];
  await using workers = spawnFastCgiWorkers({
    command: ["sh", "-c", "exec sleep 30", "{socket}"],
    workers: 1,
    startTimeoutMs: 300,
    restartDelayMs: 50,
    log: (_l, m) => logs.push(m),
  });
  const ready = workers.ready.catch((e) => e);
  await waitFor(() => workers.pids()[0] !== undefined, {
    message: "the worker to start",
  });
  const first = workers.pids()[0]!;
  assert.ok((await ready) instanceof Error);
  await waitFor(() => !pidExists(first), {
    timeoutMs: 3000,
    message: "the worker that did not listen to be killed",
  });
  await waitFor(
    () =>
      workers.restarts()[0]! >= 1 && workers.pids()[0] !== undefined &&
      workers.pids()[0] !== first,
    { message: "a new worker" },
  );
  assert.ok(
    logs.some((l) => l.includes("did not listen")),
    logs.join("\n"),
  );
});

Deno.test("spawnFastCgiWorkers() stops a wrapper command's children too", async () => {
  const pidFile = await Deno.makeTempFile();
  let php: number | undefined;
  try {
    const workers = spawnFastCgiWorkers({
      command: [
        "sh",
        "-c",
        'php-cgi -b "$0" & echo $! > "$1"; wait',
        "{socket}",
        pidFile,
      ],
      workers: 1,
      log: () => {},
    });
    await workers.ready;
    php = Number((await Deno.readTextFile(pidFile)).trim());
    assert.ok(php > 0 && pidExists(php));
    assert.notEqual(workers.pids()[0], php, "php-cgi runs under a wrapper");
    await workers.stop();
    // Gone, or a zombie left to init.
    await waitForExit([php], { timeoutMs: 1000, message: "php-cgi gone" });
  } finally {
    if (php && await isAlive(php)) Deno.kill(php, "SIGKILL");
    await Deno.remove(pidFile);
  }
});

Deno.test("spawnFastCgiWorkers() restarts a worker that exits at once with growing delays", async () => {
  const exits: number[] = [];
  await using workers = spawnFastCgiWorkers({
    command: ["sh", "-c", "exit 3", "{socket}"],
    workers: 1,
    restartDelayMs: 50,
    maxRestartDelayMs: 400,
    log: (_l, m) => {
      if (m.includes("exited with")) exits.push(Date.now());
    },
  });
  workers.ready.catch(() => {});
  // The time window the exits are counted in (what is measured, not a wait
  // for some state).
  await new Promise((r) => setTimeout(r, 1300));
  // Delays 50, 100, 200, 400, 400…: about 6 exits in 1.3 s, not hundreds.
  assert.ok(exits.length >= 4 && exits.length <= 7, `${exits.length} exits`);
  const gaps = exits.slice(1).map((t, i) => t - exits[i]!);
  [50, 100, 200].forEach((delay, i) => {
    assert.ok(gaps[i]! >= delay, `gaps ${gaps.join(",")}`);
    assert.ok(gaps[i]! < delay * 2 + 100, `gaps ${gaps.join(",")}`);
  });
  assert.ok(gaps.slice(3).every((g) => g >= 400 && g < 600), `gaps ${gaps}`);
});
