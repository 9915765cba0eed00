/**
 * Path resolution: {@linkcode resolvePath} decodes the request path once,
 * resolves dot segments without ever leaving the root, hides dotfiles, keeps
 * symlinks inside the root, and records what it found on disk in the context.
 *
 * @module
 */

import { join, sep } from "node:path";
import { HttpError } from "./errors.ts";
import type { Middleware, ResolvedFile } from "./types.ts";

const _WINDOWS = Deno.build.os === "windows";

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
export interface ResolvePathOptions {
  /**
   * The document root.
   * @default {"."}
   */
  root?: string;
  /**
   * Serve dotfiles and dot-directories (`.env`, `.git/`). When false they
   * answer 404 (`.well-known` stays visible, as ACME and others need it).
   * @default {false}
   */
  dotfiles?: boolean;
  /**
   * Follow symlinks wherever they point. When false, a symlink whose real
   * path leaves the (real) root answers 404.
   * @default {false}
   */
  followSymlinks?: boolean;
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
 * import { decodePath } from "@x/serve";
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
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch (error) {
      throw new HttpError(400, "Malformed percent-encoding in path", {
        cause: error,
      });
    }
    if (seg.includes("\0")) throw new HttpError(400, "NUL byte in path");
    if (seg.includes("/")) {
      throw new HttpError(404, "Encoded slash in path segment");
    }
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

/** True when `segments` name a dotfile or dot-directory (other than `.well-known`). */
export function _hasDotSegment(segments: readonly string[]): boolean {
  return segments.some((s) => s.startsWith(".") && s !== ".well-known");
}

/**
 * True when `path` is `root` or lies below it (both absolute, normalised).
 *
 * @example Containment
 * ```ts
 * import { isInside } from "@x/serve";
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
 * Looks up `segments` under `root` (a real path): the file's stat, or
 * `undefined` when missing, not a directory on the way, or (unless
 * `followSymlinks`) a symlink leading out of the root. Other errors (e.g.
 * permission) are thrown.
 *
 * @example Finding a file
 * ```ts
 * import { findFile } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.realPath(await Deno.makeTempDir());
 * await Deno.writeTextFile(`${root}/a.txt`, "hi");
 * assert.equal((await findFile(root, ["a.txt"]))?.info.size, 2);
 * assert.equal(await findFile(root, ["missing"]), undefined);
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * @param root The real path of the root.
 * @param segments Decoded path segments.
 * @param followSymlinks Allow symlinks out of the root.
 * @returns The resolved file, or `undefined`.
 */
export async function findFile(
  root: string,
  segments: readonly string[],
  followSymlinks = false,
): Promise<ResolvedFile | undefined> {
  const path = join(root, ...segments);
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    if (
      error instanceof Deno.errors.NotFound ||
      error instanceof Deno.errors.NotADirectory ||
      error instanceof Deno.errors.FilesystemLoop
    ) return undefined;
    throw error;
  }
  if (!followSymlinks && segments.length > 0) {
    const real = await Deno.realPath(path);
    if (!isInside(root, real)) return undefined;
  }
  return { path, info };
}

/**
 * The path-resolution middleware. It sets `ctx.segments`, `ctx.path`,
 * `ctx.root` and `ctx.file` (when the path exists), then calls `next()`.
 * Malformed paths → 400; hidden dotfiles → 404.
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
 * @param options Root, dotfiles and symlink policy.
 * @returns The middleware.
 */
export function resolvePath(options: ResolvePathOptions = {}): Middleware {
  const { root = ".", dotfiles = false, followSymlinks = false } = options;
  let realRoot: string | undefined;

  return async function resolvePathMiddleware(_req, ctx, next) {
    const segments = decodePath(ctx.url.pathname);
    if (!dotfiles && _hasDotSegment(segments)) {
      throw new HttpError(404, "Dotfile hidden");
    }
    realRoot ??= await Deno.realPath(root);
    const trailing = segments.length > 0 && ctx.url.pathname.endsWith("/");
    ctx.segments = segments;
    ctx.path = "/" + segments.join("/") + (trailing ? "/" : "");
    ctx.root = realRoot;
    ctx.file = await findFile(realRoot, segments, followSymlinks);
    return next();
  };
}
