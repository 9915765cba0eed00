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
 * Deno.serve({ port: 8080 }, createHandler({ root: "./public", serveStatic: { dirListing: true } }));
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
 *   async (_req, _ctx, next) => {
 *     const res = await next();
 *     res.headers.set("x-app", "mine");
 *     return res;
 *   },
 *   errorPages(),
 *   resolvePath({ root }),
 *   serveStatic(),
 * ]);
 * const res = await handler(new Request("http://localhost/hi.txt"));
 * assert.equal(res.headers.get("x-app"), "mine");
 * assert.equal(await res.text(), "hi");
 * const missing = await handler(new Request("http://localhost/nope"));
 * assert.equal(missing.status, 404);
 * assert.equal(missing.headers.get("x-app"), "mine");
 * await missing.body?.cancel();
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * The layers, one way up: `server/` is the core (context, compose, errors,
 * path resolution); `static/`, `cgi/` (with `cgi/fastcgi/`), `rules/` (site
 * rules: deny, rewrites, mounts, basic auth, X-Accel-Redirect) and
 * `middleware/` build on it; `handler/` composes them ({@linkcode createHandler});
 * `cli/` is the command line. More building blocks live in the subpath
 * exports `@x/serve/static`, `@x/serve/cgi` and `@x/serve/fastcgi`;
 * `deno serve` uses `@x/serve/serve`.
 *
 * @module
 */

export type {
  Context,
  DispatchOptions,
  DocumentRoot,
  Failure,
  Handler,
  LogFn,
  Middleware,
  Next,
  ResolvedFile,
} from "./server/types.ts";
export { compose, type ComposeOptions } from "./server/compose.ts";
export { HttpError, type HttpErrorOptions } from "./server/errors.ts";
export {
  type ClosableDocumentRoot,
  documentRoot,
  type DocumentRootOptions,
  resolvePath,
  type ResolvePathMiddleware,
  type ResolvePathOptions,
} from "./server/resolve.ts";
export type { FileCacheOptions } from "./server/file_cache.ts";
export {
  errorPages,
  type ErrorPagesOptions,
} from "./middleware/error_pages.ts";
export {
  accessLog,
  type AccessLogFormat,
  type AccessLogOptions,
} from "./middleware/access_log.ts";
export { compress, type CompressOptions } from "./middleware/compress.ts";
export { cors, type CorsOptions } from "./middleware/cors.ts";
export {
  type HeaderRule,
  setHeaders,
  type SetHeadersOptions,
} from "./middleware/headers.ts";
export {
  liveReload,
  type LiveReloadMiddleware,
  type LiveReloadOptions,
} from "./middleware/live_reload.ts";
export {
  type ClosableHandler,
  createHandler,
  type HandlerOptions,
  type HandlerRule,
} from "./handler/create_handler.ts";
export {
  type VirtualHost,
  virtualHosts,
  type VirtualHostsOptions,
} from "./handler/virtual_hosts.ts";
export {
  type SiteRule,
  SiteRuleError,
  siteRules,
  type SiteRulesOptions,
} from "./rules/site_rules.ts";
export type { RuleMatch } from "./rules/match.ts";
export { basicAuth, type BasicAuthOptions } from "./rules/basic_auth.ts";
export { serveStatic, type ServeStaticOptions } from "./static/serve_static.ts";
export { type ListingOptions } from "./static/listing.ts";
export { cgi, type CgiOptions } from "./cgi/cgi.ts";
export {
  fastcgi,
  type FastCgiMiddleware,
  type FastCgiOptions,
} from "./cgi/fastcgi/fastcgi.ts";

if (import.meta.main) {
  // `deno run mod.ts [root] [flags]`: the CLI, loaded only when run.
  const { main } = await import("./cli/main.ts");
  Deno.exit(await main(Deno.args));
}
