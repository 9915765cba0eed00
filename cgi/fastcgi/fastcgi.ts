/**
 * {@linkcode fastcgi}: the FastCGI gateway middleware. Requests for existing
 * scripts (`*.php` by default) under the root go to a FastCGI responder
 * (php-fpm, or workers the server spawns itself); everything else goes on
 * down the chain (static files keep being served).
 *
 * @module
 */

import { defaultLog, errorMessage } from "../../server/log.ts";
import { HttpError } from "../../server/errors.ts";
import { directoryRedirect } from "../../server/http.ts";
import { basename, dirname, resolve } from "node:path";
import { documentRoot } from "../../server/resolve.ts";
import type {
  Context,
  DocumentRoot,
  LogFn,
  Middleware,
  ResolvedFile,
} from "../../server/types.ts";
import {
  type PreparedBody,
  prepareRequestBody,
  type RequestBodyOptions,
} from "../body.ts";
import { buildCgiEnv } from "../env.ts";
import { dispatchLocalRedirect } from "../redirect.ts";
import {
  type CgiResponse,
  discardBody,
  parseCgiResponse,
  toHttpResponse,
} from "../response.ts";
import { pullStream, readChunk } from "../stream.ts";
import type { FastCgiAddress } from "./address.ts";
import {
  createFastCgiClient,
  type FastCgiClient,
  type FastCgiClientOptions,
  type FastCgiOutput,
} from "./client.ts";
import { FastCgiError } from "./errors.ts";
import { slowAbort } from "./slow_abort.ts";
import { Deadlines } from "../../server/deadlines.ts";
import {
  type FastCgiSpawnOptions,
  type FastCgiWorkers,
  spawnFastCgiWorkers,
} from "./spawn.ts";

/**
 * Options of {@linkcode fastcgi}. Durations are in milliseconds.
 *
 * @example A Laravel-style app behind php-fpm
 * ```ts
 * import { fastcgi, type FastCgiOptions } from "@x/serve/fastcgi";
 *
 * const options: FastCgiOptions = {
 *   backends: ["unix:/run/php/php8.2-fpm.sock"],
 *   frontController: "/index.php",
 *   readTimeoutMs: 120_000,
 *   maxBodySize: 16 * 1024 * 1024,
 * };
 * await using php = fastcgi(options);
 * ```
 */
export interface FastCgiOptions
  extends
    Omit<FastCgiClientOptions, "backends" | "maxConnections">,
    RequestBodyOptions {
  /**
   * The responders: `host:port`, `unix:/path` or parsed addresses. Several
   * take turns (round-robin); one that refuses connections is skipped for
   * {@linkcode FastCgiOptions.downTimeMs}. Ignored when
   * {@linkcode FastCgiOptions.spawn} is set.
   * @default {["127.0.0.1:9000"]}
   */
  backends?: readonly (string | FastCgiAddress)[];
  /**
   * Start and supervise the responders: a command such as `"php-cgi"`
   * (each worker gets `-b SOCKET` appended, or `{socket}` replaced).
   * @default {undefined} (use {@linkcode FastCgiOptions.backends})
   */
  spawn?: string | readonly string[];
  /**
   * Number of worker processes for {@linkcode FastCgiOptions.spawn}.
   * @default {4}
   */
  workers?: number;
  /**
   * Extra environment for spawned workers. The server's own environment
   * never reaches them: they get `PATH` ({@linkcode FastCgiOptions.spawnPath}),
   * the variables named in {@linkcode FastCgiOptions.spawnPassEnv},
   * `PHP_FCGI_CHILDREN=0`, `PHP_FCGI_MAX_REQUESTS=0` and these.
   * @default {{}}
   */
  spawnEnv?: Record<string, string>;
  /**
   * Names of server environment variables passed on to spawned workers
   * (read once, at start).
   * @default {[]}
   */
  spawnPassEnv?: readonly string[];
  /**
   * `PATH` of spawned workers (also used to find the command).
   * @default {undefined} (the server's `PATH` when readable, else `DEFAULT_PATH`)
   */
  spawnPath?: string;
  /**
   * File extensions that are scripts (case-sensitive, with the dot).
   * @default {[".php"]}
   */
  extensions?: readonly string[];
  /**
   * The directory index script (`/dir/` runs `/dir/index.php`); `""`
   * disables it.
   * @default {"index.php"}
   */
  index?: string;
  /**
   * Front controller: a script path (e.g. `"/index.php"`) that answers
   * every path that does not exist, as PHP frameworks expect. Paths that
   * name a missing script still answer 404.
   * @default {undefined} (off)
   */
  frontController?: string;
  /**
   * URL prefix → one script that answers everything below it (a front
   * controller mounted at a prefix): `SCRIPT_NAME` is the prefix without
   * its trailing slash, `PATH_INFO` the rest of the path,
   * `SCRIPT_FILENAME` the script's real path. Longest prefix first.
   * @default {{}}
   */
  scripts?: Record<string, string>;
  /**
   * The document root as the responder sees it (for a php-fpm in a
   * container); `SCRIPT_FILENAME` and `DOCUMENT_ROOT` are built on it.
   * @default {undefined} (the server's real root)
   */
  documentRoot?: string;
  /**
   * Extra params sent with every request (override computed ones), like
   * nginx's `fastcgi_param`.
   * @default {{}}
   */
  params?: Record<string, string>;
  /**
   * Pass the `Authorization` header as `HTTP_AUTHORIZATION` (PHP builds
   * `PHP_AUTH_USER` and bearer-token apps read it). nginx does the same.
   * @default {true}
   */
  passAuthorization?: boolean;
  /**
   * Most open connections per backend (0 = no limit).
   * @default {0} (1 per spawned worker)
   */
  maxConnections?: number;
  /**
   * Largest response header block in bytes (over → 502).
   * @default {65536}
   */
  maxHeaderBytes?: number;
}

