/**
 * Byte ranges (RFC 9110 §14): parsing `Range` and streaming one or several
 * ranges of a file (`multipart/byteranges`).
 *
 * @module
 */

/**
 * An inclusive byte range.
 *
 * @example The length of a range
 * ```ts
 * import { type ByteRange, parseRange } from "./range.ts";
 * import assert from "node:assert/strict";
 *
 * const [range] = parseRange("bytes=10-19", 100) as ByteRange[];
 * assert.deepEqual(range, { start: 10, end: 19 });
 * assert.equal(range!.end - range!.start + 1, 10);
 * ```
 */
export interface ByteRange {
  /** First byte offset. */
  start: number;
  /** Last byte offset (inclusive). */
  end: number;
}

/** Most ranges one request may ask for before the header is ignored. */
const _MAX_RANGES = 64;

/**
 * Parses a `Range` header against a representation of `size` bytes.
 *
 * - `undefined`: ignore it and send the whole body (absent, another unit,
 *   malformed, too many ranges, or an empty representation).
 * - `"unsatisfiable"`: answer 416.
 * - otherwise the satisfiable ranges, end clamped to `size - 1`; overlapping
 *   or adjacent ranges are coalesced (sorted).
 *
 * @example Parsing ranges
 * ```ts
 * import { parseRange } from "./range.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseRange("bytes=0-9", 100), [{ start: 0, end: 9 }]);
 * assert.deepEqual(parseRange("bytes=-10", 100), [{ start: 90, end: 99 }]);
 * assert.deepEqual(parseRange("bytes=90-200", 100), [{ start: 90, end: 99 }]);
 * assert.equal(parseRange("bytes=200-", 100), "unsatisfiable");
 * assert.equal(parseRange("bytes=x", 100), undefined);
 * ```
 *
 * @param header The `Range` header value.
 * @param size The representation's length.
 * @returns Ranges, `"unsatisfiable"`, or `undefined`.
 */
export function parseRange(
  header: string | null,
  size: number,
): ByteRange[] | "unsatisfiable" | undefined {
  if (header === null || size === 0) return undefined;
  const eq = header.indexOf("=");
  if (eq < 0 || header.slice(0, eq).trim().toLowerCase() !== "bytes") {
    return undefined;
  }
  const specs = header.slice(eq + 1).split(",").map((s) => s.trim()).filter((
    s,
  ) => s !== "");
  if (specs.length === 0 || specs.length > _MAX_RANGES) return undefined;
  const ranges: ByteRange[] = [];
  for (const spec of specs) {
    const m = /^(\d*)-(\d*)$/.exec(spec);
    if (!m || (m[1] === "" && m[2] === "")) return undefined;
    const [, first = "", last = ""] = m;
    if (first === "") {
      const suffix = Number(last);
      if (suffix > 0) {
        ranges.push({ start: Math.max(0, size - suffix), end: size - 1 });
      }
      continue;
    }
    const start = Number(first);
    const end = last === "" ? size - 1 : Number(last);
    if (end < start) continue;
    if (start < size) ranges.push({ start, end: Math.min(end, size - 1) });
  }
  if (ranges.length === 0) return "unsatisfiable";
  return _coalesce(ranges);
}

function _coalesce(ranges: ByteRange[]): ByteRange[] {
  if (ranges.length < 2) return ranges;
  const overlapping = ranges.some((a, i) =>
    ranges.some((b, j) =>
      i !== j && a.start <= b.end + 1 && b.start <= a.end + 1
    )
  );
  if (!overlapping) return ranges;
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  const out: ByteRange[] = [{ ...sorted[0]! }];
  for (const r of sorted.slice(1)) {
    const last = out[out.length - 1]!;
    if (r.start <= last.end + 1) last.end = Math.max(last.end, r.end);
    else out.push({ ...r });
  }
  return out;
}

/** Read size for file streams. */
const _CHUNK = 64 * 1024;

/**
 * A pull-based stream of `length` bytes of `file` from `start`: reads only
 * when the consumer asks (backpressure), and closes the file at the end or on
 * cancel.
 *
 * @example Streaming a slice
 * ```ts
 * import { fileSliceStream } from "./range.ts";
 * import assert from "node:assert/strict";
 *
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "0123456789");
 * const file = await Deno.open(path);
 * const text = await new Response(fileSliceStream(file, 2, 3)).text();
 * assert.equal(text, "234");
 * await Deno.remove(path);
 * ```
 *
 * @param file An open file; the stream owns it from now on.
 * @param start Offset of the first byte.
 * @param length How many bytes.
 * @returns The byte stream.
 */
