/**
 * Script processes: {@linkcode spawnInGroup} starts a program in a process
 * group of its own, and {@linkcode killGroup} ends the whole group, so
 * that nothing a script started outlives it.
 *
 * @module
 */

import type { PosixSpawn, SpawnedChild } from "./posix_spawn.ts";

/**
 * Options of {@linkcode spawnInGroup}.
 *
 * @example Feeding a command on stdin
 * ```ts
 * import { spawnInGroup, type SpawnInGroupOptions } from "./process.ts";
 * import assert from "node:assert/strict";
 *
 * const options: SpawnInGroupOptions = { args: ["-c", "tr a-z A-Z"], stdin: true };
 * const child = spawnInGroup("/bin/sh", options);
 * await ReadableStream.from([new TextEncoder().encode("hi")]).pipeTo(child.stdin);
 * child.stderr.cancel();
 * assert.equal(await new Response(child.stdout).text(), "HI");
 * await child.status;
 * ```
 */
export interface SpawnInGroupOptions {
  /**
   * Arguments after the program name. Never derived from the request.
   * @default {[]}
   */
  args?: string[];
  /**
   * The working directory.
   * @default {undefined} (the server's)
   */
  cwd?: string;
  /**
   * The complete environment: the server's own environment is never
   * inherited (`clearEnv`).
   * @default {{}}
   */
  env?: Record<string, string>;
  /**
   * Pipe stdin (`true`) or connect it to `/dev/null` (`false`).
   * @default {false}
   */
  stdin?: boolean;
  /**
   * Start the program through this `setsid(1)` (see {@linkcode findSetsid})
   * instead of Deno's `detached`: Deno then spawns with `posix_spawn`
   * rather than `fork`, which is ~1.6× faster one at a time and ~13× under
   * 8 concurrent spawns (a fork copies the whole server). The program is
   * resolved first (on `env.PATH`); one not found (or not readable under
   * `--allow-read`) is left to `detached`, which throws `NotFound` for a
   * missing one.
   * @default {undefined} (`detached`)
   */
  setsid?: string;
  /**
   * Spawn with this `posix_spawn` (see `openPosixSpawn()` in
   * `posix_spawn.ts`): the child leads a session of its own with one exec
   * (`setsid(1)` costs a second one). Used for a program
   * `--allow-run` covers, with no `LD_*` or `DYLD_*` variable (Deno lets
   * those through only under all of `--allow-run`); else `setsid`.
   * @default {undefined} (`setsid`, else `detached`)
   */
  posixSpawn?: PosixSpawn;
}

/**
 * The `setsid(1)` program (util-linux) when it exists and may be run, else
 * `undefined` (then {@linkcode spawnInGroup} uses `detached`).
 *
 * @example Finding setsid
 * ```ts
 * import { findSetsid } from "./process.ts";
 *
 * const setsid = findSetsid(); // "/usr/bin/setsid" on Debian
 * console.log(setsid ?? "detached spawns");
 * ```
 *
 * @returns Its path, or `undefined`.
 */
export function findSetsid(): string | undefined {
  if (Deno.build.os !== "linux") return undefined;
  for (const path of ["/usr/bin/setsid", "/bin/setsid"]) {
    try {
      const run = Deno.permissions.querySync({ name: "run", command: path });
      if (run.state === "granted" && Deno.statSync(path).isFile) return path;
    } catch {
      // not there, or not readable: try the next one
    }
  }
  return undefined;
}

/** `program` as an existing file (itself when it has a `/`, else found on `path`), or undefined. */
function _resolve(
  program: string,
  path: string | undefined,
): string | undefined {
  const candidates = program.includes("/")
    ? [program]
    : (path ?? "").split(":").filter((d) => d !== "").map((d) =>
      `${d}/${program}`
    );
  for (const candidate of candidates) {
    try {
      if (Deno.statSync(candidate).isFile) return candidate;
    } catch {
      // not here
    }
  }
  // Not found, or not readable here: Deno.Command looks (and says why).
  return undefined;
}