/**
 * The {@linkcode fastcgi} middleware, plus shutdown.
 *
 * @example Reading the client's counters, then shutting down
 * ```ts
 * import { fastcgi, type FastCgiMiddleware } from "@x/serve/fastcgi";
 * import assert from "node:assert/strict";
 *
 * const php: FastCgiMiddleware = fastcgi({ backends: ["127.0.0.1:9000"] });
 * assert.equal(php.client.stats()[0]?.label, "127.0.0.1:9000");
 * assert.equal(php.workers, undefined);
 * await php.close();
 * ```
 */
export interface FastCgiMiddleware extends Middleware, AsyncDisposable {
  /** Closes idle connections and stops spawned workers. */
  close(): Promise<void>;
  /** The spawned workers, when {@linkcode FastCgiOptions.spawn} is set. */
  readonly workers: FastCgiWorkers | undefined;
  /** The underlying client (for stats). */
  readonly client: FastCgiClient;
}

interface _Script {
  /** Segments naming the script. */
  segments: string[];
  file: ResolvedFile;
  pathInfo: string;
  /** Mounted at a prefix (`scripts`): named by its real path. */
  mounted?: boolean;
}

/** A script mounted at a prefix (`scripts`). */
interface _MountedScript {
  prefix: string[];
  dir: DocumentRoot;
  name: string;
}

function _mountedScripts(
  scripts: Record<string, string> = {},
): _MountedScript[] {
  return Object.entries(scripts).map(([url, file]) => {
    const path = resolve(file);
    return {
      prefix: url.split("/").filter((s) => s !== ""),
      dir: documentRoot(dirname(path), { dotfiles: true }),
      name: basename(path),
    };
  }).sort((a, b) => b.prefix.length - a.prefix.length);
}

/** The mounted script answering `ctx`, if any (404 while it is missing). */
async function _mounted(
  ctx: Context,
  mounts: readonly _MountedScript[],
): Promise<_Script | undefined> {
  if (mounts.length === 0 || ctx.base !== "") return undefined;
  const { segments } = ctx;
  const mount = mounts.find((m) => m.prefix.every((s, i) => segments[i] === s));
  if (!mount) return undefined;
  const file = await mount.dir.find([mount.name]);
  if (!file?.info.isFile) throw new HttpError(404, "Mounted script missing");
  const rest = segments.slice(mount.prefix.length);
  const trailing = segments.length > 0 && ctx.path.endsWith("/");
  return {
    segments: mount.prefix,
    file,
    mounted: true,
    // As nginx's `fastcgi_split_path_info ^(/app)(/.*)$`: /app/ → "/".
    pathInfo: (rest.length ? "/" + rest.join("/") : "") + (trailing ? "/" : ""),
  };
}

/** The responders: a client, and the workers when they are spawned. */
interface _Backend {
  client: FastCgiClient;
  workers: FastCgiWorkers | undefined;
  /** Settles once the spawned workers first started (requests wait for it). */
  started: Promise<void> | undefined;
}

/**
 * The process manager's options from `options`' `spawn*` fields (shared
 * with the CLI's `--workers`, which starts the pool in the main thread).
 */
