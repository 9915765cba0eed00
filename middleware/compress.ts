/**
 * {@linkcode compress}: on-the-fly compression of every compressible
 * response (CGI and FastCGI output, listings, error pages, your own
 * handlers), chosen by `Accept-Encoding`.
 *
 * @module
 */

import { bodyKind } from "../server/body_kind.ts";
import { isNullBodyStatus } from "../server/http.ts";
import { isCompressible } from "../server/media_types.ts";
import { acceptedEncodings } from "../server/negotiate.ts";
import type { Middleware } from "../server/types.ts";
import { _withMutableHeaders } from "./mutable.ts";

/**
 * Options of {@linkcode compress}.
 *
 * @example A lower threshold
 * ```ts
 * import { compose, compress, type CompressOptions } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const options: CompressOptions = { minSize: 256 };
 * const page = "<p>hello</p>".repeat(30); // 360 bytes
 * const handler = compose([
 *   compress(options),
 *   () => new Response(page, { headers: { "content-type": "text/html" } }),
 * ]);
 * const res = await handler(new Request("http://localhost/", {
 *   headers: { "accept-encoding": "gzip" },
 * }));
 * assert.equal(res.headers.get("content-encoding"), "gzip");
 * const text = await new Response(
 *   res.body!.pipeThrough(new DecompressionStream("gzip")),
 * ).text();
 * assert.equal(text, page);
 * ```
 */
export interface CompressOptions {
  /**
   * Smallest body compressed, in bytes, when its length is known (a string
   * or bytes body, or a `Content-Length`); a stream of unknown length is
   * always compressed.
   * @default {1024}
   */
  minSize?: number;
}

/** A coding this middleware can send, in server preference order. */
type _Coding = "br" | "zstd" | "gzip";

const _FORMATS: Readonly<Record<_Coding, string>> = {
  br: "brotli",
  zstd: "zstd",
  gzip: "gzip",
};

/** Whether this runtime's `CompressionStream` knows `format`. */
function _supports(format: string): boolean {
  try {
    new CompressionStream(format as CompressionFormat);
    return true;
  } catch {
    return false;
  }
}

/**
 * The codings offered, best first (ties in q-value go to the earlier one):
 * br, zstd where Deno's `CompressionStream` has it (Deno 2.9.6 does not),
 * gzip — the order static files use.
 */
const _CODINGS: readonly _Coding[] = (["br", "zstd", "gzip"] as const).filter(
  (c) => c !== "zstd" || _supports(_FORMATS.zstd),
);

const _NO_TRANSFORM = /(?:^|,)\s*no-transform\s*(?:,|$)/i;
const _VARIES = /(?:^|,)\s*(?:\*|accept-encoding)\s*(?:,|$)/i;

/**
 * Compresses every compressible response the chain inside it makes, with
 * the best coding the client accepts (`Accept-Encoding` q-values; ties go
 * to br, then zstd where Deno has it, then gzip), by the media types that
 * static files use (text, JSON, JavaScript, XML, SVG, WASM…; not
 * `text/event-stream`).
 *
 * Left alone: responses that already have a `Content-Encoding` (nothing is
 * compressed twice: precompressed and already compressed files, a script's
 * own gzip), 206 and `Content-Range` responses, statuses without a body
 * (1xx, 204, 205, 304), `Cache-Control: no-transform`, and bodies shorter
 * than {@linkcode CompressOptions.minSize} when their length is known. A
 * compressed response loses `Content-Length` and `Accept-Ranges`, and its
 * strong `ETag` becomes weak (`W/"…"`, so `If-None-Match` still matches).
 * Every compressible response gets `Vary: Accept-Encoding` (merged into
 * an existing `Vary`), compressed or not. HEAD gets the headers GET would
 * get, with no body. A response it leaves uncompressed keeps its body
 * untouched (a string or bytes body still goes out with its length).
 *
 * Put it outside whatever it should see (error pages, gateways, static
 * files) and inside the access log, which then counts the bytes sent.
 *
 * @example Compressing a script's output
 * ```ts
 * import { compose, compress } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const json = JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ i })));
 * const handler = compose([compress(), () => Response.json(JSON.parse(json))]);
 * const res = await handler(new Request("http://localhost/", {
 *   headers: { "accept-encoding": "gzip;q=0.5, br" },
 * }));
 * assert.equal(res.headers.get("content-encoding"), "br");
 * assert.equal(res.headers.get("vary"), "Accept-Encoding");
 * const decoded = res.body!.pipeThrough(
 *   new DecompressionStream("brotli" as CompressionFormat),
 * );
 * assert.equal(await new Response(decoded).text(), json);
 * ```
 *
 * @param options The size threshold.
 * @returns The middleware.
 */
