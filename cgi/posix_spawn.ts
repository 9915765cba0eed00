/**
 * Spawning with glibc's `posix_spawn` and `POSIX_SPAWN_SETSID`: one exec,
 * and the child leads a session (so a process group) of its own from its
 * first instruction.
 *
 * Deno's `Command` gives a child a group of its own only with `detached`,
 * which makes it fork the whole server; starting the program through
 * `setsid(1)` instead costs a second exec of a dynamically linked program
 * (~0.8 ms a script on the 2-core machine of `bench/RESULTS.md`). This
 * does what `setsid(1)` does in the spawn itself (the CGI hello's gain is
 * in `bench/RESULTS.md`).
 *
 * It needs FFI on the C library (see `server/libc.ts`); without it,
 * {@linkcode openPosixSpawn} gives `undefined` and `spawnInGroup` falls back
 * to `setsid(1)`. The pipes are read and written through `node:net` (see
 * `fd_stream.ts`). Exits are reaped without a thread each: on every SIGCHLD
 * (and, in case one is missed, every 250 ms) `waitpid(pid, WNOHANG)` for
 * each child still running, so a thousand long scripts pin no thread of
 * Deno's pool (a blocking `waitpid` would hold one of its 32 each).
 *
 * A program without a `#!` line (ENOEXEC) is run by `/bin/sh`, as `execvp`
 * and so `Deno.Command` do.
 *
 * @module
 */

import { openLibc } from "../server/libc.ts";
import { fdReadable, fdWritable } from "./fd_stream.ts";

/**
 * A child process: what `spawnInGroup` gives, `Deno.ChildProcess` or one
 * spawned by {@linkcode PosixSpawn}.
 *
 * @example Reading a child's output
 * ```ts
 * import type { SpawnedChild } from "./posix_spawn.ts";
 * import assert from "node:assert/strict";
 *
 * const child: SpawnedChild = new Deno.Command("echo", {
 *   args: ["hi"],
 *   stdout: "piped",
 *   stderr: "piped",
 * }).spawn();
 * await child.stderr.cancel();
 * assert.equal(await new Response(child.stdout).text(), "hi\n");
 * assert.equal((await child.status).success, true);
 * ```
 */
export interface SpawnedChild {
  /** The process id (also its group id, for a group leader). */
  readonly pid: number;
  /** Its stdin (throws when it was not piped). */
  readonly stdin: WritableStream<Uint8Array>;
  /** Its stdout. */
  readonly stdout: ReadableStream<Uint8Array>;
  /** Its stderr. */
  readonly stderr: ReadableStream<Uint8Array>;
  /** Settles once it exited (it is reaped then). */
  readonly status: Promise<Deno.CommandStatus>;
}

/** What {@linkcode PosixSpawn.spawn} is told. */
export interface PosixSpawnRequest {
  /** The executable, as an absolute (or cwd-relative) path. */
  path: string;
  /** `argv`, `argv[0]` included. */
  argv: string[];
  /** The working directory, else the server's. */
  cwd?: string;
  /** The complete environment. */
  env: Record<string, string>;
  /** Pipe stdin, else `/dev/null`. */
  stdin: boolean;
}

/**
 * Spawns children that lead a session of their own (see
 * {@linkcode openPosixSpawn}).
 */
export interface PosixSpawn extends Disposable {
  /**
   * Starts `path` with stdout and stderr piped (stdin piped or
   * `/dev/null`), in a new session, with signals at their defaults and
   * none blocked. Throws `NotFound`, `PermissionDenied` or an `Error` with
   * the system's reason when it cannot start.
   */
  spawn(request: PosixSpawnRequest): SpawnedChild;
  /**
   * Refuses further spawns; once the children it spawned are reaped (they
   * are not affected), stops listening for SIGCHLD and closes the C
   * library.
   */
  close(): void;
  /** The same as `close()`. */
  [Symbol.dispose](): void;
}

