/**
 * Parsing a CGI response (RFC 3875 §6): {@linkcode parseCgiResponse} reads
 * the header block a script writes before its body and tells what kind of
 * response it is; {@linkcode toHttpResponse} turns the result into a
 * `Response`. Used by CGI and FastCGI alike (FastCGI's stdout is a CGI
 * response).
 *
 * @module
 */

import { HttpError } from "../server/errors.ts";
import { isNullBodyStatus } from "../server/http.ts";
import { newResponse } from "../server/new_response.ts";
import type { LogFn } from "../server/types.ts";
import { exactLength, pullStream, readChunk } from "./stream.ts";

/**
 * Options of {@linkcode parseCgiResponse}.
 *
 * @example Parsing an nph response
 * ```ts
 * import { parseCgiResponse, type ParseCgiResponseOptions } from "./response.ts";
 * import assert from "node:assert/strict";
 *
 * const options: ParseCgiResponseOptions = { nph: true, maxHeaderBytes: 4096 };
 * const res = await parseCgiResponse(new Response("HTTP/1.1 202 Accepted\n\n").body!, options);
 * assert.equal(res.status, 202);
 * await res.body.cancel();
 * ```
 */
export interface ParseCgiResponseOptions {
  /**
   * The most bytes the header block (up to and including the blank line)
   * may take. A longer block is a 502.
   * @default {65536}
   */
  maxHeaderBytes?: number;
  /**
   * Parse a non-parsed-header (`nph-`) response: the output starts with an
   * HTTP status line (`HTTP/1.1 200 OK`) whose status is used as given, no
   * CGI field is required, and `Location` is never interpreted.
   * @default {false}
   */
  nph?: boolean;
}

/**
 * What a script answered, once its header block was read.
 *
 * @example A client redirect
 * ```ts
 * import { type CgiResponse, parseCgiResponse } from "./response.ts";
 * import assert from "node:assert/strict";
 *
 * const res: CgiResponse = await parseCgiResponse(
 *   new Response("Location: https://example.com/\n\n").body!,
 * );
 * assert.equal(res.status, 302);
 * assert.equal(res.localRedirect, undefined);
 * await res.body.cancel();
 * ```
 */
export interface CgiResponse<
  Body extends ReadableStream<Uint8Array> | Uint8Array<ArrayBuffer> =
    ReadableStream<Uint8Array>,
> {
  /** The HTTP status: `Status:`, 302 for a client redirect, else 200. */
  status: number;
  /** The reason phrase the script gave, or `""`. */
  statusText: string;
  /**
   * The headers to send: validated, without `Status` and hop-by-hop
   * headers (`Connection`, `Keep-Alive`, `Transfer-Encoding`, `TE`,
   * `Trailer`, `Upgrade`, `Proxy-Connection`). The script's
   * `Content-Length` is kept as one value (several equal ones count as
   * one), unless it also gave `Transfer-Encoding` (which overrides it,
   * RFC 9112 §6.3: it is dropped then); {@linkcode toHttpResponse} sends
   * exactly that many bytes. Repeated fields (e.g. `Set-Cookie`) are kept
   * as separate values.
   */
  headers: Headers;
  /**
   * Set for a local redirect (`Location: /path?query` without `Status`):
   * the server must answer with what it would serve for that path itself.
   * The body should then be discarded.
   */
  localRedirect: string | undefined;
  /**
   * The body: the rest of the output, streamed with backpressure, or its
   * bytes when the whole output was given as bytes.
   */
  body: Body;
}

/** A response whose body may have come whole (FastCGI). */
type _AnyCgiResponse = CgiResponse<
  ReadableStream<Uint8Array> | Uint8Array<ArrayBuffer>
>;

const _TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const _STATUS = /^(\d{3})(?:[ \t]+(.*))?$/;
const _NPH_STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/;
const _SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
/**
 * Hop-by-hop headers and `Transfer-Encoding`: the server frames the
 * response itself (`Content-Length` is checked and kept, see
 * {@linkcode _Framing}).
 */
const _DROPPED = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
]);
/** A Content-Length list element: digits only. */
const _DIGITS = /^[0-9]+$/;
/** The CGI fields: each may appear at most once (RFC 3875 §6.3). */
const _CGI_FIELDS = new Set(["status", "content-type", "location"]);

function _bad(message: string): HttpError {
  return new HttpError(502, `Invalid script response: ${message}`);
}

