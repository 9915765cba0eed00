// Spawning scripts with posix_spawn + POSIX_SPAWN_SETSID through FFI (cgi/posix_spawn.ts),
// and the fallbacks when FFI or the program is not allowed.
import assert from "node:assert/strict";
import {
  openPosixSpawn,
  type PosixSpawn,
  reapOrphans,
} from "../cgi/posix_spawn.ts";
import { killGroup, spawnInGroup } from "../cgi/process.ts";
import { tempDir } from "./_helpers/fs.ts";
import { isAlive, processState, waitForExit } from "./_helpers/process.ts";
import { waitFor } from "./_helpers/poll.ts";

const PATH = "/usr/bin:/bin";

function spawner(): PosixSpawn {
  const found = openPosixSpawn();
  assert.ok(found, "glibc and FFI are there (tests run with --allow-all)");
  return found;
}

/** This process's open descriptors. */
function openFds(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

/** The fields of /proc/<pid>/stat after the command name. */
function statFields(text: string): string[] {
  return text.slice(text.lastIndexOf(")") + 2).trim().split(" ");
}

Deno.test("openPosixSpawn() starts the script as the leader of a session of its own, with signals at their defaults", async () => {
  using posixSpawn = spawner();
  const child = spawnInGroup("sh", {
    args: [
      "-c",
      // exec: sh blocks signals while it waits for a child.
      "cat /proc/$$/stat; exec grep -E '^Sig(Ign|Blk)' /proc/self/status",
    ],
    env: { PATH },
    posixSpawn: posixSpawn,
  });
  await child.stderr.cancel();
  const [stat, blocked, ignored] = (await new Response(child.stdout).text())
    .split("\n");
  const [, ppid, group, session] = statFields(stat!);
  assert.equal(ppid, String(Deno.pid), "a child of this process");
  assert.equal(group, String(child.pid), "its own group, led by its pid");
  assert.equal(session, String(child.pid), "and its own session");
  // Deno ignores SIGPIPE, and an ignored signal survives exec.
  const own = Deno.readTextFileSync("/proc/self/status");
  assert.match(
    own,
    /SigIgn:\s*[0-9a-f]*1[0-9a-f]{3}\n/,
    "Deno ignores SIGPIPE",
  );
  const sigpipe = 1n << 12n;
  assert.equal(BigInt(`0x${ignored!.split(/\s+/)[1]}`) & sigpipe, 0n);
  assert.equal(blocked, "SigBlk:\t0000000000000000");
  assert.deepEqual(await child.status, {
    success: true,
    code: 0,
    signal: null,
  });
});

Deno.test("openPosixSpawn() gives the script exactly its environment, working directory and argv", async () => {
  using posixSpawn = spawner();
  await using dir = await tempDir();
  const child = posixSpawn.spawn({
    path: "/bin/sh",
    argv: [
      "script-name",
      "-c",
      "env; pwd; echo \"$0|$1|$2|$3\"; tr '\\0' '|' < /proc/$$/cmdline; echo",
      "zero",
      "",
      "a b",
      "ünï",
    ],
    cwd: dir.path,
    env: { PATH, GREETING: "hé llo", EMPTY: "" },
    stdin: false,
  });
  await child.stderr.cancel();
  const lines = (await new Response(child.stdout).text()).trim().split("\n");
  const env = lines.slice(0, -3).filter((l) => !/^(PWD|SHLVL|_)=/.test(l));
  assert.deepEqual(env.sort(), ["EMPTY=", "GREETING=hé llo", `PATH=${PATH}`]);
  assert.equal(lines.at(-3), Deno.realPathSync(dir.path));
  assert.equal(lines.at(-2), "zero||a b|ünï");
  assert.match(lines.at(-1)!, /^script-name\|-c\|env; /, "argv[0] as given");
  assert.equal((await child.status).code, 0);
  assert.throws(() => child.stdin, TypeError, "stdin was not piped");
});

Deno.test("openPosixSpawn() refuses a NUL byte in argv or the environment, opening nothing", () => {
  using posixSpawn = spawner();
  const before = openFds();
  for (
    const [argv, env] of [
      [["sh", "-c", "true\0rm -rf /"], {}],
      [["sh", "-c", "true"], { A: "1", B: "x\0y" }],
      [["sh", "-c", "true"], { "A\0B": "1" }],
    ] as const
  ) {
    assert.throws(
      () =>
        posixSpawn.spawn({
          path: "/bin/sh",
          argv: [...argv],
          env,
          stdin: false,
        }),
      TypeError,
      "NUL",
    );
  }
  assert.equal(openFds(), before);
});

Deno.test("openPosixSpawn() pipes 4 MiB through the script both ways with backpressure", async () => {
  using posixSpawn = spawner();
  const child = spawnInGroup("/bin/cat", {
    stdin: true,
    posixSpawn: posixSpawn,
  });
  const size = 4 * 1048576;
  const input = new Uint8Array(size);
  for (let i = 0; i < size; i++) input[i] = (i * 7) & 0xff;
  const chunks = Array.from(
    { length: 64 },
    (_, i) => input.subarray(i * 65536, (i + 1) * 65536),
  );
  const [, output] = await Promise.all([
    ReadableStream.from(chunks).pipeTo(child.stdin),
    new Response(child.stdout).bytes(),
    child.stderr.cancel(),
  ]);
  assert.equal(output.length, size);
  assert.deepEqual(output, input);
  assert.equal((await child.status).code, 0);
});

Deno.test("openPosixSpawn() reports exit codes and signals as Deno.Command does", async () => {
  using posixSpawn = spawner();
  const run = async (script: string) => {
    const child = posixSpawn.spawn({
      path: "/bin/sh",
      argv: ["sh", "-c", script],
      env: {},
      stdin: false,
    });
    await child.stdout.cancel();
    await child.stderr.cancel();
    return child.status;
  };
  assert.deepEqual(await run("exit 3"), {
    success: false,
    code: 3,
    signal: null,
  });
  assert.deepEqual(await run("kill -TERM $$"), {
    success: false,
    code: 143,
    signal: "SIGTERM",
  });
  assert.deepEqual(await run("kill -KILL $$"), {
    success: false,
    code: 137,
    signal: "SIGKILL",
  });
  // Every signal that ends a shell by default, named as Deno names it
  // (6 is SIGABRT, not its alias SIGIOT; 29 SIGIO, not SIGPOLL).
  // By number: dash's kill knows no SIGSTKFLT. Not the ones that stop,
  // or that a shell ignores by default.
  const ignored = [17, 18, 19, 20, 21, 22, 23, 28];
  for (let signal = 1; signal <= 31; signal++) {
    if (ignored.includes(signal)) continue;
    const script = `kill -${signal} $$`;
    const expected = await new Deno.Command("/bin/sh", {
      args: ["-c", script],
      stdout: "null",
      stderr: "null",
    }).spawn().status;
    assert.deepEqual(await run(script), { ...expected }, `signal ${signal}`);
  }
});

Deno.test("openPosixSpawn() runs an executable without a #! line through /bin/sh, as Deno.Command does", async () => {
  using posixSpawn = spawner();
  await using dir = await tempDir();
  const script = `${dir.path}/plain.cgi`;
  await Deno.writeTextFile(script, 'echo "args: $0 $1 $2"\n');
  await Deno.chmod(script, 0o755);
  const child = posixSpawn.spawn({
    path: script,
    argv: [script, "one", "two"],
    env: { PATH },
    stdin: false,
  });
  const [out, err, status] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.status,
  ]);
  const expected = await new Deno.Command(script, { args: ["one", "two"] })
    .output();
  assert.equal(out, new TextDecoder().decode(expected.stdout));
  assert.equal(out, `args: ${script} one two\n`);
  assert.equal(err, "");
  assert.equal(status.code, 0);
});

