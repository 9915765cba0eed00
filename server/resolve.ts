/**
 * Path resolution, the one owner of path policy: {@linkcode resolvePath}
 * decodes the request path once, resolves dot segments without ever leaving
 * the root, and records on the context the {@linkcode DocumentRoot} (root,
 * dotfile and symlink policy, and the one lookup every later step uses) and
 * what it found on disk.
 *
 * @module
 */

import { join, sep } from "node:path";
import { errorCode, HttpError, isNoSuchPath } from "./errors.ts";
import { _FileCache, type FileCacheOptions } from "./file_cache.ts";
import type {
  Context,
  DocumentRoot,
  Middleware,
  Next,
  ResolvedFile,
} from "./types.ts";

const _WINDOWS = Deno.build.os === "windows";

/**
 * The longest request target {@linkcode resolvePath} takes, in bytes: the
 * path and query as sent (percent-encoded). Longer → 414 URI Too Long
 * before anything is decoded or looked up. nginx's default limit for a
 * request line is the same 8 KiB; it also keeps a query string or
 * `PATH_INFO` far below what a CGI environment variable (128 KiB on
 * Linux) or a FastCGI params record (64 KiB) can carry.
 */
export const MAX_TARGET_BYTES = 8192;

/**
 * The longest decoded path segment that can name a file, in UTF-8 bytes
 * (`NAME_MAX` of Linux file systems). A longer one is not found (404),
 * without a system call.
 */
export const MAX_SEGMENT_BYTES = 255;

/**
 * The longest file path a lookup asks the file system for, in UTF-8 bytes,
 * the root included (`PATH_MAX` is 4 096 with the terminating NUL). A
 * longer one is not found (404), without a system call.
 */
export const MAX_PATH_BYTES = 4095;

/**
 * Options of {@linkcode resolvePath}.
 *
 * @example Serving dotfiles
 * ```ts
 * import { compose, resolvePath, type ResolvePathOptions } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/.env`, "A=1");
 * const options: ResolvePathOptions = { root, dotfiles: true };
 * const handler = compose([resolvePath(options), (_req, ctx) =>
 *   new Response(ctx.file ? "found" : "missing")]);
 * const res = await handler(new Request("http://localhost/.env"));
 * assert.equal(await res.text(), "found");
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export interface ResolvePathOptions extends DocumentRootOptions {
  /**
   * The document root.
   * @default {"."}
   */
  root?: string;
}

/**
 * Decodes a URL path into segments: percent-decoded once, `.`/`..` resolved
 * and clamped at the root, empty segments dropped. Throws a 400
 * {@linkcode HttpError} on malformed escapes (including overlong UTF-8) or
 * NUL, and 404 when a decoded segment holds a `/` (an encoded `%2F` never
 * becomes a separator).
 *
 * @example Decoding a path
 * ```ts
 * import { decodePath } from "./resolve.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(decodePath("/a/%E4%B8%AD/../b%20c"), ["a", "b c"]);
 * assert.deepEqual(decodePath("/../../etc"), ["etc"]);
 * assert.throws(() => decodePath("/%E0%A4%A"));
 * ```
 *
 * @param pathname The percent-encoded path (`url.pathname`).
 * @returns The decoded segments.
 */
export function decodePath(pathname: string): string[] {
  const out: string[] = [];
  for (const raw of pathname.split("/")) {
    // Without a `%` a segment is as sent (a split leaves no slash in it).
    const seg = raw.includes("%") ? _decodeSegment(raw) : raw;
    if (seg.includes("\0")) throw new HttpError(400, "NUL byte in path");
    // On Windows a backslash (and a drive colon) would become a separator
    // or a drive in node:path: there a segment holding one names no file.
    if (_WINDOWS && /[\\:]/.test(seg)) {
      throw new HttpError(404, "Backslash or colon in path segment");
    }
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      out.pop();
      continue;
    }
    out.push(seg);
  }
  return out;
}

/** One percent-encoded segment, decoded; 400 or 404 for what no file is. */
function _decodeSegment(raw: string): string {
  let seg: string;
  try {
    seg = decodeURIComponent(raw);
  } catch (error) {
    throw new HttpError(400, "Malformed percent-encoding in path", {
      cause: error,
    });
  }
  if (seg.includes("/")) {
    throw new HttpError(404, "Encoded slash in path segment");
  }
  return seg;
}

function _hidden(segment: string): boolean {
  return segment.startsWith(".") && segment !== ".well-known";
}