export function _spawnOptions(
  command: NonNullable<FastCgiOptions["spawn"]>,
  options: FastCgiOptions,
  log: LogFn,
): FastCgiSpawnOptions {
  return {
    command,
    workers: options.workers,
    env: options.spawnEnv,
    passEnv: options.spawnPassEnv,
    path: options.spawnPath,
    log,
  };
}

/**
 * How a client reaches spawned workers: their sockets, one connection
 * each (a `php-cgi -b` worker serves one at a time), kept at most once,
 * and a dead one skipped for a second.
 */
export function _spawnedBackends(
  options: FastCgiOptions,
  addresses: readonly FastCgiAddress[],
): Pick<
  FastCgiOptions,
  "backends" | "keepAlive" | "maxConnections" | "downTimeMs"
> {
  return {
    backends: addresses,
    keepAlive: Math.min(options.keepAlive ?? 1, 1),
    maxConnections: 1,
    downTimeMs: options.downTimeMs ?? 1_000,
  };
}

function _backend(options: FastCgiOptions, log: LogFn): _Backend {
  if (options.spawn === undefined) {
    return {
      client: createFastCgiClient({ ...options, log }),
      workers: undefined,
      started: undefined,
    };
  }
  // Workers get ready asynchronously, once the client below exists.
  const link: { client?: FastCgiClient } = {};
  const workers = spawnFastCgiWorkers({
    ..._spawnOptions(options.spawn, options, log),
    onReady: (i) => link.client?.markUp(i),
  });
  workers.ready.catch((error) =>
    log("error", `FastCGI workers did not start: ${errorMessage(error)}`)
  );
  const client = link.client = createFastCgiClient({
    ...options,
    ..._spawnedBackends(options, workers.addresses),
    log,
  });
  // One worker failing to start does not block requests.
  return { client, workers, started: workers.ready.catch(() => {}) };
}

/** Which path names are scripts, the directory index and the front controller. */
interface _Routing {
  isScript(name: string): boolean;
  index: string;
  front: string[] | undefined;
}

function _routing(options: FastCgiOptions): _Routing {
  const { extensions = [".php"], index = "index.php", frontController } =
    options;
  if (frontController !== undefined && !frontController.startsWith("/")) {
    throw new TypeError(
      `Cannot use front controller "${frontController}": it must start with "/"`,
    );
  }
  return {
    isScript: (name) =>
      extensions.some((ext) => name.length > ext.length && name.endsWith(ext)),
    index,
    front: frontController?.split("/").filter((s) => s !== ""),
  };
}

/**
 * The script that answers a request (rules 1 to 3 of {@linkcode fastcgi}),
 * or `undefined` for `next()`. A path naming a missing script → 404.
 */
async function _route(
  ctx: Context,
  routing: _Routing,
): Promise<_Script | undefined> {
  const found = await _findScript(ctx, routing);
  if (found === "missing") {
    throw new HttpError(404, `No script for ${ctx.path}`);
  }
  if (found || !routing.front || ctx.file) return found;
  const file = await ctx.root!.find(routing.front);
  if (!file?.info.isFile) return undefined;
  return { segments: routing.front, file, pathInfo: "" };
}

/**
 * The script a request names (rules 1 and 2 of {@linkcode fastcgi}), or
 * `"missing"` when its path names a script that is not there.
 */
async function _findScript(
  ctx: Context,
  routing: _Routing,
): Promise<_Script | "missing" | undefined> {
  const root = ctx.root!;
  const { segments } = ctx;
  for (let i = 1; i <= segments.length; i++) {
    if (!routing.isScript(segments[i - 1]!)) continue;
    const scriptSegments = segments.slice(0, i);
    const file = i === segments.length
      ? ctx.file
      : await root.find(scriptSegments);
    if (!file?.info.isFile) continue;
    const scriptName = "/" + scriptSegments.join("/");
    return {
      segments: scriptSegments,
      file,
      pathInfo: ctx.path.slice(scriptName.length),
    };
  }
  if (ctx.file?.info.isDirectory && routing.index) {
    const indexSegments = [...segments, routing.index];
    const file = await root.find(indexSegments);
    if (file?.info.isFile) {
      return { segments: indexSegments, file, pathInfo: "" };
    }
  }
  return segments.some(routing.isScript) ? "missing" : undefined;
}

/** What {@linkcode _forward} needs besides the request. */
interface _Forwarding {
  backend: _Backend;
  /** When slow answers start watching their client (one timer for all). */
  deadlines: Deadlines;
  documentRoot: string | undefined;
  params: Record<string, string>;
  passAuthorization: boolean;
  body: RequestBodyOptions;
  maxHeaderBytes: number | undefined;
}

