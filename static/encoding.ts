/**
 * Content codings for static files: precompressed siblings (`app.js.br`,
 * `.zst`, `.gz`) and on-the-fly gzip/brotli, chosen by `Accept-Encoding`.
 *
 * @module
 */

import { acceptedEncodings } from "../server/negotiate.ts";
import { findFile } from "../server/resolve.ts";
import type { ResolvedFile } from "../server/types.ts";

/** A content coding we can send. */
type Coding = "br" | "zstd" | "gzip";

/** Sibling suffix for each precompressed coding, in server preference order. */
const _SIBLINGS: ReadonlyArray<[Coding, string]> = [["br", ".br"], [
  "zstd",
  ".zst",
], ["gzip", ".gz"]];

/** What `serveStatic` sends for a file. */
interface Variant {
  /** The file to read (the original or a precompressed sibling). */
  file: ResolvedFile;
  /** `Content-Encoding` of `file` as stored (a precompressed sibling). */
  stored: Coding | undefined;
  /** Coding to apply while sending (on-the-fly compression). */
  dynamic: "br" | "gzip" | undefined;
  /** Whether the choice depended on `Accept-Encoding` (send `Vary`). */
  vary: boolean;
}

/**
 * Options for choosing a variant. Every field is required (no defaults
 * here): `serveStatic` fills them in from its `ServeStaticOptions`.
 */
interface VariantOptions {
  /**
   * Look for precompressed siblings. No default (required); `serveStatic`
   * passes its `precompressed` option, default `true`.
   */
  precompressed: boolean;
  /**
   * Compress compressible types on the fly. No default (required);
   * `serveStatic` passes its `compress` option, default `false`.
   */
  compress: boolean;
  /**
   * Smallest file compressed on the fly, in bytes. No default (required);
   * `serveStatic` passes its `compressMinSize` option, default `1024`.
   */
  compressMinSize: number;
  /**
   * Accept precompressed siblings that are symlinks out of the root. No
   * default (required); `serveStatic` passes its `followSymlinks` option,
   * default `false`.
   */
  followSymlinks: boolean;
}

const _COMPRESSIBLE =
  /^(?:text\/|application\/(?:json|javascript|ecmascript|xml|wasm|manifest\+json|ld\+json|rss\+xml|atom\+xml|x-ndjson)|image\/(?:svg\+xml|x-icon|vnd\.microsoft\.icon|bmp)|font\/(?:ttf|otf)|application\/vnd\.ms-fontobject)|\+(?:json|xml)(?:;|$)/;

/**
 * True for types worth compressing (text, JSON, JavaScript, XML, SVG, WASM,
 * uncompressed fonts); false for images, video, archives and fonts that are
 * compressed already.
 *
 * @example Compressible types
 * ```ts
 * import { isCompressible } from "@x/serve";
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

/**
 * Chooses what to send for `file` (at `segments` under `root`): a
 * precompressed sibling the client accepts (by q-value; ties go to br, then
 * zstd, then gzip), else on-the-fly compression when enabled, else the file
 * as is. Range requests always get the file as is.
 *
 * Internal to the package (used by `serveStatic`), not part of the public
 * API: not exported from `mod.ts`.
 *
 * @param req The request (its `Accept-Encoding` and `Range`).
 * @param root The real path of the root.
 * @param segments The file's path segments under the root.
 * @param file The file as resolved.
 * @param type The file's Content-Type.
 * @param options Which codings to consider.
 * @returns What to send.
 */
export async function chooseVariant(
  req: Request,
  root: string,
  segments: readonly string[],
  file: ResolvedFile,
  type: string,
  options: VariantOptions,
): Promise<Variant> {
  const identity: Variant = {
    file,
    stored: undefined,
    dynamic: undefined,
    vary: false,
  };
  if (file.path.endsWith(".svgz")) {
    // Compressed SVG: stored gzip, sent as such (never compressed again).
    return { ...identity, stored: "gzip" };
  }
  if (!isCompressible(type) || (!options.precompressed && !options.compress)) {
    return identity;
  }
  const vary = { ...identity, vary: true };
  if (!req.headers.has("accept-encoding") || req.headers.has("range")) {
    return vary;
  }
  if (options.precompressed && segments.length > 0) {
    // Negotiate first, then look only for the siblings the client accepts,
    // best first: one stat in the common case.
    const last = segments[segments.length - 1]!;
    const dir = segments.slice(0, -1);
    const suffixes = new Map(_SIBLINGS);
    for (const coding of acceptedEncodings(req, [...suffixes.keys()])) {
      const name = last + suffixes.get(coding as Coding)!;
      const sibling = await findFile(
        root,
        [...dir, name],
        options.followSymlinks,
      );
      if (sibling?.info.isFile) {
        return {
          file: sibling,
          stored: coding as Coding,
          dynamic: undefined,
          vary: true,
        };
      }
    }
  }
  if (options.compress && file.info.size >= options.compressMinSize) {
    const best = acceptedEncodings(req, ["br", "gzip"])[0];
    if (best === "br" || best === "gzip") return { ...vary, dynamic: best };
  }
  return vary;
}

/**
 * A compressing transform for `coding` (Deno's `CompressionStream`, which
 * does gzip and brotli).
 */
export function _compressor(
  coding: "br" | "gzip",
): TransformStream<Uint8Array, Uint8Array> {
  const format = coding === "br" ? "brotli" as CompressionFormat : "gzip";
  // CompressionStream's writable is typed as BufferSource; bytes are fine.
  return new CompressionStream(format) as unknown as TransformStream<
    Uint8Array,
    Uint8Array
  >;
}