const _SYMBOLS = {
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  // Addresses as numbers, and reads through them, without Deno's
  // UnsafePointer API: that needs --allow-ffi unscoped, and `deno task
  // start` grants it only for the C library's path.
  __errno_location: { parameters: [], result: "usize" },
  // memcpy(buffer, buffer, 0) returns the buffer's address.
  _address_of: {
    name: "memcpy",
    parameters: ["buffer", "buffer", "usize"],
    result: "usize",
  },
  _read_at: {
    name: "memcpy",
    parameters: ["buffer", "usize", "usize"],
    result: "usize",
  },
  posix_spawn: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_adddup2: {
    parameters: ["buffer", "i32", "i32"],
    result: "i32",
  },
  posix_spawn_file_actions_addopen: {
    parameters: ["buffer", "i32", "buffer", "i32", "u32"],
    result: "i32",
  },
  // glibc 2.29 and later.
  posix_spawn_file_actions_addchdir_np: {
    parameters: ["buffer", "buffer"],
    result: "i32",
  },
  posix_spawnattr_init: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_setflags: { parameters: ["buffer", "i16"], result: "i32" },
  posix_spawnattr_setsigmask: {
    parameters: ["buffer", "buffer"],
    result: "i32",
  },
  posix_spawnattr_setsigdefault: {
    parameters: ["buffer", "buffer"],
    result: "i32",
  },
  sigemptyset: { parameters: ["buffer"], result: "i32" },
  sigaddset: { parameters: ["buffer", "i32"], result: "i32" },
  // Only with WNOHANG: it never blocks.
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
} as const;

type _Libc = Deno.DynamicLibrary<typeof _SYMBOLS>["symbols"];

const _SETSIGDEF = 0x04;
const _SETSIGMASK = 0x08;
const _SETSID = 0x80; // glibc 2.26 and later
const _O_CLOEXEC = 0o2000000; // x86-64 and arm64
const _SIGPIPE = 13;
const _WNOHANG = 1;
const _EINTR = 4;
const _ENOEXEC = 8;
/** The backstop for a missed SIGCHLD (signals coalesce; none should be). */
const _REAP_POLL_MS = 250;
// glibc's posix_spawn_file_actions_t is 80 bytes, posix_spawnattr_t 336 and
// sigset_t 128 on x86-64 and arm64: room to spare.
const _OPAQUE_BYTES = 1024;

/** Errors Deno names, by errno. */
const _ERRNO: Record<number, [new (message: string) => Error, string]> = {
  1: [Deno.errors.PermissionDenied, "Operation not permitted"],
  2: [Deno.errors.NotFound, "No such file or directory"],
  13: [Deno.errors.PermissionDenied, "Permission denied"],
};

const _REASONS: Record<number, string> = {
  7: "Argument list too long",
  8: "Exec format error",
  11: "Resource temporarily unavailable",
  12: "Cannot allocate memory",
  20: "Not a directory",
  23: "Too many open files in system",
  24: "Too many open files",
  26: "Text file busy",
  40: "Too many levels of symbolic links",
};

/**
 * glibc's `posix_spawn` with `POSIX_SPAWN_SETSID`, when this is Linux with
 * glibc 2.29 or later and FFI on the C library is granted; else
 * `undefined`. Open it once (a factory's setup), not per spawn.
 *
 * @example Running a command in a session of its own
 * ```ts
 * import { openPosixSpawn } from "./posix_spawn.ts";
 * import assert from "node:assert/strict";
 *
 * using spawner = openPosixSpawn();
 * if (spawner) {
 *   const child = spawner.spawn({
 *     path: "/bin/sh",
 *     argv: ["sh", "-c", "ps -o pgid= -p $$"],
 *     env: { PATH: "/usr/bin:/bin" },
 *     stdin: false,
 *   });
 *   await child.stderr.cancel();
 *   const pgid = Number(await new Response(child.stdout).text());
 *   assert.equal(pgid, child.pid); // it leads its own group
 *   assert.equal((await child.status).code, 0);
 * }
 * ```
 *
 * @returns The spawner, or `undefined`.
 */
