/**
 * The FastCGI 1.0 record codec: record types, the 8-byte header, name-value
 * pair encoding (PARAMS records that never split a pair), and a reader that
 * pulls whole records off a byte stream.
 *
 * @module
 */

/**
 * FastCGI record types (FastCGI 1.0 §8).
 *
 * @example Telling STDOUT from STDERR
 * ```ts
 * import { RecordType } from "./record.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(RecordType.STDOUT, 6);
 * assert.equal(RecordType.STDERR, 7);
 * ```
 */
export const RecordType = {
  BEGIN_REQUEST: 1,
  ABORT_REQUEST: 2,
  END_REQUEST: 3,
  PARAMS: 4,
  STDIN: 5,
  STDOUT: 6,
  STDERR: 7,
  DATA: 8,
  GET_VALUES: 9,
  GET_VALUES_RESULT: 10,
  UNKNOWN_TYPE: 11,
} as const;

/**
 * Length of a record header.
 *
 * @example The header of an empty record is the whole record
 * ```ts
 * import { encodeRecord, HEADER_LENGTH, RecordType } from "./record.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(encodeRecord(RecordType.STDIN, 1, new Uint8Array()).length, HEADER_LENGTH);
 * ```
 */
export const HEADER_LENGTH = 8;
/**
 * Largest chunk of stream data per record. It is a multiple of 8, so records
 * need no padding and `content + padding` stays within php-fpm's 65535 limit.
 *
 * @example Cutting a body into records
 * ```ts
 * import { MAX_CHUNK } from "./record.ts";
 * import assert from "node:assert/strict";
 *
 * const body = new Uint8Array(100_000);
 * assert.equal(Math.ceil(body.length / MAX_CHUNK), 2);
 * ```
 */
export const MAX_CHUNK = 0xfff8;
/**
 * `FCGI_RESPONDER`: the CGI/1.1-like role.
 *
 * @example The role in a BEGIN_REQUEST record
 * ```ts
 * import { encodeBeginRequest, HEADER_LENGTH, ROLE_RESPONDER } from "./record.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(encodeBeginRequest(1, false)[HEADER_LENGTH + 1], ROLE_RESPONDER);
 * ```
 */
export const ROLE_RESPONDER = 1;
/**
 * `FCGI_KEEP_CONN`: the responder keeps the connection open after the request.
 *
 * @example The flag in a BEGIN_REQUEST record
 * ```ts
 * import { encodeBeginRequest, FLAG_KEEP_CONN, HEADER_LENGTH } from "./record.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(encodeBeginRequest(1, true)[HEADER_LENGTH + 2], FLAG_KEEP_CONN);
 * ```
 */
export const FLAG_KEEP_CONN = 1;

const _MAX_CONTENT = 0xffff;
const _encoder = new TextEncoder();

/**
 * One decoded record.
 *
 * @example Inspecting a record
 * ```ts
 * import type { FastCgiRecord } from "./record.ts";
 * const record: FastCgiRecord = { type: 6, requestId: 1, content: new Uint8Array() };
 * console.log(record.type);
 * ```
 */
export interface FastCgiRecord {
  /** The record type (see {@linkcode RecordType}). */
  type: number;
  /** The request id (0 for management records). */
  requestId: number;
  /** The content, padding removed. */
  content: Uint8Array<ArrayBuffer>;
}

/**
 * Encodes one record. Padding rounds the record to a multiple of 8 bytes
 * without letting `content + padding` exceed 65535.
 *
 * @example Encoding an empty STDIN record
 * ```ts
 * import { encodeRecord, RecordType } from "./record.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = encodeRecord(RecordType.STDIN, 1, new Uint8Array());
 * assert.deepEqual([...bytes], [1, 5, 0, 1, 0, 0, 0, 0]);
 * ```
 *
 * @param type Record type.
 * @param requestId Request id (0-65535).
 * @param content Content, at most 65535 bytes.
 * @returns The encoded record.
 */
export function encodeRecord(
  type: number,
  requestId: number,
  content: Uint8Array,
): Uint8Array<ArrayBuffer> {
  if (content.length > _MAX_CONTENT) {
    throw new RangeError(
      `Cannot encode record: content of ${content.length} bytes exceeds 65535`,
    );
  }
  let padding = (8 - (content.length % 8)) % 8;
  if (content.length + padding > _MAX_CONTENT) padding = 0;
  const out = new Uint8Array(HEADER_LENGTH + content.length + padding);
  _header(out, 0, type, requestId, content.length, padding);
  out.set(content, HEADER_LENGTH);
  return out;
}

