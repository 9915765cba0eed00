/**
 * {@linkcode spawnFastCgiWorkers}: the classic FastCGI process manager. It
 * starts N long-lived responder processes (e.g. `php-cgi -b SOCKET`), each on
 * its own unix socket in a private temporary directory, restarts one that
 * exits (with exponential backoff), and stops them all on shutdown.
 *
 * @module
 */

import { join } from "node:path";
import { errorMessage } from "../../server/log.ts";
import type { LogFn } from "../../server/types.ts";
import { baseProcessEnv, DEFAULT_PATH } from "../base_env.ts";
import { pumpLines } from "../lines.ts";
import type { SpawnedChild } from "../posix_spawn.ts";
import { killGroup, spawnInGroup } from "../process.ts";
import type { FastCgiAddress } from "./address.ts";

/**
 * Options of {@linkcode spawnFastCgiWorkers}. Durations are in milliseconds.
 *
 * @example Two php-cgi workers with a php.ini of their own
 * ```ts
 * import type { FastCgiSpawnOptions } from "@x/serve/fastcgi";
 *
 * const options: FastCgiSpawnOptions = {
 *   command: ["php-cgi", "-c", "/etc/app/php.ini"],
 *   workers: 2,
 *   startTimeoutMs: 5_000,
 *   maxRestartDelayMs: 30_000,
 * };
 * ```
 */
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
   * @default {undefined} (the server's `PATH` when readable, else `DEFAULT_PATH`)
   */
  path?: string;
  /**
   * Milliseconds to wait for a worker's socket to appear; a worker that
   * does not listen by then is killed (with its process group) and
   * restarted with backoff.
   * @default {10000}
   */
  startTimeoutMs?: number;
  /**
   * First restart delay in milliseconds; it doubles for each quick exit (a
   * worker that listened for 10 s resets it).
   * @default {100}
   */
  restartDelayMs?: number;
  /**
   * Longest restart delay in milliseconds.
   * @default {10000}
   */
  maxRestartDelayMs?: number;
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

/**
 * Running workers; see {@linkcode spawnFastCgiWorkers}.
 *
 * @example Watching restarts
 * ```ts
 * import { type FastCgiWorkers, spawnFastCgiWorkers } from "@x/serve/fastcgi";
 * import assert from "node:assert/strict";
 *
 * const workers: FastCgiWorkers = spawnFastCgiWorkers({
 *   command: ["/bin/sh", "-c", "exec sleep 30", "{socket}"],
 *   workers: 1,
 *   startTimeoutMs: 100,
 * });
 * await assert.rejects(workers.ready); // sleep never listens on its socket
 * assert.equal(workers.addresses.length, 1);
 * await workers.stop();
 * ```
 */
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
    return Deno.env.get("PATH") ?? DEFAULT_PATH;
  } catch {
    return DEFAULT_PATH; // no --allow-env
  }
}

/** Milliseconds between SIGTERM and SIGKILL when a worker group is stopped. */
const _KILL_GRACE_MS = 3000;

/** Milliseconds a worker must have listened for its restart delay to reset. */
const _STABLE_MS = 10_000;

interface _Worker {
  index: number;
  socket: string;
  child: SpawnedChild | undefined;
  exited: Promise<void> | undefined;
  readyAt: number;
  delay: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  starting: Promise<void> | undefined;
  restarts: number;
}

/** The parsed argv of a worker command (a `TypeError` when empty). */
function _argv(command: string | readonly string[]): string[] {
  const argv = typeof command === "string"
    ? splitCommand(command)
    : [...command];
  if (argv.length === 0) {
    throw new TypeError("Cannot spawn FastCGI workers: empty command");
  }
  return argv;
}

/** The program and arguments of the worker listening on `socket`. */
function _commandFor(
  argv: readonly string[],
  socket: string,
): [string, string[]] {
  const hasPlaceholder = argv.some((a) => a.includes("{socket}"));
  const args = argv.slice(1).map((a) => a.replaceAll("{socket}", socket));
  if (!hasPlaceholder) args.push("-b", socket);
  return [argv[0]!.replaceAll("{socket}", socket), args];
}

/**
 * Starts, watches and restarts the workers: one per socket in a private
 * directory, restarted with exponential backoff until stopped.
 */
class _Supervisor {
  readonly workers: _Worker[];
  #stopping = false;
  #stopped: Promise<void> | undefined;
  readonly #argv: string[];
  readonly #env: Record<string, string>;
  readonly #dir: string;
  readonly #options: FastCgiSpawnOptions;
  readonly #startTimeoutMs: number;
  readonly #restartDelayMs: number;
  readonly #maxRestartDelayMs: number;

  constructor(options: FastCgiSpawnOptions, argv: string[], count: number) {
    const { env = {}, passEnv = [], path = _serverPath() } = options;
    this.#options = options;
    this.#argv = argv;
    this.#startTimeoutMs = options.startTimeoutMs ?? 10_000;
    this.#restartDelayMs = options.restartDelayMs ?? 100;
    this.#maxRestartDelayMs = options.maxRestartDelayMs ?? 10_000;
    this.#env = {
      ...baseProcessEnv(path, passEnv),
      PHP_FCGI_CHILDREN: "0",
      PHP_FCGI_MAX_REQUESTS: "0",
      ...env,
    };
    this.#dir = Deno.makeTempDirSync({ prefix: "x-serve-fcgi-" });
    this.workers = Array.from({ length: count }, (_, index) => ({
      index,
      socket: join(this.#dir, `worker-${index}.sock`),
      child: undefined,
      exited: undefined,
      readyAt: 0,
      delay: this.#restartDelayMs,
      timer: undefined,
      starting: undefined,
      restarts: 0,
    }));
  }