/** Decodes bytes one char per byte, so header values keep their bytes. */
function _latin1(bytes: Uint8Array): string {
  let s = "";
  // apply, not a spread: it takes the typed array as it is (~8× faster).
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode.apply(
      null,
      bytes.subarray(i, i + 8192) as unknown as number[],
    );
  }
  return s;
}

/** True when the line holds a control char other than HTAB (CR, LF, NUL…). */
function _hasControl(line: string): boolean {
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}

/** The header block's lines and the bytes after it. */
interface _Head {
  lines: string[];
  rest: Uint8Array;
}

/**
 * Where the header block in `buf` ends (just after its blank line), or -1;
 * line ends are found from `from` on.
 */
function _headEnd(buf: Uint8Array, from: number): number {
  if (from === 0) {
    if (buf[0] === 0x0a) return 1;
    if (buf[0] === 0x0d && buf[1] === 0x0a) return 2;
  }
  for (
    let lf = buf.indexOf(0x0a, from);
    lf !== -1;
    lf = buf.indexOf(0x0a, lf + 1)
  ) {
    if (buf[lf + 1] === 0x0a) return lf + 2;
    if (buf[lf + 1] === 0x0d && buf[lf + 2] === 0x0a) return lf + 3;
  }
  return -1;
}

/**
 * Splits the header block at the start of `bytes` into lines (LF or CRLF
 * ends); throws a 502 when it is larger than `maxHeaderBytes` or does not
 * end in `bytes`.
 */
function _splitHead(bytes: Uint8Array, maxHeaderBytes: number): _Head {
  const end = _headEnd(bytes, 0);
  if (end === -1 ? bytes.length > maxHeaderBytes : end > maxHeaderBytes) {
    throw _bad(`header block larger than ${maxHeaderBytes} bytes`);
  }
  if (end === -1) {
    throw _bad(
      bytes.length ? "output ended inside the header block" : "no output",
    );
  }
  // One decode for the block; it ends in its blank line and a last LF, so
  // the last two pieces are that line ("" or "\r") and "".
  const pieces = _latin1(bytes.subarray(0, end)).split("\n");
  const lines = pieces.slice(0, -2);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.endsWith("\r")) lines[i] = line.slice(0, -1);
  }
  return { lines, rest: bytes.subarray(end) };
}

/** Reads until the blank line ending the header block; returns its lines and the leftover bytes. */
async function _readHead(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  maxHeaderBytes: number,
): Promise<_Head> {
  let buf: Uint8Array = new Uint8Array(0);
  let scanFrom = 0;
  while (_headEnd(buf, scanFrom) === -1 && buf.length <= maxHeaderBytes) {
    const { value, done } = await reader.read();
    if (done) break;
    // A blank line may straddle the chunks: look again from the last line end.
    scanFrom = Math.max(0, buf.length - 2);
    const next = new Uint8Array(buf.length + value.length);
    next.set(buf);
    next.set(value, buf.length);
    buf = next;
  }
  return _splitHead(buf, maxHeaderBytes);
}

/** A stream of `rest` followed by whatever `reader` still yields. */
function _bodyStream(
  rest: Uint8Array,
  reader: ReadableStreamDefaultReader<Uint8Array>,
): ReadableStream<Uint8Array> {
  return pullStream({
    first: rest.length ? rest.slice() : undefined,
    read: () => readChunk(reader),
    cancel: (reason) => reader.cancel(reason),
  });
}

/**
 * Reads a CGI header block from `output` (LF or CRLF line ends, mixed too)
 * and classifies the response as RFC 3875 §6.2 does:
 *
 * - **document**: `Content-Type` and/or `Status` (default 200);
 * - **local redirect**: `Location: /abs-path[?query]` and no `Status`
 *   (`localRedirect` is set; other fields and the body are to be ignored);
 * - **client redirect**: any other `Location` without `Status` → 302;
 * - **client redirect with document**: `Location` with `Status`.
 *
 * Throws a 502 {@linkcode HttpError} when the output is not a valid header
 * block: no output, end of output before the blank line, a block over
 * `maxHeaderBytes`, a line without `:` or with a name that is not a token,
 * a folded (continuation) line, a CR, LF, NUL or other control character
 * inside a line, a `Status` that is not `NNN [reason]` with NNN in
 * 200-599, a CGI field given twice, no CGI field at all, or a
 * `Content-Length` that is not digits only, over `Number.MAX_SAFE_INTEGER`
 * or given with differing values (unless `Transfer-Encoding` is given
 * too: then it is dropped). Errors from
 * `output` itself (e.g. a timeout) are rethrown unchanged. On any error
 * `output` is cancelled.
 *
 * @example Parsing a document response
 * ```ts
 * import { parseCgiResponse } from "./response.ts";
 * import assert from "node:assert/strict";
 *
 * const output = new Response(
 *   "Status: 201 Created\nContent-Type: text/plain\nSet-Cookie: a=1\nSet-Cookie: b=2\n\nhello",
 * ).body!;
 * const res = await parseCgiResponse(output);
 * assert.equal(res.status, 201);
 * assert.deepEqual(res.headers.getSetCookie(), ["a=1", "b=2"]);
 * assert.equal(await new Response(res.body).text(), "hello");
 * ```
 *
 * @example A local redirect
 * ```ts
 * import { parseCgiResponse } from "./response.ts";
 * import assert from "node:assert/strict";
 *
 * const res = await parseCgiResponse(new Response("Location: /other?x=1\r\n\r\n").body!);
 * assert.equal(res.localRedirect, "/other?x=1");
 * await res.body.cancel();
 * ```
 *
 * @param output The script's stdout, streamed or whole.
 * @param options Header size cap and NPH mode.
 * @returns The status, headers, local redirect target and body stream.
 */
