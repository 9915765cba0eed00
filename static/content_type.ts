/**
 * Content-Type by file extension, from the mime-db based `mime` package.
 *
 * @module
 */

import mime from "mime";
import { isTextual } from "../server/media_types.ts";

/**
 * Overrides on top of mime-db. TypeScript is served as text so browsers show
 * it and `deno run https://…/x.ts` still treats it as TypeScript (mime-db maps
 * `.ts` to `video/mp2t`, an MPEG transport stream).
 */
const _OVERRIDES: Readonly<Record<string, string>> = {
  ts: "text/typescript",
  mts: "text/typescript",
  cts: "text/typescript",
  tsx: "text/tsx",
};

/**
 * The Content-Type for a file name: mime-db's type, with `charset=UTF-8` on
 * textual types, `text/typescript` for `.ts`, and
 * `application/octet-stream` when unknown.
 *
 * @example Looking up types
 * ```ts
 * import { contentType } from "@x/serve/static";
 * import assert from "node:assert/strict";
 *
 * assert.equal(contentType("index.html"), "text/html; charset=UTF-8");
 * assert.equal(contentType("mod.ts"), "text/typescript; charset=UTF-8");
 * assert.equal(contentType("photo.PNG"), "image/png");
 * assert.equal(contentType("README"), "application/octet-stream");
 * ```
 *
 * @param name A file name or path.
 * @returns The Content-Type header value.
 */
export function contentType(name: string): string {
  const base = name.slice(name.lastIndexOf("/") + 1);
  const dot = base.lastIndexOf(".");
  const ext = dot > 0 ? base.slice(dot + 1).toLowerCase() : "";
  // .svgz is gzip-compressed SVG: the type of the content, no charset (it
  // is sent with Content-Encoding: gzip).
  if (ext === "svgz") return "image/svg+xml";
  const type = _OVERRIDES[ext] ?? (ext ? mime.getType(ext) : null);
  if (!type) return "application/octet-stream";
  return isTextual(type) ? `${type}; charset=UTF-8` : type;
}
