// The end of a CGI script's output: once the script process exits, its
// pipes get `exitGraceMs`; a background child holding stdout is then
// killed and the response ends with what the script wrote, long before
// `timeoutMs`.
import assert from "node:assert/strict";
import { openPosixSpawn } from "../cgi/posix_spawn.ts";
import { runScript } from "../cgi/run.ts";
import { cgiHarness } from "./_helpers/cgi.ts";
import { tempDir } from "./_helpers/fs.ts";
import {
  children,
  isAlive,
  readPids,
  waitForChildrenReaped,
  waitForExit,
} from "./_helpers/process.ts";

const BASE = "http://localhost:8000";
/** Far beyond every grace here: a response ending near it would fail. */
const TIMEOUT_MS = 30_000;

Deno.test("cgi() ends the response once the script exited while a background child holds stdout, and kills the child", async () => {
  await using dir = await tempDir();
  const { handler, logs } = cgiHarness(
    { timeoutMs: TIMEOUT_MS, killGraceMs: 500 },
    dir.path,
  );
  const before = children(Deno.pid);
  const started = Date.now();
  const res = await handler(new Request(BASE + "/cgi-bin/bgout.cgi?g1"));
  assert.equal(res.status, 200);
  // Ends cleanly (no error), with everything the script wrote.
  assert.equal(await res.text(), "body before exit\n");
  const elapsed = Date.now() - started;
  // The default grace is 1 s: well before the 30 s timeout.
  assert.ok(elapsed >= 900, `ended after ${elapsed} ms, before the grace`);
  assert.ok(elapsed < 5000, `ended after ${elapsed} ms`);
  const [script, child] = await readPids(dir.path, "g1");
  await waitForExit([script, child], {
    timeoutMs: 3000,
    message: "the background child killed",
  });
  await waitForChildrenReaped(before);
  assert.ok(
    logs.some((l) => l.includes("pipes stayed open after it exited")),
    logs.join("\n"),
  );
});

Deno.test("cgi() takes exitGraceMs for the grace after the script's exit", async () => {
  await using dir = await tempDir();
  const { handler } = cgiHarness(
    { timeoutMs: TIMEOUT_MS, killGraceMs: 500, exitGraceMs: 100 },
    dir.path,
  );
  const before = children(Deno.pid);
  const started = Date.now();
  const res = await handler(new Request(BASE + "/cgi-bin/bgout.cgi?g2"));
  assert.equal(await res.text(), "body before exit\n");
  const elapsed = Date.now() - started;
  assert.ok(elapsed < 900, `ended after ${elapsed} ms (grace 100 ms)`);
  const [, child] = await readPids(dir.path, "g2");
  await waitForExit([child], { timeoutMs: 3000, message: "child killed" });
  await waitForChildrenReaped(before);
});

Deno.test("cgi() answers 502 soon when a script exits without output while a child holds stdout", async () => {
  await using dir = await tempDir();
  const { handler } = cgiHarness(
    { timeoutMs: TIMEOUT_MS, killGraceMs: 500, exitGraceMs: 200 },
    dir.path,
  );
  const before = children(Deno.pid);
  const started = Date.now();
  const res = await handler(
    new Request(BASE + "/cgi-bin/bgout.cgi?g3-nohead"),
  );
  await res.body?.cancel();
  assert.equal(res.status, 502);
  assert.ok(Date.now() - started < 5000);
  const [, child] = await readPids(dir.path, "g3");
  await waitForExit([child], { timeoutMs: 3000, message: "child killed" });
  await waitForChildrenReaped(before);
});

Deno.test("cgi() ends the response even when the child holding stdout left the process group", async () => {
  await using dir = await tempDir();
  const { handler } = cgiHarness(
    { timeoutMs: TIMEOUT_MS, killGraceMs: 500, exitGraceMs: 200 },
    dir.path,
  );
  const res = await handler(
    new Request(BASE + "/cgi-bin/bgout.cgi?g4-escape"),
  );
  const started = Date.now();
  const [, child] = await readPids(dir.path, "g4");
  try {
    // The group kill cannot reach it: a silent stdout ends the output.
    assert.equal(await res.text(), "body before exit\n");
    assert.ok(Date.now() - started < 5000);
    assert.ok(await isAlive(child), "the escaped child is out of reach");
  } finally {
    try {
      Deno.kill(child, "SIGKILL");
    } catch {
      // gone
    }
  }
  await waitForExit([child], { timeoutMs: 3000 });
});

