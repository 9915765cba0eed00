/**
 * The CGI/1.1 gateway (RFC 3875): the {@linkcode cgi} middleware runs
 * programs under CGI directories as scripts.
 *
 * @module
 */

import { basename, dirname, resolve } from "node:path";
import { HttpError } from "../server/errors.ts";
import { documentRoot, isInside } from "../server/resolve.ts";
import type { Context, DocumentRoot, Middleware } from "../server/types.ts";
import { baseProcessEnv, DEFAULT_PATH } from "./base_env.ts";
import {
  type PreparedBody,
  prepareRequestBody,
  type RequestBodyOptions,
} from "./body.ts";
import { buildCgiEnv } from "./env.ts";
import { type LocatedScript, locateScript } from "./locate.ts";
import { openPosixSpawn, type PosixSpawn } from "./posix_spawn.ts";
import { findSetsid } from "./process.ts";
import { dispatchLocalRedirect } from "./redirect.ts";
import { type CgiResponse, toHttpResponse } from "./response.ts";
import { DISCARD, runScript, type ScriptRun } from "./run.ts";

/**
 * The interpreters used when {@linkcode CgiOptions.interpreters} is not
 * given: `.php` → `php-cgi`, `.py` → `python3`, `.pl` → `perl`.
 *
 * @example Adding an interpreter to the defaults
 * ```ts
 * import { cgi, DEFAULT_CGI_INTERPRETERS } from "@x/serve/cgi";
 *
 * const middleware = cgi({
 *   interpreters: { ...DEFAULT_CGI_INTERPRETERS, ".rb": ["ruby", "-w"] },
 * });
 * ```
 */
export const DEFAULT_CGI_INTERPRETERS: Readonly<Record<string, string>> = Object
  .freeze({
    ".php": "php-cgi",
    ".py": "python3",
    ".pl": "perl",
  });

/**
 * Options of {@linkcode cgi}. Durations are in milliseconds.
 *
 * @example A tools directory with a short timeout
 * ```ts
 * import { cgi, type CgiOptions } from "@x/serve/cgi";
 *
 * const options: CgiOptions = {
 *   dirs: { "/tools/": "/srv/tools" },
 *   timeoutMs: 10_000,
 *   maxConcurrent: 8,
 *   retryAfterMs: 2_000,
 * };
 * const middleware = cgi(options);
 * ```
 */
