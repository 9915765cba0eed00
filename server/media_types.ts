/**
 * Rules about media types that several layers share, each written once:
 * which types are text (sent with `charset=UTF-8`) and which are worth
 * compressing.
 *
 * @module
 */

const _TEXTUAL =
  /^(?:text\/|application\/(?:json|javascript|xml|ecmascript|manifest\+json|ld\+json)|image\/svg\+xml)|\+(?:json|xml)$/;

const _COMPRESSIBLE =
  /^(?:text\/|application\/(?:json|javascript|ecmascript|xml|wasm|manifest\+json|ld\+json|rss\+xml|atom\+xml|x-ndjson)|image\/(?:svg\+xml|x-icon|vnd\.microsoft\.icon|bmp)|font\/(?:ttf|otf)|application\/vnd\.ms-fontobject)|\+(?:json|xml)(?:;|$)/;

/**
 * True for a bare media type (no parameters) that is text and so gets
 * `charset=UTF-8` when served from a file.
 *
 * @example Textual types
 * ```ts
 * import { isTextual } from "./media_types.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isTextual("application/manifest+json"), true);
 * assert.equal(isTextual("image/png"), false);
 * ```
 *
 * @param type A media type without parameters.
 * @returns Whether it is text.
 */
export function isTextual(type: string): boolean {
  return _TEXTUAL.test(type);
}

/**
 * True for types worth compressing (text, JSON, JavaScript, XML, SVG, WASM,
 * uncompressed fonts); false for images, video, archives and fonts that are
 * compressed already.
 *
 * @example Compressible types
 * ```ts
 * import { isCompressible } from "./media_types.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isCompressible("text/css; charset=UTF-8"), true);
 * assert.equal(isCompressible("image/png"), false);
 * ```
 *
 * @param type A Content-Type value.
 * @returns Whether compression pays off.
 */
export function isCompressible(type: string): boolean {
  return _COMPRESSIBLE.test(type);
}