export function parseCgiResponse(
  output: ReadableStream<Uint8Array>,
  options?: ParseCgiResponseOptions,
): Promise<CgiResponse>;
export function parseCgiResponse(
  output: ReadableStream<Uint8Array> | Uint8Array<ArrayBuffer>,
  options?: ParseCgiResponseOptions,
): Promise<_AnyCgiResponse>;
export async function parseCgiResponse(
  output: ReadableStream<Uint8Array> | Uint8Array<ArrayBuffer>,
  options: ParseCgiResponseOptions = {},
): Promise<_AnyCgiResponse> {
  const { maxHeaderBytes = 65536, nph = false } = options;
  if (output instanceof Uint8Array) {
    const { lines, rest } = _splitHead(output, maxHeaderBytes);
    const fields = nph ? _nphFields(lines) : _cgiFields(lines);
    return { ...fields, body: rest as Uint8Array<ArrayBuffer> };
  }
  const reader = output.getReader();
  try {
    const { lines, rest } = await _readHead(reader, maxHeaderBytes);
    const fields = nph ? _nphFields(lines) : _cgiFields(lines);
    return { ...fields, body: _bodyStream(rest, reader) };
  } catch (error) {
    reader.cancel(error).catch(() => {});
    throw error;
  }
}

/** What a header block says, before the body is attached. */
type _Fields = Omit<CgiResponse, "body">;

/** A header line split into its name and trimmed value (validated). */
function _splitField(line: string): [name: string, value: string] {
  if (_hasControl(line)) {
    throw _bad("control character (CR, NUL…) in a header line");
  }
  if (line[0] === " " || line[0] === "\t") throw _bad("folded header line");
  const colon = line.indexOf(":");
  if (colon === -1) throw _bad("header line without a colon");
  const name = line.slice(0, colon);
  if (!_TOKEN.test(name)) throw _bad("header name is not a token");
  let start = colon + 1;
  let stop = line.length;
  while (start < stop && _isBlank(line.charCodeAt(start))) start++;
  while (stop > start && _isBlank(line.charCodeAt(stop - 1))) stop--;
  return [name, line.slice(start, stop)];
}

