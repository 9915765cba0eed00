/**
 * {@linkcode createHandler}: the default middleware chain, ready for
 * `Deno.serve`.
 *
 * @module
 */

import { accessLog, type AccessLogOptions } from "../middleware/access_log.ts";
import { compress, type CompressOptions } from "../middleware/compress.ts";
import { cors, type CorsOptions } from "../middleware/cors.ts";
import {
  errorPages,
  type ErrorPagesOptions,
} from "../middleware/error_pages.ts";
import { setHeaders, type SetHeadersOptions } from "../middleware/headers.ts";
import {
  liveReload,
  type LiveReloadMiddleware,
  type LiveReloadOptions,
} from "../middleware/live_reload.ts";
import { compose } from "../server/compose.ts";
import { resolvePath, type ResolvePathOptions } from "../server/resolve.ts";
import type { Handler, LogFn, Middleware } from "../server/types.ts";
import {
  serveStatic,
  type ServeStaticOptions,
} from "../static/serve_static.ts";
import { fastcgi, type FastCgiOptions } from "../cgi/fastcgi/fastcgi.ts";
import {
  type SiteRule,
  SiteRuleError,
  siteRules,
} from "../rules/site_rules.ts";
import { cgi, type CgiOptions } from "../cgi/cgi.ts";

/**
 * Options of {@linkcode createHandler}: the root and its path policy
 * (given once, to path resolution; every later step uses it), and one
 * entry per middleware, named after its factory and holding that
 * middleware's own options (their defaults are documented there).
 *
 * @example A single-page app with long-lived asset caching
 * ```ts
 * import { createHandler, type HandlerOptions } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/index.html`, "<h1>app</h1>");
 * const options: HandlerOptions = {
 *   root,
 *   serveStatic: { spa: true },
 *   setHeaders: {
 *     rules: [{
 *       path: "/assets/**",
 *       headers: [["cache-control", "public, max-age=31536000, immutable"]],
 *     }],
 *   },
 * };
 * await using handler = createHandler(options);
 * const res = await handler(new Request("http://localhost/settings/profile"));
 * assert.equal(res.status, 200);
 * assert.equal(await res.text(), "<h1>app</h1>");
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export interface HandlerOptions extends ResolvePathOptions {
  /**
   * Static files: index names, listings, codings, SPA and clean-URL
   * fallbacks (see {@linkcode ServeStaticOptions}).
   * @default {{}}
   */
  serveStatic?: ServeStaticOptions;
  /**
   * Compress every compressible response by `Accept-Encoding` — static
   * files, CGI and FastCGI output, listings, error pages (`true` for the
   * defaults; see {@linkcode compress}). `serveStatic.compress: true`
   * (what `--compress` sets) turns it on too. Static files keep their own
   * on-the-fly path (a weak ETag per coding, 304s per variant) unless
   * `serveStatic.compress` is `false`; the middleware compresses the rest
   * and never a response that already has a `Content-Encoding`, so each
   * response is compressed at most once. The threshold is `minSize`, else
   * `serveStatic.compressMinSize` (which static files use when given).
   * @default {false}
   */
  compress?: boolean | CompressOptions;
  /**
   * Custom error pages (`<status>.html` from the root unless turned off).
   * @default {{}}
   */
  errorPages?: ErrorPagesOptions;
  /**
   * Headers on every response and per-path rules.
   * @default {undefined} (off)
   */
  setHeaders?: SetHeadersOptions;
  /**
   * Add CORS headers and answer preflights (`true` for the defaults).
   * @default {false}
   */
  cors?: boolean | CorsOptions;
  /**
   * Access log (`true` logs text lines to stdout).
   * @default {false}
   */
  accessLog?: boolean | AccessLogOptions;
  /**
   * Where server-side messages (errors, script stderr) go.
   * @default {defaultLog} (timestamped lines on stderr)
   */
  log?: LogFn;
  /**
   * Run `*.php` (see {@linkcode FastCgiOptions.extensions}) through FastCGI
   * responders (php-fpm) or spawned workers (`spawn: "php-cgi"`).
   * @default {undefined} (off)
   */
  fastcgi?: FastCgiOptions;
  /**
   * Run CGI/1.1 scripts (by default the executables under `ROOT/cgi-bin/`
   * at `/cgi-bin/`; see {@linkcode CgiOptions.dirs}).
   * @default {undefined} (off)
   */
  cgi?: CgiOptions;
  /**
   * Developer mode: reload open HTML pages when files change (`true`
   * watches the root). Abort {@linkcode HandlerOptions.signal} (or call
   * `close()`) to end the pages' event streams, or `server.shutdown()`
   * waits for them.
   * @default {false}
   */
  liveReload?: boolean | LiveReloadOptions;
  /**
   * Site rules: deny and internal paths, redirects, rewrites and
   * `tryFiles`, `alias` folders, `cgi` / `fastcgi` scripts or folders
   * mounted at a prefix, basic authentication and script variables (see
   * {@linkcode siteRules} for the order they act in).
   * @default {[]}
   */
  rules?: readonly HandlerRule[];
  /**
   * Abort it when the server starts shutting down: ends long-lived
   * responses (live-reload event streams) so in-flight requests can finish.
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * A site rule of {@linkcode createHandler}: a {@linkcode SiteRule}, plus
 * scripts mounted at its `prefix`.
 *
 * @example A gitweb mount
 * ```ts
 * import type { HandlerRule } from "@x/serve";
 *
 * const rules: HandlerRule[] = [
 *   { prefix: "/gitweb/static/", alias: "/usr/share/gitweb/static/" },
 *   { prefix: "/gitweb/", cgi: "/usr/share/gitweb/gitweb.cgi", env: { GITWEB_CONFIG: "/etc/gitweb.conf" } },
 * ];
 * ```
 */
