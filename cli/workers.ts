/**
 * `--workers N|auto`: N isolates, each with its own handler
 * (cli/worker_run.ts), listening on one port with `SO_REUSEPORT` (the
 * kernel spreads connections over them): worker 0 in the main isolate,
 * which holds every layer of the handler anyway, and N − 1 Web Workers
 * (cli/worker_entry.ts). The main thread also keeps what must be one per
 * server: the FastCGI process manager
 * (spawned once, every worker gets its sockets), the CGI limit (a shared
 * count), the access log (workers post whole lines, the main thread writes
 * them), the banner and the signals; it restarts a worker that crashed
 * (with backoff) and makes sure nothing outlives the server. Internal to
 * the CLI (not exported from `mod.ts`).
 *
 * @module
 */

import { _spawnedBackends, _spawnOptions } from "../cgi/fastcgi/fastcgi.ts";
import {
  type FastCgiWorkers,
  spawnFastCgiWorkers,
} from "../cgi/fastcgi/spawn.ts";
import { defaultLog, errorMessage } from "../server/log.ts";
import { checkCertificatePair, watchCertificate } from "./cert_reload.ts";
import { FORCE_WAIT_MS } from "./in_flight.ts";
import type { ServeConfig } from "./serve_config.ts";
import { guardAvailable } from "./conn_guard.ts";
import { workerModuleFolder } from "./permissions.ts";
import {
  createBackendBuffer,
  releaseWorkerBackend,
} from "./shared_backends.ts";
import { reapOrphans } from "../cgi/posix_spawn.ts";
import { createConnBuffer, releaseWorkerConns } from "./shared_conns.ts";
import { createSlotBuffer, releaseWorkerSlots } from "./shared_slots.ts";
import type { FromWorker, ToWorker } from "./worker_messages.ts";
import { localWorker, type ServingIsolate } from "./worker_run.ts";

/**
 * How many workers serve by default: `auto`, one per core (as nginx's
 * `worker_processes auto`): on 2 cores it measured up to 2× for CPU-bound
 * work (brotli on the fly) and 1.2–1.8× for small files at 32
 * connections, for about 22 MiB per isolate (bench/WORKERS.md). Every
 * limit holds for the whole server (the guard's caps, the CGI count,
 * FastCGI connections: shared through `SharedArrayBuffer`s). Developer
 * mode (`--live-reload`) runs one.
 */
export const DEFAULT_WORKERS: number | "auto" = "auto";

/**
 * Why this process cannot share a port between isolates, or `undefined`
 * when it can: Linux balances `SO_REUSEPORT` listeners (other systems let
 * one of them take every connection), and Deno 2.9 gates `reusePort`
 * behind `--unstable-net` (a Worker cannot turn it on itself; without it,
 * asking for it ends the process).
 *
 * @example Checking
 * ```ts
 * import { portSharingProblem } from "./workers.ts";
 *
 * console.log(portSharingProblem() ?? "workers can share the port");
 * ```
 *
 * @returns The reason, or `undefined`.
 */
export function portSharingProblem(): string | undefined {
  if (Deno.build.os !== "linux") {
    return `${Deno.build.os} does not balance a shared port (SO_REUSEPORT) between isolates`;
  }
  // Unstable APIs are only there with their flag (`--unstable-net`, or
  // `"unstable": ["net"]` in deno.json).
  if (
    typeof (Deno as { listenDatagram?: unknown }).listenDatagram !== "function"
  ) {
    return "sharing the port needs --unstable-net";
  }
  return undefined;
}

/** How many workers serve, and why fewer than asked for. */
export interface WorkerCount {
  /** The workers (1: the main thread serves alone). */
  count: number;
  /** Why it is 1 when more were asked for (or were the default). */
  reason?: string;
}

/**
 * The workers `config` is planned for, permissions aside: `--workers`
 * (default {@linkcode DEFAULT_WORKERS}: `auto` = `navigator.hardwareConcurrency`),
 * but one with `--live-reload` (one watcher, one set of event streams)
 * and where the port cannot be shared. `--print-permissions` prints what
 * this count needs.
 *
 * @example One per core
 * ```ts ignore
 * const { count, reason } = plannedWorkers(config);
 * ```
 *
 * @param config The parsed command line.
 * @returns The count, with the reason when it fell back to one.
 */
