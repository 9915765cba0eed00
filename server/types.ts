/**
 * The types every middleware shares: the per-request {@linkcode Context},
 * {@linkcode Middleware}, {@linkcode Next} and the composed {@linkcode Handler}.
 *
 * @module
 */

/**
 * A file or directory that path resolution found under the root.
 *
 * @example Reading the resolved file in a middleware
 * ```ts
 * import type { Middleware } from "@x/serve";
 *
 * const sizeHeader: Middleware = async (_req, ctx, next) => {
 *   const res = await next();
 *   if (ctx.file?.info.isFile) res.headers.set("x-size", String(ctx.file.info.size));
 *   return res;
 * };
 * ```
 */
export interface ResolvedFile {
  /** Absolute file-system path as named by the URL (root + segments). */
  path: string;
  /** The real path (every symlink resolved); inside the real root unless symlinks may leave it. */
  realPath: string;
  /** `Deno.stat` of {@linkcode ResolvedFile.path} (symlinks followed). */
  info: Deno.FileInfo;
}

/**
 * The document root and its path policy, as `resolvePath()` records it on
 * {@linkcode Context.root}. Every step after resolution (index files,
 * precompressed siblings, listings, CGI scripts, FastCGI PATH_INFO and front
 * controller, clean URLs, the SPA fallback, custom error pages) looks files
 * up through {@linkcode DocumentRoot.find}, so the dotfile and symlink rules
 * are given once and hold everywhere.
 *
 * @example Looking up an index file the way static serving does
 * ```ts
 * import { compose, resolvePath } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/index.htm`, "hi");
 * const handler = compose([resolvePath({ root }), async (_req, ctx) => {
 *   const found = await ctx.root!.find([...ctx.segments, "index.htm"]);
 *   return new Response(found ? "index" : "none");
 * }]);
 * assert.equal(await (await handler(new Request("http://localhost/"))).text(), "index");
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export interface DocumentRoot {
  /** The real path of the root. */
  readonly path: string;
  /** Whether dotfiles and dot-directories are served and listed. */
  readonly dotfiles: boolean;
  /** Whether symlinks may lead out of the root. */
  readonly followSymlinks: boolean;
  /**
   * Looks up decoded path segments under the root with this policy: the
   * file, or `undefined` when it is missing, hidden (a dot segment), not
   * below a directory, or a symlink out of the root. Other errors (e.g.
   * permission) are thrown.
   */
  find(segments: readonly string[]): Promise<ResolvedFile | undefined>;
  /**
   * Reads a file {@linkcode DocumentRoot.find} returned, whole, by its real
   * path (from the open-file cache when it is on and holds it). Bytes from
   * the cache are shared with every request and response: read them, never
   * write into or transfer them.
   */
  read(file: ResolvedFile): Promise<Uint8Array<ArrayBuffer>>;
  /**
   * Whether {@linkcode DocumentRoot.read} answers `file` from memory (after
   * its first read): static serving then sends it whole at any size up to
   * the open-file cache's `maxFileSize`, instead of streaming it. Absent:
   * never.
   */
  keeps?(file: ResolvedFile): boolean;
  /**
   * Offers `own`, an equal copy of `kept` (bytes {@linkcode DocumentRoot.read}
   * gave for `file`) that a prepared response holds, to keep instead, so
   * that memory holds one copy. True when `own` is what is kept now; false
   * when `kept` is not kept (nothing taken). Absent: nothing to share.
   */
  share?(
    file: ResolvedFile,
    kept: Uint8Array<ArrayBuffer>,
    own: Uint8Array<ArrayBuffer>,
  ): boolean;
  /**
   * A value computed from the directory at `segments` (e.g. its rendered
   * listing) under `key`: kept by the open-file cache until the directory
   * or an entry directly in it changes; computed every time without it.
   */
  remember<T>(
    segments: readonly string[],
    key: string,
    make: () => Promise<T>,
  ): Promise<T>;
  /** Whether a path segment (e.g. a directory entry's name) is hidden by the dotfile policy. */
  hides(segment: string): boolean;
}

