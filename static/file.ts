/**
 * {@linkcode serveFile}: one file as a response, with validators,
 * conditional requests and ranges; small files are sent from memory, the
 * rest streamed.
 *
 * @module
 */

import { HttpError } from "../server/errors.ts";
import {
  checkPreconditions,
  ifRangeAllows,
  type Validators,
} from "./conditional.ts";
import { _sharedClone } from "../server/shared_response.ts";
import { contentType } from "./content_type.ts";
import { fileEtag } from "./etag.ts";
import {
  type ByteRange,
  fileSliceStream,
  multipartRanges,
  parseRange,
} from "./range.ts";
import { _compressor } from "./encoding.ts";

/**
 * Options of {@linkcode serveFile}.
 *
 * @example Sending a precompressed sibling
 * ```ts
 * import { serveFile, type ServeFileOptions } from "@x/serve/static";
 * import assert from "node:assert/strict";
 *
 * const path = await Deno.makeTempFile({ suffix: ".js.gz" });
 * await Deno.writeFile(path, new Uint8Array([0x1f, 0x8b]));
 * const options: ServeFileOptions = {
 *   contentType: "text/javascript; charset=UTF-8",
 *   storedEncoding: "gzip",
 *   varyEncoding: true,
 * };
 * const req = new Request("http://x/app.js", { method: "HEAD" });
 * const res = await serveFile(req, path, await Deno.stat(path), options);
 * assert.equal(res.headers.get("content-encoding"), "gzip");
 * assert.equal(res.headers.get("content-type"), "text/javascript; charset=UTF-8");
 * assert.equal(res.headers.get("vary"), "Accept-Encoding");
 * await Deno.remove(path);
 * ```
 */
export interface ServeFileOptions {
  /**
   * Whole-file responses up to this many bytes are read at once and sent
   * from memory (fewer syscalls and stream hops); larger ones, ranges and
   * compressed responses are streamed. `0` streams every non-empty file.
   * @default {16384}
   */
  bufferBelow?: number;
  /**
   * Content-Type to send instead of the one looked up from the name.
   * @default {undefined}
   */
  contentType?: string;
  /**
   * The file is stored with this content coding (a precompressed sibling):
   * sent as `Content-Encoding`, with a distinct (strong) ETag.
   * @default {undefined}
   */
  storedEncoding?: "br" | "zstd" | "gzip";
  /**
   * Compress the body on the fly with this coding (no ranges:
   * `Accept-Ranges: none`; no `Content-Length`; a distinct, weak ETag).
   * @default {undefined}
   */
  dynamicEncoding?: "br" | "gzip";
  /**
   * Reads the whole file for a response sent from memory (see
   * {@linkcode ServeFileOptions.bufferBelow}), e.g. from a cache.
   * @default {undefined} (`Deno.readFile(path)`)
   */
  read?: () => Promise<Uint8Array<ArrayBuffer>>;
  /**
   * Add `Vary: Accept-Encoding` (the variant depended on it).
   * @default {false}
   */
  varyEncoding?: boolean;
}

/**
 * Answers GET or HEAD for one regular file: `Content-Type`,
 * `Content-Length`, `Last-Modified`, a strong `ETag`, `Accept-Ranges`;
 * 304/412 per the conditional headers; 206 for one range,
 * `multipart/byteranges` for several, 416 (thrown as an `HttpError` carrying
 * `Content-Range: bytes *\/SIZE`) when none is satisfiable.
 *
 * @example Serving a file
 * ```ts
 * import { serveFile } from "@x/serve/static";
 * import assert from "node:assert/strict";
 *
 * const path = await Deno.makeTempFile({ suffix: ".txt" });
 * await Deno.writeTextFile(path, "hello");
 * const req = new Request("http://x/a.txt", { headers: { range: "bytes=1-2" } });
 * const res = await serveFile(req, path, await Deno.stat(path));
 * assert.equal(res.status, 206);
 * assert.equal(await res.text(), "el");
 * await Deno.remove(path);
 * ```
 *
 * @param req The request (GET or HEAD).
 * @param path The file's path.
 * @param info The file's stat.
 * @param options Buffering, type and content coding.
 * @returns The response.
 */
