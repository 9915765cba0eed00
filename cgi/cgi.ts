/**
 * The CGI/1.1 gateway (RFC 3875): the {@linkcode cgi} middleware runs
 * programs under CGI directories as scripts.
 *
 * @module
 */

import { resolve, sep } from "node:path";
import { HttpError } from "../server/errors.ts";
import { isInside } from "../server/resolve.ts";
import type { Context, Middleware } from "../server/types.ts";
import { baseProcessEnv } from "./base_env.ts";
import { prepareRequestBody } from "./body.ts";
import { buildCgiEnv } from "./env.ts";
import { locateScript } from "./locate.ts";
import { dispatchLocalRedirect } from "./redirect.ts";
import { toHttpResponse } from "./response.ts";
import { DISCARD, runScript } from "./run.ts";

/**
 * The interpreters used when {@linkcode CgiOptions.interpreters} is not
 * given: `.php` → `php-cgi`, `.py` → `python3`, `.pl` → `perl`.
 *
 * @example Adding an interpreter to the defaults
 * ```ts
 * import { cgi, DEFAULT_CGI_INTERPRETERS } from "@x/serve";
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

/** Options of {@linkcode cgi}. */
export interface CgiOptions {
  /**
   * URL prefix → directory of scripts. Prefixes are decoded paths
   * (`"/cgi-bin/"`); subdirectories work. Relative directories resolve
   * against the working directory. A missing directory answers 404.
   * @default {{"/cgi-bin/": "<document root>/cgi-bin"}}
   */
  dirs?: Record<string, string>;
  /**
   * File extension → interpreter (a program name looked up in `path`, or a
   * command array; the script path is appended). A script that is not
   * executable, or has no `#!` line, runs through the interpreter of its
   * extension.
   * @default {{".php": "php-cgi", ".py": "python3", ".pl": "perl"}}
   */
  interpreters?: Record<string, string | readonly string[]>;
  /**
   * Seconds any single wait of a running script may last: the script
   * silent while the server waits for its output (or its exit), or the
   * client not taking the output already read (a client that stops
   * reading without closing the connection). Then the script's process
   * group is killed; before any header was sent the answer is 504, after
   * that the response is cut off.
   * @default {60}
   */
  timeout?: number;
  /**
   * Seconds a chunked request body may take to arrive in full: it is
   * buffered before the script starts (and before it takes one of the
   * `maxConcurrent` slots), then 408. A body with `Content-Length` streams
   * to the running script and falls under `timeout` instead.
   * @default {timeout}
   */
  bodyTimeout?: number;
  /**
   * How many scripts may run at once (per isolate). Over it → 503 with
   * `Retry-After`.
   * @default {64}
   */
  maxConcurrent?: number;
  /**
   * The `Retry-After` seconds of the 503 sent when `maxConcurrent` is hit.
   * @default {5}
   */
  retryAfter?: number;
  /**
   * The largest request body accepted, in bytes (413 over it). Chunked
   * bodies are buffered up to this size to learn their length.
   * @default {67108864} (64 MiB)
   */
  maxBodySize?: number;
  /**
   * Bytes of a chunked body kept in memory before the rest goes to a
   * temporary file.
   * @default {1048576} (1 MiB)
   */
  bodyMemoryLimit?: number;
  /**
   * The directory for temporary files of chunked bodies.
   * @default {undefined} (the system temporary directory)
   */
  tempDir?: string;
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
   * @default {"/usr/local/bin:/usr/bin:/bin"}
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
  killGrace?: number;
}

interface _Mount {
  prefix: string[];
  dir: string | undefined; // undefined: <document root>/cgi-bin
}

function _mounts(dirs: Record<string, string> | undefined): _Mount[] {
  const entries: _Mount[] = dirs === undefined
    ? [{ prefix: ["cgi-bin"], dir: undefined }]
    : Object.entries(dirs).map(([url, dir]) => ({
      prefix: url.split("/").filter((s) => s !== ""),
      dir: resolve(dir),
    }));
  // Longest prefix first.
  return entries.sort((a, b) => b.prefix.length - a.prefix.length);
}

