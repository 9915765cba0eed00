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
  resolvePath,
  type ResolvePathOptions,
} from "./server/resolve.ts";
export { accessLog, type AccessLogOptions } from "./server/access_log.ts";
export { cors, type CorsOptions } from "./server/cors.ts";
export {
  parseHeader,
  setHeaders,
  type SetHeadersOptions,
} from "./server/headers.ts";
export { acceptedEncodings, prefersJson } from "./server/negotiate.ts";
export { createHandler, type HandlerOptions } from "./server/handler.ts";
export { serveStatic, type ServeStaticOptions } from "./static/serve_static.ts";
export { serveFile, type ServeFileOptions } from "./static/file.ts";
export { contentType } from "./static/content_type.ts";
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
  const { main } = await import("./server/cli.ts");
  Deno.exit(await main(Deno.args));
}
