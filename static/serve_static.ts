/**
 * {@linkcode serveStatic}: the static-file middleware (files, index files,
 * directory listings, method handling). Every lookup goes through
 * `ctx.root`, so the dotfile and symlink policy is the one `resolvePath()`
 * was given.
 *
 * @module
 */

import { HttpError } from "../server/errors.ts";
import { directoryRedirect } from "../server/http.ts";
import type {
  Context,
  DocumentRoot,
  Middleware,
  Next,
  ResolvedFile,
} from "../server/types.ts";
import { contentType } from "./content_type.ts";
import { chooseVariant, type Variant } from "./encoding.ts";
import {
  _BUFFER_BELOW,
  _prepare,
  type _Prepared,
  _serveWhole,
  serveFile,
  type ServeFileOptions,
} from "./file.ts";
import { type ListingOptions, renderListing } from "./listing.ts";

/**
 * Options of {@linkcode serveStatic}.
 *
 * @example Clean URLs and directory listings
 * ```ts
 * import { compose, resolvePath, serveStatic, type ServeStaticOptions } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/about.html`, "<h1>About</h1>");
 * const options: ServeStaticOptions = { cleanUrls: true, dirListing: true };
 * const handler = compose([resolvePath({ root }), serveStatic(options)]);
 * const about = await handler(new Request("http://localhost/about"));
 * assert.equal(await about.text(), "<h1>About</h1>");
 * const listing = await handler(new Request("http://localhost/", {
 *   headers: { accept: "application/json" },
 * }));
 * assert.equal((await listing.json())[0].name, "about.html");
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export interface ServeStaticOptions {
  /**
   * Index file names tried, in order, for a directory.
   * @default {["index.html"]}
   */
  index?: string[];
  /**
   * List directories that have no index file (`true`, or the listing's
   * options such as its entry cap). What the root's policy hides is not
   * listed.
   * @default {false}
   */
  dirListing?: boolean | ListingOptions;
  /**
   * Files up to this size are read whole and sent from memory instead of
   * streamed (see {@linkcode ServeFileOptions.bufferBelow}). Files the
   * open-file cache keeps (up to its `maxFileSize`) are sent from memory
   * whatever this says: read once, then answered from the kept bytes.
   * @default {16384}
   */
  bufferBelow?: number;
  /**
   * Send a precompressed sibling (`app.js.br`, `.zst`, `.gz`) when the
   * client accepts its coding.
   * @default {true}
   */
  precompressed?: boolean;
  /**
   * Compress compressible types (text, JSON, JS, SVG, WASM…) on the fly with
   * brotli or gzip when the client accepts it. Never for ranges.
   * @default {false}
   */
  compress?: boolean;
  /**
   * Smallest file compressed on the fly, in bytes.
   * @default {1024}
   */
  compressMinSize?: number;
  /**
   * Single-page app fallback: a GET/HEAD for a path that does not exist and
   * whose last segment has no extension answers 200 with this file (from
   * the root); `true` means `"index.html"`. Missing assets (`/x.js`) stay 404.
   * @default {false}
   */
  spa?: boolean | string;
  /**
   * Clean URLs: `/about` serves `about.html` when `/about` does not exist
   * (like nginx `try_files $uri $uri.html`).
   * @default {false}
   */
  cleanUrls?: boolean;
}

const _ALLOW = "GET, HEAD, OPTIONS";

/**
 * Serves what `resolvePath()` found: regular files (see `serveFile`), a
 * directory's index file, or its listing. `/dir` redirects (308) to `/dir/`
 * (query kept). GET and HEAD only: OPTIONS → 204 with `Allow`, other methods → 405.
 * Paths that do not exist go to `next()`, after the clean-URL and SPA
 * fallbacks when they are on.
 *
 * @example A static server
 * ```ts
 * import { compose, resolvePath, serveStatic } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/index.html`, "<h1>hi</h1>");
 * const handler = compose([resolvePath({ root }), serveStatic()]);
 * const res = await handler(new Request("http://localhost/"));
 * assert.equal(res.headers.get("content-type"), "text/html; charset=UTF-8");
 * assert.equal(await res.text(), "<h1>hi</h1>");
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * @param options Index names, listings, encodings, fallbacks.
 * @returns The middleware.
 */