/**
 * Encodes a BEGIN_REQUEST record for the responder role.
 *
 * @example Asking the responder to keep the connection
 * ```ts
 * import { encodeBeginRequest } from "./record.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = encodeBeginRequest(1, true);
 * assert.equal(bytes[1], 1); // BEGIN_REQUEST
 * assert.equal(bytes[10], 1); // FCGI_KEEP_CONN
 * ```
 *
 * @param requestId Request id.
 * @param keepConn Set `FCGI_KEEP_CONN`.
 * @returns The encoded record.
 */
export function encodeBeginRequest(
  requestId: number,
  keepConn: boolean,
): Uint8Array<ArrayBuffer> {
  const body = new Uint8Array(8);
  body[1] = ROLE_RESPONDER;
  body[2] = keepConn ? FLAG_KEEP_CONN : 0;
  return encodeRecord(RecordType.BEGIN_REQUEST, requestId, body);
}

function _lengthBytes(n: number): Uint8Array {
  if (n <= 127) return Uint8Array.of(n);
  return Uint8Array.of(
    ((n >>> 24) & 0x7f) | 0x80,
    (n >>> 16) & 0xff,
    (n >>> 8) & 0xff,
    n & 0xff,
  );
}

/**
 * Encodes one name-value pair (1-byte lengths up to 127, else 4 bytes).
 *
 * @example Encoding a short pair
 * ```ts
 * import { encodePair } from "./record.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([...encodePair("A", "bc")], [1, 2, 65, 98, 99]);
 * ```
 *
 * @param name The name.
 * @param value The value.
 * @returns The encoded pair.
 */
export function encodePair(name: string, value: string): Uint8Array {
  const n = _encoder.encode(name);
  const v = _encoder.encode(value);
  const a = _lengthBytes(n.length);
  const b = _lengthBytes(v.length);
  const out = new Uint8Array(a.length + b.length + n.length + v.length);
  out.set(a, 0);
  out.set(b, a.length);
  out.set(n, a.length + b.length);
  out.set(v, a.length + b.length + n.length);
  return out;
}

/**
 * Encodes the whole PARAMS stream: as many records as needed, each holding
 * whole pairs only (php-fpm rejects a pair split across records), then the
 * empty PARAMS record. A single pair longer than one record throws a
 * `RangeError`.
 *
 * @example Encoding params
 * ```ts
 * import { encodeParams } from "./record.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = encodeParams(1, [["REQUEST_METHOD", "GET"]]);
 * assert.equal(bytes.length, 8 + 24 + 8); // record (padded) + empty record
 * ```
 *
 * @param requestId Request id.
 * @param params The pairs, in order.
 * @returns The encoded PARAMS records.
 */
export function encodeParams(
  requestId: number,
  params: Iterable<readonly [string, string]>,
): Uint8Array<ArrayBuffer> {
  // Pairs are written in place, behind a record header that is filled in
  // once the record is full: one buffer, no intermediate arrays (this runs
  // for every request; ~30 pairs).
  const out = new _Output(2048);
  let header = out.reserve(HEADER_LENGTH);
  for (const [name, value] of params) {
    const n = _text(name);
    const v = _text(value);
    const nl = n.length;
    const vl = v.length;
    const size = (nl > 127 ? 4 : 1) + (vl > 127 ? 4 : 1) + nl + vl;
    if (size > MAX_CHUNK) {
      throw new RangeError(
        `Cannot encode param "${name}": ${size} bytes do not fit in one record`,
      );
    }
    if (out.length - header - HEADER_LENGTH + size > MAX_CHUNK) {
      out.closeRecord(header, RecordType.PARAMS, requestId);
      header = out.reserve(HEADER_LENGTH);
    }
    out.ensure(size);
    out.pairLength(nl);
    out.pairLength(vl);
    out.text(n);
    out.text(v);
  }
  if (out.length - header > HEADER_LENGTH) {
    out.closeRecord(header, RecordType.PARAMS, requestId);
  } else out.length = header; // no pairs: only the empty record
  out.closeRecord(out.reserve(HEADER_LENGTH), RecordType.PARAMS, requestId);
  return out.bytes();
}