export interface HandlerRule extends SiteRule {
  /**
   * A CGI folder (Apache `ScriptAlias /cgi/ /usr/lib/cgi-bin/`) or one
   * CGI script (`SCRIPT_NAME` = the prefix, `PATH_INFO` = the rest) at the
   * rule's `prefix`, run with the `cgi` options (their defaults without
   * them).
   * @default {undefined}
   */
  cgi?: string;
  /**
   * One FastCGI script answering everything at the rule's `prefix` (needs
   * `fastcgi` options for the responder).
   * @default {undefined}
   */
  fastcgi?: string;
}

/**
 * A handler that may own resources (spawned FastCGI workers, pooled
 * connections, the live-reload watcher): call
 * {@linkcode ClosableHandler.close} on shutdown.
 *
 * @example Closing on shutdown
 * ```ts ignore
 * import { createHandler } from "@x/serve";
 *
 * const handler = createHandler({ root: ".", fastcgi: { spawn: "php-cgi" } });
 * const server = Deno.serve(handler);
 * Deno.addSignalListener("SIGTERM", async () => {
 *   await server.shutdown();
 *   await handler.close();
 * });
 * ```
 */
export interface ClosableHandler extends Handler, AsyncDisposable {
  /**
   * Releases what the handler owns (ends live-reload event streams and its
   * file watcher, stops spawned FastCGI workers). Safe to call twice.
   */
  close(): Promise<void>;
}

/**
 * Builds the default handler: access log → compression → CORS → headers →
 * error pages → path resolution → site rules → live reload → CGI → FastCGI
 * → static files (the optional steps only when configured; site rules also
 * whenever CGI or FastCGI is on, to act on X-Accel-Redirect). Errors become responses where they
 * are thrown, so every step outside sees the real status. Call `close()` on shutdown to end
 * live-reload event streams and stop spawned FastCGI workers.
 *
 * @example Serving a folder
 * ```ts
 * import { createHandler } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/a.txt`, "hello");
 * const handler = createHandler({ root });
 * const res = await handler(new Request("http://localhost/a.txt"));
 * assert.equal(await res.text(), "hello");
 * const missing = await handler(new Request("http://localhost/nope"));
 * assert.equal(missing.status, 404);
 * await missing.body?.cancel();
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * @param options What to serve and how.
 * @returns A `Deno.serve` handler.
 */
