/**
 * {@linkcode cors}: cross-origin resource sharing.
 *
 * @module
 */

import { _withMutableHeaders } from "./mutable.ts";
import type { Middleware } from "../server/types.ts";

/**
 * Options of {@linkcode cors}.
 *
 * @example One allowed origin
 * ```ts
 * import { compose, cors, type CorsOptions } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const options: CorsOptions = { origin: "https://app.example", maxAgeMs: 600_000 };
 * const handler = compose([cors(options), () => new Response("ok")]);
 * const res = await handler(new Request("http://localhost/"));
 * assert.equal(res.headers.get("access-control-allow-origin"), "https://app.example");
 * assert.equal(res.headers.get("vary"), "Origin");
 * await res.body?.cancel();
 * ```
 */
export interface CorsOptions {
  /**
   * The `Access-Control-Allow-Origin` value.
   * @default {"*"}
   */
  origin?: string;
  /**
   * Methods allowed in preflight answers.
   * @default {["GET", "HEAD", "POST", "OPTIONS"]}
   */
  methods?: string[];
  /**
   * Response headers scripts may read.
   * @default {["ETag", "Content-Range", "Content-Length", "Accept-Ranges", "Last-Modified"]}
   */
  exposeHeaders?: string[];
  /**
   * How long (milliseconds) a browser may cache a preflight answer
   * (`Access-Control-Max-Age`, sent in whole seconds, rounded up).
   * @default {86400000} (one day)
   */
  maxAgeMs?: number;
}

/**
 * Adds CORS headers to every response (errors and redirects too) and answers
 * preflight `OPTIONS` requests with 204.
 *
 * @example A preflight
 * ```ts
 * import { compose, cors } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const handler = compose([cors(), () => new Response("ok")]);
 * const res = await handler(new Request("http://localhost/", {
 *   method: "OPTIONS",
 *   headers: { origin: "https://a.example", "access-control-request-method": "GET" },
 * }));
 * assert.equal(res.status, 204);
 * assert.equal(res.headers.get("access-control-allow-origin"), "*");
 * ```
 *
 * @param options Origin, methods, exposed headers, max age.
 * @returns The middleware.
 */
export function cors(options: CorsOptions = {}): Middleware {
  const {
    origin = "*",
    methods = ["GET", "HEAD", "POST", "OPTIONS"],
    exposeHeaders = [
      "ETag",
      "Content-Range",
      "Content-Length",
      "Accept-Ranges",
      "Last-Modified",
    ],
    maxAgeMs = 86_400_000,
  } = options;

  return async function corsMiddleware(req, _ctx, next) {
    const preflight = req.method === "OPTIONS" && req.headers.has("origin") &&
      req.headers.has("access-control-request-method");
    if (preflight) {
      const headers = new Headers({
        "access-control-allow-origin": origin,
        "access-control-allow-methods": methods.join(", "),
        "access-control-max-age": String(Math.ceil(maxAgeMs / 1000)),
      });
      const requested = req.headers.get("access-control-request-headers");
      if (requested) headers.set("access-control-allow-headers", requested);
      if (origin !== "*") headers.set("vary", "Origin");
      return new Response(null, { status: 204, headers });
    }
    const res = _withMutableHeaders(await next());
    res.headers.set("access-control-allow-origin", origin);
    res.headers.set("access-control-expose-headers", exposeHeaders.join(", "));
    if (origin !== "*") res.headers.append("vary", "Origin");
    return res;
  };
}
