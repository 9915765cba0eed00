/**
 * Content codings for static files: precompressed siblings (`app.js.br`,
 * `.zst`, `.gz`) and on-the-fly gzip/brotli, chosen by `Accept-Encoding`.
 *
 * @module
 */

import { acceptedEncodings } from "../server/negotiate.ts";
import { isCompressible } from "../server/media_types.ts";
import type { DocumentRoot, ResolvedFile } from "../server/types.ts";

/** A content coding we can send. */
type Coding = "br" | "zstd" | "gzip";

/** Sibling suffix for each precompressed coding, in server preference order. */
const _SIBLINGS: ReadonlyArray<[Coding, string]> = [["br", ".br"], [
  "zstd",
  ".zst",
], ["gzip", ".gz"]];

/** What `serveStatic` sends for a file. */
export interface Variant {
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
 * @param root The document root (siblings are looked up with its policy).
 * @param segments The file's path segments under the root.
 * @param file The file as resolved.
 * @param type The file's Content-Type.
 * @param options Which codings to consider.
 * @returns What to send.
 */
export async function chooseVariant(
  req: Request,
  root: DocumentRoot,
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
      const sibling = await root.find([...dir, name]);
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
