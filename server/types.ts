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
  /** Absolute file-system path (inside the root). */
  path: string;
  /** `Deno.stat` of {@linkcode ResolvedFile.path} (symlinks followed). */
  info: Deno.FileInfo;
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
  /** The real path of the document root, once `resolvePath()` ran. */
  root: string | undefined;
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
  /** How many internal re-dispatches (local redirects) led to this request. */
  readonly depth: number;
  /**
   * Runs a request through the whole chain again (used for CGI local
   * redirects). Throws once `depth` exceeds the chain's limit.
   */
  dispatch(req: Request): Promise<Response>;
  /** Free-form per-request storage for middlewares. */
  readonly state: Map<string, unknown>;
  /** Logs a server-side message (never sent to the client). */
  readonly log: LogFn;
}

/**
 * Calls the rest of the chain. May be called at most once per middleware
 * (a second call rejects).
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
