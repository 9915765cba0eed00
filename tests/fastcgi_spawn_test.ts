import assert from "node:assert/strict";
import { fastcgi } from "../cgi/fastcgi/fastcgi.ts";
import { splitCommand } from "../cgi/fastcgi/spawn.ts";
import { chain, type LogLines } from "./fastcgi_helpers.ts";

function alive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("Condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

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
  assert.ok(pids.every(alive));
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
  assert.ok(!pids.some(alive), "workers are gone after close()");
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
  await new Promise((r) => setTimeout(r, 100));
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
  await until(() =>
    php.workers!.restarts()[0] === 1 && php.workers!.pids()[0] !== undefined
  );
  const replacement = php.workers!.pids()[0]!;
  assert.notEqual(replacement, victim);
  assert.ok(
    logs.some((l) => l.includes("worker 0") && l.includes("exited")),
    logs.join("\n"),
  );
  // The restarted worker takes traffic again.
  await until(() => !php.client.stats()[0]!.down);
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