export async function serveFile(
  req: Request,
  path: string,
  info: Deno.FileInfo,
  options: ServeFileOptions = {},
): Promise<Response> {
  const type = options.contentType ?? contentType(path);
  const v = _validators(info, options);
  const headers = _baseHeaders(v, options);
  const pre = checkPreconditions(req, v);
  if (pre === 304) {
    return new Response(null, {
      status: 304,
      headers: _notModifiedHeaders(headers),
    });
  }
  if (pre === 412) throw new HttpError(412, "Precondition failed");

  const size = info.size;
  const ranges =
    req.method === "GET" && !options.dynamicEncoding && ifRangeAllows(req, v)
      ? parseRange(req.headers.get("range"), size)
      : undefined;
  if (ranges === "unsatisfiable") {
    throw new HttpError(416, "Range not satisfiable", {
      headers: { "content-range": `bytes */${size}` },
    });
  }
  if (ranges && ranges.length > 1) {
    const mp = multipartRanges(path, size, type, ranges);
    headers.push(
      ["content-type", mp.contentType],
      ["content-length", String(mp.length)],
    );
    return new Response(mp.body, { status: 206, headers });
  }
  headers.push(["content-type", type]);
  if (options.dynamicEncoding) {
    return await _compressed(req, path, size, options.dynamicEncoding, headers);
  }
  return await _identity(req, path, size, ranges?.[0], headers, options);
}

/** The file's validators; each coding is its own representation with its own tag. */
function _validators(
  info: Deno.FileInfo,
  options: ServeFileOptions,
): Validators {
  const coding = options.storedEncoding ?? options.dynamicEncoding;
  const etag = fileEtag(info);
  return {
    // Strong for a stored sibling (fixed bytes), weak for on-the-fly output
    // (the bytes depend on the compressor's version and settings).
    etag: etag && coding
      ? `${options.dynamicEncoding ? "W/" : ""}${etag.slice(0, -1)}-${coding}"`
      : etag,
    lastModified: info.mtime ?? undefined,
  };
}

/**
 * A response's header list, built as name/value pairs: the `Response` is
 * given the list itself (no `Headers` object per request, whose every
 * `set()` validates and searches again).
 */
type _HeaderPairs = [string, string][];

/** Headers every answer for the file carries (200 and 206; 304 most). */
function _baseHeaders(v: Validators, options: ServeFileOptions): _HeaderPairs {
  const coding = options.storedEncoding ?? options.dynamicEncoding;
  const headers: _HeaderPairs = [
    ["accept-ranges", options.dynamicEncoding ? "none" : "bytes"],
  ];
  if (options.varyEncoding) headers.push(["vary", "Accept-Encoding"]);
  if (coding) headers.push(["content-encoding", coding]);
  if (v.etag) headers.push(["etag", v.etag]);
  if (v.lastModified) {
    headers.push(["last-modified", v.lastModified.toUTCString()]);
  }
  return headers;
}

/**
 * A 304's headers: the 200's validators and `Vary`, without `Accept-Ranges`
 * and `Content-Encoding` (as nginx sends it; RFC 9110 §15.4.5: a 304 carries
 * what guides a cache's update, not the representation's other metadata).
 */
function _notModifiedHeaders(headers: _HeaderPairs): _HeaderPairs {
  return headers.filter(([name]) =>
    name !== "accept-ranges" && name !== "content-encoding"
  );
}

/** The whole file compressed as it is read (no length, no ranges). */
async function _compressed(
  req: Request,
  path: string,
  size: number,
  coding: "br" | "gzip",
  headers: _HeaderPairs,
): Promise<Response> {
  if (req.method === "HEAD") {
    // An (empty) stream, not null: with a null body Deno would add
    // `content-length: 0`, while GET has no length (it is compressed as
    // it goes).
    return new Response(_emptyStream(), { status: 200, headers });
  }
  const file = await Deno.open(path);
  const body = fileSliceStream(file, 0, size).pipeThrough(_compressor(coding));
  return new Response(body, { status: 200, headers });
}

/** The file as stored: whole (from memory when small) or one range. */
async function _identity(
  req: Request,
  path: string,
  size: number,
  range: ByteRange | undefined,
  headers: _HeaderPairs,
  options: ServeFileOptions,
): Promise<Response> {
  const { bufferBelow = _BUFFER_BELOW } = options;
  const start = range?.start ?? 0;
  const length = range ? range.end - range.start + 1 : size;
  headers.push(["content-length", String(length)]);
  if (range) {
    headers.push([
      "content-range",
      `bytes ${range.start}-${range.end}/${size}`,
    ]);
  }
  const status = range ? 206 : 200;
  if (req.method === "HEAD") return new Response(null, { status, headers });
  if (!range && size <= bufferBelow) {
    const bytes = await (options.read?.() ?? Deno.readFile(path));
    // Changed between stat and read: fall through to the stream below.
    if (bytes.byteLength === size) {
      return new Response(bytes, { status, headers });
    }
  }
  const file = await Deno.open(path);
  // A whole file goes through Deno's own file stream (about 1.5x faster than
  // a JS pull stream for large files, measured in bench/); slices are cut
  // by fileSliceStream. `file.readable` reads to the end of the file, not
  // to `length`: if the file changed since the stat, Deno.serve sends at
  // most the advertised Content-Length bytes (cut short when it shrank),
  // but the Response itself may carry more.
  const body = range ? fileSliceStream(file, start, length) : file.readable;
  return new Response(body, { status, headers });
}

