/**
 * {@linkcode spawnFastCgiWorkers}: the classic FastCGI process manager. It
 * starts N long-lived responder processes (e.g. `php-cgi -b SOCKET`), each on
 * its own unix socket in a private temporary directory, restarts one that
 * exits (with exponential backoff), and stops them all on shutdown.
 *
 * @module
 */

import { join } from "node:path";
import type { LogFn } from "../../server/types.ts";
import { baseProcessEnv } from "../base_env.ts";
import { pumpLines } from "../lines.ts";
import { killGroup, spawnInGroup } from "../process.ts";
import type { FastCgiAddress } from "./address.ts";

/** Options of {@linkcode spawnFastCgiWorkers}. */
export interface FastCgiSpawnOptions {
  /**
   * The responder command line, as a string (split on whitespace, quotes
   * respected) or an argv array. `{socket}` in an argument is replaced by
   * the worker's socket path; without it, `-b SOCKET` is appended (the
   * `php-cgi` convention).
   * @default {"php-cgi"}
   */
  command?: string | readonly string[];
  /**
   * How many worker processes to run. Each serves one connection at a time.
   * @default {4}
   */
  workers?: number;
  /**
   * Extra environment for the workers. The server's own environment never
   * reaches them (`clearEnv`): they get `PATH`, the `passEnv` variables,
   * `PHP_FCGI_CHILDREN=0` (one process per worker, no forking),
   * `PHP_FCGI_MAX_REQUESTS=0` (no recycling) and these.
   * @default {{}}
   */
  env?: Record<string, string>;
  /**
   * Names of server environment variables passed on to the workers (read
   * once, when the workers are created).
   * @default {[]}
   */
  passEnv?: readonly string[];
  /**
   * `PATH` of the workers, also used to find the command.
   * @default {undefined} (the server's `PATH` when readable, else "/usr/local/bin:/usr/bin:/bin")
   */
  path?: string;
  /**
   * Milliseconds to wait for a worker's socket to appear; a worker that
   * does not listen by then is killed (with its process group) and
   * restarted with backoff.
   * @default {10000}
   */
  startTimeout?: number;
  /**
   * First restart delay in milliseconds; it doubles for each quick exit (a
   * worker that listened for 10 s resets it).
   * @default {100}
   */
  restartDelay?: number;
  /**
   * Longest restart delay in milliseconds.
   * @default {10000}
   */
  maxRestartDelay?: number;
  /**
   * Where worker output (stderr) and restarts are logged.
   * @default {undefined} (not logged)
   */
  log?: LogFn;
  /**
   * Called when worker `index` is (again) ready to accept connections.
   * @default {undefined}
   */
  onReady?: (index: number) => void;
}

/** Running workers; see {@linkcode spawnFastCgiWorkers}. */
export interface FastCgiWorkers extends AsyncDisposable {
  /** One unix-socket address per worker, in worker order. */
  readonly addresses: readonly FastCgiAddress[];
  /** Resolves once every worker's socket is there (rejects if one never starts). */
  readonly ready: Promise<void>;
  /** The current process id of each worker (`undefined` while restarting). */
  pids(): (number | undefined)[];
  /** How many times each worker was restarted. */
  restarts(): number[];
  /**
   * Stops every worker with its whole process group (TERM, then KILL after
   * 3 s), so a wrapper's children die too, and removes the sockets.
   */
  stop(): Promise<void>;
}

/**
 * Splits a command line on whitespace, honouring single and double quotes
 * and backslash escapes (no other shell syntax).
 *
 * @example Splitting a command line
 * ```ts
 * import { splitCommand } from "./spawn.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(splitCommand(`php-cgi -d "memory_limit=256M" -c '/etc/my php.ini'`), [
 *   "php-cgi", "-d", "memory_limit=256M", "-c", "/etc/my php.ini",
 * ]);
 * ```
 *
 * @param line The command line.
 * @returns The argv.
 */