export function compress(options: CompressOptions = {}): Middleware {
  const { minSize = 1024 } = options;
  const choose = _chooser();
  return async function compressMiddleware(req, _ctx, next) {
    const res = await next();
    return _encode(req, res, minSize, choose);
  };
}

/** Compresses `res` when it is eligible, else returns it (maybe with `Vary`). */
function _encode(
  req: Request,
  res: Response,
  minSize: number,
  choose: (req: Request) => _Coding | undefined,
): Response {
  const status = res.status;
  if (status < 200 || status === 206 || isNullBodyStatus(status)) return res;
  const h = res.headers;
  if (h.has("content-encoding") || h.has("content-range")) return res;
  const type = h.get("content-type");
  if (type === null || !_compressibleType(type)) return res;
  const cacheControl = h.get("cache-control");
  if (cacheControl !== null && _NO_TRANSFORM.test(cacheControl)) return res;
  const head = req.method === "HEAD";
  const size = _size(res, head);
  if (size === "none") return res;
  const coding = size !== undefined && size < minSize ? undefined : choose(req);
  if (coding === undefined || (!head && res.body === null)) {
    const out = _withMutableHeaders(res);
    _varyOnEncoding(out.headers);
    return out;
  }
  const headers = new Headers(h);
  _varyOnEncoding(headers);
  headers.set("content-encoding", coding);
  headers.delete("content-length");
  headers.delete("accept-ranges");
  const etag = headers.get("etag");
  if (etag !== null && etag.startsWith('"')) headers.set("etag", `W/${etag}`);
  let body: ReadableStream<Uint8Array>;
  if (head) {
    // A stream a handler gave a HEAD answer is not sent: release it.
    if (bodyKind(res) === "stream") res.body?.cancel().catch(() => {});
    // An empty stream, not null: with a null body Deno would add
    // `content-length: 0`, where GET has no length.
    body = _emptyStream();
  } else {
    body = res.body!.pipeThrough(_compressor(coding));
  }
  return new Response(body, { status, statusText: res.statusText, headers });
}

/** A type worth compressing; an event stream (long-lived, tiny events) is not. */
function _compressibleType(type: string): boolean {
  const lower = type.toLowerCase();
  return isCompressible(lower) && !lower.startsWith("text/event-stream");
}

/**
 * The body's length in bytes when known, `"none"` for a GET without a
 * body, `undefined` when unknown (a stream without `Content-Length`, or a
 * HEAD answer that does not say). Never touches `res.body`.
 */
function _size(res: Response, head: boolean): number | "none" | undefined {
  const kind = bodyKind(res);
  if (typeof kind === "number") return kind;
  if (kind === "none" && !head) return "none";
  const length = res.headers.get("content-length");
  if (length !== null && /^\d+$/.test(length)) return Number(length);
  return undefined;
}

/**
 * Picks the best coding for a request's `Accept-Encoding`; the answer for
 * each header value is remembered (a few distinct values are common).
 */
function _chooser(): (req: Request) => _Coding | undefined {
  const seen = new Map<string, _Coding | undefined>();
  const available = [..._CODINGS];
  return (req) => {
    const accept = req.headers.get("accept-encoding");
    if (accept === null) return undefined;
    if (seen.has(accept)) return seen.get(accept);
    const best = acceptedEncodings(req, available)[0] as _Coding | undefined;
    if (seen.size >= 256) seen.clear();
    seen.set(accept, best);
    return best;
  };
}

/** Adds `Accept-Encoding` to `Vary` unless it (or `*`) is there already. */
function _varyOnEncoding(headers: Headers): void {
  const vary = headers.get("vary");
  if (vary === null || vary.trim() === "") {
    headers.set("vary", "Accept-Encoding");
  } else if (!_VARIES.test(vary)) {
    headers.set("vary", `${vary}, Accept-Encoding`);
  }
}

/** A compressing transform for `coding` (Deno's `CompressionStream`). */
function _compressor(coding: _Coding): TransformStream<Uint8Array, Uint8Array> {
  // CompressionStream's writable is typed as BufferSource; bytes are fine.
  return new CompressionStream(
    _FORMATS[coding] as CompressionFormat,
  ) as unknown as TransformStream<Uint8Array, Uint8Array>;
}

function _emptyStream(): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      controller.close();
    },
  });
}