export function openPosixSpawn(): PosixSpawn | undefined {
  const lib = openLibc(_SYMBOLS);
  if (lib === undefined) return undefined;
  const libc = lib.symbols;
  // The same for every spawn: a new session, SIGPIPE back to its default
  // (Deno ignores it, and ignored signals survive exec), nothing blocked.
  const attr = new Uint8Array(_OPAQUE_BYTES);
  const none = new Uint8Array(_OPAQUE_BYTES);
  const pipe = new Uint8Array(_OPAQUE_BYTES);
  if (
    libc.posix_spawnattr_init(attr) !== 0 ||
    libc.sigemptyset(none) !== 0 || libc.sigemptyset(pipe) !== 0 ||
    libc.sigaddset(pipe, _SIGPIPE) !== 0 ||
    libc.posix_spawnattr_setsigmask(attr, none) !== 0 ||
    libc.posix_spawnattr_setsigdefault(attr, pipe) !== 0 ||
    libc.posix_spawnattr_setflags(attr, _SETSID | _SETSIGDEF | _SETSIGMASK) !==
      0
  ) {
    lib.close();
    return undefined;
  }
  const devNull = _cString("/dev/null");
  const reaper = _reaper(libc);
  // What C holds pointers to during a spawn (a GC must not free it).
  const pinned: unknown[] = [];
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    // Once the children it spawned are reaped (that needs waitpid).
    reaper.whenIdle(() => lib.close());
  };
  return {
    spawn: function spawn(request) {
      if (closed) throw new TypeError("Cannot spawn: the spawner is closed");
      const spawned = _spawn(libc, attr, devNull, reaper, pinned, request);
      if (typeof spawned !== "number") return spawned;
      if (spawned !== _ENOEXEC) throw _error(spawned, request.path, "spawn");
      // No #! line: the shell runs it, as execvp does.
      const retried = _spawn(libc, attr, devNull, reaper, pinned, {
        ...request,
        path: "/bin/sh",
        argv: ["/bin/sh", request.path, ...request.argv.slice(1)],
      });
      if (typeof retried !== "number") return retried;
      throw _error(retried, request.path, "spawn");
    },
    close: function closeSpawner() {
      close();
    },
    [Symbol.dispose]: function dispose() {
      close();
    },
  };
}

/**
 * Reaps `pids`, children of this process that another isolate spawned and
 * can no longer reap (a terminated Worker's, just killed): polls
 * `waitpid(pid, WNOHANG)` every 100 ms for up to 10 s. Deno reaps the
 * children `Deno.Command` spawned itself; for those this finds nothing
 * or takes the status first, which is no harm once their isolate is gone.
 * Without FFI on the C library it does nothing (nor could such an isolate
 * have used `posix_spawn`).
 *
 * @example Reaping what a terminated Worker left
 * ```ts ignore
 * import { reapOrphans } from "./posix_spawn.ts";
 *
 * reapOrphans([pid]);
 * ```
 *
 * @param pids The processes, already told to exit.
 */
export function reapOrphans(pids: readonly number[]): void {
  if (pids.length === 0) return;
  const lib = openLibc({ waitpid: _SYMBOLS.waitpid });
  if (lib === undefined) return;
  const wstatus = new Int32Array(1);
  let left = [...pids];
  let sweeps = 0;
  const sweep = (): void => {
    left = left.filter((pid) =>
      lib.symbols.waitpid(pid, wstatus, _WNOHANG) === 0
    );
    if (left.length > 0 && ++sweeps < 100) return;
    clearInterval(timer);
    lib.close();
  };
  const timer = setInterval(sweep, 100);
  // Not a reason to keep a stopping server alive.
  Deno.unrefTimer(timer as unknown as number);
  sweep();
}

/** Signal names by number (Linux), for `Deno.CommandStatus#signal`. */
const _SIGNALS: Record<number, Deno.Signal> = {
  1: "SIGHUP",
  2: "SIGINT",
  3: "SIGQUIT",
  4: "SIGILL",
  5: "SIGTRAP",
  6: "SIGABRT",
  7: "SIGBUS",
  8: "SIGFPE",
  9: "SIGKILL",
  10: "SIGUSR1",
  11: "SIGSEGV",
  12: "SIGUSR2",
  13: "SIGPIPE",
  14: "SIGALRM",
  15: "SIGTERM",
  16: "SIGSTKFLT",
  17: "SIGCHLD",
  18: "SIGCONT",
  19: "SIGSTOP",
  20: "SIGTSTP",
  21: "SIGTTIN",
  22: "SIGTTOU",
  23: "SIGURG",
  24: "SIGXCPU",
  25: "SIGXFSZ",
  26: "SIGVTALRM",
  27: "SIGPROF",
  28: "SIGWINCH",
  29: "SIGIO",
  30: "SIGPWR",
  31: "SIGSYS",
};

/** Reaps the children it tracks, pinning no thread (see the module doc). */
interface _Reaper {
  /** Call before a spawn: from then on, a SIGCHLD is seen. */
  arm(): void;
  /** Call after a spawn that failed (the backstop ends if none run). */
  disarm(): void;
  /** Settles once `pid` exited, reaped. */
  track(pid: number): Promise<Deno.CommandStatus>;
  /** Ends it once no tracked child runs, then calls `then`. */
  whenIdle(then: () => void): void;
}