Deno.test("openPosixSpawn() reaps 40 long scripts at once without holding Deno's blocking threads", async () => {
  // A waitpid on one of Deno's 32 blocking threads per running script
  // would leave none for file-system calls (and for the 33rd exit).
  using posixSpawn = spawner();
  await using dir = await tempDir();
  const children = Array.from({ length: 40 }, () =>
    posixSpawn.spawn({
      path: "/bin/sh",
      argv: ["sh", "-c", "read line; exit 7"],
      env: {},
      stdin: true,
    }));
  const statuses = children.map((child) => child.status);
  for (const child of children) {
    child.stdout.cancel();
    child.stderr.cancel();
  }
  // While every script waits for input: async file-system calls (on the
  // blocking threads) still finish.
  const file = `${dir.path}/f`;
  await Deno.writeTextFile(file, "still served");
  const read = await Promise.race([
    Deno.readTextFile(file),
    new Promise((resolve) => setTimeout(() => resolve("stalled"), 5000)),
  ]);
  assert.equal(read, "still served");
  // Each exits once told, and each exit is reported.
  await Promise.all(children.map(async (child) => {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode("go\n"));
    await writer.close();
  }));
  for (const status of await Promise.all(statuses)) {
    assert.deepEqual(status, { success: false, code: 7, signal: null });
  }
});