export interface CgiOptions extends RequestBodyOptions {
  /**
   * URL prefix → directory of scripts. Prefixes are decoded paths
   * (`"/cgi-bin/"`); subdirectories work. Relative directories resolve
   * against the working directory. A missing directory answers 404.
   * @default {{"/cgi-bin/": "<document root>/cgi-bin"}}
   */
  dirs?: Record<string, string>;
  /**
   * URL prefix → one script that answers everything below it (Apache
   * `ScriptAlias /cgit/ /usr/lib/cgit/cgit.cgi`): `SCRIPT_NAME` is the
   * prefix without its trailing slash, `PATH_INFO` the rest of the path.
   * Mounts (these and `dirs`) are matched longest prefix first.
   * @default {{}}
   */
  scripts?: Record<string, string>;
  /**
   * File extension → interpreter (a program name looked up in `path`, or a
   * command array; the script path is appended). A script that is not
   * executable, or has no `#!` line, runs through the interpreter of its
   * extension.
   * @default {{".php": "php-cgi", ".py": "python3", ".pl": "perl"}}
   */
  interpreters?: Record<string, string | readonly string[]>;
  /**
   * Milliseconds any single wait of a running script may last: the script
   * silent while the server waits for its output (or its exit), or the
   * client not taking the output already read (a client that stops
   * reading without closing the connection). Then the script's process
   * group is killed; before any header was sent the answer is 504, after
   * that the response is cut off.
   * @default {60000}
   */
  timeoutMs?: number;
  /**
   * Milliseconds a request body may go without a byte while it is buffered
   * (before the script starts and before it takes one of the
   * `maxConcurrent` slots), then 408. With `streamBody`, a body with
   * `Content-Length` streams to the running script and falls under
   * `timeoutMs` instead.
   * @default {timeoutMs}
   */
  bodyTimeoutMs?: number;
  /**
   * How many scripts may run at once (per isolate, or across the isolates
   * sharing {@linkcode CgiOptions.sharedSlots}). Over it → 503 with
   * `Retry-After`.
   * @default {64}
   */
  maxConcurrent?: number;
  /**
   * A running-script count shared with other isolates (the CLI's
   * `--workers`, e.g. a `SharedArrayBuffer` counted with `Atomics`), so
   * that `maxConcurrent` holds across all of them: `count()` is how many
   * run now, `tryTake(limit)` takes one slot when fewer than `limit` run
   * (atomically; `false` when full), `release()` frees one.
   * @default {undefined} (this isolate's own count)
   */
  sharedSlots?: {
    count(): number;
    tryTake(limit: number): boolean;
    release(): void;
  };
  /**
   * How long clients are told to wait (`Retry-After`, in whole seconds,
   * rounded up) by the 503 sent when `maxConcurrent` is hit.
   * @default {5000}
   */
  retryAfterMs?: number;
  /**
   * The largest header block a script may write, in bytes (502 over it).
   * @default {65536}
   */
  maxHeaderBytes?: number;
  /**
   * Pass the `Authorization` header to scripts as `HTTP_AUTHORIZATION`.
   * @default {false}
   */
  passAuthorization?: boolean;
  /**
   * `PATH` of the scripts' environment (also used to find interpreters).
   * @default {"/usr/local/bin:/usr/bin:/bin"} (`DEFAULT_PATH`)
   */
  path?: string;
  /**
   * Names of server environment variables passed on to scripts (read once,
   * when the middleware is created). Nothing else of the server's
   * environment reaches a script.
   * @default {[]}
   */
  passEnv?: readonly string[];
  /**
   * Fixed variables added to every script's environment (they override the
   * computed ones).
   * @default {{}}
   */
  env?: Record<string, string>;
  /**
   * Milliseconds between SIGTERM and SIGKILL when a script's process group
   * is killed.
   * @default {2000}
   */
  killGraceMs?: number;
  /**
   * Milliseconds a script's pipes get once the script process itself
   * exited. A background child still holding stdout (or stdin, stderr)
   * open past that is killed with the group, and the response ends with
   * what the script wrote (properly terminated when it exited with 0)
   * instead of being held until `timeoutMs` and cut off.
   * @default {1000}
   */
  exitGraceMs?: number;
  /**
   * Abort it to kill every running script's process group (SIGTERM, then
   * SIGKILL after `killGraceMs`): scripts waiting for their header block
   * answer 502, streaming bodies are cut off once the group is gone, and
   * background children still holding a pipe die too. Requests that come
   * after it aborted answer 503. The CLI aborts it when its shutdown grace
   * is over.
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/** The options of {@linkcode cgi} with their defaults applied. */
interface _Settings {
  interpreters: Record<string, string | readonly string[]>;
  timeoutMs: number;
  body: RequestBodyOptions;
  maxHeaderBytes: number | undefined;
  passAuthorization: boolean;
  baseEnv: Record<string, string>;
  fixedEnv: Record<string, string>;
  killGraceMs: number;
  exitGraceMs: number;
  signal: AbortSignal | undefined;
  retryAfter: string;
  setsid: string | undefined;
  posixSpawn: PosixSpawn | undefined;
}

function _settings(options: CgiOptions): _Settings {
  const { timeoutMs = 60_000, bodyTimeoutMs = timeoutMs } = options;
  if (!(timeoutMs > 0)) {
    throw new RangeError(
      `Cannot create cgi(): timeoutMs "${timeoutMs}" is not positive`,
    );
  }
  if (!(bodyTimeoutMs > 0)) {
    throw new RangeError(
      `Cannot create cgi(): bodyTimeoutMs "${bodyTimeoutMs}" is not positive`,
    );
  }
  const { exitGraceMs = 1000 } = options;
  if (!(exitGraceMs >= 0)) {
    throw new RangeError(
      `Cannot create cgi(): exitGraceMs "${exitGraceMs}" is negative`,
    );
  }
  const { maxBodySize, bodyMemoryLimit, tempDir, streamBody } = options;
  return {
    interpreters: options.interpreters ?? DEFAULT_CGI_INTERPRETERS,
    timeoutMs,
    body: { maxBodySize, bodyMemoryLimit, tempDir, bodyTimeoutMs, streamBody },
    maxHeaderBytes: options.maxHeaderBytes,
    passAuthorization: options.passAuthorization ?? false,
    baseEnv: baseProcessEnv(
      options.path ?? DEFAULT_PATH,
      options.passEnv ?? [],
    ),
    fixedEnv: options.env ?? {},
    killGraceMs: options.killGraceMs ?? 2000,
    exitGraceMs,
    signal: options.signal,
    retryAfter: String(Math.ceil((options.retryAfterMs ?? 5000) / 1000)),
    // Spawning through setsid(1) keeps each script in a group of its own
    // without Deno's fork-based `detached` (much slower under load).
    setsid: findSetsid(),
    // Better still: posix_spawn with POSIX_SPAWN_SETSID, one exec (when
    // FFI on the C library is granted).
    posixSpawn: _posixSpawn(options.signal),
  };
}

/** The spawner, closed once `signal` aborts (its last scripts still reaped). */
function _posixSpawn(signal: AbortSignal | undefined): PosixSpawn | undefined {
  if (signal?.aborted) return undefined;
  const spawner = openPosixSpawn();
  signal?.addEventListener("abort", () => spawner?.close(), { once: true });
  return spawner;
}

interface _Mount {
  prefix: string[];
  dir: string | undefined; // undefined: <document root>/cgi-bin
  /** A single script mounted at the prefix: its name inside `dir`. */
  script?: string;
}

function _mounts(
  dirs: Record<string, string> | undefined,
  scripts: Record<string, string> = {},
): _Mount[] {
  const entries: _Mount[] = dirs === undefined
    ? [{ prefix: ["cgi-bin"], dir: undefined }]
    : Object.entries(dirs).map(([url, dir]) => ({
      prefix: url.split("/").filter((s) => s !== ""),
      dir: resolve(dir),
    }));
  for (const [url, file] of Object.entries(scripts)) {
    const path = resolve(file);
    entries.push({
      prefix: url.split("/").filter((s) => s !== ""),
      dir: dirname(path),
      script: basename(path),
    });
  }
  // Longest prefix first.
  return entries.sort((a, b) => b.prefix.length - a.prefix.length);
}

function _startsWith(
  segments: readonly string[],
  prefix: readonly string[],
): boolean {
  return prefix.every((s, i) => segments[i] === s);
}

/** The lookup of a mount's directory, or `undefined` while it does not exist. */
type _ScriptDir = (
  mount: _Mount,
  ctx: Context,
) => Promise<DocumentRoot | undefined>;

/**
 * Each mount's directory as a lookup under its real path, with the site's
 * dotfile policy and no symlinks out of it. Only found directories are
 * cached: one created later is picked up.
 */
function _scriptDirs(): _ScriptDir {
  const cache = new Map<string, DocumentRoot>();
  return async function scriptDir(mount, ctx) {
    const dir = mount.dir ?? resolve(ctx.root?.path ?? ".", "cgi-bin");
    const dotfiles = ctx.root?.dotfiles ?? false;
    const key = `${dotfiles} ${dir}`;
    const cached = cache.get(key);
    if (cached !== undefined) return cached;
    let real: string;
    try {
      real = await Deno.realPath(dir);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      return undefined;
    }
    const lookup = documentRoot(real, { dotfiles, followSymlinks: false });
    cache.set(key, lookup);
    return lookup;
  };
}

/** Never lets static serving expose a CGI directory's files (403). */
async function _guardScriptFiles(
  ctx: Context,
  mounts: readonly _Mount[],
  scriptDir: _ScriptDir,
  file = ctx.file,
): Promise<void> {
  const real = file?.realPath;
  if (real === undefined) return;
  for (const mount of mounts) {
    const dir = await scriptDir(mount, ctx);
    if (dir !== undefined && isInside(dir.path, real)) {
      throw new HttpError(
        403,
        "File inside a CGI directory requested outside its prefix",
      );
    }
  }
}

/**
 * The same guard for a file static serving sent in place of the requested
 * path (an index file, a clean URL's `.html`, the SPA page).
 */
async function _guardServedFile(
  ctx: Context,
  res: Response,
  mounts: readonly _Mount[],
  scriptDir: _ScriptDir,
): Promise<void> {
  const served = ctx.served;
  if (served === undefined || ctx.root === undefined) return;
  if (served === "/" + ctx.segments.join("/")) return; // checked before
  const file = await ctx.root.find(served.split("/").filter((s) => s !== ""));
  try {
    await _guardScriptFiles(ctx, mounts, scriptDir, file);
  } catch (error) {
    await res.body?.cancel();
    throw error;
  }
}

/** The `maxConcurrent` slots of running scripts. */
interface _Slots {
  /** Throws the 503 when no slot is free. */
  check(): void;
  /** Takes one; throws the 503 when none is free (any more). */
  take(): void;
  release(): void;
}

function _slots(
  maxConcurrent: number,
  retryAfterMs: number,
  shared: CgiOptions["sharedSlots"],
): _Slots {
  if (!(maxConcurrent >= 1)) {
    throw new RangeError(
      `Cannot create cgi(): maxConcurrent "${maxConcurrent}" is below 1`,
    );
  }
  const retryAfter = String(Math.ceil(retryAfterMs / 1000));
  const full = () =>
    new HttpError(
      503,
      `CGI limit of ${maxConcurrent} running scripts reached`,
      { headers: { "retry-after": retryAfter } },
    );
  if (shared) {
    return {
      check() {
        if (shared.count() >= maxConcurrent) throw full();
      },
      // Another isolate may have taken the last slot since check().
      take() {
        if (!shared.tryTake(maxConcurrent)) throw full();
      },
      release: () => shared.release(),
    };
  }
  let running = 0;
  return {
    check() {
      if (running >= maxConcurrent) throw full();
    },
    take: () => void running++,
    release: () => void running--,
  };
}

/** Throws the 503 once {@linkcode CgiOptions.signal} aborted. */
function _checkRunning(settings: _Settings): void {
  if (!settings.signal?.aborted) return;
  throw new HttpError(503, "CGI: the server is shutting down", {
    headers: { "retry-after": settings.retryAfter },
  });
}

async function _drop(body: PreparedBody): Promise<void> {
  await body.stream?.cancel().catch(() => {});
  await body.dispose();
}

/** Starts the script with its environment and the prepared body. */
function _start(
  req: Request,
  ctx: Context,
  script: LocatedScript,
  body: PreparedBody,
  settings: _Settings,
): Promise<ScriptRun> {
  const env = {
    ...settings.baseEnv,
    ...buildCgiEnv(req, ctx, {
      scriptName: script.scriptName,
      scriptFilename: script.filename,
      pathInfo: script.pathInfo,
      contentLength: body.length,
      passAuthorization: settings.passAuthorization,
      extra: ctx.scriptVars
        ? { ...settings.fixedEnv, ...ctx.scriptVars }
        : settings.fixedEnv,
    }),
  };
  return runScript(script.program, {
    args: script.args,
    cwd: dirname(script.filename),
    env,
    stdin: body.stream,
    timeoutMs: settings.timeoutMs,
    killGraceMs: settings.killGraceMs,
    exitGraceMs: settings.exitGraceMs,
    shutdownSignal: settings.signal,
    setsid: settings.setsid,
    posixSpawn: settings.posixSpawn,
    maxHeaderBytes: settings.maxHeaderBytes,
    nph: script.nph,
    signal: req.signal,
    log: ctx.log,
    tag: `cgi ${script.scriptName}`,
  });
}

/**
 * Takes a slot (503 when none is free) and starts the script in it. The
 * slot is freed, and the body disposed of, once the script has finished.
 */
async function _startInSlot(
  req: Request,
  ctx: Context,
  script: LocatedScript,
  body: PreparedBody,
  settings: _Settings,
  slots: _Slots,
): Promise<ScriptRun> {
  let run: ScriptRun;
  try {
    slots.check();
    slots.take();
    try {
      run = await _start(req, ctx, script, body, settings);
    } catch (error) {
      slots.release();
      throw error;
    }
  } catch (error) {
    await _drop(body);
    throw error;
  }
  run.finished.finally(() => {
    slots.release();
    return body.dispose();
  }).catch((error) =>
    ctx.log("error", `cgi ${script.scriptName}: cleanup failed: ${error}`)
  );
  return run;
}

/** The response for what the script answered: its own, or a local redirect's. */
async function _answer(
  req: Request,
  ctx: Context,
  script: LocatedScript,
  response: CgiResponse,
): Promise<Response> {
  if (response.localRedirect === undefined) {
    return toHttpResponse(response, req.method, {
      discard: DISCARD,
      log: ctx.log,
      tag: `cgi ${script.scriptName}`,
    });
  }
  await response.body.cancel(DISCARD);
  return await dispatchLocalRedirect(req, ctx, response.localRedirect);
}

/**
 * The CGI middleware. Requests under a prefix of `dirs` run the script the
 * path names; other requests go to `next()`, except that a file whose real
 * path lies inside a CGI directory is never handed on to static serving
 * (403).
 *
 * Behaviour, in short (see the README for the full rules):
 * - Routing uses the decoded, normalised `ctx.segments` (set by
 *   `resolvePath()`), split at the first regular file into `SCRIPT_NAME`
 *   and `PATH_INFO`; the script's real path must stay inside the real CGI
 *   directory, and the site's dotfile policy (`ctx.root`) holds there too.
 *   Missing → 404; directory, or not runnable → 403.
 * - The environment is built from scratch: RFC 3875 variables,
 *   `HTTP_*` headers, `PATH`, `passEnv` and `env`. No arguments ever come
 *   from the query string. cwd is the script's directory.
 * - The body reaches stdin with an exact `CONTENT_LENGTH`; chunked bodies
 *   are buffered (413 over `maxBodySize`).
 * - Output is parsed as a CGI response (502 when invalid) and streamed; a
 *   local redirect (`Location: /path`) is re-dispatched through the whole
 *   chain as GET (HEAD stays HEAD), with the chain's loop cap.
 * - The script's `Content-Length` is kept when valid (else 502) and the
 *   body sent is exactly that long: longer output is cut there, shorter
 *   output closes the connection; without one the body goes out chunked.
 * - `nph-` scripts write their own status line and headers: the status and
 *   the headers are kept as written, except hop-by-hop ones (the server
 *   frames the response; `Content-Length` is kept and enforced as above);
 *   no CGI field is required or interpreted.
 * - Timeout (a silent script, or a client that takes no bytes) → 504 (or
 *   a cut-off response) and the process group is killed; a client that
 *   leaves gets its script's group killed too, and so does every running
 *   script when `signal` aborts (shutdown). A script that exits while a
 *   background child holds its stdout ends its response `exitGraceMs`
 *   later, and the child is killed; over `maxConcurrent` → 503
 *   (a slot is taken once the body was buffered, with at most
 *   `bodyTimeoutMs` of silence, else 408).
 *
 * @example Serving scripts from ./cgi-bin at /cgi-bin/
 * ```ts ignore
 * import { compose, resolvePath } from "@x/serve";
 * import { cgi } from "@x/serve/cgi";
 *
 * const handler = compose([
 *   resolvePath({ root: "." }),
 *   cgi({ dirs: { "/cgi-bin/": "./cgi-bin" }, timeoutMs: 30_000 }),
 * ]);
 * Deno.serve(handler);
 * ```
 *
 * @param options Directories, interpreters and limits.
 * @returns The middleware.
 */
export function cgi(options: CgiOptions = {}): Middleware {
  const settings = _settings(options);
  const slots = _slots(
    options.maxConcurrent ?? 64,
    options.retryAfterMs ?? 5000,
    options.sharedSlots,
  );
  const mounts = _mounts(options.dirs, options.scripts);
  const scriptDir = _scriptDirs();

  return async function cgiMiddleware(req, ctx, next) {
    const mount = mounts.find((m) => _startsWith(ctx.segments, m.prefix));
    // A file asked for by X-Accel-Redirect / X-Sendfile is sent, never run.
    if (!mount || ctx.fileOnly) {
      await _guardScriptFiles(ctx, mounts, scriptDir);
      const res = await next();
      await _guardServedFile(ctx, res, mounts, scriptDir);
      return res;
    }
    const dir = await scriptDir(mount, ctx);
    if (dir === undefined) {
      throw new HttpError(404, "CGI directory does not exist");
    }
    const rest = ctx.segments.slice(mount.prefix.length);
    const trailing = ctx.path.endsWith("/") && ctx.segments.length > 0;
    const interpreters = { interpreters: settings.interpreters };
    const script = mount.script === undefined
      ? await locateScript(dir, mount.prefix, rest, trailing, interpreters)
      : {
        ...await locateScript(
          dir,
          [],
          [mount.script, ...rest],
          trailing,
          interpreters,
        ),
        scriptName: "/" + mount.prefix.join("/"),
      };
    try {
      _checkRunning(settings);
      slots.check();
    } catch (error) {
      await req.body?.cancel().catch(() => {});
      throw error;
    }
    // The body is buffered (when chunked) before a slot is taken: a slow
    // upload must not hold one.
    const body = await prepareRequestBody(req, settings.body);
    const run = await _startInSlot(req, ctx, script, body, settings, slots);
    return await _answer(req, ctx, script, run.response);
  };
}