export function createHandler(options: HandlerOptions = {}): ClosableHandler {
  const reload = _liveReload(options);
  const mounts = _scriptMounts(options.rules ?? []);
  const php = options.fastcgi
    ? fastcgi({
      ...(options.log ? { log: options.log } : {}),
      ...options.fastcgi,
      scripts: { ...options.fastcgi.scripts, ...mounts.fastcgi },
    })
    : undefined;
  if (!php && Object.keys(mounts.fastcgi).length > 0) {
    throw new SiteRuleError(
      `rules[${mounts.fastcgiAt}].fastcgi: needs a FastCGI responder (fastcgi options)`,
    );
  }
  const scripts = _cgi(options, mounts);
  const files = serveStatic(_staticOptions(options));
  const rules = options.rules?.length || php || scripts
    ? siteRules({
      rules: options.rules ?? [],
      mounts: mounts.prefixes,
      serveAlias: php
        ? (req, ctx, next) =>
          php(req, ctx, async () => await files(req, ctx, next))
        : files,
    })
    : undefined;
  const resolve = resolvePath({
    root: options.root,
    dotfiles: options.dotfiles,
    followSymlinks: options.followSymlinks,
    cache: options.cache,
  });
  const chain: Middleware[] = [
    ..._outer(options),
    errorPages(options.errorPages),
    resolve,
    ...(rules ? [rules] : []),
    ...(reload ? [reload] : []),
    ...(scripts ? [scripts] : []),
    ...(php ? [php] : []),
    files,
  ];
  const handler = compose(chain, options.log ? { log: options.log } : {});
  const close = async (): Promise<void> => {
    await reload?.close();
    await php?.close();
    await resolve.close();
  };
  return Object.assign(handler, { close, [Symbol.asyncDispose]: close });
}

/** Scripts and CGI folders the rules mount, for cgi() and fastcgi(). */
interface _ScriptMounts {
  cgiDirs: Record<string, string>;
  cgiScripts: Record<string, string>;
  fastcgi: Record<string, string>;
  fastcgiAt: number;
  prefixes: string[];
}

/**
 * Checks the scripts and folders `rules` mount (each needs a `prefix`, a
 * path, and not also an `alias`), as {@linkcode createHandler} does, without
 * building a handler: the CLI checks its config file with it. Internal
 * (not exported from `mod.ts`).
 *
 * @example A mount without a prefix
 * ```ts
 * import { checkRuleMounts } from "./create_handler.ts";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => checkRuleMounts([{ path: "/x/**", cgi: "/srv/x.cgi" }]), /rules\[0\]\.cgi: needs "prefix"/);
 * ```
 *
 * @param rules The rules.
 * @throws {SiteRuleError} Naming the rule and the key.
 */
export function checkRuleMounts(rules: readonly HandlerRule[]): void {
  _scriptMounts(rules);
}