Deno.test("openPosixSpawn() reports an exit at once, not at the 250 ms backstop", async () => {
  using posixSpawn = spawner();
  const delays: number[] = [];
  for (let i = 0; i < 21; i++) {
    const child = posixSpawn.spawn({
      path: "/bin/true",
      argv: ["true"],
      env: {},
      stdin: false,
    });
    await Promise.all([
      new Response(child.stdout).arrayBuffer(),
      new Response(child.stderr).arrayBuffer(),
    ]);
    const eof = performance.now();
    await child.status;
    delays.push(performance.now() - eof);
  }
  delays.sort((a, b) => a - b);
  const median = delays[10]!;
  assert.ok(median < 50, `median ${median.toFixed(1)} ms after the pipes' end`);
});

Deno.test("reapOrphans() reaps what a terminated Worker's posix_spawn left", async () => {
  const worker = new Worker(
    new URL("./testdata/posix_spawn_worker.ts", import.meta.url),
    { type: "module" },
  );
  const pid = await new Promise<number>((resolve, reject) => {
    worker.onmessage = (event) => resolve(event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      reject(new Error(event.message));
    };
  });
  worker.terminate();
  Deno.kill(-pid, "SIGKILL");
  // Its reaper went with the isolate: a zombie, until someone waits.
  await waitFor(async () => await processState(pid) === "Z", {
    message: `process ${pid} a zombie`,
  });
  reapOrphans([pid]);
  await waitFor(async () => await processState(pid) === undefined, {
    message: `process ${pid} reaped`,
  });
});

Deno.test("openPosixSpawn() refuses to spawn once closed, and still reaps what it spawned", async () => {
  const posixSpawn = spawner();
  const child = posixSpawn.spawn({
    path: "/bin/sh",
    argv: ["sh", "-c", "read line; exit 4"],
    env: {},
    stdin: true,
  });
  posixSpawn.close();
  assert.throws(
    () =>
      posixSpawn.spawn({
        path: "/bin/true",
        argv: ["true"],
        env: {},
        stdin: false,
      }),
    TypeError,
  );
  await child.stdout.cancel();
  await child.stderr.cancel();
  await child.stdin.close();
  assert.deepEqual(await child.status, {
    success: false,
    code: 4,
    signal: null,
  });
});

Deno.test("openPosixSpawn() throws NotFound and PermissionDenied and leaks no descriptor", async () => {
  using posixSpawn = spawner();
  await using dir = await tempDir();
  const plain = `${dir.path}/not-executable`;
  await Deno.writeTextFile(plain, "#!/bin/sh\necho hi\n", { mode: 0o644 });
  const before = openFds();
  for (let i = 0; i < 20; i++) {
    assert.throws(
      () =>
        posixSpawn.spawn({
          path: `${dir.path}/missing`,
          argv: ["missing"],
          env: {},
          stdin: true,
        }),
      Deno.errors.NotFound,
    );
    assert.throws(
      () =>
        posixSpawn.spawn({
          path: plain,
          argv: ["x"],
          env: {},
          stdin: false,
        }),
      Deno.errors.PermissionDenied,
    );
    assert.throws(
      () =>
        posixSpawn.spawn({
          path: "/bin/true",
          argv: ["true"],
          cwd: `${dir.path}/no-such-dir`,
          env: {},
          stdin: false,
        }),
      Deno.errors.NotFound,
    );
  }
  assert.throws(
    () =>
      posixSpawn.spawn({
        path: "/bin/true",
        argv: ["true"],
        env: { A: "x\0y" },
        stdin: false,
      }),
    TypeError,
  );
  assert.equal(openFds(), before);
});

Deno.test("killGroup() ends a posix-spawned script and a grandchild that ignores SIGTERM", async () => {
  using posixSpawn = spawner();
  const child = spawnInGroup("/bin/sh", {
    args: ["-c", "trap '' TERM; (trap '' TERM; exec sleep 30) & echo $!; wait"],
    posixSpawn: posixSpawn,
  });
  const reader = child.stdout.getReader();
  const grandchild = Number(
    new TextDecoder().decode((await reader.read()).value).trim(),
  );
  assert.ok(await isAlive(grandchild));
  await killGroup(child, 300);
  await waitForExit([grandchild], { timeoutMs: 3000 });
  assert.equal((await child.status).signal, "SIGKILL");
  reader.releaseLock();
  await child.stdout.cancel();
  await child.stderr.cancel();
});

