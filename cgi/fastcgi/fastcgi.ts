/**
 * {@linkcode fastcgi}: the FastCGI gateway middleware. Requests for existing
 * scripts (`*.php` by default) under the root go to a FastCGI responder
 * (php-fpm, or workers the server spawns itself); everything else goes on
 * down the chain (static files keep being served).
 *
 * @module
 */

import { buildCgiEnv } from "../env.ts";
import { prepareRequestBody } from "../body.ts";
import { parseCgiResponse, toHttpResponse } from "../response.ts";
import { findFile } from "../../server/resolve.ts";
import { HttpError } from "../../server/errors.ts";
import { defaultLog } from "../../server/compose.ts";
import type { Context, Middleware, ResolvedFile } from "../../server/types.ts";
import { dispatchLocalRedirect } from "../redirect.ts";
import type { FastCgiAddress } from "./address.ts";
import {
  createFastCgiClient,
  type FastCgiClient,
  type FastCgiClientOptions,
} from "./client.ts";
import { FastCgiError } from "./errors.ts";
import { type FastCgiWorkers, spawnFastCgiWorkers } from "./spawn.ts";

/** Options of {@linkcode fastcgi}. */
export interface FastCgiOptions
  extends Omit<FastCgiClientOptions, "backends" | "maxConnections"> {
  /**
   * The responders: `host:port`, `unix:/path` or parsed addresses. Several
   * take turns (round-robin); one that refuses connections is skipped for
   * {@linkcode FastCgiOptions.downTime}. Ignored when
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
   * @default {undefined} (the server's `PATH` when readable, else "/usr/local/bin:/usr/bin:/bin")
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
   * Milliseconds a chunked request body may take to arrive in full (it is
   * buffered before the request is sent), then 408.
   * @default {60000}
   */
  bodyTimeout?: number;
  /**
   * Largest request body in bytes (over → 413).
   * @default {67108864} (64 MiB)
   */
  maxBodySize?: number;
  /**
   * Bytes of a chunked body buffered in memory before a temporary file is used.
   * @default {1048576} (1 MiB)
   */
  memoryLimit?: number;
  /**
   * Where temporary files for chunked bodies go.
   * @default {undefined} (the system temporary directory)
   */
  tempDir?: string;
  /**
   * Largest response header block in bytes (over → 502).
   * @default {65536}
   */
  maxHeaderBytes?: number;
}