/** {@linkcode ServeFileOptions.bufferBelow}'s default. */
export const _BUFFER_BELOW = 16384;

/**
 * What {@linkcode serveFile} works out for a whole stored file (validators
 * and header lists), made once per looked-up file by `serveStatic` and kept
 * with it while the open-file cache keeps the lookup. Internal (not
 * exported from `mod.ts`).
 */
export interface _Prepared {
  readonly path: string;
  readonly info: Deno.FileInfo;
  readonly options: ServeFileOptions;
  readonly v: Validators;
  /** The 200's headers (with Content-Type and Content-Length). */
  readonly ok: _HeaderPairs;
  /** The 304's headers. */
  readonly notModified: _HeaderPairs;
  /**
   * Answers made once and cloned per request: Deno's `Response.clone()`
   * of a bytes body shares the bytes, where a new `Response` copies them
   * (and allocates a buffer for each response).
   */
  readonly answers: _Answers;
}

/** The prepared answers of a {@linkcode _Prepared} file. */
interface _Answers {
  /** The 304 and the HEAD answer, made at their first use. */
  notModified?: Response;
  head?: Response;
  /**
   * The 200; the kept bytes it was made from (weakly: once the cache keeps
   * the response's own copy instead, nothing else holds them) and that
   * copy once known.
   */
  whole?: {
    readonly from: WeakRef<Uint8Array>;
    own?: Uint8Array;
    readonly response: Response;
  };
  /**
   * Offers the 200's own copy of the bytes (`own`, equal to `kept`) to
   * their keeper; true when it keeps `own` now.
   */
  readonly share:
    | ((kept: Uint8Array<ArrayBuffer>, own: Uint8Array<ArrayBuffer>) => boolean)
    | undefined;
}

/**
 * Prepares a whole-file answer for {@linkcode _serveWhole}: `options`
 * without `dynamicEncoding` (the bytes as stored), with `contentType`.
 */
export function _prepare(
  path: string,
  info: Deno.FileInfo,
  options: ServeFileOptions,
  share?: (
    kept: Uint8Array<ArrayBuffer>,
    own: Uint8Array<ArrayBuffer>,
  ) => boolean,
): _Prepared {
  const v = _validators(info, options);
  const base = _baseHeaders(v, options);
  const notModified = _notModifiedHeaders(base);
  const ok: _HeaderPairs = [
    ...base,
    ["content-type", options.contentType ?? contentType(path)],
    ["content-length", String(info.size)],
  ];
  const answers: _Answers = { share };
  return { path, info, options, v, ok, notModified, answers };
}

/**
 * {@linkcode serveFile} for a request without `Range` of a prepared file
 * up to `bufferBelow` bytes (or kept by the open-file cache): the same
 * answers (304, 412, HEAD, 200 from memory), cloned from responses made
 * once. With `kept` (the bytes `read` gives are the same each time: the
 * open-file cache's), the 200 is made once too, and every response shares
 * its bytes.
 */
export async function _serveWhole(
  req: Request,
  p: _Prepared,
  kept = false,
): Promise<Response> {
  const pre = checkPreconditions(req, p.v);
  const a = p.answers;
  if (pre === 304) {
    a.notModified ??= new Response(null, {
      status: 304,
      headers: p.notModified,
    });
    return a.notModified.clone();
  }
  if (pre === 412) throw new HttpError(412, "Precondition failed");
  if (req.method === "HEAD") {
    a.head ??= new Response(null, { status: 200, headers: p.ok });
    return a.head.clone();
  }
  const bytes = await (p.options.read?.() ?? Deno.readFile(p.path));
  if (bytes.byteLength === p.info.size) {
    const whole = p.answers.whole;
    if (
      whole !== undefined &&
      (whole.own === bytes || whole.from.deref() === bytes)
    ) {
      return _sharedClone(whole.response);
    }
    const response = new Response(bytes, { status: 200, headers: p.ok });
    if (!kept) return response;
    // Made once: requests whose reads end together find it at once.
    const made: NonNullable<_Answers["whole"]> = {
      from: new WeakRef(bytes),
      response,
    };
    p.answers.whole = made;
    // The response's copy (a clone's bytes are the response's own, in Deno
    // 2.9; elsewhere a copy, and nothing is shared). The cache keeps it
    // instead of what it read, or (its bytes not kept after all: a change
    // during the read) the answer is not kept either: memory outside
    // `maxBytes` would hold it.
    const own = await response.clone().bytes();
    made.own = own;
    if (p.answers.share?.(bytes, own) === false && p.answers.whole === made) {
      p.answers.whole = undefined;
    }
    return _sharedClone(response);
  }
  // Changed since the lookup: as serveFile does (streamed).
  return await serveFile(req, p.path, p.info, p.options);
}

function _emptyStream(): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      controller.close();
    },
  });
}