function _scriptMounts(rules: readonly HandlerRule[]): _ScriptMounts {
  const out: _ScriptMounts = {
    cgiDirs: {},
    cgiScripts: {},
    fastcgi: {},
    fastcgiAt: -1,
    prefixes: [],
  };
  rules.forEach((rule, i) => {
    if (rule.cgi === undefined && rule.fastcgi === undefined) return;
    const key = rule.cgi !== undefined ? "cgi" : "fastcgi";
    if (rule.cgi !== undefined && rule.fastcgi !== undefined) {
      throw new SiteRuleError(`rules[${i}].fastcgi: conflicts with "cgi"`);
    }
    if (rule.prefix === undefined) {
      throw new SiteRuleError(`rules[${i}].${key}: needs "prefix"`);
    }
    if (rule.alias !== undefined) {
      throw new SiteRuleError(`rules[${i}].${key}: conflicts with "alias"`);
    }
    const target = (rule.cgi ?? rule.fastcgi)!;
    if (typeof target !== "string" || target === "") {
      throw new SiteRuleError(`rules[${i}].${key}: must be a path`);
    }
    const prefix = rule.prefix;
    out.prefixes.push(prefix);
    if (rule.fastcgi !== undefined) {
      out.fastcgi[prefix] = target;
      if (out.fastcgiAt < 0) out.fastcgiAt = i;
      return;
    }
    let folder: boolean;
    try {
      folder = Deno.statSync(target).isDirectory;
    } catch {
      folder = target.endsWith("/");
    }
    (folder ? out.cgiDirs : out.cgiScripts)[prefix] = target;
  });
  return out;
}

/** The CGI middleware: the `cgi` options plus the rules' mounts. */
function _cgi(
  options: HandlerOptions,
  mounts: _ScriptMounts,
): Middleware | undefined {
  const ruled = Object.keys(mounts.cgiDirs).length +
    Object.keys(mounts.cgiScripts).length;
  if (!options.cgi && ruled === 0) return undefined;
  const own = options.cgi?.dirs ??
    (options.cgi ? undefined : {});
  return cgi({
    ...options.cgi,
    ...(own === undefined && ruled === 0
      ? {}
      : { dirs: { ...(own ?? _defaultCgiDirs(options)), ...mounts.cgiDirs } }),
    scripts: { ...options.cgi?.scripts, ...mounts.cgiScripts },
  });
}

/** `--cgi`'s default folder, named explicitly once the rules add others. */
function _defaultCgiDirs(options: HandlerOptions): Record<string, string> {
  return { "/cgi-bin/": `${options.root ?? "."}/cgi-bin` };
}

/** The middlewares outside error pages: they see every final response. */
function _outer(options: HandlerOptions): Middleware[] {
  const chain: Middleware[] = [];
  const { accessLog: log, cors: allow, setHeaders: headers } = options;
  if (log) chain.push(accessLog(log === true ? {} : log));
  // Inside the log (it counts the bytes sent), outside the rest: it sees
  // the final headers (a `Cache-Control: no-transform` rule, CORS' Vary).
  const compression = _compressOptions(options);
  if (compression) chain.push(compress(compression));
  if (allow) chain.push(cors(allow === true ? {} : allow));
  if (headers) chain.push(setHeaders(headers));
  return chain;
}

/** The compression middleware's options, or undefined when it is off. */
function _compressOptions(
  options: HandlerOptions,
): CompressOptions | undefined {
  const own = options.compress;
  const files = options.serveStatic;
  if (!own && files?.compress !== true) return undefined;
  const minSize = (own === true || !own ? undefined : own.minSize) ??
    files?.compressMinSize;
  return minSize === undefined ? {} : { minSize };
}

/**
 * Static files' options: with compression on, static files are compressed
 * on the fly by serveStatic itself (unless its `compress` is `false`), with
 * the same threshold as the middleware.
 */
function _staticOptions(
  options: HandlerOptions,
): HandlerOptions["serveStatic"] {
  const files = options.serveStatic;
  const compression = _compressOptions(options);
  if (!compression || files?.compress === false) return files;
  const minSize = files?.compressMinSize ?? compression.minSize;
  return {
    ...files,
    compress: true,
    ...(minSize === undefined ? {} : { compressMinSize: minSize }),
  };
}

function _liveReload(
  options: HandlerOptions,
): LiveReloadMiddleware | undefined {
  if (!options.liveReload) return undefined;
  return liveReload({
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.liveReload === true ? {} : options.liveReload),
  });
}
