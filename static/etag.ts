/**
 * Entity tags for files.
 *
 * @module
 */

/**
 * A strong ETag from a file's modification time and size (the scheme nginx
 * uses): `"<mtime ms hex>-<size hex>"`. It is strong because a file with the
 * same size and mtime is taken to have the same bytes, which makes it usable
 * with `If-Match` and `If-Range`. Without an mtime, `undefined`.
 *
 * @example An ETag
 * ```ts
 * import { fileEtag } from "@x/serve/static";
 * import assert from "node:assert/strict";
 *
 * const info = { size: 255, mtime: new Date(0x1000) } as Deno.FileInfo;
 * assert.equal(fileEtag(info), '"1000-ff"');
 * ```
 *
 * @param info The file's stat.
 * @returns The quoted ETag, or `undefined`.
 */
export function fileEtag(info: Deno.FileInfo): string | undefined {
  if (!info.mtime) return undefined;
  return `"${info.mtime.getTime().toString(16)}-${info.size.toString(16)}"`;
}
