/**
 * {@linkcode setHeaders}: fixed response headers, like `--header`, and
 * per-path rules (e.g. `Cache-Control` by glob).
 *
 * @module
 */

// @ts-types="@types/picomatch"
import picomatch from "picomatch";
import { _withMutableHeaders } from "./mutable.ts";
import type { Middleware } from "../server/types.ts";

/**
 * Options of {@linkcode setHeaders}.
 *
 * @example A fixed header and a per-path rule
 * ```ts
 * import { compose, setHeaders, type SetHeadersOptions } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const options: SetHeadersOptions = {
 *   headers: [["x-content-type-options", "nosniff"]],
 *   rules: [{ path: "*.css", headers: [["cache-control", "max-age=60"]] }],
 * };
 * const handler = compose([setHeaders(options), () => new Response("body{}")]);
 * const res = await handler(new Request("http://localhost/css/site.css"));
 * assert.equal(res.headers.get("x-content-type-options"), "nosniff");
 * assert.equal(res.headers.get("cache-control"), "max-age=60");
 * await res.body?.cancel();
 * ```
 */
export interface SetHeadersOptions {
  /**
   * Headers to set on every response (errors and redirects too). A header
   * here replaces one of the same name set by the server.
   * @default {[]}
   */
  headers?: Array<[string, string]>;
  /**
   * Headers for paths matching a glob, applied to 2xx and 304 responses in
   * order, after `headers`, so a later rule wins. Globs match the URL path
   * of the file actually sent (`/docs/` → `/docs/index.html`, an SPA route
   * → `/index.html`), else the decoded request path; a glob without `/`
   * matches the last segment (`*.html`), `**` crosses folders
   * (`/assets/**`).
   * @default {[]}
   */
  rules?: HeaderRule[];
}

/**
 * Headers for the paths a glob matches.
 *
 * @example Long-lived caching for hashed assets
 * ```ts
 * import type { HeaderRule } from "@x/serve";
 *
 * const rule: HeaderRule = {
 *   path: "/assets/**",
 *   headers: [["cache-control", "public, max-age=31536000, immutable"]],
 * };
 * ```
 */
export interface HeaderRule {
  /** A glob over the decoded URL path. */
  path: string;
  /** Headers to set when it matches. */
  headers: Array<[string, string]>;
}

/**
 * Sets fixed headers on every response, and per-path headers on
 * successful ones.
 *
 * @example Adding a header
 * ```ts
 * import { compose, setHeaders } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const handler = compose([
 *   setHeaders({ headers: [["x-frame-options", "DENY"]] }),
 *   () => new Response("ok"),
 * ]);
 * const res = await handler(new Request("http://localhost/"));
 * assert.equal(res.headers.get("x-frame-options"), "DENY");
 * await res.body?.cancel();
 * ```
 *
 * @param options The headers.
 * @returns The middleware.
 */
export function setHeaders(options: SetHeadersOptions = {}): Middleware {
  const headers = [...(options.headers ?? [])];
  const rules = (options.rules ?? []).map((rule) => ({
    // picomatch reads no environment variables (minimatch does, at import,
    // which needs --allow-env). `basename` lets `*.html` match in any
    // folder; it must stay off for globs with a slash, which it breaks.
    matches: picomatch(rule.path, {
      basename: !rule.path.includes("/"),
      dot: true,
    }),
    headers: [...rule.headers],
  }));

  return async function setHeadersMiddleware(_req, ctx, next) {
    const res = _withMutableHeaders(await next());
    for (const [name, value] of headers) res.headers.set(name, value);
    // Rules describe the file actually sent (the SPA's index.html, not the
    // route it answered), and only successful or not-modified answers.
    if ((res.status >= 200 && res.status < 300) || res.status === 304) {
      const path = ctx.base + (ctx.served ?? ctx.path);
      for (const rule of rules) {
        if (!rule.matches(path)) continue;
        for (const [name, value] of rule.headers) res.headers.set(name, value);
      }
    }
    return res;
  };
}