function _reaper(libc: _Libc): _Reaper {
  type Settle = PromiseWithResolvers<Deno.CommandStatus>;
  const waiting = new Map<number, Settle>();
  const wstatus = new Int32Array(1);
  let listening = false;
  let poll: ReturnType<typeof setInterval> | undefined;
  let idle: (() => void) | undefined;
  const reapOne = (pid: number, settle: Settle): void => {
    const rc = libc.waitpid(pid, wstatus, _WNOHANG);
    if (rc === 0) return; // still running
    if (rc === -1 && _errno(libc) === _EINTR) return;
    waiting.delete(pid);
    if (rc === pid) settle.resolve(_status(wstatus[0]!));
    // ECHILD: something else reaped it, its status lost (reapOrphans()
    // as this isolate ends, or a waitpid(-1) elsewhere). Gone all the same.
    else settle.resolve({ success: false, code: 255, signal: null });
  };
  const settled = (): void => {
    if (waiting.size > 0) return;
    clearInterval(poll);
    poll = undefined;
    if (idle === undefined) return;
    if (listening) Deno.removeSignalListener("SIGCHLD", reap);
    listening = false;
    const then = idle;
    idle = undefined;
    then();
  };
  // Any child's SIGCHLD (coalesced ones too) checks every tracked child.
  const reap = function reap(): void {
    for (const [pid, settle] of waiting) reapOne(pid, settle);
    settled();
  };
  return {
    arm() {
      // Listening from the first spawn on (adding and removing the
      // listener per script costs more; it does not keep the event loop
      // alive), and before the spawn so its SIGCHLD cannot come first.
      if (!listening) Deno.addSignalListener("SIGCHLD", reap);
      listening = true;
      // The backstop, which also keeps the event loop alive while a child
      // runs (as Deno.Command's children do).
      poll ??= setInterval(reap, _REAP_POLL_MS);
    },
    disarm: settled,
    track(pid) {
      const settle = Promise.withResolvers<Deno.CommandStatus>();
      waiting.set(pid, settle);
      // It may have exited already (before it was tracked).
      queueMicrotask(() => {
        if (waiting.get(pid) === settle) reapOne(pid, settle);
        settled();
      });
      return settle.promise;
    },
    whenIdle(then) {
      idle = then;
      settled();
    },
  };
}

/** A `waitpid` status as `Deno.Command` reports it. */
function _status(raw: number): Deno.CommandStatus {
  const signal = raw & 0x7f;
  if (signal === 0) {
    const code = (raw >> 8) & 0xff;
    return { success: code === 0, code, signal: null };
  }
  return {
    success: false,
    code: 128 + signal,
    signal: _SIGNALS[signal] ?? null,
  };
}

