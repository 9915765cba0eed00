/**
 * Content negotiation helpers (Accept with q-values), backed by the
 * `negotiator` package.
 *
 * @module
 */

// @ts-types="@types/negotiator"
import Negotiator from "negotiator";

function _negotiator(req: Request): Negotiator {
  const headers: Record<string, string> = {};
  const accept = req.headers.get("accept");
  if (accept !== null) headers["accept"] = accept;
  const encoding = req.headers.get("accept-encoding");
  if (encoding !== null) headers["accept-encoding"] = encoding;
  return new Negotiator({ headers });
}

/**
 * True when the client prefers JSON over HTML (by `Accept` q-values); a
 * missing `Accept` means HTML.
 *
 * @example Negotiating JSON
 * ```ts
 * import { prefersJson } from "./negotiate.ts";
 * import assert from "node:assert/strict";
 *
 * const req = new Request("http://x/", { headers: { accept: "application/json" } });
 * assert.equal(prefersJson(req), true);
 * assert.equal(prefersJson(new Request("http://x/")), false);
 * ```
 *
 * @param req The request.
 * @returns Whether to answer with JSON.
 */
export function prefersJson(req: Request): boolean {
  if (!req.headers.has("accept")) return false;
  return _negotiator(req).mediaType(["text/html", "application/json"]) ===
    "application/json";
}

/**
 * The content codings the client accepts, best first, from `available`;
 * equal q-values are ordered as in `available` (the server's preference).
 *
 * @example Choosing an encoding
 * ```ts
 * import { acceptedEncodings } from "./negotiate.ts";
 * import assert from "node:assert/strict";
 *
 * const req = new Request("http://x/", { headers: { "accept-encoding": "gzip;q=0.5, br" } });
 * assert.deepEqual(acceptedEncodings(req, ["gzip", "br"]), ["br", "gzip"]);
 * const tie = new Request("http://x/", { headers: { "accept-encoding": "gzip, br" } });
 * assert.deepEqual(acceptedEncodings(tie, ["br", "gzip"]), ["br", "gzip"]);
 * ```
 *
 * @param req The request.
 * @param available Codings the server could send.
 * @returns Acceptable codings, most preferred first.
 */
export function acceptedEncodings(req: Request, available: string[]): string[] {
  // negotiator 1.x breaks q-value ties by a server preference list; the
  // 0.6 typings do not know the second argument.
  const negotiator = _negotiator(req) as unknown as {
    encodings(available: string[], options: { preferred: string[] }): string[];
  };
  return negotiator.encodings(available, { preferred: available });
}