  #log(level: "info" | "warn" | "error", message: string): void {
    this.#options.log?.(level, message);
  }

  /** Starts every worker; resolves once all listen. */
  startAll(): Promise<void> {
    return Promise.all(this.workers.map((w) => w.starting = this.#start(w)))
      .then(() => {});
  }

  /** Starts one worker and waits until it listens. */
  async #start(worker: _Worker): Promise<void> {
    worker.timer = undefined;
    if (this.#stopping) return;
    await Deno.remove(worker.socket).catch(() => {});
    if (this.#stopping) return;
    const child = this.#spawn(worker);
    try {
      await this.#waitForSocket(worker, child);
    } catch (error) {
      if (!this.#stopping && worker.child === child) {
        // Started but never listening: kill it; its exit schedules a restart.
        this.#log(
          "error",
          `FastCGI worker ${worker.index} (pid ${child.pid}): ${
            errorMessage(error)
          }: killing it`,
        );
        await killGroup(child, _KILL_GRACE_MS).catch(() => {});
      }
      throw error;
    }
    worker.readyAt = Date.now();
    this.#options.onReady?.(worker.index);
  }

  /** Spawns the worker's process and watches for its exit. */
  #spawn(worker: _Worker): SpawnedChild {
    const [cmd, args] = _commandFor(this.#argv, worker.socket);
    let child: SpawnedChild;
    try {
      // Its own process group (so a wrapper's children can be stopped with
      // it) and a cleared environment.
      child = spawnInGroup(cmd, { args, env: this.#env });
    } catch (error) {
      this.#log(
        "error",
        `Cannot start FastCGI worker ${worker.index} (${cmd}): ${
          errorMessage(error)
        }`,
      );
      this.#scheduleRestart(worker);
      throw error;
    }
    worker.child = child;
    worker.readyAt = 0;
    worker.exited = this.#watchExit(worker, child);
    return child;
  }

  /** Logs the worker's output; once it exits, cleans up and restarts it. */
  async #watchExit(worker: _Worker, child: SpawnedChild): Promise<void> {
    const output = (line: string): void => {
      if (line.trim()) {
        this.#log("warn", `FastCGI worker ${worker.index}: ${line}`);
      }
    };
    const drained = Promise.all([
      pumpLines(child.stdout, output),
      pumpLines(child.stderr, output),
    ]);
    const status = await child.status;
    // Whatever the leader left behind in its group dies with it (and
    // closes the pipes it may hold).
    await killGroup(child, 0).catch(() => {});
    await drained;
    if (worker.child === child) worker.child = undefined;
    if (this.#stopping) return;
    this.#log(
      "warn",
      `FastCGI worker ${worker.index} (pid ${child.pid}) exited with ${
        status.signal ?? status.code
      }`,
    );
    this.#scheduleRestart(worker);
  }

  /** Waits until the worker accepts connections (a probe connection, closed at once). */
  async #waitForSocket(
    worker: _Worker,
    child: SpawnedChild,
  ): Promise<void> {
    const deadline = Date.now() + this.#startTimeoutMs;
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
      if (this.#stopping || !alive || worker.child !== child) {
        throw new Error(
          `FastCGI worker ${worker.index} exited before listening`,
        );
      }
      if (Date.now() > deadline) {
        throw new Error(
          `FastCGI worker ${worker.index} did not listen within ${this.#startTimeoutMs} ms`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Restarts the worker after its backoff delay (reset once it was stable). */
  #scheduleRestart(worker: _Worker): void {
    if (this.#stopping) return;
    if (worker.readyAt > 0 && Date.now() - worker.readyAt > _STABLE_MS) {
      worker.delay = this.#restartDelayMs;
    }
    const delay = worker.delay;
    worker.delay = Math.min(worker.delay * 2, this.#maxRestartDelayMs);
    worker.restarts++;
    worker.timer = setTimeout(() => {
      worker.starting = this.#start(worker).catch((error) => {
        if (!this.#stopping) {
          this.#log(
            "error",
            `FastCGI worker ${worker.index}: ${errorMessage(error)}`,
          );
        }
      });
    }, delay);
  }

  /** Stops every worker with its process group, then removes the sockets. */
  stop(): Promise<void> {
    this.#stopped ??= this.#stopAll();
    return this.#stopped;
  }

  async #stopAll(): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.workers.map(async (worker) => {
      clearTimeout(worker.timer);
      await worker.starting?.catch(() => {});
      const child = worker.child;
      if (child) await killGroup(child, _KILL_GRACE_MS).catch(() => {});
      await worker.exited;
    }));
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Starts the worker processes. The sockets live in a fresh private
 * temporary directory, removed by {@linkcode FastCgiWorkers.stop}.
 *
 * @example Running php-cgi workers
 * ```ts ignore
 * import { createFastCgiClient, spawnFastCgiWorkers } from "@x/serve/fastcgi";
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
  const argv = _argv(options.command ?? "php-cgi");
  const count = options.workers ?? 4;
  if (!Number.isInteger(count) || count < 1) {
    throw new RangeError(
      `Cannot spawn FastCGI workers: worker count "${count}" is not a positive integer`,
    );
  }
  const supervisor = new _Supervisor(options, argv, count);
  const { workers } = supervisor;
  const ready = supervisor.startAll();
  ready.catch(() => {});
  const stop = (): Promise<void> => supervisor.stop();
  return {
    addresses: workers.map((w) => ({ transport: "unix", path: w.socket })),
    ready,
    pids: () => workers.map((w) => w.child?.pid),
    restarts: () => workers.map((w) => w.restarts),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
