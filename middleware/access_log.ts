/**
 * {@linkcode accessLog}: one line per request, written once the response has
 * ended, with what happened (body bytes sent, time to the last byte, whether
 * it was aborted), as text, Common or Combined Log Format, or JSON lines.
 *
 * @module
 */

import { bodyKind } from "../server/body_kind.ts";
import { pieceReader } from "../server/piece_reader.ts";
import { describeError } from "../server/log.ts";
import type { Context, Middleware } from "../server/types.ts";

/**
 * Access-log line formats: `text` (readable), `common` / `combined`
 * (Apache/nginx, for log tools) or `json` (one object per line).
 *
 * @example Choosing a format
 * ```ts
 * import { accessLog, type AccessLogFormat, compose } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const format: AccessLogFormat = "json";
 * const lines: string[] = [];
 * const handler = compose([
 *   accessLog({ format, write: (l) => lines.push(l) }),
 *   () => new Response("ok"),
 * ]);
 * await (await handler(new Request("http://localhost/a"))).text();
 * assert.equal(JSON.parse(lines[0]!).path, "/a");
 * ```
 */
export type AccessLogFormat = "text" | "common" | "combined" | "json";

/**
 * Options of {@linkcode accessLog}.
 *
 * @example Combined Log Format into an array
 * ```ts
 * import { accessLog, type AccessLogOptions, compose } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const options: AccessLogOptions = {
 *   format: "combined",
 *   write: (line) => lines.push(line),
 * };
 * const handler = compose([accessLog(options), () => new Response("ok")]);
 * const req = new Request("http://localhost/", { headers: { "user-agent": "curl/8" } });
 * await (await handler(req)).text();
 * assert.match(lines[0]!, /"GET \/ HTTP\/1\.1" 200 2 "-" "curl\/8"$/);
 * ```
 */
export interface AccessLogOptions {
  /**
   * Where lines go. Called once per request, after the response ended; an
   * error it throws goes to the chain's `log`.
   * @default {console.log}
   */
  write?: (line: string) => void;
  /**
   * `text` (ISO time, client, method, path, status, bytes, duration, then
   * `aborted` when it was), `common` / `combined` (Apache/nginx formats, for
   * log tools, with a trailing `aborted` field when it was) or `json` (one
   * object per line, with `"aborted": true|false`).
   * @default {"text"}
   */
  format?: AccessLogFormat;
  /**
   * Colour the status in `text` lines (for terminals).
   * @default {false}
   */
  color?: boolean;
}

const _MONTHS = [
  "Jan",
  "Feb",
  "Mar",
  "Apr",
  "May",
  "Jun",
  "Jul",
  "Aug",
  "Sep",
  "Oct",
  "Nov",
  "Dec",
];

function _clfTime(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${p(d.getUTCDate())}/${
    _MONTHS[d.getUTCMonth()]
  }/${d.getUTCFullYear()}:` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${
      p(d.getUTCSeconds())
    } +0000`;
}

