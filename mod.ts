/**
 * **@x/serve** — a Deno-first web server: static files (ranges, conditional
 * requests, listings), CGI/1.1 and FastCGI, as composable fetch middlewares.
 *
 * Run it as a program:
 *
 * ```sh
 * deno run -A jsr:@x/serve ./public --port 8080
 * ```
 *
 * or use it as a library:
 *
 * ```ts ignore
 * import { createHandler } from "@x/serve";
 * Deno.serve({ port: 8080 }, createHandler({ root: "./public", dirListing: true }));
 * ```
 *
 * or compose your own chain:
 *
 * ```ts
 * import { compose, errorPages, resolvePath, serveStatic } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/hi.txt`, "hi");
 * const handler = compose([
 *   errorPages(),
 *   async (_req, _ctx, next) => {
 *     const res = await next();
 *     res.headers.set("x-app", "mine");
 *     return res;
 *   },
 *   resolvePath({ root }),
 *   serveStatic(),
 * ]);
 * const res = await handler(new Request("http://localhost/hi.txt"));
 * assert.equal(res.headers.get("x-app"), "mine");
 * assert.equal(await res.text(), "hi");
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * `deno serve mod.ts` serves the current directory with the default export.
 *
 * @module
 */

import { createHandler } from "./server/handler.ts";
import type { Handler } from "./server/types.ts";

export type {
  Context,
  Handler,
  LogFn,
  Middleware,
  Next,
  ResolvedFile,
} from "./server/types.ts";
export { compose, type ComposeOptions, defaultLog } from "./server/compose.ts";
export { HttpError, type HttpErrorOptions, statusOf } from "./server/errors.ts";
export {
  errorPages,
  type ErrorPagesOptions,
  renderError,
} from "./server/error_page.ts";
export {
  decodePath,
  findFile,
  isInside,
  resolvePath,
  type ResolvePathOptions,
} from "./server/resolve.ts";
export {
  accessLog,
  type AccessLogFormat,
  type AccessLogOptions,
} from "./server/access_log.ts";
export { cors, type CorsOptions } from "./server/cors.ts";
export {
  liveReload,
  type LiveReloadMiddleware,
  type LiveReloadOptions,
} from "./server/live_reload.ts";
export {
  type HeaderRule,
  parseHeader,
  setHeaders,
  type SetHeadersOptions,
} from "./server/headers.ts";
export { acceptedEncodings, prefersJson } from "./server/negotiate.ts";
export {
  type ClosableHandler,
  createHandler,
  type HandlerOptions,
} from "./server/handler.ts";
export { cgi, type CgiOptions, DEFAULT_CGI_INTERPRETERS } from "./cgi/cgi.ts";
export {
  fastcgi,
  type FastCgiMiddleware,
  type FastCgiOptions,
} from "./cgi/fastcgi/fastcgi.ts";
export {
  createFastCgiClient,
  type FastCgiBackendStats,
  type FastCgiClient,
  type FastCgiClientOptions,
  type FastCgiRequest,
} from "./cgi/fastcgi/client.ts";
export type { BackendPoolStats } from "./cgi/fastcgi/pool.ts";
export { type FastCgiAddress, parseAddress } from "./cgi/fastcgi/address.ts";
export {
  FastCgiError,
  type FastCgiErrorOptions,
} from "./cgi/fastcgi/errors.ts";
export {
  type FastCgiSpawnOptions,
  type FastCgiWorkers,
  spawnFastCgiWorkers,
} from "./cgi/fastcgi/spawn.ts";
export { serveStatic, type ServeStaticOptions } from "./static/serve_static.ts";
export { serveFile, type ServeFileOptions } from "./static/file.ts";
export { contentType } from "./static/content_type.ts";
export { isCompressible } from "./static/encoding.ts";
export { fileEtag } from "./static/etag.ts";
export {
  checkPreconditions,
  ifRangeAllows,
  type Validators,
} from "./static/conditional.ts";
export {
  type ByteRange,
  fileSliceStream,
  type MultipartBody,
  multipartRanges,
  parseRange,
} from "./static/range.ts";
export {
  escapeHtml,
  listDirectory,
  type ListingEntry,
  type ListingOptions,
  renderListing,
} from "./static/listing.ts";

/**
 * The default export for `deno serve`: serves the current directory with the
 * library defaults (no listing, dotfiles hidden).
 *
 * @example Running it
 * ```sh
 * deno serve --allow-read mod.ts
 * ```
 */
const server: { fetch: Handler } = { fetch: createHandler({ root: "." }) };
export default server;

if (import.meta.main) {
  // `deno run mod.ts` and `deno serve mod.ts` both set import.meta.main and
  // Deno has no API to tell them apart (denoland/deno#25179). `deno serve`
  // calls Deno.serve with the default export right after this module is
  // evaluated (in every --parallel worker), so watch for that call for one
  // macrotask, then start the CLI only if it did not happen.
  const serve = Deno.serve;
  let loadedByDenoServe = false;
  Deno.serve = function detectDenoServe(...args: unknown[]) {
    loadedByDenoServe = true;
    return (serve as (...a: unknown[]) => unknown).apply(Deno, args);
  } as typeof Deno.serve;
  setTimeout(async () => {
    Deno.serve = serve;
    if (loadedByDenoServe) return;
    const { main } = await import("./server/cli.ts");
    Deno.exit(await main(Deno.args));
  }, 0);
}