/**
 * True when `path` is `root` or lies below it (both absolute, normalised).
 *
 * @example Containment
 * ```ts
 * import { isInside } from "./resolve.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isInside("/srv/www", "/srv/www/a.txt"), true);
 * assert.equal(isInside("/srv/www", "/srv/www2/a.txt"), false);
 * ```
 *
 * @param root The containing directory.
 * @param path The path to test.
 * @returns Whether `path` is inside `root`.
 */
export function isInside(root: string, path: string): boolean {
  return path === root ||
    path.startsWith(root.endsWith(sep) ? root : root + sep);
}

/**
 * Errors of a lookup that mean "there is no such file here": the "no such
 * path" errors of `statusOf()`, and `EINVAL`, which a stat or realpath of
 * a name only raises when the file system refuses the name (vfat, CIFS).
 * Elsewhere `EINVAL` is a bug, so it stays a 500 outside lookups.
 */
function _missing(error: unknown): boolean {
  return isNoSuchPath(error) || errorCode(error) === "EINVAL";
}

/** The UTF-8 length of `text` (valid UTF-16: decoded paths always are). */
function _utf8Bytes(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) continue;
    // 2 bytes below U+0800, 3 above; a surrogate pair's 4 are 2 + 2.
    bytes += unit >= 0x800 && (unit < 0xd800 || unit > 0xdfff) ? 2 : 1;
  }
  return bytes;
}

/** Options of {@linkcode documentRoot}: the path policy. */
export interface DocumentRootOptions {
  /**
   * Serve and list dotfiles and dot-directories (`.env`, `.git/`). When
   * false they are hidden (`.well-known` stays visible, as ACME needs it).
   * @default {false}
   */
  dotfiles?: boolean;
  /**
   * Follow symlinks wherever they point. When false, a symlink whose real
   * path leaves the (real) root is not found.
   * @default {false}
   */
  followSymlinks?: boolean;
  /**
   * Cache lookups (stat, real path, misses) like nginx's `open_file_cache`:
   * trusted for `validMs`, dropped at once when the watched root changes
   * (see {@linkcode FileCacheOptions}). Off unless given; the CLI turns it
   * on (`--file-cache-valid`).
   * @default {undefined} (off)
   */
  cache?: FileCacheOptions;
}

/** A {@linkcode DocumentRoot} that may own a cache and its watcher. */
export interface ClosableDocumentRoot extends DocumentRoot, AsyncDisposable {
  /** Stops the cache's watcher. Safe to call twice. */
  close(): Promise<void>;
}

/** The key of {@linkcode _CachingRoot}'s lookup without the hidden check. */
const _LOOKUP = Symbol("x-serve lookup");

/** The root `resolvePath()` opens: a known lookup comes without a promise. */
interface _CachingRoot extends ClosableDocumentRoot {
  /**
   * `find()` for segments none of which `hides()` (the caller checked):
   * `{ file }` when the lookup is known now (a trusted cache entry, or a
   * name too long for any file system), else the promise of the lookup.
   */
  [_LOOKUP](
    segments: readonly string[],
  ): { file: ResolvedFile | undefined } | Promise<ResolvedFile | undefined>;
}

/** A lookup known to find nothing. */
const _NONE: { readonly file: undefined } = Object.freeze({ file: undefined });

/**
 * The {@linkcode DocumentRoot} for a directory given by its real path: the
 * one lookup with the dotfile and symlink policy. `resolvePath()` makes one
 * for the site; the CGI gateway makes one for each script directory.
 *
 * `find()` answers `undefined` (not found) for a name no file system could
 * hold — a segment over {@linkcode MAX_SEGMENT_BYTES} or a path over
 * {@linkcode MAX_PATH_BYTES}, the root included — without a system call,
 * and for every error that only says no such file exists (`ENOENT`,
 * `ENOTDIR`, `ENAMETOOLONG`, `ELOOP`, `EILSEQ`, `EINVAL`); whatever path a
 * client sends, a lookup never fails with a 500.
 *
 * @example Looking files up under a policy
 * ```ts
 * import { documentRoot } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.realPath(await Deno.makeTempDir());
 * await Deno.writeTextFile(`${dir}/a.txt`, "hi");
 * await Deno.writeTextFile(`${dir}/.env`, "A=1");
 * const root = documentRoot(dir);
 * assert.equal((await root.find(["a.txt"]))?.info.size, 2);
 * assert.equal(await root.find([".env"]), undefined);
 * assert.equal(await root.find(["missing"]), undefined);
 * assert.equal(await root.find(["a".repeat(256)]), undefined); // no stat
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param realRoot The real path of the directory.
 * @param options The dotfile and symlink policy.
 * @returns The lookup.
 */