/**
 * Encodes a request's head in one buffer (one write): BEGIN_REQUEST for the
 * responder role, the PARAMS stream (as {@linkcode encodeParams} does) and,
 * when `stdin` is given, the whole STDIN stream — its records and the empty
 * one that ends it. Without `stdin` the body is sent after, as a stream.
 *
 * @example A GET without a body
 * ```ts
 * import { encodeRequest, RecordType } from "./record.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = encodeRequest(1, true, [["REQUEST_METHOD", "GET"]], new Uint8Array());
 * assert.equal(bytes[1], RecordType.BEGIN_REQUEST);
 * assert.equal(bytes.length, 16 + 32 + 8 + 8); // BEGIN, PARAMS, empty PARAMS, empty STDIN
 * assert.deepEqual([...bytes.subarray(-8)], [1, RecordType.STDIN, 0, 1, 0, 0, 0, 0]);
 * ```
 *
 * @param requestId Request id.
 * @param keepConn Set `FCGI_KEEP_CONN`.
 * @param params The pairs, in order.
 * @param stdin The whole body (empty for none), or `undefined` when it
 *   follows as a stream.
 * @returns The encoded records.
 */
export function encodeRequest(
  requestId: number,
  keepConn: boolean,
  params: Iterable<readonly [string, string]>,
  stdin?: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const pairs = Array.isArray(params) ? params : [...params];
  const stdinLength = stdin === undefined
    ? 0
    : Math.ceil(stdin.length / MAX_CHUNK) * HEADER_LENGTH +
      _padded(stdin.length) + HEADER_LENGTH;
  // The usual case, in one pass and one native call: ASCII params that
  // fit one record are written as one string (see _asciiParams).
  const ascii = _asciiParams(pairs);
  let out: Uint8Array<ArrayBuffer> | undefined;
  let at = 16;
  if (ascii) {
    const n = ascii.text.length;
    const length = (n > 0 ? HEADER_LENGTH + _padded(n) : 0) + HEADER_LENGTH;
    out = new Uint8Array(16 + length + stdinLength);
    if (_writeAscii(out, at, requestId, ascii)) at += length;
    else out = undefined;
  }
  if (!out) {
    const encoded = encodeParams(requestId, pairs);
    out = new Uint8Array(16 + encoded.length + stdinLength);
    out.set(encoded, at);
    at += encoded.length;
  }
  _header(out, 0, RecordType.BEGIN_REQUEST, requestId, 8, 0);
  out[9] = ROLE_RESPONDER;
  out[10] = keepConn ? FLAG_KEEP_CONN : 0;
  if (stdin === undefined) return out;
  for (let offset = 0; offset < stdin.length; offset += MAX_CHUNK) {
    const chunk = stdin.subarray(offset, offset + MAX_CHUNK);
    const padded = _padded(chunk.length);
    _header(
      out,
      at,
      RecordType.STDIN,
      requestId,
      chunk.length,
      padded - chunk.length,
    );
    out.set(chunk, at + HEADER_LENGTH);
    at += HEADER_LENGTH + padded;
  }
  _header(out, at, RecordType.STDIN, requestId, 0, 0);
  return out;
}

/** `n` rounded up to a multiple of 8 (record padding). */
function _padded(n: number): number {
  return n + ((8 - (n % 8)) % 8);
}

/** Writes a record header at `at`. */
function _header(
  b: Uint8Array,
  at: number,
  type: number,
  requestId: number,
  content: number,
  padding: number,
): void {
  b[at] = 1;
  b[at + 1] = type;
  b[at + 2] = (requestId >> 8) & 0xff;
  b[at + 3] = requestId & 0xff;
  b[at + 4] = (content >> 8) & 0xff;
  b[at + 5] = content & 0xff;
  b[at + 6] = padding;
}

/**
 * The pairs as one string of one char per byte — lengths of up to 127 as
 * their char, longer ones as four placeholders patched in after (`long`:
 * offset, length) — when they fit one record; `undefined` otherwise. Only
 * all-ASCII text is written this way (see _writeAscii).
 */
function _asciiParams(
  pairs: readonly (readonly [string, string])[],
): { text: string; long: number[] | undefined } | undefined {
  let text = "";
  let long: number[] | undefined;
  for (const [name, value] of pairs) {
    const nl = name.length;
    const vl = value.length;
    if (nl > 127) {
      (long ??= []).push(text.length, nl);
      text += "\0\0\0\0";
    } else text += String.fromCharCode(nl);
    if (vl > 127) {
      (long ??= []).push(text.length, vl);
      text += "\0\0\0\0";
    } else text += String.fromCharCode(vl);
    text += name;
    text += value;
    if (text.length > MAX_CHUNK) return undefined;
  }
  return { text, long };
}

/**
 * Writes the PARAMS records of `ascii` at `at`; false (nothing usable
 * written) when the text was not all ASCII — then its lengths in chars are
 * not its lengths in bytes.
 */