export function serveStatic(options: ServeStaticOptions = {}): Middleware {
  const { index = ["index.html"], cleanUrls = false } = options;
  const listing = options.dirListing === true
    ? {}
    : options.dirListing || undefined;
  const spaIndex = options.spa === true
    ? "index.html"
    : options.spa || undefined;
  const send = _sender(options);

  /** Clean URLs and the SPA fallback for paths that do not exist. */
  async function fallback(
    req: Request,
    ctx: Context,
    root: DocumentRoot,
    next: Next,
  ): Promise<Response> {
    const segments = ctx.segments;
    const last = segments[segments.length - 1] ?? "";
    const safe = req.method === "GET" || req.method === "HEAD";
    if (!safe || last.includes(".")) return next();
    const candidates: string[][] = [];
    if (cleanUrls && last !== "" && !ctx.path.endsWith("/")) {
      candidates.push([...segments.slice(0, -1), last + ".html"]);
    }
    if (spaIndex !== undefined) candidates.push([spaIndex]);
    for (const candidate of candidates) {
      const file = await root.find(candidate);
      if (file?.info.isFile) return send(req, ctx, root, candidate, file);
    }
    return next();
  }

  /** A directory: redirect to its slash, its index file, or its listing. */
  async function directory(
    req: Request,
    ctx: Context,
    root: DocumentRoot,
    next: Next,
  ): Promise<Response> {
    if (!ctx.path.endsWith("/")) {
      return directoryRedirect(ctx.segments, ctx.url.search, ctx.base);
    }
    for (const name of index) {
      const segments = [...ctx.segments, name];
      const candidate = await root.find(segments);
      if (candidate?.info.isFile) {
        return send(req, ctx, root, segments, candidate);
      }
    }
    if (listing) {
      return renderListing(req, root, ctx.segments, listing, ctx.base);
    }
    return next();
  }

  return function serveStaticMiddleware(req, ctx, next) {
    const found = ctx.file;
    const root = ctx.root;
    if (root === undefined) return next();
    if (!found) return fallback(req, ctx, root, next);
    _checkMethod(req);
    if (req.method === "OPTIONS") {
      return new Response(null, { status: 204, headers: { allow: _ALLOW } });
    }
    if (found.info.isFile) {
      if (ctx.path.endsWith("/")) return next();
      return send(req, ctx, root, ctx.segments, found);
    }
    if (found.info.isDirectory) return directory(req, ctx, root, next);
    return next();
  };
}

/** GET, HEAD and OPTIONS only: anything else is 405 with `Allow`. */
function _checkMethod(req: Request): void {
  const m = req.method;
  if (m !== "GET" && m !== "HEAD" && m !== "OPTIONS") {
    throw new HttpError(405, `${m} not allowed`, {
      headers: { allow: _ALLOW },
    });
  }
}

type _Send = (
  req: Request,
  ctx: Context,
  root: DocumentRoot,
  segments: readonly string[],
  file: ResolvedFile,
) => Promise<Response>;

/** Sends one file: the variant the client accepts, with its headers. */
function _sender(options: ServeStaticOptions): _Send {
  const fileOptions: ServeFileOptions = {};
  if (options.bufferBelow !== undefined) {
    fileOptions.bufferBelow = options.bufferBelow;
  }
  const variantOptions = {
    precompressed: options.precompressed ?? true,
    compress: options.compress ?? false,
    compressMinSize: options.compressMinSize ?? 1024,
  };
  const bufferBelow = options.bufferBelow ?? _BUFFER_BELOW;
  // Per looked-up file (the open-file cache hands out the same object while
  // it trusts the lookup): its type, and its prepared whole-file answer.
  const types = new WeakMap<ResolvedFile, string>();
  const prepared = new WeakMap<ResolvedFile, _Prepared>();
  return async function sendFile(req, ctx, root, segments, file) {
    ctx.served = "/" + segments.join("/");
    let type = types.get(file);
    if (type === undefined) {
      type = contentType(file.path);
      types.set(file, type);
    }
    const v = await chooseVariant(
      req,
      root,
      segments,
      file,
      type,
      variantOptions,
    );
    const kept = v.dynamic === undefined && root.keeps?.(v.file) === true;
    if (
      v.dynamic === undefined && !req.headers.has("range") &&
      (kept || v.file.info.size <= bufferBelow)
    ) {
      let p = prepared.get(v.file);
      if (
        p === undefined || p.options.contentType !== type ||
        p.options.storedEncoding !== v.stored ||
        p.options.varyEncoding !== v.vary
      ) {
        const file = v.file;
        p = _prepare(
          file.realPath,
          file.info,
          _fileOptions(fileOptions, type, v, root),
          root.share &&
            ((kept, own) => root.share?.(file, kept, own) ?? false),
        );
        prepared.set(v.file, p);
      }
      return _serveWhole(req, p, kept);
    }
    return serveFile(
      req,
      v.file.realPath,
      v.file.info,
      _fileOptions(fileOptions, type, v, root),
    );
  };
}

/** What {@linkcode serveFile} is given for variant `v` of a file. */
function _fileOptions(
  fileOptions: ServeFileOptions,
  type: string,
  v: Variant,
  root: DocumentRoot,
): ServeFileOptions {
  return {
    ...fileOptions,
    contentType: type,
    storedEncoding: v.stored,
    dynamicEncoding: v.dynamic,
    // Read by the real path that resolution checked: a symlink swapped
    // since the (possibly cached) lookup cannot redirect the read.
    read: () => root.read(v.file),
    varyEncoding: v.vary,
  };
}