Deno.test("openPosixSpawn() closes a pipe on cancel while a process outside the group still holds it", async () => {
  using posixSpawn = spawner();
  const before = openFds();
  // The grandchild leaves the group (a session of its own) and keeps
  // stdout and stderr open: reads must still be abandonable.
  const child = spawnInGroup("/bin/sh", {
    args: ["-c", "setsid sleep 30 & echo $!"],
    env: { PATH },
    posixSpawn: posixSpawn,
  });
  const reader = child.stdout.getReader();
  const escaped = Number(
    new TextDecoder().decode((await reader.read()).value).trim(),
  );
  assert.equal((await child.status).code, 0);
  const pending = reader.read();
  await reader.cancel();
  assert.equal((await pending).done, true);
  await child.stderr.cancel();
  await waitFor(() => openFds() === before, { message: "pipes closed" });
  Deno.kill(escaped, "SIGKILL");
  await waitForExit([escaped], { timeoutMs: 3000 });
});

Deno.test("spawnInGroup() falls back to setsid(1) without FFI, and posix_spawn never runs what Deno.Command would refuse", async () => {
  const fixture = new URL(
    "./testdata/posix_spawn_fallback.ts",
    import.meta.url,
  );
  const run = (permissions: string[]) => _runFixture(fixture, permissions);
  // No FFI: no spawner, and setsid(1) still gives the script its group.
  assert.deepEqual(await run(["--allow-read", "--allow-run"]), {
    spawner: false,
    route: "Deno.Command",
    group: "own",
    scoped: "ran",
    preload: "ran",
  });
  // FFI scoped to the C library, as `deno task start` grants it (Deno's
  // UnsafePointer API would need it unscoped): the spawner works.
  assert.deepEqual(await run(["--allow-read", "--allow-run", START_FFI]), {
    spawner: true,
    route: "posix_spawn",
    group: "own",
    scoped: "ran",
    preload: "ran",
  });
  // FFI and --allow-run, but no read on /bin: the program cannot be
  // looked up, so Deno.Command spawns it (detached), as without a spawner.
  assert.deepEqual(
    await run(["--allow-read=/tmp", "--allow-run", START_FFI]),
    {
      spawner: true,
      route: "Deno.Command",
      group: "own",
      scoped: "ran",
      preload: "ran",
    },
  );
  // FFI, but --allow-run only for sh: posix_spawn for sh, and a program it
  // does not cover, or an LD_* variable, refused as Deno refuses them (the
  // spawn goes through Deno.Command), not spawned behind its back.
  assert.deepEqual(
    await run([
      "--allow-read",
      START_FFI,
      "--allow-run=/bin/sh,/usr/bin/setsid",
    ]),
    {
      spawner: true,
      route: "posix_spawn",
      group: "own",
      scoped: "NotCapable",
      preload: "NotCapable",
    },
  );
  // --allow-run with a --deny-run: what Deno refuses (the denied program;
  // LD_* variables, which need all of --allow-run) is refused the same.
  assert.deepEqual(
    await run([
      "--allow-read",
      START_FFI,
      "--allow-run",
      "--deny-run=/bin/true",
    ]),
    {
      spawner: true,
      route: "posix_spawn",
      group: "own",
      scoped: "NotCapable",
      preload: "NotCapable",
    },
  );
});

Deno.test("openPosixSpawn() reports a pipe it cannot open with the system's reason and closes the ones it opened", async () => {
  // Out of descriptors (a limit of 64) two short of a script's pipes.
  const fixture = new URL("./testdata/posix_spawn_emfile.ts", import.meta.url);
  const { code, stdout, stderr } = await new Deno.Command("/bin/sh", {
    args: [
      "-c",
      'ulimit -n 64 && exec "$0" run --no-lock --allow-read "$1" "$2"',
      Deno.execPath(),
      START_FFI,
      fixture.href,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout);
  assert.equal(code, 0, new TextDecoder().decode(stderr) + text);
  assert.deepEqual(JSON.parse(text), {
    error: "Error",
    message: "Failed to pipe2 '/bin/true': Too many open files (os error 24)",
    leaked: 0,
  });
});

/** `--allow-ffi=…` of `deno task start`: the C library's usual paths. */
const START_FFI = JSON.parse(
  Deno.readTextFileSync(new URL("../deno.json", import.meta.url)),
).tasks.start.split(" ").find((arg: string) => arg.startsWith("--allow-ffi="));

async function _runFixture(fixture: URL, permissions: string[]) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-lock", ...permissions, fixture.href],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout);
  assert.equal(code, 0, new TextDecoder().decode(stderr) + text);
  return JSON.parse(text);
}