/** SP or HTAB. */
function _isBlank(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/** The status of a `Status:` value or an nph status line's match. */
function _status(match: RegExpExecArray | null, what: string): {
  status: number;
  statusText: string;
} {
  if (!match) throw _bad(what);
  const status = Number(match[1]);
  if (status < 200 || status > 599) {
    throw _bad(`status ${status} out of range`);
  }
  return { status, statusText: match[2] ?? "" };
}

/**
 * The headers to send being collected, and the framing the script asked
 * for: its `Content-Length` values and whether it gave `Transfer-Encoding`.
 */
interface _Framing {
  headers: Headers;
  lengths: string[];
  chunked: boolean;
}

function _framing(): _Framing {
  return { headers: new Headers(), lengths: [], chunked: false };
}

/**
 * Adds a header to send, unless it is a hop-by-hop one; `Content-Length`
 * is set aside to be checked, `Transfer-Encoding` noted.
 */
function _append(framing: _Framing, name: string, value: string): void {
  const lower = name.toLowerCase();
  if (lower === "content-length") framing.lengths.push(value);
  else if (lower === "transfer-encoding") framing.chunked = true;
  else if (!_DROPPED.has(lower)) framing.headers.append(name, value);
}

/**
 * The headers to send, with the script's `Content-Length` as one value:
 * digits only, at most `Number.MAX_SAFE_INTEGER`, several lines or list
 * elements (`42, 42`) only when equal (RFC 9110 §8.6); else a 502, as
 * nginx answers an upstream's invalid Content-Length. With
 * `Transfer-Encoding` it is ignored (that overrides it, RFC 9112 §6.3).
 */
function _framedHeaders(framing: _Framing): Headers {
  const { headers, lengths } = framing;
  if (framing.chunked || lengths.length === 0) return headers;
  let length: number | undefined;
  for (const value of lengths) {
    for (const element of value.split(",")) {
      const digits = element.replace(/^[ \t]+|[ \t]+$/g, "");
      const shown = JSON.stringify(value.slice(0, 40));
      if (!_DIGITS.test(digits)) throw _bad(`invalid Content-Length ${shown}`);
      const n = Number(digits);
      if (n > Number.MAX_SAFE_INTEGER) {
        throw _bad(`Content-Length ${shown} too large`);
      }
      if (length !== undefined && n !== length) {
        throw _bad("differing Content-Length values");
      }
      length = n;
    }
  }
  headers.set("content-length", String(length));
  return headers;
}

/** An nph block: a status line, then headers kept as written. */
function _nphFields(lines: readonly string[]): _Fields {
  const first = lines[0] ?? "";
  const { status, statusText } = _status(
    _hasControl(first) ? null : _NPH_STATUS_LINE.exec(first),
    "nph output does not start with an HTTP/1.x status line",
  );
  const framing = _framing();
  for (const line of lines.slice(1)) {
    const [name, value] = _splitField(line);
    if (value !== "") _append(framing, name, value);
  }
  const headers = _framedHeaders(framing);
  return { status, statusText, headers, localRedirect: undefined };
}

/** A CGI block: the CGI fields interpreted (RFC 3875 §6.2), the rest kept. */
function _cgiFields(lines: readonly string[]): _Fields {
  const framing = _framing();
  const seen = new Map<string, string>();
  let status: { status: number; statusText: string } | undefined;
  for (const line of lines) {
    const [name, value] = _splitField(line);
    const lower = name.toLowerCase();
    if (value === "") continue; // an empty field counts as absent
    if (_CGI_FIELDS.has(lower)) {
      if (seen.has(lower)) throw _bad(`"${lower}" given twice`);
      seen.set(lower, value);
    }
    if (lower === "status") {
      status = _status(_STATUS.exec(value), "malformed Status");
    } else _append(framing, name, value);
  }
  const location = seen.get("location");
  if (
    status === undefined && location === undefined && !seen.has("content-type")
  ) {
    throw _bad("no Content-Type, Status or Location");
  }
  const headers = _framedHeaders(framing);
  if (status !== undefined || location === undefined) {
    return {
      status: 200,
      statusText: "",
      ...status,
      headers,
      localRedirect: undefined,
    };
  }
  const local = location.startsWith("/") && !location.startsWith("//") &&
    !_SCHEME.test(location);
  return {
    status: 302,
    statusText: "",
    headers,
    localRedirect: local ? location : undefined,
  };
}

/**
 * Options of {@linkcode toHttpResponse}.
 *
 * @example A CGI gateway's options
 * ```ts
 * import type { ToHttpResponseOptions } from "./response.ts";
 *
 * const options: ToHttpResponseOptions = {
 *   discard: Symbol("discard"),
 *   tag: "cgi /cgi-bin/report.cgi",
 *   log: (level, message) => console.error(level, message),
 * };
 * ```
 */
export interface ToHttpResponseOptions {
  /**
   * The reason to cancel an unwanted body with (HEAD, 204/205/304, the
   * rest of a body longer than its `Content-Length`); the CGI gateway
   * passes `DISCARD`, so the script is left to end on its own.
   * @default {undefined}
   */
  discard?: unknown;
  /**
   * Where a body that does not match its `Content-Length` is reported.
   * @default {() => {}}
   */
  log?: LogFn;
  /**
   * The tag of those log lines and errors (e.g. `cgi /cgi-bin/x.cgi`).
   * @default {"script"}
   */
  tag?: string;
}

/**
 * Turns a parsed {@linkcode CgiResponse} into a `Response`. For `HEAD`
 * requests and statuses that carry no body (204, 205, 304) the script's
 * body is cancelled instead of sent (RFC 3875 §4.3.3), with `discard` as
 * the reason. (For `HEAD`, PHP itself writes no body, so its length is not
 * known unless the script gives `Content-Length`.)
 *
 * The script's `Content-Length` (checked by {@linkcode parseCgiResponse})
 * is sent, and the body is exactly that long:
 *
 * - a longer body is cut at the length: the rest is dropped and the
 *   script's output cancelled with `discard` (a warning is logged);
 * - a shorter one makes the body stream error once the output ended, so
 *   the connection is closed (never padded, never held open), with a
 *   warning logged;
 * - a body that came whole (bytes, FastCGI): one longer than the length is
 *   cut (the bytes are trusted for the shorter value); one shorter is sent
 *   as a short body (the connection is closed);
 * - `HEAD` keeps the header and sends no body; 204 and 205 drop it (a 304
 *   keeps it, though Deno does not send it).
 *
 * @example Answering a HEAD request
 * ```ts
 * import { parseCgiResponse, toHttpResponse } from "./response.ts";
 * import assert from "node:assert/strict";
 *
 * const parsed = await parseCgiResponse(
 *   new Response("Content-Type: text/plain\nContent-Length: 4\n\nbody").body!,
 * );
 * const res = toHttpResponse(parsed, "HEAD");
 * assert.equal(res.body, null);
 * assert.equal(res.headers.get("content-type"), "text/plain");
 * assert.equal(res.headers.get("content-length"), "4");
 * ```
 *
 * @example A body longer than its Content-Length is cut
 * ```ts
 * import { parseCgiResponse, toHttpResponse } from "./response.ts";
 * import assert from "node:assert/strict";
 *
 * const parsed = await parseCgiResponse(
 *   new Response("Content-Type: text/plain\nContent-Length: 2\n\nbody").body!,
 * );
 * assert.equal(await toHttpResponse(parsed, "GET").text(), "bo");
 * ```
 *
 * @param parsed The parsed script response (not a local redirect).
 * @param method The request method.
 * @param options The discard reason, and where length mismatches go.
 * @returns The response to send.
 */
export function toHttpResponse(
  parsed: _AnyCgiResponse,
  method: string,
  options: ToHttpResponseOptions = {},
): Response {
  const { status, statusText, headers } = parsed;
  let body: Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array> | null =
    parsed.body;
  if (method === "HEAD" || isNullBodyStatus(status)) {
    discardBody(parsed.body, options.discard);
    if (status === 204 || status === 205) headers.delete("content-length");
    // Without the script's length, a null body would go out as
    // `Content-Length: 0` (Deno's default), which a GET would belie: an
    // empty stream sends neither a length nor chunked framing for HEAD.
    body = method === "HEAD" && !isNullBodyStatus(status) &&
        !headers.has("content-length")
      ? new ReadableStream({ start: (c) => c.close() })
      : null;
  } else {
    const length = headers.get("content-length");
    if (length !== null) {
      body = _exactBody(parsed.body, Number(length), options);
    }
  }
  return newResponse(body, status, headers, statusText);
}

/** The body cut at, or failing short of, `length` (see {@linkcode toHttpResponse}). */
function _exactBody(
  body: _AnyCgiResponse["body"],
  length: number,
  options: ToHttpResponseOptions,
): ReadableStream<Uint8Array> | Uint8Array<ArrayBuffer> {
  const { discard, log = () => {}, tag = "script" } = options;
  const onExcess = (): void =>
    log(
      "warn",
      `${tag}: output longer than its Content-Length ${length}: cut there`,
    );
  if (body instanceof Uint8Array && body.length >= length) {
    if (body.length > length) onExcess();
    return body.subarray(0, length);
  }
  const source = body instanceof Uint8Array
    ? ReadableStream.from([body])
    : body;
  return exactLength(source, length, {
    cutReason: discard,
    onExcess,
    short(got) {
      const message =
        `${tag}: output ended after ${got} of its Content-Length ${length} bytes`;
      log("warn", `${message}: closing the connection`);
      return new Error(`${message} (response cut off)`);
    },
  });
}

/**
 * Drops a body that will not be sent: a stream is cancelled with `reason`
 * (bytes need nothing).
 *
 * @example Dropping a streamed body
 * ```ts
 * import { discardBody } from "./response.ts";
 * discardBody(new Response("unwanted").body!, "not needed");
 * ```
 *
 * @param body The body.
 * @param reason The cancel reason.
 */
export function discardBody(
  body: _AnyCgiResponse["body"],
  reason?: unknown,
): void {
  if (body instanceof ReadableStream) body.cancel(reason).catch(() => {});
}