/** The {@linkcode fastcgi} middleware, plus shutdown. */
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
 * Errors: connect failures → 502, timeouts → 504, a malformed response →
 * 502, a body over the limit → 413, a chunked body slower than
 * `bodyTimeout` → 408. The responder's STDERR goes to `ctx.log`, never to
 * the client; its own statuses pass through. A local redirect
 * (`Location: /path` without `Status`) is re-dispatched inside the server
 * as GET (HEAD stays HEAD), like the CGI gateway does.
 *
 * @example Fronting php-fpm
 * ```ts ignore
 * import { compose, errorPages, fastcgi, resolvePath, serveStatic } from "@x/serve";
 *
 * const php = fastcgi({ backends: ["unix:/run/php/php8.2-fpm.sock"], frontController: "/index.php" });
 * Deno.serve(compose([errorPages(), resolvePath({ root: "/srv/app/public" }), php, serveStatic()]));
 * ```
 *
 * @example Passing non-script requests on
 * ```ts
 * import { compose, fastcgi, resolvePath } from "@x/serve";
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
  const {
    extensions = [".php"],
    index = "index.php",
    frontController,
    documentRoot,
    params = {},
    passAuthorization = true,
    maxBodySize,
    memoryLimit,
    tempDir,
    maxHeaderBytes,
    bodyTimeout = 60_000,
    log = defaultLog,
  } = options;
  if (frontController !== undefined && !frontController.startsWith("/")) {
    throw new TypeError(
      `Cannot use front controller "${frontController}": it must start with "/"`,
    );
  }
  const frontSegments = frontController?.split("/").filter((s) => s !== "");
  let client: FastCgiClient;
  let workers: FastCgiWorkers | undefined;
  let started: Promise<void> | undefined;
  if (options.spawn !== undefined) {
    workers = spawnFastCgiWorkers({
      command: options.spawn,
      workers: options.workers,
      env: options.spawnEnv,
      passEnv: options.spawnPassEnv,
      path: options.spawnPath,
      log,
      onReady: (i) => client?.markUp(i),
    });
    // Requests wait for the first start; one worker failing does not block them.
    started = workers.ready.catch(() => {});
    workers.ready.catch((error) =>
      log("error", `FastCGI workers did not start: ${error?.message ?? error}`)
    );
    client = createFastCgiClient({
      ...options,
      backends: workers.addresses,
      keepAlive: Math.min(options.keepAlive ?? 1, 1),
      maxConnections: 1,
      downTime: options.downTime ?? 1_000,
      log,
    });
  } else {
    client = createFastCgiClient({ ...options, log });
  }

  const isScript = (name: string): boolean =>
    extensions.some((ext) => name.length > ext.length && name.endsWith(ext));

  async function findScript(
    ctx: Context,
  ): Promise<_Script | "missing" | undefined> {
    const root = ctx.root!;
    const { segments } = ctx;
    for (let i = 1; i <= segments.length; i++) {
      if (!isScript(segments[i - 1]!)) continue;
      const scriptSegments = segments.slice(0, i);
      const file = i === segments.length
        ? ctx.file
        : await findFile(root, scriptSegments);
      if (!file?.info.isFile) continue;
      const scriptName = "/" + scriptSegments.join("/");
      return {
        segments: scriptSegments,
        file,
        pathInfo: ctx.path.slice(scriptName.length),
      };
    }
    if (ctx.file?.info.isDirectory && index) {
      const file = await findFile(root, [...segments, index]);
      if (file?.info.isFile) {
        return { segments: [...segments, index], file, pathInfo: "" };
      }
    }
    if (segments.some(isScript)) return "missing";
    return undefined;
  }

  async function run(
    req: Request,
    ctx: Context,
    script: _Script,
  ): Promise<Response> {
    const scriptName = "/" + script.segments.join("/");
    if (/[\r\n]/.test(ctx.path)) {
      throw new HttpError(400, "Line break in a script path");
    }
    const docRoot = documentRoot?.replace(/\/+$/, "") ?? ctx.root!;
    const scriptFilename = documentRoot === undefined
      ? script.file.path
      : docRoot + scriptName;
    if (started) await started;
    const body = await prepareRequestBody(req, {
      maxBodySize,
      memoryLimit,
      tempDir,
      timeout: bodyTimeout,
    });
    let handedOver = false;
    try {
      const env = buildCgiEnv(req, ctx, {
        scriptName,
        scriptFilename,
        pathInfo: script.pathInfo,
        documentRoot: docRoot,
        contentLength: body.length,
        passAuthorization,
        extra: { DOCUMENT_URI: scriptName, ...params },
      });
      // Connect/protocol failures (FastCgiError) become 502/504 pages.
      let parsed;
      try {
        const stdout = await client.request({
          params: Object.entries(env),
          body: body.stream,
          // Aborts when the client goes away, before or during the response
          // (deno.json opts into --unstable-no-legacy-abort, so a finished
          // response does not count as an abort).
          signal: req.signal,
          onStderr: (text) =>
            ctx.log(
              "warn",
              `FastCGI stderr (${scriptName}): ${text.trimEnd()}`,
            ),
        });
        parsed = await parseCgiResponse(stdout, { maxHeaderBytes });
      } catch (error) {
        if (error instanceof FastCgiError) {
          throw new HttpError(
            error.status,
            `FastCGI ${scriptName}: ${error.message}`,
            { cause: error },
          );
        }
        throw error;
      }
      if (parsed.localRedirect !== undefined) {
        await parsed.body.cancel().catch(() => {});
        return await dispatchLocalRedirect(req, ctx, parsed.localRedirect);
      }
      const disposing = _onSettled(parsed.body, () => body.dispose());
      handedOver = true;
      return toHttpResponse({ ...parsed, body: disposing }, req.method);
    } finally {
      if (!handedOver) await body.dispose();
    }
  }

  const middleware = async function fastcgiMiddleware(
    req: Request,
    ctx: Context,
    next: () => Promise<Response>,
  ): Promise<Response> {
    if (ctx.root === undefined) return next();
    const found = await findScript(ctx);
    if (found === "missing") {
      throw new HttpError(404, `No script for ${ctx.path}`);
    }
    if (found) {
      if (
        found.pathInfo === "" && ctx.file?.info.isDirectory &&
        !ctx.path.endsWith("/")
      ) {
        const location = ctx.url.pathname + "/" + ctx.url.search;
        return new Response(null, { status: 308, headers: { location } });
      }
      return run(req, ctx, found);
    }
    if (frontSegments && ctx.file === undefined) {
      const file = await findFile(ctx.root, frontSegments);
      if (file?.info.isFile) {
        return run(req, ctx, { segments: frontSegments, file, pathInfo: "" });
      }
    }
    return next();
  };

  async function close(): Promise<void> {
    client.close();
    await workers?.stop();
  }

  return Object.assign(middleware, {
    close,
    [Symbol.asyncDispose]: close,
    workers,
    client,
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
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done: end, value } = await reader.read();
        if (end) {
          finish();
          controller.close();
        } else controller.enqueue(value);
      } catch (error) {
        finish();
        controller.error(error);
      }
    },
    async cancel(reason) {
      finish();
      await reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