function _writeAscii(
  out: Uint8Array,
  at: number,
  requestId: number,
  ascii: { text: string; long: number[] | undefined },
): boolean {
  const { text, long } = ascii;
  const n = text.length;
  if (n > 0) {
    // Room for exactly one byte per char: a non-ASCII char stops it short.
    const room = out.subarray(at + HEADER_LENGTH, at + HEADER_LENGTH + n);
    if (_encoder.encodeInto(text, room).read !== n) return false;
    for (let i = 0; long && i < long.length; i += 2) {
      const b = at + HEADER_LENGTH + long[i]!;
      const length = long[i + 1]!;
      out[b] = ((length >>> 24) & 0x7f) | 0x80;
      out[b + 1] = (length >>> 16) & 0xff;
      out[b + 2] = (length >>> 8) & 0xff;
      out[b + 3] = length & 0xff;
    }
    _header(out, at, RecordType.PARAMS, requestId, n, _padded(n) - n);
    at += HEADER_LENGTH + _padded(n);
  }
  _header(out, at, RecordType.PARAMS, requestId, 0, 0);
  return true;
}

/** A string ready to write: itself when ASCII (one byte per char), else its UTF-8. */
function _text(s: string): string | Uint8Array {
  return _ASCII.test(s) ? s : _encoder.encode(s);
}

const _ASCII = /^[^\u0080-\uffff]*$/;

/** A growing byte buffer that records are written into. */
class _Output {
  buf: Uint8Array<ArrayBuffer>;
  length = 0;

  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }

  ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  /** Skips `n` bytes (zeroed) and returns where they start. */
  reserve(n: number): number {
    this.ensure(n);
    const at = this.length;
    this.buf.fill(0, at, at + n);
    this.length += n;
    return at;
  }

  /** A pair length: 1 byte up to 127, else 4 with the top bit set. */
  pairLength(n: number): void {
    const b = this.buf;
    if (n <= 127) {
      b[this.length++] = n;
      return;
    }
    b[this.length++] = ((n >>> 24) & 0x7f) | 0x80;
    b[this.length++] = (n >>> 16) & 0xff;
    b[this.length++] = (n >>> 8) & 0xff;
    b[this.length++] = n & 0xff;
  }

  text(t: string | Uint8Array): void {
    if (typeof t !== "string") {
      this.buf.set(t, this.length);
      this.length += t.length;
      return;
    }
    const b = this.buf;
    let at = this.length;
    for (let i = 0; i < t.length; i++) b[at++] = t.charCodeAt(i);
    this.length = at;
  }

  /** Fills in the header at `at` for the content written since, and pads it. */
  closeRecord(at: number, type: number, requestId: number): void {
    const content = this.length - at - HEADER_LENGTH;
    const padding = _padded(content) - content;
    _header(this.buf, at, type, requestId, content, padding);
    this.reserve(padding);
  }

  bytes(): Uint8Array<ArrayBuffer> {
    return this.buf.subarray(0, this.length);
  }
}

/**
 * Decodes name-value pairs (as in PARAMS or GET_VALUES_RESULT content).
 * Malformed input throws a `SyntaxError`.
 *
 * @example Round trip
 * ```ts
 * import { decodePairs, encodePair } from "./record.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(decodePairs(encodePair("FCGI_MPXS_CONNS", "0")), [["FCGI_MPXS_CONNS", "0"]]);
 * ```
 *
 * @param bytes Encoded pairs.
 * @returns The pairs.
 */
export function decodePairs(bytes: Uint8Array): [string, string][] {
  const decoder = new TextDecoder();
  const out: [string, string][] = [];
  let i = 0;
  const length = (): number => {
    const first = bytes[i];
    if (first === undefined) {
      throw new SyntaxError("Cannot decode pairs: truncated length");
    }
    if (first < 0x80) {
      i += 1;
      return first;
    }
    if (i + 4 > bytes.length) {
      throw new SyntaxError("Cannot decode pairs: truncated length");
    }
    const n = ((first & 0x7f) << 24) + (bytes[i + 1]! << 16) +
      (bytes[i + 2]! << 8) + bytes[i + 3]!;
    i += 4;
    return n;
  };
  while (i < bytes.length) {
    const nl = length();
    const vl = length();
    if (i + nl + vl > bytes.length) {
      throw new SyntaxError("Cannot decode pairs: truncated data");
    }
    out.push([
      decoder.decode(bytes.subarray(i, i + nl)),
      decoder.decode(bytes.subarray(i + nl, i + nl + vl)),
    ]);
    i += nl + vl;
  }
  return out;
}

