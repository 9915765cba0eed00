/**
 * Conditional requests (RFC 9110 §13): If-Match, If-Unmodified-Since,
 * If-None-Match, If-Modified-Since and If-Range.
 *
 * @module
 */

/**
 * The validators of the selected representation.
 *
 * @example Validators from a file's stat
 * ```ts
 * import { checkPreconditions, fileEtag, type Validators } from "@x/serve/static";
 * import assert from "node:assert/strict";
 *
 * const info = { size: 5, mtime: new Date("2024-01-01T00:00:00Z") } as Deno.FileInfo;
 * const v: Validators = { etag: fileEtag(info), lastModified: info.mtime ?? undefined };
 * const req = new Request("http://x/", {
 *   headers: { "if-modified-since": "Mon, 01 Jan 2024 00:00:00 GMT" },
 * });
 * assert.equal(checkPreconditions(req, v), 304);
 * ```
 */
export interface Validators {
  /** The quoted ETag (`"…"` or `W/"…"`), if any. */
  etag: string | undefined;
  /** The last modification time, if known. */
  lastModified: Date | undefined;
}

function _tags(header: string): string[] {
  return header.split(",").map((t) => t.trim()).filter((t) => t !== "");
}

function _opaque(tag: string): string {
  return tag.startsWith("W/") ? tag.slice(2) : tag;
}

function _strongMatch(header: string, etag: string | undefined): boolean {
  // `*` matches any current representation, with or without an ETag.
  if (_tags(header).includes("*")) return true;
  if (etag === undefined || etag.startsWith("W/")) return false;
  return _tags(header).some((t) =>
    t === "*" || (!t.startsWith("W/") && t === etag)
  );
}

function _weakMatch(header: string, etag: string | undefined): boolean {
  if (etag === undefined) return false;
  // The common revalidation: the one tag the client was given, as given.
  if (header === etag) return true;
  return _tags(header).some((t) => t === "*" || _opaque(t) === _opaque(etag));
}

function _seconds(date: Date): number {
  return Math.floor(date.getTime() / 1000);
}

function _httpDate(value: string | null): Date | undefined {
  if (value === null) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : new Date(ms);
}

/**
 * Evaluates the preconditions in RFC 9110 §13.2.2 order and returns the
 * status they force: `412` (If-Match / If-Unmodified-Since fail), `304`
 * (If-None-Match / If-Modified-Since say unchanged, GET and HEAD), or
 * `undefined` to go on.
 *
 * @example A matching If-None-Match
 * ```ts
 * import { checkPreconditions } from "@x/serve/static";
 * import assert from "node:assert/strict";
 *
 * const req = new Request("http://x/", { headers: { "if-none-match": 'W/"a", "b"' } });
 * assert.equal(checkPreconditions(req, { etag: '"b"', lastModified: undefined }), 304);
 * ```
 *
 * @param req The request.
 * @param v The representation's validators.
 * @returns 304, 412 or `undefined`.
 */
export function checkPreconditions(
  req: Request,
  v: Validators,
): 304 | 412 | undefined {
  const h = req.headers;
  const ifMatch = h.get("if-match");
  if (ifMatch !== null) {
    if (!_strongMatch(ifMatch, v.etag)) return 412;
  } else {
    const ius = _httpDate(h.get("if-unmodified-since"));
    if (ius && v.lastModified && _seconds(v.lastModified) > _seconds(ius)) {
      return 412;
    }
  }
  const safe = req.method === "GET" || req.method === "HEAD";
  const ifNoneMatch = h.get("if-none-match");
  if (ifNoneMatch !== null) {
    if (_weakMatch(ifNoneMatch, v.etag)) return safe ? 304 : 412;
  } else if (safe) {
    const ims = _httpDate(h.get("if-modified-since"));
    if (ims && v.lastModified && _seconds(v.lastModified) <= _seconds(ims)) {
      return 304;
    }
  }
  return undefined;
}

/**
 * True when a `Range` may be honoured: no `If-Range`, or an `If-Range` that
 * names the current representation (strong ETag match, or the exact
 * Last-Modified date).
 *
 * @example A stale If-Range
 * ```ts
 * import { ifRangeAllows } from "@x/serve/static";
 * import assert from "node:assert/strict";
 *
 * const req = new Request("http://x/", { headers: { "if-range": '"old"' } });
 * assert.equal(ifRangeAllows(req, { etag: '"new"', lastModified: undefined }), false);
 * ```
 *
 * @param req The request.
 * @param v The representation's validators.
 * @returns Whether to apply the Range header.
 */
export function ifRangeAllows(req: Request, v: Validators): boolean {
  const ifRange = req.headers.get("if-range");
  if (ifRange === null) return true;
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith("W/")) {
    return v.etag !== undefined && !v.etag.startsWith("W/") && value === v.etag;
  }
  const date = _httpDate(value);
  return date !== undefined && v.lastModified !== undefined &&
    _seconds(date) === _seconds(v.lastModified);
}