export function documentRoot(
  realRoot: string,
  options: DocumentRootOptions = {},
): ClosableDocumentRoot {
  return _documentRoot(realRoot, options);
}

/** {@linkcode documentRoot}, with the lookup `resolvePath()` takes at once. */
function _documentRoot(
  realRoot: string,
  options: DocumentRootOptions,
): _CachingRoot {
  const { dotfiles = false, followSymlinks = false } = options;
  const cache = options.cache
    ? new _FileCache(realRoot, options.cache)
    : undefined;
  /** Lookups in flight (with the cache on), by path. */
  const looking = new Map<
    string,
    { promise: Promise<ResolvedFile | undefined>; changes: number }
  >();
  const rootBytes = _utf8Bytes(
    realRoot.endsWith(sep) ? realRoot.slice(0, -1) : realRoot,
  );
  const rootPrefix = realRoot.endsWith(sep) ? realRoot : realRoot + sep;

  /** Whether the file system could take this name at all (no syscall). */
  function fits(segments: readonly string[]): boolean {
    let bytes = rootBytes;
    for (const segment of segments) {
      // A segment is at least as many bytes as UTF-16 units.
      if (segment.length > MAX_SEGMENT_BYTES) return false;
      const length = _utf8Bytes(segment);
      if (length > MAX_SEGMENT_BYTES) return false;
      bytes += 1 + length;
    }
    return bytes <= MAX_PATH_BYTES;
  }

  function hides(segment: string): boolean {
    return !dotfiles && _hidden(segment);
  }

  async function lookup(
    path: string,
    named: boolean,
  ): Promise<ResolvedFile | undefined> {
    let info: Deno.FileInfo;
    let realPath: string;
    try {
      info = await Deno.stat(path);
      realPath = named ? await Deno.realPath(path) : realRoot;
    } catch (error) {
      if (_missing(error)) return undefined;
      throw error;
    }
    if (!followSymlinks && !isInside(realRoot, realPath)) return undefined;
    return { path, realPath, info };
  }

  /** `join(realRoot, ...segments)`, by concatenation for plain names. */
  function pathOf(segments: readonly string[]): string {
    if (segments.length === 0) return realRoot;
    for (const segment of segments) {
      if (
        segment === "" || segment === "." || segment === ".." ||
        segment.includes("/") || segment.includes(sep)
      ) {
        return join(realRoot, ...segments);
      }
    }
    return rootPrefix + segments.join(sep);
  }

  /**
   * The lookup of `segments` (none hidden by the policy): `{ file }` when
   * it is known without a system call (a name no file system could hold,
   * or one the cache trusts), else the promise of the lookup.
   */
  function lookUp(
    segments: readonly string[],
  ): { file: ResolvedFile | undefined } | Promise<ResolvedFile | undefined> {
    if (!fits(segments)) return _NONE;
    const path = pathOf(segments);
    const inside = segments.length > 0;
    if (!cache?.enabled) return lookup(path, inside);
    return cache.get(path) ?? sharedLookup(cache, path, inside);
  }

  /**
   * A cache miss. Requests that miss together share one lookup (and so
   * one cached entry and one read of its bytes), as on a cold start or
   * when a hot entry's window ends; a lookup begun before the watcher
   * reported a change is neither shared nor kept.
   */
  function sharedLookup(
    cache: _FileCache,
    path: string,
    inside: boolean,
  ): Promise<ResolvedFile | undefined> {
    let found = looking.get(path);
    if (found === undefined || found.changes !== cache.changes) {
      const changes = cache.changes;
      const promise = lookup(path, inside).then((file) =>
        // The same file as before the window ended: the kept lookup.
        cache.changes === changes ? cache.set(path, file) : file
      ).finally(() => {
        if (looking.get(path) === found) looking.delete(path);
      });
      found = { promise, changes };
      looking.set(path, found);
    }
    return found.promise;
  }

  async function find(
    segments: readonly string[],
  ): Promise<ResolvedFile | undefined> {
    if (!dotfiles && segments.some(_hidden)) return undefined;
    const found = lookUp(segments);
    return found instanceof Promise ? await found : found.file;
  }

  function read(file: ResolvedFile): Promise<Uint8Array<ArrayBuffer>> {
    return cache?.enabled ? cache.read(file) : Deno.readFile(file.realPath);
  }

  function keeps(file: ResolvedFile): boolean {
    return cache?.keeps(file) ?? false;
  }

  function share(
    file: ResolvedFile,
    kept: Uint8Array<ArrayBuffer>,
    own: Uint8Array<ArrayBuffer>,
  ): boolean {
    return cache?.share(file, kept, own) ?? false;
  }

  function remember<T>(
    segments: readonly string[],
    key: string,
    make: () => Promise<T>,
  ): Promise<T> {
    if (!cache) return make();
    return cache.remember(pathOf(segments), key, make);
  }

  async function close(): Promise<void> {
    await cache?.close();
  }

  return {
    remember,
    path: realRoot,
    dotfiles,
    followSymlinks,
    find,
    [_LOOKUP]: lookUp,
    read,
    keeps,
    share,
    hides,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** The {@linkcode resolvePath} middleware, with `close()` for its cache. */
export interface ResolvePathMiddleware extends Middleware, AsyncDisposable {
  /** Stops the open-file cache's watcher (when `cache` is on). Safe to call twice. */
  close(): Promise<void>;
}

/**
 * The path-resolution middleware. It sets `ctx.segments`, `ctx.path`,
 * `ctx.root` and `ctx.file` (when the path exists), then calls `next()`.
 * A request target (path and query) over {@linkcode MAX_TARGET_BYTES} →
 * 414; malformed paths → 400; hidden dotfiles → 404.
 *
 * @example Resolving a path
 * ```ts
 * import { compose, resolvePath } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/hello.txt`, "hi");
 * const handler = compose([resolvePath({ root }), (_req, ctx) =>
 *   new Response(`${ctx.path} ${ctx.file?.info.size}`)]);
 * const res = await handler(new Request("http://localhost/x/../hello.txt"));
 * assert.equal(await res.text(), "/hello.txt 2");
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * @param options The root and its path policy.
 * @returns The middleware.
 */
export function resolvePath(
  options: ResolvePathOptions = {},
): ResolvePathMiddleware {
  const { root = ".", ...policy } = options;
  let site: Promise<_CachingRoot> | undefined;
  let closed = false;

  async function open(): Promise<_CachingRoot> {
    const real = await Deno.realPath(root);
    return _documentRoot(
      real,
      closed ? { ...policy, cache: undefined } : policy,
    );
  }

  /** The root once opened: requests after the first take it as it is. */
  let ready: _CachingRoot | undefined;

  async function opening(
    req: Request,
    ctx: Context,
    next: Next,
  ): Promise<Response> {
    const current = site ??= open();
    let found: _CachingRoot;
    try {
      found = await current;
    } catch (error) {
      if (site === current) site = undefined; // the root may appear later
      throw error;
    }
    if (site === current) ready = found;
    return await resolved(req, ctx, next, found);
  }

  function resolved(
    _req: Request,
    ctx: Context,
    next: Next,
    found: _CachingRoot,
  ): Promise<Response> {
    ctx.root = found;
    const { pathname, search } = ctx.url; // percent-encoded: 1 byte a unit
    if (pathname.length + search.length > MAX_TARGET_BYTES) {
      throw new HttpError(414, `Request target over ${MAX_TARGET_BYTES} bytes`);
    }
    const segments = decodePath(pathname);
    for (const segment of segments) {
      if (found.hides(segment)) throw new HttpError(404, "Dotfile hidden");
    }
    const trailing = segments.length > 0 && pathname.endsWith("/");
    ctx.segments = segments;
    ctx.path = "/" + segments.join("/") + (trailing ? "/" : "");
    // A known lookup goes on at once, without awaiting a promise (the
    // policy's hidden names were refused above).
    const looked = found[_LOOKUP](segments);
    if (!(looked instanceof Promise)) {
      ctx.file = looked.file;
      return next();
    }
    return looked.then((file) => {
      ctx.file = file;
      return next();
    });
  }

  function resolvePathMiddleware(
    req: Request,
    ctx: Context,
    next: Next,
  ): Promise<Response> {
    if (ready === undefined) return opening(req, ctx, next);
    try {
      return resolved(req, ctx, next, ready);
    } catch (error) {
      return Promise.reject(error); // as an async function would
    }
  }

  async function close(): Promise<void> {
    closed = true;
    const opened = site;
    site = undefined;
    ready = undefined;
    await (await opened?.catch(() => undefined))?.close();
  }

  return Object.assign(resolvePathMiddleware, {
    close,
    [Symbol.asyncDispose]: close,
  });
}
