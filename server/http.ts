/**
 * HTTP rules every layer shares, each written once: which statuses carry no
 * body, and how a directory URL without its slash is redirected.
 *
 * @module
 */

/**
 * True for statuses whose responses never carry a body (RFC 9110: 204,
 * 205 and 304).
 *
 * @example
 * ```ts
 * import { isNullBodyStatus } from "./http.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isNullBodyStatus(304), true);
 * assert.equal(isNullBodyStatus(200), false);
 * ```
 *
 * @param status An HTTP status.
 * @returns Whether the response has no body.
 */
export function isNullBodyStatus(status: number): boolean {
  return status === 204 || status === 205 || status === 304;
}

/**
 * The redirect from a directory URL without its trailing slash to the one
 * with it (`/docs?x=1` → `/docs/?x=1`), for static directories and FastCGI
 * index scripts alike. 308, as Caddy does: permanent, and a POST stays a
 * POST.
 *
 * @example
 * ```ts
 * import { directoryRedirect } from "./http.ts";
 * import assert from "node:assert/strict";
 *
 * const res = directoryRedirect(["a b"], "?x=1");
 * assert.equal(res.status, 308);
 * assert.equal(res.headers.get("location"), "/a%20b/?x=1");
 * ```
 *
 * @param segments The decoded path segments of the directory.
 * @param search The query string to keep (`url.search`).
 * @param base The decoded URL prefix they are mounted at (`ctx.base`).
 * @returns The redirect.
 */
export function directoryRedirect(
  segments: readonly string[],
  search: string,
  base = "",
): Response {
  const path = segments.map((s) => encodeURIComponent(s) + "/").join("");
  const location = _encodeBase(base) + "/" + path + search;
  return new Response(null, { status: 308, headers: { location } });
}

/** A mount's decoded URL prefix, encoded segment by segment. */
function _encodeBase(base: string): string {
  return base === "" ? "" : base.split("/").map(encodeURIComponent).join("/");
}