function _quote(value: string | null): string {
  if (value === null) return "-";
  const escaped = value.replace(/["\\]/g, (c) => `\\${c}`);
  // Header values can still hold tabs and other controls: drop them.
  // deno-lint-ignore no-control-regex
  return escaped.replace(/[\x00-\x1f\x7f]/g, "");
}

function _colored(status: number): string {
  const code = status >= 500
    ? 31
    : status >= 400
    ? 33
    : status >= 300
    ? 36
    : 32;
  return `\x1b[${code}m${status}\x1b[0m`;
}

/**
 * Logs one line per request, written once the response has ended: when
 * `Deno.serve`'s `info.completed` settles (every byte handed to the
 * connection, or the client gone first). The line holds facts:
 *
 * - body bytes actually sent: a string or bytes body counts whole once
 *   sent; a streamed body counts what the stream gave Deno.serve (at most
 *   its `Content-Length`); HEAD and null bodies count 0; `-` when unknown;
 * - the time from the request to the last byte (or to the abort);
 * - `aborted` when the body did not reach its end: the client left (a
 *   streamed body was cancelled before its end, or `completed` rejected),
 *   or the stream failed.
 *
 * A body Deno sends natively (a stream backed by a Deno resource: a whole
 * file's `Deno.FsFile.readable`, a `fetch` body) is not counted: wrapping
 * it would take it off Deno's native path (about 2x the server CPU per
 * MiB). Sent whole, it logs its `Content-Length` (`-` without one); cut
 * short, `-` and `aborted`, but only where Deno reports it (`completed`
 * rejects: HTTP/2). Deno 2.9.6 reports no such abort over HTTP/1.1, where
 * the line shows the `Content-Length` as if sent whole.
 *
 * Called without `info` (library use), a streamed body is logged when its
 * reader finishes it (read to the end: complete; cancelled or failed:
 * aborted), any other at once. The time is when the request came in (as
 * Apache's `%t`). Paths are logged still percent-encoded (with the query),
 * so a line never holds a raw control character. The protocol in
 * Common/Combined lines is `HTTP/1.1`: Deno does not tell a handler which
 * version the client used.
 *
 * @example Collecting log lines
 * ```ts
 * import { accessLog, compose } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const handler = compose([
 *   accessLog({ write: (l) => lines.push(l) }),
 *   () => new Response("hello"),
 * ]);
 * await (await handler(new Request("http://localhost/a?b=1"))).text();
 * assert.match(lines[0]!, / GET \/a\?b=1 200 5 [\d.]+ms$/);
 * ```
 *
 * @example A streamed body cut short is logged with what was read
 * ```ts
 * import { accessLog, compose } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const handler = compose([
 *   accessLog({ format: "json", write: (l) => lines.push(l) }),
 *   () => new Response(ReadableStream.from([new Uint8Array(4), new Uint8Array(4)])),
 * ]);
 * const reader = (await handler(new Request("http://localhost/"))).body!.getReader();
 * await reader.read();
 * await reader.cancel();
 * const entry = JSON.parse(lines[0]!);
 * assert.equal(entry.bytes, 4);
 * assert.equal(entry.aborted, true);
 * ```
 *
 * @param options The sink and the format.
 * @returns The middleware.
 */
export function accessLog(options: AccessLogOptions = {}): Middleware {
  const sink: _Sink = {
    write: options.write ?? ((line: string) => console.log(line)),
    format: options.format ?? "text",
    color: options.color ?? false,
  };

  return async function accessLogMiddleware(req, ctx, next) {
    // An internal re-dispatch (CGI local redirect) is part of the request
    // already being logged.
    if (ctx.depth > 0) return next();
    const entry = new _Entry(sink, req, ctx);
    // next() always resolves: an error further in is already its error
    // response, with its real status.
    const res = await next();
    entry.status = res.status;
    // `completed` is typed as always there; a hand-made info may lack it.
    const completed: Promise<void> | undefined = ctx.info?.completed;
    const body = req.method === "HEAD" ? "none" : bodyKind(res);
    let out = res;
    if (body === "none") {
      entry.counted = true;
    } else if (typeof body === "number") {
      entry.bytes = body;
    } else if (
      body === "stream" && res.body !== null && completed !== undefined &&
      _isNative(res.body)
    ) {
      // Sent by Deno natively (a whole file): left unwrapped, as a counting
      // stream would put every chunk through JS (about 2x the server CPU
      // per MiB, 40 % fewer requests/s on 1 MiB files).
      const length = _contentLength(res);
      if (length !== undefined) entry.bytes = length;
      else entry.unknown = true;
    } else if (body === "stream" && res.body !== null && !res.body.locked) {
      out = entry.watch(res, completed === undefined);
    } else {
      // Unknown to bodyKind (another runtime): what the headers announce.
      const length = _contentLength(res);
      if (length !== undefined) entry.bytes = length;
      else entry.unknown = true;
    }
    if (completed !== undefined) {
      // Both handlers: a client that left is a fact to log, not an
      // unhandled rejection.
      completed.then(() => entry.finish(false), () => entry.finish(true));
    } else if (out === res) {
      entry.finish(false);
    }
    return out;
  };
}

/** What every line of one middleware shares. */
interface _Sink {
  readonly write: (line: string) => void;
  readonly format: AccessLogFormat;
  readonly color: boolean;
}

/** One request being logged: what it asked (read at once), then what it got. */
class _Entry {
  readonly sink: _Sink;
  readonly log: Context["log"];
  /** Wall-clock time the request came in (ms since the epoch). */
  readonly time: number = Date.now();
  readonly started: number = performance.now();
  readonly remote: string;
  readonly method: string;
  readonly target: string;
  readonly referer: string | null = null;
  readonly agent: string | null = null;
  status = 0;
  /** Body bytes: the whole static body, or counted off a stream. */
  bytes = 0;
  /** `bytes` are counted as sent (stream, or no body): true even when aborted. */
  counted = false;
  /** Nothing is known about the body size. */
  unknown = false;
  /** A stream's `Content-Length`: Deno.serve sends no more than that. */
  limit = Infinity;
  /** The watched stream: still `open`, read to its `end`, or `cut` (cancelled, failed). */
  stream: "none" | "open" | "end" | "cut" = "none";
  /** No `info.completed`: the stream's end writes the line. */
  #onEnd = false;
  #done = false;

  constructor(sink: _Sink, req: Request, ctx: Context) {
    this.sink = sink;
    this.log = ctx.log;
    // Read now: once the response is sent, Deno closes the request and its
    // address can no longer be read.
    const addr = ctx.info?.remoteAddr;
    this.remote = addr && "hostname" in addr ? addr.hostname : "-";
    this.method = req.method;
    this.target = `${ctx.url.pathname}${ctx.url.search}`;
    if (sink.format === "combined" || sink.format === "json") {
      this.referer = req.headers.get("referer");
      this.agent = req.headers.get("user-agent");
    }
  }

  /**
   * `res` with its stream body counted as it is read (no extra buffering);
   * with `finishOnEnd` the end of that stream also writes the line.
   */
  watch(res: Response, finishOnEnd: boolean): Response {
    const length = _contentLength(res);
    if (length !== undefined) this.limit = length;
    this.counted = true;
    this.stream = "open";
    this.#onEnd = finishOnEnd;
    return new Response(_counting(res.body!, this), {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
  }

  /** The watched stream was read to its end (`true`) or cut short. */
  ended(whole: boolean): void {
    if (this.stream !== "open") return;
    this.stream = whole ? "end" : "cut";
    if (this.#onEnd) this.finish(false);
  }

  /**
   * Whether the watched stream gave all it had to give: its end, or its
   * `Content-Length` (Deno.serve stops there and cancels the rest, e.g. a
   * file that grew since its stat).
   */
  get whole(): boolean {
    return this.stream === "end" || this.bytes >= this.limit;
  }

  /** Writes the line, once. */
  finish(aborted: boolean): void {
    if (this.#done) return;
    this.#done = true;
    // Deno.serve (2.9.6) resolves `completed` even when the client left
    // mid-body (it cancels the body stream): a stream not read to its end
    // by then was cut short.
    if (this.stream !== "none" && !this.whole) aborted = true;
    const ms = performance.now() - this.started;
    // A static or native body the client did not get whole: how much went
    // is unknown. (A native one cut short over HTTP/1.1 is not seen: Deno
    // 2.9.6 resolves `completed` and leaves `req.signal` alone.)
    const bytes = this.counted
      ? Math.min(this.bytes, this.limit)
      : this.unknown || aborted
      ? undefined
      : this.bytes;
    try {
      this.sink.write(_line(this, bytes, ms, aborted));
    } catch (error) {
      // Written after the response: nobody else would hear of it.
      this.log("error", `access log: ${describeError(error)}`);
    }
  }
}

function _line(
  e: _Entry,
  bytes: number | undefined,
  ms: number,
  aborted: boolean,
): string {
  const { format, color } = e.sink;
  const shown = bytes === undefined ? "-" : String(bytes);
  switch (format) {
    case "json":
      return JSON.stringify({
        time: new Date(e.time).toISOString(),
        remote: e.remote,
        method: e.method,
        path: e.target,
        status: e.status,
        bytes: bytes ?? null,
        duration_ms: Number(ms.toFixed(3)),
        aborted,
        referer: e.referer,
        user_agent: e.agent,
      });
    case "common":
    case "combined": {
      let out = `${e.remote} - - [${
        _clfTime(new Date(e.time))
      }] "${e.method} ${e.target} HTTP/1.1" ${e.status} ${shown}`;
      if (format === "combined") {
        out += ` "${_quote(e.referer)}" "${_quote(e.agent)}"`;
      }
      return aborted ? `${out} aborted` : out;
    }
    default: {
      const status = color ? _colored(e.status) : e.status;
      const out = `${new Date(e.time).toISOString()} ${e.remote} ${e.method} ` +
        `${e.target} ${status} ${shown} ${ms.toFixed(1)}ms`;
      return aborted ? `${out} aborted` : out;
    }
  }
}

/** Bytes asked of a byte-stream body (e.g. a file) per read. */
const _READ_SIZE = 256 * 1024;

/**
 * `source` as a pull stream that adds what it yields to `entry.bytes`. A
 * byte stream (a file's `readable`) is read in {@linkcode _READ_SIZE}
 * pieces, so the JS pass per byte that the count costs (Deno.serve no
 * longer pipes the file itself) is paid in fewer, larger reads. Not a byte
 * stream itself: enqueueing into one transfers (detaches) the chunk's
 * buffer, which would break a body that sends the same bytes twice.
 */
function _counting(
  source: ReadableStream<Uint8Array>,
  entry: _Entry,
): ReadableStream<Uint8Array> {
  const reader = pieceReader(source, _READ_SIZE);
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      return reader.read().then((chunk) => {
        if (chunk === undefined) {
          controller.close();
          entry.ended(true);
          return;
        }
        entry.bytes += chunk.byteLength;
        controller.enqueue(chunk);
      }, (error) => {
        entry.ended(false);
        throw error;
      });
    },
    cancel(reason) {
      entry.ended(false);
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/**
 * Whether Deno.serve sends `stream` natively: a stream backed by a Deno
 * resource (`Deno.FsFile.readable`, a `fetch` body), which Deno reads and
 * writes in Rust without going through JS. Told by the resource backing
 * Deno keeps on such a stream under a private symbol ({@linkcode
 * _BACKING}); `false` where that symbol is not found (the stream is then
 * counted as any other). Reads one field: never locks or reads the stream.
 */
function _isNative(stream: ReadableStream<Uint8Array>): boolean {
  if (_BACKING === undefined) return false;
  const backing = (stream as unknown as Record<symbol, unknown>)[_BACKING] as
    | { rid?: unknown }
    | null
    | undefined;
  return typeof backing === "object" && backing !== null &&
    Number.isSafeInteger(backing.rid);
}

/**
 * Deno's key for a stream's resource backing, trusted only if every stream
 * made in JS (default or byte) holds `null` there.
 */
function _findBacking(): symbol | undefined {
  try {
    const plain = new ReadableStream();
    const key = Object.getOwnPropertySymbols(plain).find((s) =>
      s.description === "[[resourceBacking]]"
    );
    if (key === undefined) return undefined;
    const held = (stream: ReadableStream) =>
      (stream as unknown as Record<symbol, unknown>)[key];
    const bytes = new ReadableStream({ type: "bytes" });
    return held(plain) === null && held(bytes) === null ? key : undefined;
  } catch {
    return undefined;
  }
}

/** Where Deno marks a resource-backed stream, or `undefined` where not found. */
const _BACKING: symbol | undefined = _findBacking();

function _contentLength(res: Response): number | undefined {
  const header = res.headers.get("content-length");
  if (header === null) return undefined;
  const length = Number(header);
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined;
}
