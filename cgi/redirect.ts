/**
 * {@linkcode dispatchLocalRedirect}: answers a CGI local redirect
 * (RFC 3875 §6.2.2, `Location: /path` without `Status`) by re-dispatching
 * the request inside the server. Used by CGI and FastCGI alike.
 *
 * @module
 */

import type { Context } from "../server/types.ts";

/** Request headers that describe the original body, which is not re-sent. */
const _BODY_HEADERS = ["content-length", "content-type", "transfer-encoding"];

/**
 * Re-dispatches `req` to `location` through the whole middleware chain
 * (`ctx.dispatch`, which caps redirect loops): as GET, except that HEAD
 * stays HEAD; with the original headers minus those of the body, and with
 * the original `signal`, so a client that leaves aborts the new request
 * too. The caller discards the script's own body first. An error inside
 * the new request already is its error response; only a redirect loop
 * over the chain's limit rejects (thrown on, it becomes a 500).
 *
 * @example Following a local redirect
 * ```ts
 * import { compose } from "../server/compose.ts";
 * import { dispatchLocalRedirect } from "./redirect.ts";
 * import assert from "node:assert/strict";
 *
 * const handler = compose([
 *   (req, ctx, next) =>
 *     ctx.url.pathname === "/old" ? dispatchLocalRedirect(req, ctx, "/new?x=1") : next(),
 *   (req, ctx) => new Response(null, { headers: { "x-seen": `${req.method} ${ctx.url.pathname}${ctx.url.search}` } }),
 * ]);
 * const res = await handler(new Request("http://localhost/old", { method: "HEAD" }));
 * assert.equal(res.headers.get("x-seen"), "HEAD /new?x=1");
 * ```
 *
 * @param req The request whose script answered with a local redirect.
 * @param ctx Its context.
 * @param location The redirect target (`/path[?query]`).
 * @returns What the server answers for `location`.
 */
export function dispatchLocalRedirect(
  req: Request,
  ctx: Context,
  location: string,
): Promise<Response> {
  const headers = new Headers(req.headers);
  for (const name of _BODY_HEADERS) headers.delete(name);
  return ctx.dispatch(
    new Request(new URL(location, ctx.url), {
      method: req.method === "HEAD" ? "HEAD" : "GET",
      headers,
      signal: req.signal,
    }),
  );
}