function _forwarding(options: FastCgiOptions, backend: _Backend): _Forwarding {
  const { maxBodySize, bodyMemoryLimit, tempDir, bodyTimeoutMs, streamBody } =
    options;
  return {
    backend,
    deadlines: new Deadlines(),
    documentRoot: options.documentRoot,
    params: options.params ?? {},
    passAuthorization: options.passAuthorization ?? true,
    body: { maxBodySize, bodyMemoryLimit, tempDir, bodyTimeoutMs, streamBody },
    maxHeaderBytes: options.maxHeaderBytes,
  };
}

/** The params of a script request (its CGI environment). */
function _params(
  req: Request,
  ctx: Context,
  script: _Script,
  body: PreparedBody,
  settings: _Forwarding,
): [string, string][] {
  const scriptName = ctx.base + "/" + script.segments.join("/");
  const { documentRoot } = settings;
  const docRoot = documentRoot?.replace(/\/+$/, "") ?? ctx.root!.path;
  const env = buildCgiEnv(req, ctx, {
    scriptName,
    // The real path resolution checked (inside the root unless symlinks may
    // leave it): a symlink swapped since the lookup cannot redirect it.
    scriptFilename: documentRoot === undefined || script.mounted ||
        ctx.base !== ""
      ? script.file.realPath
      : docRoot + scriptName,
    pathInfo: script.pathInfo,
    documentRoot: docRoot,
    contentLength: body.length,
    passAuthorization: settings.passAuthorization,
    extra: {
      DOCUMENT_URI: scriptName,
      ...settings.params,
      ...ctx.scriptVars,
    },
  });
  return Object.entries(env);
}

/** Sends the request and reads the response's header block (502/504 on failure). */
async function _exchange(
  ctx: Context,
  scriptName: string,
  params: [string, string][],
  body: PreparedBody,
  settings: _Forwarding,
  signal: AbortSignal,
): Promise<CgiResponse<FastCgiOutput>> {
  try {
    const stdout = await settings.backend.client.request({
      params,
      body: body.stream,
      signal,
      onStderr: (text) =>
        ctx.log("warn", `FastCGI stderr (${scriptName}): ${text.trimEnd()}`),
    });
    return await parseCgiResponse(stdout, {
      maxHeaderBytes: settings.maxHeaderBytes,
    });
  } catch (error) {
    if (!(error instanceof FastCgiError)) throw error;
    throw new HttpError(
      error.status,
      `FastCGI ${scriptName}: ${error.message}`,
      { cause: error },
    );
  }
}

/**
 * Milliseconds a FastCGI answer may take before the client's connection is
 * watched for a disconnect (see {@linkcode slowAbort}).
 */
const _WATCH_CLIENT_AFTER_MS = 20;

/** Runs `script` on a responder and answers with its response. */
async function _forward(
  req: Request,
  ctx: Context,
  script: _Script,
  settings: _Forwarding,
): Promise<Response> {
  const scriptName = "/" + script.segments.join("/");
  if (/[\r\n]/.test(ctx.path)) {
    throw new HttpError(400, "Line break in a script path");
  }
  await settings.backend.started;
  const body = await prepareRequestBody(req, settings.body);
  // Aborts when the client goes away, before or during the response
  // (deno.json opts into --unstable-no-legacy-abort, so a finished response
  // does not count as an abort); watched only once the answer is slow.
  const abort = slowAbort(req, _WATCH_CLIENT_AFTER_MS, settings.deadlines);
  let handedOver = false;
  try {
    const params = _params(req, ctx, script, body, settings);
    const parsed = await _exchange(
      ctx,
      scriptName,
      params,
      body,
      settings,
      abort.signal,
    );
    if (parsed.localRedirect !== undefined) {
      discardBody(parsed.body);
      return await dispatchLocalRedirect(req, ctx, parsed.localRedirect);
    }
    const answer = { log: ctx.log, tag: `FastCGI ${scriptName}` };
    if (parsed.body instanceof Uint8Array) {
      // The whole response is here: the exchange is over.
      return toHttpResponse(parsed, req.method, answer);
    }
    const disposing = _onSettled(parsed.body, () => {
      abort.stop();
      return body.dispose();
    });
    handedOver = true;
    return toHttpResponse({ ...parsed, body: disposing }, req.method, answer);
  } finally {
    if (!handedOver) {
      abort.stop();
      await body.dispose();
    }
  }
}