function _spawn(
  libc: _Libc,
  attr: Uint8Array,
  devNull: Uint8Array,
  reaper: _Reaper,
  pinned: unknown[],
  request: PosixSpawnRequest,
): SpawnedChild | number {
  const { path, argv, cwd, env, stdin } = request;
  // Checked before any descriptor is opened: a NUL would cut a C string.
  const pathBytes = _cString(path);
  const envStrings: string[] = [];
  for (const name in env) envStrings.push(`${name}=${env[name]}`);
  const [argvBytes, argvPointers] = _cStrings(libc, argv);
  const [envBytes, envPointers] = _cStrings(libc, envStrings);
  const cwdBytes = cwd === undefined ? undefined : _cString(cwd);
  // First: it may throw (then nothing is open yet).
  reaper.arm();
  const fds: number[] = [];
  const pipes = (count: number): Int32Array[] =>
    Array.from({ length: count }, () => {
      const ends = new Int32Array(2);
      if (libc.pipe2(ends, _O_CLOEXEC) !== 0) {
        const errno = _errno(libc);
        for (const fd of fds) libc.close(fd);
        reaper.disarm();
        throw _error(errno, path, "pipe2");
      }
      fds.push(ends[0]!, ends[1]!);
      return ends;
    });
  const [out, err, input] = pipes(stdin ? 3 : 2) as [
    Int32Array,
    Int32Array,
    Int32Array | undefined,
  ];
  const actions = new Uint8Array(_OPAQUE_BYTES);
  const pid = new Int32Array(1);
  pinned.push(argvBytes, envBytes, pathBytes, cwdBytes);
  let rc = libc.posix_spawn_file_actions_init(actions);
  if (rc === 0) {
    rc = input
      ? libc.posix_spawn_file_actions_adddup2(actions, input[0]!, 0)
      : libc.posix_spawn_file_actions_addopen(actions, 0, devNull, 0, 0);
    rc ||= libc.posix_spawn_file_actions_adddup2(actions, out[1]!, 1);
    rc ||= libc.posix_spawn_file_actions_adddup2(actions, err[1]!, 2);
    if (cwdBytes) {
      rc ||= libc.posix_spawn_file_actions_addchdir_np(actions, cwdBytes);
    }
    rc ||= libc.posix_spawn(
      pid,
      pathBytes,
      actions,
      attr,
      argvPointers,
      envPointers,
    );
    libc.posix_spawn_file_actions_destroy(actions);
  }
  // The pointers' targets stayed reachable until the call returned.
  pinned.length = 0;
  // The child's ends are the child's now (or nobody's).
  libc.close(out[1]!);
  libc.close(err[1]!);
  if (input) libc.close(input[0]!);
  if (rc !== 0) {
    libc.close(out[0]!);
    libc.close(err[0]!);
    if (input) libc.close(input[1]!);
    reaper.disarm();
    return rc;
  }
  // Reaped whatever happens next.
  const status = reaper.track(pid[0]!);
  // Descriptors no stream owns yet: closed here if a stream cannot be made.
  const loose = [input?.[1], out[0]!, err[0]!];
  let stdinStream: WritableStream<Uint8Array> | undefined;
  let stdout: ReadableStream<Uint8Array> | undefined;
  let stderr: ReadableStream<Uint8Array>;
  try {
    stdinStream = input ? fdWritable(input[1]!) : undefined;
    loose[0] = undefined;
    stdout = fdReadable(out[0]!);
    loose[1] = undefined;
    stderr = fdReadable(err[0]!);
  } catch (error) {
    // Its group ends with it (reaped as any other).
    try {
      Deno.kill(-pid[0]!, "SIGKILL");
    } catch { /* gone already */ }
    stdinStream?.abort().catch(() => {});
    stdout?.cancel().catch(() => {});
    for (const fd of loose) if (fd !== undefined) libc.close(fd);
    status.catch(() => {});
    throw error;
  }
  return {
    pid: pid[0]!,
    get stdin(): WritableStream<Uint8Array> {
      if (!stdinStream) throw new TypeError("stdin is not piped");
      return stdinStream;
    },
    stdout,
    stderr,
    status,
  };
}

function _noNul(text: string): void {
  if (text.includes("\0")) {
    throw new TypeError("Cannot spawn: a NUL byte in an argument");
  }
}

function _cString(text: string): Uint8Array<ArrayBuffer> {
  _noNul(text);
  return new TextEncoder().encode(`${text}\0`);
}

/**
 * `texts` as C strings in one buffer, and a NULL-terminated array of
 * pointers to them (one encoding and one address for all: a CGI
 * environment has dozens).
 */
function _cStrings(
  libc: _Libc,
  texts: readonly string[],
): [Uint8Array<ArrayBuffer>, BigUint64Array] {
  const pointers = new BigUint64Array(texts.length + 1);
  if (texts.length === 0) return [new Uint8Array(0), pointers];
  for (const text of texts) _noNul(text);
  const bytes = new TextEncoder().encode(`${texts.join("\0")}\0`);
  const base = BigInt(libc._address_of(bytes, bytes, 0n));
  pointers[0] = base;
  // No NUL inside a text: the i-th NUL ends the i-th string.
  for (let i = 1, at = -1; i < texts.length; i++) {
    at = bytes.indexOf(0, at + 1);
    pointers[i] = base + BigInt(at + 1);
  }
  return [bytes, pointers];
}

function _errno(libc: _Libc): number {
  const where = libc.__errno_location();
  if (BigInt(where) === 0n) return 0;
  const errno = new Int32Array(1);
  libc._read_at(errno, where, 4n);
  return errno[0]!;
}

function _error(errno: number, path: string, what: string): Error {
  const named = _ERRNO[errno];
  const reason = named?.[1] ?? _REASONS[errno] ?? "error";
  const message = `Failed to ${what} '${path}': ${reason} (os error ${errno})`;
  return named ? new named[0](message) : new Error(message);
}
