/**
 * {@linkcode errorPages}: custom HTML pages for the error responses the
 * server makes itself.
 *
 * @module
 */

import { renderError } from "../server/error_response.ts";
import type { Context, Middleware } from "../server/types.ts";

/**
 * Options of {@linkcode errorPages}.
 *
 * @example An explicit page for 500
 * ```ts
 * import { compose, errorPages, type ErrorPagesOptions } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const page = await Deno.makeTempFile({ suffix: ".html" });
 * await Deno.writeTextFile(page, "<h1>Sorry</h1>");
 * const options: ErrorPagesOptions = { pages: { 500: page } };
 * const handler = compose([errorPages(options), () => {
 *   throw new Error("boom");
 * }], { log: () => {} });
 * const res = await handler(new Request("http://localhost/"));
 * assert.equal(res.status, 500);
 * assert.equal(await res.text(), "<h1>Sorry</h1>");
 * await Deno.remove(page);
 * ```
 */
export interface ErrorPagesOptions {
  /**
   * Explicit pages: status → HTML file path. Wins over the `<status>.html`
   * lookup.
   * @default {{}}
   */
  pages?: Record<number, string>;
  /**
   * Look up `<status>.html` (e.g. `404.html`) in the document root, through
   * `ctx.root` (so the root's dotfile and symlink policy holds).
   * @default {true}
   */
  fromRoot?: boolean;
}

/** Custom pages up to this size are kept by the open-file cache. */
const _CACHED_PAGE_BYTES = 16384;

/**
 * Gives the error responses the server made (a thrown error turned into a
 * page by `compose()`, see `ctx.failure`) a custom HTML page: an explicit
 * file from `pages`, else `<status>.html` from the document root. Responses
 * that an application made itself (a CGI script's own 404) pass untouched,
 * like nginx without `fastcgi_intercept_errors`. Pages never contain a
 * path, a message or a stack trace; JSON clients get the custom page too.
 * The error response is recognised by identity (`ctx.failure.response`):
 * a middleware between this one and the thrower that replaces the response
 * object (rather than setting headers on it) keeps its page built-in.
 *
 * @example A custom 404 page
 * ```ts
 * import { compose, errorPages, HttpError, resolvePath } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/404.html`, "<h1>Lost?</h1>");
 * const handler = compose([errorPages(), resolvePath({ root }), () => {
 *   throw new HttpError(404);
 * }]);
 * const res = await handler(new Request("http://localhost/nope"));
 * assert.equal(res.status, 404);
 * assert.equal(await res.text(), "<h1>Lost?</h1>");
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * @param options Custom pages.
 * @returns The middleware.
 */
export function errorPages(options: ErrorPagesOptions = {}): Middleware {
  const { pages = {}, fromRoot = true } = options;

  async function customPage(
    status: number,
    ctx: Context,
  ): Promise<Uint8Array | undefined> {
    try {
      const configured = pages[status];
      if (configured !== undefined) return await Deno.readFile(configured);
      if (!fromRoot || ctx.root === undefined) return undefined;
      const found = await ctx.root.find([`${status}.html`]);
      if (!found?.info.isFile) return undefined;
      // A small page's bytes come from the open-file cache (as small files'
      // do); a larger one is read each time, never kept.
      return found.info.size <= _CACHED_PAGE_BYTES
        ? await ctx.root.read(found)
        : await Deno.readFile(found.realPath);
    } catch {
      return undefined;
    }
  }

  return async function errorPagesMiddleware(req, ctx, next) {
    const res = await next();
    const failure = ctx.failure;
    if (failure === undefined || failure.response !== res) return res;
    const page = await customPage(failure.status, ctx);
    if (page === undefined) return res;
    await res.body?.cancel();
    const custom = renderError(failure.status, req, failure.headers, page);
    ctx.failure = { ...failure, response: custom };
    return custom;
  };
}