/**
 * Creates the FastCGI gateway. Routing, per request:
 *
 * 1. The first path segment that ends in a script extension and is an
 *    existing file is the script; the rest is `PATH_INFO`
 *    (`/app/index.php/a/b` → `SCRIPT_NAME=/app/index.php`, `PATH_INFO=/a/b`).
 * 2. A directory with a trailing slash runs its index script (`/dir/` →
 *    `/dir/index.php`); without the slash it redirects (308) to it.
 * 3. With a front controller, a path that does not exist (and names no
 *    script) runs it; `REQUEST_URI` keeps the original path.
 * 4. Anything else calls `next()`: a missing script answers our own 404
 *    further down, and is never forwarded.
 *
 * Every lookup goes through `ctx.root` (set by `resolvePath()`), so its
 * dotfile and symlink policy holds for scripts, index scripts and the
 * front controller too.
 *
 * The responder's `Content-Length` is kept when valid (else 502), and the
 * body sent is exactly that long: longer output is cut there (a streamed
 * one's connection to the responder is closed), shorter output closes the
 * client's connection. For a page that arrived whole the bytes are
 * trusted for a smaller value (cut to it); a larger one is sent as a short
 * body (the connection is closed).
 *
 * Errors: connect failures → 502, timeouts → 504, a malformed response →
 * 502, a body over the limit → 413, a body silent for `bodyTimeoutMs`
 * while it is buffered (before a connection is taken) → 408. The responder's STDERR goes to `ctx.log`, never
 * to the client; its own statuses pass through. A local redirect
 * (`Location: /path` without `Status`) is re-dispatched inside the server
 * as GET (HEAD stays HEAD), like the CGI gateway does.
 *
 * @example Fronting php-fpm
 * ```ts ignore
 * import { compose, errorPages, resolvePath, serveStatic } from "@x/serve";
 * import { fastcgi } from "@x/serve/fastcgi";
 *
 * const php = fastcgi({ backends: ["unix:/run/php/php8.2-fpm.sock"], frontController: "/index.php" });
 * Deno.serve(compose([errorPages(), resolvePath({ root: "/srv/app/public" }), php, serveStatic()]));
 * ```
 *
 * @example Passing non-script requests on
 * ```ts
 * import { compose, resolvePath } from "@x/serve";
 * import { fastcgi } from "@x/serve/fastcgi";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/a.txt`, "static");
 * await using php = fastcgi({ backends: ["127.0.0.1:9"] });
 * const handler = compose([resolvePath({ root }), php, () => new Response("next")]);
 * const res = await handler(new Request("http://localhost/a.txt"));
 * assert.equal(await res.text(), "next");
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * @param options Backends or spawned workers, routing, limits and timeouts.
 * @returns The middleware, with `close()` for shutdown.
 */
export function fastcgi(options: FastCgiOptions = {}): FastCgiMiddleware {
  const routing = _routing(options);
  const backend = _backend(options, options.log ?? defaultLog);
  const forwarding = _forwarding(options, backend);
  const mounts = _mountedScripts(options.scripts);

  const middleware: Middleware = async function fastcgiMiddleware(
    req,
    ctx,
    next,
  ) {
    // A file asked for by X-Accel-Redirect / X-Sendfile is sent, never run.
    if (ctx.root === undefined || ctx.fileOnly) return next();
    const script = await _mounted(ctx, mounts) ?? await _route(ctx, routing);
    if (!script) return next();
    if (
      script.pathInfo === "" && ctx.file?.info.isDirectory &&
      !ctx.path.endsWith("/")
    ) {
      return directoryRedirect(ctx.segments, ctx.url.search, ctx.base);
    }
    return _forward(req, ctx, script, forwarding);
  };

  async function close(): Promise<void> {
    backend.client.close();
    await backend.workers?.stop();
  }

  return Object.assign(middleware, {
    close,
    [Symbol.asyncDispose]: close,
    workers: backend.workers,
    client: backend.client,
  });
}

/** Wraps `stream` so that `done` runs once it ends, errors or is cancelled. */
function _onSettled(
  stream: ReadableStream<Uint8Array>,
  done: () => Promise<void>,
): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    done().catch(() => {});
  };
  return pullStream({
    read: async () => {
      try {
        const chunk = await readChunk(reader);
        if (chunk === null) finish();
        return chunk;
      } catch (error) {
        finish();
        throw error;
      }
    },
    cancel: async (reason) => {
      finish();
      await reader.cancel(reason);
    },
  });
}