/**
 * Spawns `program` as the leader of a new process group (through
 * `posixSpawn`, `setsid` or `detached`, the first given), with piped
 * stdout and stderr and a cleared environment. The group id is the
 * child's pid, so `killGroup(child, …)` reaches its descendants too.
 * Throws what `Deno.Command#spawn` throws (e.g. `NotFound`,
 * `PermissionDenied`, `NotCapable`).
 *
 * @example Running a command and reading its output
 * ```ts
 * import { spawnInGroup } from "./process.ts";
 * import assert from "node:assert/strict";
 *
 * const child = spawnInGroup("/bin/sh", {
 *   args: ["-c", "echo $GREETING"],
 *   env: { GREETING: "hi" },
 * });
 * child.stderr.cancel();
 * assert.equal(await new Response(child.stdout).text(), "hi\n");
 * assert.equal((await child.status).code, 0);
 * ```
 *
 * @param program The executable (absolute path, or a name looked up in the
 *   server's `PATH`).
 * @param options Arguments, cwd, environment and stdin mode.
 * @returns The child process.
 */
export function spawnInGroup(
  program: string,
  options: SpawnInGroupOptions = {},
): SpawnedChild {
  const { args = [], cwd, env = {}, stdin = false, setsid, posixSpawn } =
    options;
  const io = {
    cwd,
    env,
    clearEnv: true,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  } as const;
  // The fast routes only where --allow-run covers the program itself
  // (else Deno.Command below refuses it, as it should).
  const resolved = posixSpawn || setsid !== undefined
    ? _resolve(program, env.PATH)
    : undefined;
  const fast = resolved !== undefined && _mayRun(resolved);
  // posix_spawn also skips Deno's check of the environment (a non-empty
  // LD_* or DYLD_* variable needs all of --allow-run): such a spawn goes
  // through Deno.Command, which decides.
  if (fast && posixSpawn && !_loaderVariables(env)) {
    return posixSpawn.spawn({
      path: resolved,
      argv: [program, ...args],
      cwd,
      env,
      stdin,
    });
  }
  if (fast && setsid !== undefined) {
    // Not a group leader (posix_spawn keeps the server's group), so
    // setsid(1) calls setsid() and execs the program under the same pid.
    return new Deno.Command(setsid, {
      ...io,
      args: ["--", resolved, ...args],
    }).spawn();
  }
  return new Deno.Command(program, { ...io, args, detached: true }).spawn();
}

/** `--allow-run` covers `program` (without asking). */
function _mayRun(program: string): boolean {
  return Deno.permissions.querySync({ name: "run", command: program })
    .state === "granted";
}

/** `env` sets a dynamic-loader variable, as Deno's check sees one. */
function _loaderVariables(env: Record<string, string>): boolean {
  for (const name in env) {
    if (
      (name.startsWith("LD_") || name.startsWith("DYLD_")) && env[name] !== ""
    ) return true;
  }
  return false;
}

/**
 * Sends `signal` to the process group led by `pid`. Returns false when the
 * group no longer exists.
 */
function _signalGroup(pid: number, signal: Deno.Signal): boolean {
  try {
    Deno.kill(-pid, signal);
    return true;
  } catch (error) {
    // No such group yet: a child started through setsid(1) that has not
    // called setsid() — it has no children either, so the pid is all.
    if (error instanceof Deno.errors.NotFound) return _signalPid(pid, signal);
    // ESRCH surfaces as NotFound; EPERM once the group is gone and the id reused.
    if (error instanceof Deno.errors.PermissionDenied) return false;
    throw error;
  }
}

function _signalPid(pid: number, signal: Deno.Signal): boolean {
  try {
    Deno.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Ends the process group of `child`: SIGTERM to the group, then, once the
 * child exited or `graceMs` passed, SIGKILL to whatever is left of the
 * group (grandchildren that ignore SIGTERM included). Resolves when the
 * child was reaped.
 *
 * @example Killing a script and its background job
 * ```ts
 * import { killGroup, spawnInGroup } from "./process.ts";
 * import assert from "node:assert/strict";
 *
 * const child = spawnInGroup("/bin/sh", { args: ["-c", "sleep 30 & sleep 30"] });
 * await killGroup(child, 1000);
 * assert.equal((await child.status).signal, "SIGTERM");
 * await child.stdout.cancel();
 * await child.stderr.cancel();
 * ```
 *
 * @param child A child started by {@linkcode spawnInGroup}.
 * @param graceMs How long to wait between SIGTERM and SIGKILL.
 */
export async function killGroup(
  child: SpawnedChild,
  graceMs = 2000,
): Promise<void> {
  let exited = false;
  const status = child.status.then(() => {
    exited = true;
  });
  _signalGroup(child.pid, "SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    status,
    new Promise<void>((resolve) => timer = setTimeout(resolve, graceMs)),
  ]);
  clearTimeout(timer);
  // The group outlives its leader while any member lives: kill the rest.
  _signalGroup(child.pid, "SIGKILL");
  if (!exited) await status;
}