export function plannedWorkers(config: ServeConfig): WorkerCount {
  const asked = config.workers ?? DEFAULT_WORKERS;
  const count = asked === "auto"
    ? Math.max(1, navigator.hardwareConcurrency || 1)
    : asked;
  if (count <= 1) return { count: 1 };
  const handlers = [config.handler, ...config.sites.map((s) => s.handler)];
  const reason = handlers.some((h) => h.liveReload)
    ? "--live-reload runs one worker"
    : portSharingProblem();
  return reason === undefined ? { count } : { count: 1, reason };
}

/**
 * The workers `config` gets: {@linkcode plannedWorkers}, but one with
 * HTTPS when the TLS front may not connect to 127.0.0.1 (Deno's own TLS
 * listener serves then, in one isolate), and when the workers may not read
 * their modules (a local copy of the package run without `--allow-read` on
 * its folder: see `workerModuleFolder`).
 *
 * @example One per core
 * ```ts ignore
 * const { count, reason } = workerCount(config);
 * ```
 *
 * @param config The parsed command line.
 * @returns The count, with the reason when it fell back to one.
 */
export function workerCount(config: ServeConfig): WorkerCount {
  const planned = plannedWorkers(config);
  if (planned.count <= 1) return planned;
  const reason = config.cert !== undefined && !_tlsFrontAllowed()
    ? "HTTPS without --allow-net=127.0.0.1 runs one worker (Deno's own TLS listener)"
    : _moduleProblem();
  return reason === undefined ? planned : { count: 1, reason };
}

/**
 * The TLS front listens on loopback too (its inner plain server): without
 * that permission, Deno's own TLS listener serves, in one isolate.
 */
function _tlsFrontAllowed(): boolean {
  const net = { name: "net", host: "127.0.0.1" } as const;
  return Deno.permissions.querySync(net).state === "granted";
}

/** The worker module's URL. */
const _ENTRY = new URL("./worker_entry.ts", import.meta.url);

/** Why a Worker cannot load its modules (local ones need read access). */
function _moduleProblem(): string | undefined {
  const folder = workerModuleFolder();
  if (folder === undefined) return undefined;
  const read = Deno.permissions.querySync({ name: "read", path: folder });
  if (read.state === "granted") return undefined;
  return `workers need --allow-read=${folder}`;
}

/** Options of {@linkcode serveWorkers}. */
export interface ServeWorkersOptions {
  /** How many workers (2 or more). */
  count: number;
  /** Prints `Listening on …` and the banner, once every worker listens. */
  onListen(addr: { hostname: string; port: number }): void;
  /** Writes whole access-log lines (`\n`-joined); `undefined`: no log. */
  writeLog: ((lines: string) => void) | undefined;
  /** Whether the test hooks are on (see cli/test_hooks.ts). */
  testHooks: boolean;
  /**
   * HTTPS: the certificate and key (PEM) every worker's TLS front serves
   * with; renewed files (`config.cert`, `config.key`) are read here and
   * handed to every worker.
   */
  tls?: { cert: string; key: string };
}

/** First restart delay of a crashed worker; it doubles per quick crash. */
const _RESTART_DELAY_MS = 100;
/** Longest restart delay. */
const _MAX_RESTART_DELAY_MS = 10_000;
/** A worker that served this long before crashing restarts at once again. */
const _STABLE_MS = 10_000;

/** One worker's place: its current isolate and restart state. */
interface _Slot {
  index: number;
  /** Worker 0 serves in the main isolate ({@linkcode localWorker}). */
  worker: ServingIsolate | undefined;
  /** Its thread id (Linux): its CGI children are listed under it. */
  tid: number | undefined;
  startedAt: number;
  delayMs: number;
  restart: ReturnType<typeof setTimeout> | undefined;
  /** Set once it crashed, until it is buried. */
  crashed: boolean;
  /** Its answer to `drain`. */
  draining: PromiseWithResolvers<number> | undefined;
  /** Settles once its isolate is gone for good (shutdown). */
  done: PromiseWithResolvers<void>;
  /** HTTPS: the pair its start message carried. */
  tls?: { cert: string; key: string };
}