function _startsWith(
  segments: readonly string[],
  prefix: readonly string[],
): boolean {
  return prefix.every((s, i) => segments[i] === s);
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
 *   directory. Missing → 404; directory, or not runnable → 403.
 * - The environment is built from scratch: RFC 3875 variables,
 *   `HTTP_*` headers, `PATH`, `passEnv` and `env`. No arguments ever come
 *   from the query string. cwd is the script's directory.
 * - The body reaches stdin with an exact `CONTENT_LENGTH`; chunked bodies
 *   are buffered (413 over `maxBodySize`).
 * - Output is parsed as a CGI response (502 when invalid) and streamed; a
 *   local redirect (`Location: /path`) is re-dispatched through the whole
 *   chain as GET (HEAD stays HEAD), with the chain's loop cap.
 * - `nph-` scripts write their own status line and headers: the status and
 *   the headers are kept as written, except framing headers (the server
 *   frames the response); no CGI field is required or interpreted.
 * - Timeout (a silent script, or a client that takes no bytes) → 504 (or
 *   a cut-off response) and the process group is killed; a client that
 *   leaves gets its script's group killed too; over `maxConcurrent` → 503
 *   (a slot is taken once a chunked body was buffered, within
 *   `bodyTimeout`, else 408).
 *
 * @example Serving scripts from ./cgi-bin at /cgi-bin/
 * ```ts ignore
 * import { cgi, compose, resolvePath } from "@x/serve";
 *
 * const handler = compose([
 *   resolvePath({ root: "." }),
 *   cgi({ dirs: { "/cgi-bin/": "./cgi-bin" }, timeout: 30 }),
 * ]);
 * Deno.serve(handler);
 * ```
 *
 * @param options Directories, interpreters and limits.
 * @returns The middleware.
 */
export function cgi(options: CgiOptions = {}): Middleware {
  const {
    interpreters = DEFAULT_CGI_INTERPRETERS,
    timeout = 60,
    bodyTimeout = timeout,
    maxConcurrent = 64,
    retryAfter = 5,
    maxBodySize,
    bodyMemoryLimit,
    tempDir,
    maxHeaderBytes,
    passAuthorization = false,
    path = "/usr/local/bin:/usr/bin:/bin",
    passEnv = [],
    env: fixedEnv = {},
    killGrace = 2000,
  } = options;
  if (!(timeout > 0)) {
    throw new RangeError(
      `Cannot create cgi(): timeout "${timeout}" is not positive`,
    );
  }
  if (!(bodyTimeout > 0)) {
    throw new RangeError(
      `Cannot create cgi(): bodyTimeout "${bodyTimeout}" is not positive`,
    );
  }
  if (!(maxConcurrent >= 1)) {
    throw new RangeError(
      `Cannot create cgi(): maxConcurrent "${maxConcurrent}" is below 1`,
    );
  }
  const mounts = _mounts(options.dirs);
  const baseEnv = baseProcessEnv(path, passEnv);
  // Only found directories are cached: one created later is picked up.
  const realDirs = new Map<string, string>();
  let running = 0;

  async function realDir(
    mount: _Mount,
    ctx: Context,
  ): Promise<string | undefined> {
    const dir = mount.dir ?? resolve(ctx.root ?? ".", "cgi-bin");
    const cached = realDirs.get(dir);
    if (cached !== undefined) return cached;
    try {
      const real = await Deno.realPath(dir);
      realDirs.set(dir, real);
      return real;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      return undefined;
    }
  }

  return async function cgiMiddleware(req, ctx, next) {
    const mount = mounts.find((m) => _startsWith(ctx.segments, m.prefix));
    if (!mount) {
      if (ctx.file) {
        // Never let static serving expose a CGI directory's files.
        const real = await _realPathOrUndefined(ctx.file.path);
        // A file that vanished meanwhile is left to static serving (404).
        for (const m of real === undefined ? [] : mounts) {
          const dir = await realDir(m, ctx);
          if (dir !== undefined && isInside(dir, real!)) {
            throw new HttpError(
              403,
              "File inside a CGI directory requested outside its prefix",
            );
          }
        }
      }
      return next();
    }
    const dir = await realDir(mount, ctx);
    if (dir === undefined) {
      throw new HttpError(404, "CGI directory does not exist");
    }
    const script = await locateScript(
      dir,
      mount.prefix,
      ctx.segments.slice(mount.prefix.length),
      ctx.path.endsWith("/") && ctx.segments.length > 0,
      { interpreters },
    );
    const busy = (): HttpError =>
      new HttpError(
        503,
        `CGI limit of ${maxConcurrent} running scripts reached`,
        { headers: { "retry-after": String(retryAfter) } },
      );
    if (running >= maxConcurrent) {
      await req.body?.cancel().catch(() => {});
      throw busy();
    }
    // The body is buffered (when chunked) before a slot is taken: a slow
    // upload must not hold one.
    const body = await prepareRequestBody(req, {
      maxBodySize,
      memoryLimit: bodyMemoryLimit,
      tempDir,
      timeout: bodyTimeout * 1000,
    });
    if (running >= maxConcurrent) {
      await body.stream?.cancel().catch(() => {});
      await body.dispose();
      throw busy();
    }
    running++;
    let started = false;
    try {
      let run;
      try {
        const env = {
          ...baseEnv,
          ...buildCgiEnv(req, ctx, {
            scriptName: script.scriptName,
            scriptFilename: script.filename,
            pathInfo: script.pathInfo,
            contentLength: body.length,
            passAuthorization,
            extra: fixedEnv,
          }),
        };
        run = await runScript(script.program, {
          args: script.args,
          cwd: script.filename.slice(0, script.filename.lastIndexOf(sep)) ||
            sep,
          env,
          stdin: body.stream,
          timeoutMs: timeout * 1000,
          killGraceMs: killGrace,
          maxHeaderBytes,
          nph: script.nph,
          signal: req.signal,
          log: ctx.log,
          tag: `cgi ${script.scriptName}`,
        });
      } catch (error) {
        await body.stream?.cancel().catch(() => {});
        await body.dispose();
        throw error;
      }
      started = true;
      run.finished.finally(() => {
        running--;
        return body.dispose();
      }).catch((error) =>
        ctx.log("error", `cgi ${script.scriptName}: cleanup failed: ${error}`)
      );
      const { response } = run;
      if (response.localRedirect !== undefined) {
        await response.body.cancel(DISCARD);
        return await dispatchLocalRedirect(req, ctx, response.localRedirect);
      }
      if (req.method === "HEAD" || [204, 205, 304].includes(response.status)) {
        await response.body.cancel(DISCARD);
      }
      return toHttpResponse(response, req.method);
    } finally {
      if (!started) running--;
    }
  };
}

async function _realPathOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await Deno.realPath(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}