/**
 * An error the chain turned into a response (see {@linkcode Context.failure}).
 *
 * @example Telling a server-made error page from an application's own
 * ```ts
 * import { compose, HttpError, type Middleware } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const mark: Middleware = async (_req, ctx, next) => {
 *   const res = await next();
 *   if (ctx.failure?.response === res) res.headers.set("x-error", String(ctx.failure.status));
 *   return res;
 * };
 * const handler = compose([mark, () => {
 *   throw new HttpError(418);
 * }]);
 * const res = await handler(new Request("http://localhost/"));
 * assert.equal(res.headers.get("x-error"), "418");
 * await res.body?.cancel();
 * ```
 */
export interface Failure {
  /** The status the error mapped to. */
  readonly status: number;
  /** What was thrown; `undefined` when no middleware answered (a plain 404). */
  readonly error: unknown;
  /** Headers the error asked for (an `HttpError`'s, e.g. `Allow`). */
  readonly headers: Headers;
  /** The error response the chain made for it. */
  readonly response: Response;
}

/**
 * Per-request state, created fresh by {@linkcode compose} for every request.
 *
 * @example Using the decoded path
 * ```ts
 * import { compose, type Context } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * let seen: Context | undefined;
 * const handler = compose([(_req, ctx) => {
 *   seen = ctx;
 *   return new Response("ok");
 * }]);
 * await (await handler(new Request("http://localhost/a%20b?x=1"))).text();
 * assert.equal(seen?.url.search, "?x=1");
 * ```
 */
export interface Context {
  /** The parsed request URL. Its `pathname` is still percent-encoded. */
  readonly url: URL;
  /** Connection info from `Deno.serve`; `undefined` when called without it. */
  readonly info: Deno.ServeHandlerInfo | undefined;
  /**
   * Decoded path segments, dot segments resolved, never above the root.
   * Empty for `/`. Set by `resolvePath()`; before it, the raw
   * (still percent-encoded) non-empty segments of `url.pathname`.
   */
  segments: string[];
  /**
   * Decoded, normalised URL path (`"/" + segments.join("/")`, plus a
   * trailing slash when the request had one). Set by `resolvePath()`;
   * before it, the raw `url.pathname`.
   */
  path: string;
  /**
   * The document root and its path policy, set by `resolvePath()` (before it
   * decodes the path, so a 400 page can still come from the root).
   */
  root: DocumentRoot | undefined;
  /** What `resolvePath()` found on disk for {@linkcode Context.path}, or `undefined`. */
  file: ResolvedFile | undefined;
  /**
   * The URL path of the file `serveStatic()` sent, set whenever it sends a
   * file: the request path itself, or the file that answered it
   * (`/docs/` → `/docs/index.html`, clean URLs, the SPA fallback).
   * Stays `undefined` when no file was sent (listings, redirects, CGI).
   * Per-path header rules match it, when set, instead of {@linkcode Context.path}.
   */
  served: string | undefined;
  /**
   * The URL path prefix the document root is mounted at: `""` for the
   * site's root, the rule's prefix (without its trailing slash, e.g.
   * `"/gitweb/static"`) inside an `alias` mount, where `segments` and `path`
   * are relative to the alias folder.
   */
  base: string;
  /**
   * The URL the client asked for: {@linkcode Context.url} itself, except in
   * a request re-dispatched by a rewrite or an X-Accel-Redirect, where it
   * stays the original (scripts get it as `REQUEST_URI`).
   */
  readonly requestUrl: URL;
  /**
   * Variables site rules add to a script's environment (CGI) or params
   * (FastCGI): a rule's `env`, and `AUTH_TYPE`/`REMOTE_USER` after basic
   * authentication. They override the computed ones.
   */
  scriptVars: Record<string, string> | undefined;
  /**
   * A request re-dispatched to send a file (X-Accel-Redirect, X-Sendfile):
   * CGI and FastCGI leave it to static files, so a script named that way
   * is sent as bytes, never run.
   */
  readonly fileOnly: boolean;
  /** How many internal re-dispatches (local redirects) led to this request. */
  readonly depth: number;
  /**
   * Runs a request through the whole chain again (CGI local redirects,
   * rewrites, X-Accel-Redirect). With `internal: true` the new request keeps
   * this one's {@linkcode Context.requestUrl} and
   * {@linkcode Context.scriptVars} (a rewrite, not a new request). Throws
   * once `depth` exceeds the chain's limit.
   */
  dispatch(req: Request, options?: DispatchOptions): Promise<Response>;
  /**
   * The last error the chain turned into a response for this request, and
   * that response. `compose()` sets it; `errorPages()` reads it.
   */
  failure: Failure | undefined;
  /** Logs a server-side message (never sent to the client). */
  readonly log: LogFn;
}