/**
 * The FastCGI process managers of `config`'s sites, started once here:
 * each site's `spawn` options become the pool's socket addresses (with
 * the one-connection-per-worker settings the spawned path uses).
 */
async function _spawnPools(config: ServeConfig): Promise<FastCgiWorkers[]> {
  const pools: FastCgiWorkers[] = [];
  const handlers = [config.handler, ...config.sites.map((s) => s.handler)];
  for (const h of handlers) {
    const options = h.fastcgi;
    if (options?.spawn === undefined) continue;
    const log = h.log ?? defaultLog;
    const pool = spawnFastCgiWorkers(
      _spawnOptions(options.spawn, options, log),
    );
    pools.push(pool);
    const {
      spawn: _spawn,
      workers: _workers,
      spawnEnv: _env,
      spawnPassEnv: _passEnv,
      spawnPath: _path,
      ...rest
    } = options;
    h.fastcgi = { ...rest, ..._spawnedBackends(options, pool.addresses) };
    // One worker failing to start does not block requests.
    await pool.ready.catch((error) =>
      log("error", `FastCGI workers did not start: ${errorMessage(error)}`)
    );
  }
  return pools;
}

/**
 * The port every worker listens on: `config.port`, or a free one for `0`.
 * Bound once without `reusePort` first, so that a port another server
 * holds fails here ("address in use") instead of being shared with it.
 */
function _choosePort(config: ServeConfig): number {
  const probe = Deno.listen({ hostname: config.host, port: config.port });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  return port;
}