Deno.test("runScript() ends a body already buffered in full when the script exits, without the grace", async () => {
  // No background child: the end of stdout ends the body at once.
  const started = Date.now();
  const run = await runScript("/bin/sh", {
    args: ["-c", 'printf "Content-Type: text/plain\\n\\nall"'],
    exitGraceMs: 10_000,
    timeoutMs: TIMEOUT_MS,
  });
  assert.equal(await new Response(run.response.body).text(), "all");
  await run.finished;
  assert.ok(Date.now() - started < 5000);
});

Deno.test("runScript() ends the body only once the script's last stderr line is logged", async () => {
  // stdout and stderr reach the end in no fixed order: a response ended
  // before stderr would end with the run still going (its slot taken, and
  // a shutdown right then would kill a finished script's group).
  using posixSpawn = openPosixSpawn();
  assert.ok(posixSpawn, "FFI is granted to the tests");
  for (let i = 0; i < 100; i++) {
    const logs: string[] = [];
    const run = await runScript("/bin/sh", {
      posixSpawn: i % 2 ? posixSpawn : undefined,
      args: ["-c", 'printf "Content-Type: text/plain\\n\\nok"; echo last >&2'],
      timeoutMs: TIMEOUT_MS,
      log: (level, message) => logs.push(`${level} ${message}`),
    });
    assert.equal(await new Response(run.response.body).text(), "ok");
    // Settled by then: only promise reactions are left, no I/O (which
    // cannot come in while only microtasks run).
    let settled = false;
    run.finished.then(() => settled = true);
    for (let turn = 0; turn < 1000 && !settled; turn++) await null;
    assert.ok(settled, `run ${i}: finished when the body ended`);
    assert.deepEqual(logs, ["warn cgi: stderr: last"], `run ${i}`);
    await run.finished;
  }
});

Deno.test("runScript() ends the body at once while a background child holds only stderr, and kills it after the grace", async () => {
  // `daemon >/dev/null &`: stdout is done when the script exits; the
  // response must not wait for the grace that stderr gets.
  using posixSpawn = openPosixSpawn();
  assert.ok(posixSpawn, "FFI is granted to the tests");
  for (const spawner of [undefined, posixSpawn]) {
    const logs: string[] = [];
    const started = Date.now();
    const run = await runScript("/bin/sh", {
      posixSpawn: spawner,
      args: [
        "-c",
        'printf "Content-Type: text/plain\\n\\nok"; exec >/dev/null; sleep 30 & echo $! >&2',
      ],
      exitGraceMs: 3000,
      killGraceMs: 300,
      timeoutMs: TIMEOUT_MS,
      log: (level, message) => logs.push(`${level} ${message}`),
    });
    assert.equal(await new Response(run.response.body).text(), "ok");
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 1500, `the body ended after ${elapsed} ms`);
    await run.finished;
    const line = logs.find((l) => l.startsWith("warn cgi: stderr: "));
    assert.ok(line, logs.join("\n"));
    await waitForExit([Number(line.split(": ").at(-1))], { timeoutMs: 5000 });
    assert.ok(
      logs.some((l) => l.includes("pipes stayed open")),
      logs.join("\n"),
    );
  }
});

Deno.test("runScript() kills the group when shutdownSignal aborts while the body streams", async () => {
  await using dir = await tempDir();
  const shutdown = new AbortController();
  const logs: string[] = [];
  const before = children(Deno.pid);
  const run = await runScript(
    new URL("./testdata/cgi-bin/stream_bg.cgi", import.meta.url).pathname,
    {
      env: { CGI_TEST_DIR: dir.path, QUERY_STRING: "k1" },
      killGraceMs: 300,
      timeoutMs: TIMEOUT_MS,
      shutdownSignal: shutdown.signal,
      log: (level, message) => logs.push(`${level} ${message}`),
    },
  );
  const reader = run.response.body.getReader();
  assert.equal(new TextDecoder().decode((await reader.read()).value), "tick\n");
  const [script, child] = await readPids(dir.path, "k1");
  shutdown.abort();
  // The body errors (cut off), and only once the group is gone: the child
  // ignores SIGTERM, so that takes the SIGKILL.
  await assert.rejects(async () => {
    while (!(await reader.read()).done) { /* drain */ }
  });
  assert.ok(!(await isAlive(script)), "script gone when the body ended");
  // SIGKILL went to the group before the body ended; the child's exit
  // follows it asynchronously (on a loaded machine, not always by the time
  // /proc is read), far within its 60 s sleep.
  await waitForExit([child], {
    timeoutMs: 3000,
    message: "child killed with the group",
  });
  await run.finished;
  await waitForChildrenReaped(before);
  assert.ok(logs.some((l) => l.includes("shutting down")), logs.join("\n"));
  // A run asked for afterwards is not started.
  await assert.rejects(
    runScript("/bin/true", { shutdownSignal: shutdown.signal }),
    (error: { status?: number }) => error.status === 503,
  );
});