/**
 * How {@linkcode Context.dispatch} runs a request again.
 *
 * @example A rewrite keeps the original URL
 * ```ts
 * import { compose, type DispatchOptions } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const rewrite: DispatchOptions = { internal: true };
 * const handler = compose([
 *   (req, ctx, next) =>
 *     ctx.url.pathname === "/pretty"
 *       ? ctx.dispatch(new Request(new URL("/index.php", ctx.url), req), rewrite)
 *       : next(),
 *   (_req, ctx) => new Response(`${ctx.url.pathname} for ${ctx.requestUrl.pathname}`),
 * ]);
 * const res = await handler(new Request("http://localhost/pretty"));
 * assert.equal(await res.text(), "/index.php for /pretty");
 * ```
 */
export interface DispatchOptions {
  /**
   * An internal rewrite: the new request keeps the original
   * `requestUrl` and `scriptVars`.
   * @default {false}
   */
  internal?: boolean;
  /**
   * Send a file, run no script (sets {@linkcode Context.fileOnly}).
   * @default {false}
   */
  fileOnly?: boolean;
}

/**
 * Calls the rest of the chain. It always resolves to a response: an error
 * thrown further in has already become its error response (with its real
 * status), so every middleware sees what the client will get. May be called
 * at most once per middleware (a second call rejects).
 *
 * @example Timing the rest of the chain
 * ```ts
 * import { compose, type Next } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const handler = compose([
 *   async (_req, _ctx, next: Next) => {
 *     const started = performance.now();
 *     const res = await next();
 *     res.headers.set("server-timing", `app;dur=${performance.now() - started}`);
 *     return res;
 *   },
 *   () => new Response("ok"),
 * ]);
 * const res = await handler(new Request("http://localhost/"));
 * assert.match(res.headers.get("server-timing")!, /^app;dur=/);
 * await res.body?.cancel();
 * ```
 */
export type Next = () => Promise<Response>;

/**
 * A fetch-native middleware: it returns a `Response`, either its own or the
 * one `next()` produced.
 *
 * @example A middleware adding a header
 * ```ts
 * import type { Middleware } from "@x/serve";
 *
 * const poweredBy: Middleware = async (_req, _ctx, next) => {
 *   const res = await next();
 *   res.headers.set("x-powered-by", "@x/serve");
 *   return res;
 * };
 * ```
 */
export type Middleware = (
  req: Request,
  ctx: Context,
  next: Next,
) => Response | Promise<Response>;

/**
 * A `Deno.serve`-compatible fetch handler.
 *
 * @example Serving a handler
 * ```ts ignore
 * import { createHandler } from "@x/serve";
 * Deno.serve(createHandler({ root: "." }));
 * ```
 */
export type Handler = (
  req: Request,
  info?: Deno.ServeHandlerInfo,
) => Promise<Response>;

/**
 * A log sink: where server-side messages go.
 *
 * @example A logger collecting lines
 * ```ts
 * import type { LogFn } from "@x/serve";
 * const lines: string[] = [];
 * const log: LogFn = (level, message) => lines.push(`${level} ${message}`);
 * log("info", "started");
 * ```
 */
export type LogFn = (level: "info" | "warn" | "error", message: string) => void;