/** The child processes a worker's thread started (its CGI scripts). */
function _childrenOf(tid: number | undefined): number[] {
  if (tid === undefined) return [];
  try {
    return Deno.readTextFileSync(`/proc/self/task/${tid}/children`)
      .split(" ").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * Kills what a terminated worker left running (its scripts' groups), and
 * reaps it: the isolate that would have is gone.
 */
function _killChildren(pids: readonly number[]): void {
  for (const pid of pids) {
    for (const target of [-pid, pid]) {
      try {
        Deno.kill(target, "SIGKILL");
      } catch { /* gone, or not a group leader */ }
    }
  }
  reapOrphans(pids);
}

/**
 * Serves `config` with `options.count` workers until SIGINT/SIGTERM, with
 * the single-isolate CLI's shutdown: the first signal prints `stopping: N
 * requests in flight` (N over every worker), every worker stops accepting
 * and gets `--shutdown-grace`; past it, or on a second signal, each kills
 * its scripts' groups and cuts its bodies. Then every worker is ended and
 * the FastCGI pools stopped. Resolves with 0, or with the error message
 * when the workers could not start.
 *
 * @example Serving with two workers
 * ```ts ignore
 * const code = await serveWorkers(config, { count: 2, onListen, writeLog, testHooks: false });
 * ```
 *
 * @param config The parsed command line (its FastCGI `spawn` options are
 *   replaced by the pool's addresses).
 * @param options The count, the banner and the log sink.
 * @returns 0, or why it could not serve.
 */
export async function serveWorkers(
  config: ServeConfig,
  options: ServeWorkersOptions,
): Promise<number | string> {
  let port: number;
  try {
    port = _choosePort(config);
  } catch (error) {
    return `cannot listen on ${config.host}:${config.port}: ${
      errorMessage(error)
    }`;
  }
  const { count } = options;
  const handlers = [config.handler, ...config.sites.map((s) => s.handler)];
  // Scripts run by --cgi or by a rule's "cgi" mount share one count.
  const cgiSlots = handlers.map((h) =>
    h.cgi || h.rules?.some((r) => r.cgi !== undefined)
      ? createSlotBuffer(count)
      : undefined
  );
  const connSlots = config.guard && guardAvailable()
    ? createConnBuffer(count)
    : undefined;
  // Per site, per FastCGI backend (set once the spawned pools are up).
  let fastcgiSlots: (SharedArrayBuffer[] | undefined)[] = [];
  // The access log's sink stays here: workers get the format only.
  const { write: _write, ...accessLog } = config.handler.accessLog === true
    ? {}
    : config.handler.accessLog || {};
  // Copies: the FastCGI pools replace their sites' spawn options below.
  const shared: ServeConfig = {
    ...config,
    handler: {
      ...config.handler,
      ...(config.handler.accessLog ? { accessLog } : {}),
    },
    sites: config.sites.map((s) => ({ ...s, handler: { ...s.handler } })),
  };
  // HTTPS: the pair new workers start with (renewed by the watch below).
  let tls = options.tls;
  let stopping = false;
  let forcing = false;
  let starting = true;
  const started = Promise.withResolvers<void>();
  let listening = 0;
  let pools: FastCgiWorkers[] = [];
  let grace: ReturnType<typeof setTimeout> | undefined;
  let giveUp: ReturnType<typeof setTimeout> | undefined;
  const slots: _Slot[] = Array.from({ length: count }, (_, index) => ({
    index,
    worker: undefined,
    tid: undefined,
    startedAt: 0,
    delayMs: _RESTART_DELAY_MS,
    restart: undefined,
    crashed: false,
    draining: undefined,
    done: Promise.withResolvers<void>(),
  }));
  const post = (slot: _Slot, message: ToWorker): void => {
    try {
      slot.worker?.postMessage(message);
    } catch { /* terminated */ }
  };

  /** Ends `slot`'s isolate and whatever it left; restarts it unless stopping. */
  const bury = (slot: _Slot): void => {
    const worker = slot.worker;
    if (!worker) return;
    // Listed while its thread runs, killed once its isolate cannot reap.
    // Worker 0's thread is the main one: its children are also the FastCGI
    // pools' processes, which stay (it killed and reaped its own scripts
    // unless it hung or the server is giving up).
    const pooled = new Set(pools.flatMap((p) => p.pids()));
    const left = _childrenOf(slot.tid).filter((pid) => !pooled.has(pid));
    worker.terminate();
    _killChildren(left);
    slot.worker = undefined;
    slot.tid = undefined;
    slot.crashed = false;
    slot.draining?.resolve(0);
    for (const buffer of cgiSlots) {
      if (buffer) releaseWorkerSlots(buffer, slot.index);
    }
    if (connSlots) releaseWorkerConns(connSlots, slot.index);
    for (const buffers of fastcgiSlots) {
      for (const buffer of buffers ?? []) {
        releaseWorkerBackend(buffer, slot.index);
      }
    }
    if (stopping || starting) return slot.done.resolve();
    const delay = slot.delayMs;
    slot.restart = setTimeout(() => {
      slot.restart = undefined;
      if (!stopping) start(slot);
    }, delay);
  };

  const crashed = (slot: _Slot, message: string): void => {
    if (slot.crashed) return;
    slot.crashed = true;
    const lived = Date.now() - slot.startedAt;
    if (lived >= _STABLE_MS) slot.delayMs = _RESTART_DELAY_MS;
    if (starting) {
      started.reject(new Error(`worker ${slot.index} crashed: ${message}`));
    } else if (!stopping) {
      console.error(
        `error: worker ${slot.index} crashed (${message}); restarting it in ${slot.delayMs} ms`,
      );
    }
    const delay = slot.delayMs;
    slot.delayMs = Math.min(delay * 2, _MAX_RESTART_DELAY_MS);
    // It cleans up (kills its scripts) and says `dead`; past that, it ends.
    const worker = slot.worker;
    setTimeout(() => {
      if (slot.worker === worker && slot.crashed) bury(slot);
    }, FORCE_WAIT_MS + 1000);
  };

  const onMessage = (slot: _Slot, message: FromWorker): void => {
    switch (message.type) {
      case "loaded":
        // Restarted while the server stops: it never serves.
        if (stopping) return bury(slot);
        slot.tls = tls;
        return post(slot, {
          type: "start",
          index: slot.index,
          config: shared,
          port,
          cgiSlots,
          connSlots,
          fastcgiSlots,
          testHooks: options.testHooks,
          ...(tls ? { tls } : {}),
        });
      case "log":
        options.writeLog?.(message.lines.join("\n"));
        return;
      case "listening":
        slot.tid = message.tid;
        // Renewed while it started (before it listened for messages).
        if (tls && slot.tls !== tls) {
          slot.tls = tls;
          post(slot, { type: "certificate", ...tls });
        }
        // Started just before the signal: the drain it missed, now.
        if (stopping && !slot.draining) {
          slot.draining = Promise.withResolvers<number>();
        }
        if (stopping) post(slot, { type: forcing ? "cut" : "drain" });
        if (starting && ++listening === count) started.resolve();
        if (!starting && !stopping) {
          console.error(`info: worker ${slot.index} restarted`);
        }
        return;
      case "failed":
        if (starting) return started.reject(new Error(message.message));
        return crashed(slot, message.message);
      case "draining":
        return slot.draining?.resolve(message.count);
      case "stopped":
        return bury(slot);
      case "crashed":
        return crashed(slot, message.message);
      case "dead":
        return bury(slot);
    }
  };

  const start = (slot: _Slot): void => {
    const worker = slot.index === 0
      ? localWorker()
      : new Worker(_ENTRY, { type: "module" }) as unknown as ServingIsolate;
    slot.worker = worker;
    slot.startedAt = Date.now();
    worker.onmessage = (event: MessageEvent<FromWorker>) =>
      onMessage(slot, event.data);
    // An error the isolate did not handle itself (it failed to load, or
    // failed while cleaning up): it is gone.
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      if (slot.worker !== worker) return;
      crashed(slot, event.message);
      bury(slot);
    };
  };

  const force = (): void => {
    if (forcing) return;
    forcing = true;
    clearTimeout(grace);
    for (const slot of slots) post(slot, { type: "cut" });
    giveUp = setTimeout(() => {
      for (const slot of slots) bury(slot);
    }, FORCE_WAIT_MS + 1000);
  };

  // A signal before every worker listens: handled once they all do.
  let signalled = false;
  const stop = (): void => {
    if (starting) return void (signalled = true);
    if (stopping) return force();
    stopping = true;
    const counts = slots.map((slot) => {
      clearTimeout(slot.restart);
      if (!slot.worker) {
        slot.done.resolve();
        return Promise.resolve(0);
      }
      slot.draining = Promise.withResolvers<number>();
      post(slot, { type: "drain" });
      return slot.draining.promise;
    });
    Promise.all(counts).then((n) => {
      // --quiet: nothing on stdout but the Listening line.
      if (!config.quiet) {
        console.log(
          `stopping: ${n.reduce((a, b) => a + b, 0)} requests in flight`,
        );
      }
    });
    grace = setTimeout(force, config.shutdownGraceMs);
  };

  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  // One watch for every worker: a renewed pair is checked here, then each
  // worker's front serves new connections with it.
  const certificates = tls && config.cert && config.key
    ? watchCertificate(config.cert, config.key, (cert, key) => {
      checkCertificatePair(cert, key); // throws on a bad pair: the old one stays
      tls = { cert, key };
      for (const slot of slots) post(slot, { type: "certificate", cert, key });
    }, (line) => console.error(line))
    : undefined;
  try {
    pools = await _spawnPools(shared);
    // --fastcgi-max-connections and --fastcgi-keep-alive hold for the
    // server: every worker counts each backend's connections together.
    fastcgiSlots = [shared.handler, ...shared.sites.map((s) => s.handler)]
      .map((h) =>
        h.fastcgi
          ? (h.fastcgi.backends ?? ["127.0.0.1:9000"]).map(() =>
            createBackendBuffer(count)
          )
          : undefined
      );
    for (const slot of slots) start(slot);
    try {
      await started.promise;
    } catch (error) {
      stopping = true;
      for (const slot of slots) bury(slot);
      return errorMessage(error);
    }
    starting = false;
    options.onListen({ hostname: config.host, port });
    // A signal during the start: drain now that the banner is out.
    if (signalled) stop();
    await Promise.all(slots.map((s) => s.done.promise));
    return 0;
  } finally {
    clearTimeout(grace);
    clearTimeout(giveUp);
    for (const slot of slots) {
      clearTimeout(slot.restart);
      bury(slot);
    }
    await Promise.allSettled(pools.map((p) => p.stop()));
    await certificates?.close();
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
  }
}
