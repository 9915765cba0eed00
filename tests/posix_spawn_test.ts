// Spawning scripts with posix_spawn + POSIX_SPAWN_SETSID through FFI (cgi/posix_spawn.ts),
// and the fallbacks when FFI or the program is not allowed.
import assert from "node:assert/strict";
import { openPosixSpawn, type PosixSpawn } from "../cgi/posix_spawn.ts";
import { killGroup, spawnInGroup } from "../cgi/process.ts";
import { tempDir } from "./_helpers/fs.ts";
import { isAlive, waitForExit } from "./_helpers/process.ts";
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
      "env; pwd; echo \"$0|$1\"; tr '\\0' '|' < /proc/$$/cmdline; echo",
      "zero",
      "a b",
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
  assert.equal(lines.at(-2), "zero|a b");
  assert.match(lines.at(-1)!, /^script-name\|-c\|env; /, "argv[0] as given");
  assert.equal((await child.status).code, 0);
  assert.throws(() => child.stdin, TypeError, "stdin was not piped");
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

Deno.test("spawnInGroup() falls back to setsid(1) without FFI, and posix_spawn never runs what --allow-run denies", async () => {
  const fixture = new URL(
    "./testdata/posix_spawn_fallback.ts",
    import.meta.url,
  );
  const run = (permissions: string[]) => _runFixture(fixture, permissions);
  // No FFI: no spawner, and setsid(1) still gives the script its group.
  assert.deepEqual(await run(["--allow-read", "--allow-run"]), {
    spawner: false,
    group: "own",
    scoped: "ran",
  });
  // FFI scoped to the C library, as `deno task start` grants it (Deno's
  // UnsafePointer API would need it unscoped): the spawner works.
  assert.deepEqual(await run(["--allow-read", "--allow-run", START_FFI]), {
    spawner: true,
    group: "own",
    scoped: "ran",
  });
  // FFI, but --allow-run only for sh: a program it does not cover is
  // refused as Deno.Command refuses it, not spawned behind its back.
  assert.deepEqual(
    await run([
      "--allow-read",
      START_FFI,
      "--allow-run=/bin/sh,/usr/bin/setsid",
    ]),
    { spawner: true, group: "own", scoped: "NotCapable" },
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
