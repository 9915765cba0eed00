/**
 * {@linkcode setHeaders}: fixed response headers, like `--header`.
 *
 * @module
 */

import { _withMutableHeaders } from "./mutable.ts";
import type { Middleware } from "./types.ts";

/** Options of {@linkcode setHeaders}. */
export interface SetHeadersOptions {
  /**
   * Headers to set on every response (errors and redirects too). A header
   * here replaces one of the same name set by the server.
   * @default {[]}
   */
  headers?: Array<[string, string]>;
}

/**
 * Parses `"Name: value"` as given to `--header`. Throws a `TypeError` naming
 * the problem when the name or value is invalid.
 *
 * @example Parsing a header flag
 * ```ts
 * import { parseHeader } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseHeader("X-Frame-Options: DENY"), ["X-Frame-Options", "DENY"]);
 * assert.throws(() => parseHeader("no colon"));
 * ```
 *
 * @param text `Name: value`.
 * @returns The name and the trimmed value.
 */
export function parseHeader(text: string): [string, string] {
  const colon = text.indexOf(":");
  const name = colon > 0 ? text.slice(0, colon).trim() : "";
  const value = colon > 0 ? text.slice(colon + 1).trim() : "";
  try {
    new Headers([[name, value]]);
  } catch {
    throw new TypeError(
      `Cannot parse header "${text}": expected "Name: value"`,
    );
  }
  if (name === "") {
    throw new TypeError(
      `Cannot parse header "${text}": expected "Name: value"`,
    );
  }
  return [name, value];
}

/**
 * Sets fixed headers on every response.
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

  return async function setHeadersMiddleware(_req, _ctx, next) {
    const res = _withMutableHeaders(await next());
    for (const [name, value] of headers) res.headers.set(name, value);
    return res;
  };
}