/**
 * Joins byte arrays.
 *
 * @example Joining two arrays
 * ```ts
 * import { concatBytes } from "./record.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual([...concatBytes([Uint8Array.of(1), Uint8Array.of(2)])], [1, 2]);
 * ```
 */
export function concatBytes(
  parts: readonly Uint8Array[],
  total?: number,
): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(total ?? parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/**
 * Something bytes can be read from (a `Deno.Conn`, for instance).
 *
 * @example A source that is at its end
 * ```ts
 * import { type ByteSource, RecordReader } from "./record.ts";
 * import assert from "node:assert/strict";
 *
 * const empty: ByteSource = { read: () => Promise.resolve(null) };
 * assert.equal(await new RecordReader(empty).next(), null);
 * ```
 */
export interface ByteSource {
  /** Reads into `p`; resolves to the count, or `null` at end of stream. */
  read(p: Uint8Array): Promise<number | null>;
}

/**
 * Reads whole records from a byte source, skipping padding. It keeps one
 * internal buffer (8 KiB, grown once to the largest possible record when
 * one needs it), so memory stays bounded by one record.
 *
 * @example Reading records from a buffer
 * ```ts
 * import { encodeRecord, RecordReader, RecordType } from "./record.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = encodeRecord(RecordType.STDOUT, 1, new TextEncoder().encode("hi"));
 * let done = false;
 * const reader = new RecordReader({
 *   read(p) {
 *     if (done) return Promise.resolve(null);
 *     done = true;
 *     p.set(bytes);
 *     return Promise.resolve(bytes.length);
 *   },
 * });
 * const record = await reader.next();
 * assert.equal(new TextDecoder().decode(record?.content), "hi");
 * assert.equal(await reader.next(), null);
 * ```
 */
export class RecordReader {
  #source: ByteSource;
  // Grows to the largest record seen (at most 8 + 65535 + 255 bytes).
  #buf = new Uint8Array(8 * 1024);
  #start = 0;
  #end = 0;
  /** Bytes received so far. */
  received = 0;

  /** @param source Where the bytes come from. */
  constructor(source: ByteSource) {
    this.#source = source;
  }

  async #fill(need: number): Promise<boolean> {
    if (this.#end - this.#start >= need) return true;
    if (need > this.#buf.length) {
      const bigger = new Uint8Array(HEADER_LENGTH + _MAX_CONTENT + 255);
      bigger.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = bigger;
      this.#end -= this.#start;
      this.#start = 0;
    } else if (this.#start > 0) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    while (this.#end < need) {
      const n = await this.#source.read(this.#buf.subarray(this.#end));
      if (n === null) return false;
      this.#end += n;
      this.received += n;
    }
    return true;
  }

  /**
   * Reads the next record. Resolves to `null` at a clean end of stream
   * (between records); throws a `SyntaxError` on a truncated or malformed
   * record.
   *
   * @returns The record, whose content is a fresh copy.
   */
  async next(): Promise<FastCgiRecord | null> {
    if (!(await this.#fill(HEADER_LENGTH))) {
      if (this.#end > this.#start) {
        throw new SyntaxError("Truncated FastCGI record header");
      }
      return null;
    }
    if (!(await this.#fill(this.#recordLength()))) {
      throw new SyntaxError("Truncated FastCGI record");
    }
    return this.#take();
  }

  /**
   * The next record if it has already arrived whole, without reading
   * more; `undefined` otherwise. Throws a `SyntaxError` on a malformed
   * header.
   *
   * @returns The record (content copied), or `undefined`.
   */
  nextBuffered(): FastCgiRecord | undefined {
    if (this.#end - this.#start < HEADER_LENGTH) return undefined;
    if (this.#end - this.#start < this.#recordLength()) return undefined;
    return this.#take();
  }

  /** Total length of the record whose header is buffered (validated). */
  #recordLength(): number {
    const b = this.#buf;
    const at = this.#start;
    if (b[at] !== 1) {
      throw new SyntaxError(`Unsupported FastCGI version ${b[at]}`);
    }
    return HEADER_LENGTH + ((b[at + 4]! << 8) | b[at + 5]!) + b[at + 6]!;
  }

  /** Takes the buffered record at the start. */
  #take(): FastCgiRecord {
    const b = this.#buf;
    const at = this.#start;
    const type = b[at + 1]!;
    const requestId = (b[at + 2]! << 8) | b[at + 3]!;
    const length = (b[at + 4]! << 8) | b[at + 5]!;
    const content = b.slice(at + HEADER_LENGTH, at + HEADER_LENGTH + length);
    this.#start += HEADER_LENGTH + length + b[at + 6]!;
    return { type, requestId, content };
  }
}