export function fileSliceStream(
  file: Deno.FsFile,
  start: number,
  length: number,
): ReadableStream<Uint8Array> {
  let remaining = length;
  let positioned = start === 0;
  let closed = false;
  const close = () => {
    if (!closed) {
      closed = true;
      file.close();
    }
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        if (!positioned) {
          await file.seek(start, Deno.SeekMode.Start);
          positioned = true;
        }
        if (remaining <= 0) {
          close();
          controller.close();
          return;
        }
        const buf = new Uint8Array(Math.min(_CHUNK, remaining));
        const n = await file.read(buf);
        if (n === null) {
          // The file shrank: end short, the client sees a truncated body.
          close();
          controller.error(new Error("File ended early"));
          return;
        }
        remaining -= n;
        controller.enqueue(n === buf.length ? buf : buf.subarray(0, n));
        if (remaining <= 0) {
          close();
          controller.close();
        }
      } catch (error) {
        close();
        controller.error(error);
      }
    },
    cancel() {
      close();
    },
  }, { highWaterMark: 0 });
}

/**
 * A multipart/byteranges body with its headers.
 *
 * @example Sending it as a 206
 * ```ts
 * import { type MultipartBody, multipartRanges } from "./range.ts";
 * import assert from "node:assert/strict";
 *
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "0123456789");
 * const mp: MultipartBody = multipartRanges(path, 10, "text/plain", [
 *   { start: 0, end: 0 },
 *   { start: 9, end: 9 },
 * ]);
 * const res = new Response(mp.body, {
 *   status: 206,
 *   headers: { "content-type": mp.contentType, "content-length": String(mp.length) },
 * });
 * assert.match(res.headers.get("content-type")!, /^multipart\/byteranges; boundary=/);
 * assert.equal((await res.arrayBuffer()).byteLength, mp.length);
 * await Deno.remove(path);
 * ```
 */
export interface MultipartBody {
  /** The `Content-Type` value (with the boundary). */
  contentType: string;
  /** Exact body length. */
  length: number;
  /** The body. */
  body: ReadableStream<Uint8Array>;
}

/**
 * Streams several ranges of a file as `multipart/byteranges` with an exact
 * length.
 *
 * @example Two ranges
 * ```ts
 * import { multipartRanges } from "./range.ts";
 * import assert from "node:assert/strict";
 *
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "0123456789");
 * const mp = multipartRanges(path, 10, "text/plain", [{ start: 0, end: 1 }, { start: 8, end: 9 }]);
 * const text = await new Response(mp.body).text();
 * assert.equal(new TextEncoder().encode(text).length, mp.length);
 * assert.match(text, /Content-Range: bytes 8-9\/10\r\n\r\n89/);
 * await Deno.remove(path);
 * ```
 *
 * @param path The file.
 * @param size The file's size.
 * @param type The file's content type.
 * @param ranges The ranges, in order.
 * @returns Content type, length and body.
 */
export function multipartRanges(
  path: string,
  size: number,
  type: string,
  ranges: ByteRange[],
): MultipartBody {
  const boundary = crypto.randomUUID().replaceAll("-", "");
  const enc = new TextEncoder();
  const heads = ranges.map((r, i) =>
    enc.encode(
      `${i === 0 ? "" : "\r\n"}--${boundary}\r\nContent-Type: ${type}\r\n` +
        `Content-Range: bytes ${r.start}-${r.end}/${size}\r\n\r\n`,
    )
  );
  const tail = enc.encode(`\r\n--${boundary}--\r\n`);
  const length = heads.reduce(
    (n, h, i) => n + h.length + ranges[i]!.end - ranges[i]!.start + 1,
    0,
  ) +
    tail.length;
  let index = 0;
  let current: ReadableStreamDefaultReader<Uint8Array> | undefined;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (true) {
        if (current) {
          const { value, done } = await current.read();
          if (!done) {
            controller.enqueue(value);
            return;
          }
          current = undefined;
          index++;
        }
        if (index >= ranges.length) {
          controller.enqueue(tail);
          controller.close();
          return;
        }
        const r = ranges[index]!;
        const file = await Deno.open(path);
        current = fileSliceStream(file, r.start, r.end - r.start + 1)
          .getReader();
        controller.enqueue(heads[index]!);
        return;
      }
    },
    async cancel(reason) {
      await current?.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return {
    contentType: `multipart/byteranges; boundary=${boundary}`,
    length,
    body,
  };
}