export function splitCommand(line: string): string[] {
  const out: string[] = [];
  let current = "";
  let has = false;
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === "\\" && quote === '"' && i + 1 < line.length) {
        current += line[++i];
      } else current += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      has = true;
    } else if (c === "\\" && i + 1 < line.length) {
      current += line[++i];
      has = true;
    } else if (/\s/.test(c)) {
      if (has) out.push(current);
      current = "";
      has = false;
    } else {
      current += c;
      has = true;
    }
  }
  if (quote) {
    throw new SyntaxError(`Cannot parse command "${line}": unterminated quote`);
  }
  if (has) out.push(current);
  return out;
}

/** The workers' `PATH` when none is given: the server's, if readable. */
function _serverPath(): string {
  try {
    return Deno.env.get("PATH") ?? _FALLBACK_PATH;
  } catch {
    return _FALLBACK_PATH; // no --allow-env
  }
}

const _FALLBACK_PATH = "/usr/local/bin:/usr/bin:/bin";

/** Milliseconds between SIGTERM and SIGKILL when a worker group is stopped. */
const _KILL_GRACE_MS = 3000;

interface _Worker {
  index: number;
  socket: string;
  child: Deno.ChildProcess | undefined;
  exited: Promise<void> | undefined;
  readyAt: number;
  delay: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  starting: Promise<void> | undefined;
  restarts: number;
}

/**
 * Starts the worker processes. The sockets live in a fresh private
 * temporary directory, removed by {@linkcode FastCgiWorkers.stop}.
 *
 * @example Running php-cgi workers
 * ```ts ignore
 * import { spawnFastCgiWorkers } from "./spawn.ts";
 * import { createFastCgiClient } from "./client.ts";
 *
 * await using workers = spawnFastCgiWorkers({ command: "php-cgi", workers: 2 });
 * await workers.ready;
 * const client = createFastCgiClient({ backends: workers.addresses, keepAlive: 1, maxConnections: 1 });
 * // ... client.request(...) ...
 * client.close();
 * ```
 *
 * @param options Command, worker count, environment and restart policy.
 * @returns The running workers.
 */
export function spawnFastCgiWorkers(
  options: FastCgiSpawnOptions = {},
): FastCgiWorkers {
  const {
    command = "php-cgi",
    workers: count = 4,
    env = {},
    passEnv = [],
    path = _serverPath(),
    startTimeout = 10_000,
    restartDelay = 100,
    maxRestartDelay = 10_000,
    log,
    onReady,
  } = options;
  const argv = typeof command === "string"
    ? splitCommand(command)
    : [...command];
  if (argv.length === 0) {
    throw new TypeError("Cannot spawn FastCGI workers: empty command");
  }
  if (!Number.isInteger(count) || count < 1) {
    throw new RangeError(
      `Cannot spawn FastCGI workers: worker count "${count}" is not a positive integer`,
    );
  }
  const workerEnv = {
    ...baseProcessEnv(path, passEnv),
    PHP_FCGI_CHILDREN: "0",
    PHP_FCGI_MAX_REQUESTS: "0",
    ...env,
  };
  const dir = Deno.makeTempDirSync({ prefix: "x-serve-fcgi-" });
  const workers: _Worker[] = Array.from({ length: count }, (_, index) => ({
    index,
    socket: join(dir, `worker-${index}.sock`),
    child: undefined,
    exited: undefined,
    readyAt: 0,
    delay: restartDelay,
    timer: undefined,
    starting: undefined,
    restarts: 0,
  }));
  let stopping = false;

  function commandFor(socket: string): [string, string[]] {
    const hasPlaceholder = argv.some((a) => a.includes("{socket}"));
    const args = argv.slice(1).map((a) => a.replaceAll("{socket}", socket));
    if (!hasPlaceholder) args.push("-b", socket);
    return [argv[0]!.replaceAll("{socket}", socket), args];
  }

  /** Waits until the worker accepts connections (a probe connection, closed at once). */
  async function waitForSocket(
    worker: _Worker,
    child: Deno.ChildProcess,
  ): Promise<void> {
    const deadline = Date.now() + startTimeout;
    let alive = true;
    worker.exited?.then(() => alive = false);
    while (true) {
      try {
        (await Deno.connect({ transport: "unix", path: worker.socket }))
          .close();
        return;
      } catch {
        // not listening yet
      }
      if (stopping || !alive || worker.child !== child) {
        throw new Error(
          `FastCGI worker ${worker.index} exited before listening`,
        );
      }
      if (Date.now() > deadline) {
        throw new Error(
          `FastCGI worker ${worker.index} did not listen within ${startTimeout} ms`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async function start(worker: _Worker): Promise<void> {
    worker.timer = undefined;
    if (stopping) return;
    await Deno.remove(worker.socket).catch(() => {});
    if (stopping) return;
    const [cmd, args] = commandFor(worker.socket);
    let child: Deno.ChildProcess;
    try {
      // Its own process group (so a wrapper's children can be stopped with
      // it) and a cleared environment.
      child = spawnInGroup(cmd, { args, env: workerEnv });
    } catch (error) {
      log?.(
        "error",
        `Cannot start FastCGI worker ${worker.index} (${cmd}): ${
          error instanceof Error ? error.message : error
        }`,
      );
      scheduleRestart(worker);
      throw error;
    }
    worker.child = child;
    worker.readyAt = 0;
    const output = (line: string): void => {
      if (line.trim()) log?.("warn", `FastCGI worker ${worker.index}: ${line}`);
    };
    const drained = Promise.all([
      pumpLines(child.stdout, output),
      pumpLines(child.stderr, output),
    ]);
    worker.exited = child.status.then(async (status) => {
      // Whatever the leader left behind in its group dies with it (and
      // closes the pipes it may hold).
      await killGroup(child, 0).catch(() => {});
      await drained;
      if (worker.child === child) worker.child = undefined;
      if (stopping) return;
      log?.(
        "warn",
        `FastCGI worker ${worker.index} (pid ${child.pid}) exited with ${
          status.signal ?? status.code
        }`,
      );
      scheduleRestart(worker);
    });
    try {
      await waitForSocket(worker, child);
    } catch (error) {
      if (!stopping && worker.child === child) {
        // Started but never listening: kill it; its exit schedules a restart.
        log?.(
          "error",
          `FastCGI worker ${worker.index} (pid ${child.pid}): ${
            error instanceof Error ? error.message : error
          }: killing it`,
        );
        await killGroup(child, _KILL_GRACE_MS).catch(() => {});
      }
      throw error;
    }
    worker.readyAt = Date.now();
    onReady?.(worker.index);
  }

  function scheduleRestart(worker: _Worker): void {
    if (stopping) return;
    if (worker.readyAt > 0 && Date.now() - worker.readyAt > 10_000) {
      worker.delay = restartDelay;
    }
    const delay = worker.delay;
    worker.delay = Math.min(worker.delay * 2, maxRestartDelay);
    worker.restarts++;
    worker.timer = setTimeout(() => {
      worker.starting = start(worker).catch((error) => {
        if (!stopping) {
          log?.(
            "error",
            `FastCGI worker ${worker.index}: ${
              error instanceof Error ? error.message : error
            }`,
          );
        }
      });
    }, delay);
  }

  const ready = Promise.all(workers.map((w) => w.starting = start(w))).then(
    () => {},
  );
  ready.catch(() => {});

  let stopped: Promise<void> | undefined;
  function stop(): Promise<void> {
    stopped ??= stopAll();
    return stopped;
  }

  async function stopAll(): Promise<void> {
    stopping = true;
    await Promise.all(workers.map(async (worker) => {
      clearTimeout(worker.timer);
      await worker.starting?.catch(() => {});
      const child = worker.child;
      if (child) await killGroup(child, _KILL_GRACE_MS).catch(() => {});
      await worker.exited;
    }));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }

  function pids(): (number | undefined)[] {
    return workers.map((w) => w.child?.pid);
  }

  function restarts(): number[] {
    return workers.map((w) => w.restarts);
  }

  return {
    addresses: workers.map((w) => ({ transport: "unix", path: w.socket })),
    ready,
    pids,
    restarts,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
