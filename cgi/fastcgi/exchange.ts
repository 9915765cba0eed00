/**
 * {@linkcode exchange}: runs one FastCGI responder request on a connection.
 * It sends BEGIN_REQUEST, the PARAMS stream and the STDIN stream (with
 * backpressure), and returns STDOUT as a pull-based byte stream that ends at
 * END_REQUEST. STDERR goes to a callback.
 *
 * @module
 */

import { pullStream } from "../stream.ts";
import type { FastCgiConnection } from "./connection.ts";
import { FastCgiError } from "./errors.ts";
import {
  concatBytes,
  encodeRecord,
  encodeRequest,
  type FastCgiRecord,
  MAX_CHUNK,
  RecordType,
} from "./record.ts";

const _REQUEST_ID = 1;
const _EMPTY = new Uint8Array();
const _decoder = new TextDecoder();

/**
 * One request for a FastCGI responder.
 *
 * @example A POST with its body
 * ```ts
 * import type { FastCgiRequest } from "@x/serve/fastcgi";
 *
 * const body = new TextEncoder().encode("a=1");
 * const request: FastCgiRequest = {
 *   params: [
 *     ["REQUEST_METHOD", "POST"],
 *     ["SCRIPT_FILENAME", "/srv/www/form.php"],
 *     ["CONTENT_TYPE", "application/x-www-form-urlencoded"],
 *     ["CONTENT_LENGTH", String(body.length)],
 *   ],
 *   body,
 *   onStderr: (text) => console.error(text),
 * };
 * ```
 */
export interface FastCgiRequest {
  /** The params (CGI meta-variables), sent in this order. */
  params: Iterable<readonly [string, string]>;
  /**
   * The request body for STDIN. Its length must equal `CONTENT_LENGTH`.
   * (A retry only happens before any byte was written, so a stream is
   * still unread then.)
   */
  body?: Uint8Array | ReadableStream<Uint8Array> | null;
  /** Receives each STDERR record's text (for the server log). */
  onStderr?: (text: string) => void;
  /** Aborts the request (the client went away): the connection is closed. */
  signal?: AbortSignal;
}

/**
 * A responder's STDOUT: one `Uint8Array` when the whole of it had arrived
 * by the time its first bytes did (small responses: no stream to read, the
 * connection is already free), else a byte stream read on demand.
 *
 * @example Reading either kind
 * ```ts
 * import type { FastCgiOutput } from "@x/serve/fastcgi";
 * import assert from "node:assert/strict";
 *
 * const output: FastCgiOutput = new TextEncoder().encode("Content-Type: text/plain\r\n\r\nhi");
 * assert.match(await new Response(output).text(), /hi$/);
 * ```
 */
export type FastCgiOutput =
  | Uint8Array<ArrayBuffer>
  | ReadableStream<Uint8Array>;

/**
 * Options of {@linkcode exchange}. Durations are in milliseconds.
 *
 * @example Giving a slow script more time
 * ```ts
 * import type { ExchangeOptions } from "./exchange.ts";
 *
 * const options: ExchangeOptions = { firstByteTimeoutMs: 300_000, keepConn: false };
 * ```
 */
export interface ExchangeOptions {
  /**
   * Milliseconds from sending the request until the first response record.
   * @default {60000}
   */
  firstByteTimeoutMs?: number;
  /**
   * Milliseconds of silence allowed between records once the response started.
   * @default {60000}
   */
  readTimeoutMs?: number;
  /**
   * Ask the responder to keep the connection (FCGI_KEEP_CONN).
   * @default {true}
   */
  keepConn?: boolean;
  /**
   * Called once when the connection is free again: `reusable` is true when
   * the request ended cleanly and the connection may carry another one.
   * @default {undefined}
   */
  onDone?: (reusable: boolean) => void;
}

/** True for errors that show the socket is dead (stale kept connection). */
function _isConnectionGone(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.UnexpectedEof ||
    error instanceof Deno.errors.NotConnected ||
    error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted;
}

/** `bytes` as STDIN records of at most MAX_CHUNK bytes each. */
function* _stdinRecords(bytes: Uint8Array): Generator<Uint8Array> {
  for (let offset = 0; offset < bytes.length; offset += MAX_CHUNK) {
    yield encodeRecord(
      RecordType.STDIN,
      _REQUEST_ID,
      bytes.subarray(offset, offset + MAX_CHUNK),
    );
  }
}

/** Writes `bytes` as STDIN records. */
async function _writeStdin(
  conn: FastCgiConnection,
  bytes: Uint8Array,
): Promise<void> {
  for (const record of _stdinRecords(bytes)) await conn.write(record);
}

async function _writeBody(
  conn: FastCgiConnection,
  body: Uint8Array | ReadableStream<Uint8Array> | null | undefined,
): Promise<void> {
  if (body instanceof Uint8Array) {
    await _writeStdin(conn, body);
  } else if (body) {
    const reader = body.getReader();
    try {
      while (true) {
        if (conn.closed) {
          throw new Deno.errors.BadResource("FastCGI connection closed");
        }
        const { done, value } = await reader.read();
        if (done) break;
        await _writeStdin(conn, value);
      }
    } catch (error) {
      await reader.cancel().catch(() => {});
      throw error;
    } finally {
      reader.releaseLock();
    }
  }
  await conn.write(encodeRecord(RecordType.STDIN, _REQUEST_ID, _EMPTY));
}

/**
 * Runs one request on `conn`. Resolves once the first STDOUT bytes (or the
 * end of the request) arrived, with STDOUT (see {@linkcode FastCgiOutput}:
 * whole bytes when END_REQUEST came with them, else a byte stream); rejects
 * with a {@linkcode FastCgiError}. Cancelling the stream closes the
 * connection.
 *
 * The error is `stale` (safe to retry on a fresh connection) only when a
 * reused connection was found dead before any byte of the request went
 * out: the responder had closed it while idle ({@linkcode
 * FastCgiConnection.probe}), or the very first write failed. Never once a
 * byte was written (the responder may have run the script), and never
 * when `request.signal` aborted.
 *
 * @example Running a request on a connection
 * ```ts ignore
 * import { FastCgiConnection } from "./connection.ts";
 * import { exchange } from "./exchange.ts";
 *
 * const conn = new FastCgiConnection(await Deno.connect({ port: 9000 }));
 * const stdout = await exchange(conn, {
 *   params: [["SCRIPT_FILENAME", "/srv/www/index.php"], ["REQUEST_METHOD", "GET"]],
 * }, { onDone: () => conn.close() });
 * console.log(await new Response(stdout).text());
 * ```
 *
 * @param conn A free connection.
 * @param request Params, body, STDERR sink and abort signal.
 * @param options Timeouts, keep-alive and the completion callback.
 * @returns STDOUT as a byte stream.
 */
export async function exchange(
  conn: FastCgiConnection,
  request: FastCgiRequest,
  options: ExchangeOptions = {},
): Promise<FastCgiOutput> {
  const {
    firstByteTimeoutMs = 60_000,
    readTimeoutMs = 60_000,
    keepConn = true,
  } = options;
  const reused = conn.completed > 0;
  const finish = _finisher(conn, request.signal, options.onDone);
  await _refuseStale(conn, request.signal, reused, finish);
  // A request without a body (or with a small buffered one) goes out in
  // one write: fewer syscalls, one packet.
  const whole = _wholeStdin(request.body);
  await _sendHead(conn, request, keepConn, reused, finish, whole);
  const body: _BodyState = whole
    ? { done: true, error: undefined }
    : _sendBody(conn, request.body);
  const read = (timeoutMs: number): Promise<Uint8Array<ArrayBuffer> | null> =>
    _nextChunk(conn, request, timeoutMs, body).catch((error) => {
      finish(false);
      throw error;
    });
  const first = await read(firstByteTimeoutMs);
  if (first === null) {
    finish(body.done);
    return new Uint8Array();
  }
  let buffered;
  try {
    buffered = _buffered(conn, request, first);
  } catch (error) {
    finish(false);
    throw error;
  }
  if (buffered.complete) {
    finish(body.done);
    return buffered.bytes;
  }
  return pullStream({
    first: buffered.bytes,
    read: async () => {
      const chunk = await read(readTimeoutMs);
      if (chunk === null) finish(body.done);
      return chunk;
    },
    cancel: () => finish(false),
  });
}

/** Ends the request once: `reusable` keeps the connection for another. */
type _Finish = (reusable: boolean) => void;

/**
 * The request's one way to end: it frees the connection (kept or closed)
 * and tells `onDone`. An abort of `signal` ends it at once; an abort before
 * the start throws.
 */
function _finisher(
  conn: FastCgiConnection,
  signal: AbortSignal | undefined,
  onDone: ((reusable: boolean) => void) | undefined,
): _Finish {
  let settled = false;
  const finish = (reusable: boolean): void => {
    if (settled) return;
    settled = true;
    signal?.removeEventListener("abort", onAbort);
    if (reusable && !conn.closed) conn.completed++;
    else conn.close();
    onDone?.(reusable && !conn.closed);
  };
  const onAbort = (): void => finish(false);
  if (signal?.aborted) {
    finish(false);
    throw new FastCgiError(502, "Request aborted before it was sent");
  }
  signal?.addEventListener("abort", onAbort, { once: true });
  return finish;
}

/**
 * Throws a `stale` error for a kept connection the responder closed while
 * it was idle: nothing was sent, so the caller may retry on a fresh one.
 */
async function _refuseStale(
  conn: FastCgiConnection,
  signal: AbortSignal | undefined,
  reused: boolean,
  finish: _Finish,
): Promise<void> {
  if (!reused || !await conn.probe()) return;
  const aborted = signal?.aborted ?? false;
  finish(false);
  throw new FastCgiError(
    502,
    aborted
      ? "Request aborted before it was sent"
      : "Kept FastCGI connection was closed by the responder",
    { stale: !aborted },
  );
}

/** Bodies up to this size are sent with the head, in one write. */
const _WHOLE_BELOW = 64 * 1024;

/**
 * A body small enough to send with the head (empty for none), or
 * `undefined`: it is streamed after.
 */
function _wholeStdin(body: FastCgiRequest["body"]): Uint8Array | undefined {
  if (body instanceof ReadableStream) return undefined;
  if (body && body.length > _WHOLE_BELOW) return undefined;
  return body ?? _EMPTY;
}

/**
 * Sends BEGIN_REQUEST and the params (and `stdin`, a whole small body,
 * when given): a failure here means nothing was sent.
 */
async function _sendHead(
  conn: FastCgiConnection,
  request: FastCgiRequest,
  keepConn: boolean,
  reused: boolean,
  finish: _Finish,
  stdin: Uint8Array | undefined,
): Promise<void> {
  const sentBefore = conn.sent;
  try {
    await conn.write(
      encodeRequest(_REQUEST_ID, keepConn, request.params, stdin),
    );
  } catch (error) {
    finish(false);
    if (error instanceof RangeError) {
      throw new FastCgiError(502, error.message, { cause: error });
    }
    throw new FastCgiError(
      502,
      "Cannot send the request to the FastCGI responder",
      {
        stale: reused && conn.sent === sentBefore &&
          !request.signal?.aborted && _isConnectionGone(error),
        cause: error,
      },
    );
  }
}

/** How the STDIN stream, written in the background, is doing. */
interface _BodyState {
  done: boolean;
  error: unknown;
}

/** Writes the body in the background; a failure closes the connection. */
function _sendBody(
  conn: FastCgiConnection,
  body: FastCgiRequest["body"],
): _BodyState {
  const state: _BodyState = { done: false, error: undefined };
  _writeBody(conn, body).then(
    () => {
      state.done = true;
    },
    (error) => {
      state.error = error;
      conn.close();
    },
  );
  return state;
}

/** Reads the next record, as a {@linkcode FastCgiError} on failure. */
async function _readRecord(
  conn: FastCgiConnection,
  timeoutMs: number,
  body: _BodyState,
): Promise<FastCgiRecord> {
  let record: FastCgiRecord | null;
  try {
    record = await conn.read(timeoutMs);
  } catch (error) {
    if (error instanceof FastCgiError) throw error;
    if (error instanceof SyntaxError) {
      throw new FastCgiError(
        502,
        `Malformed FastCGI record: ${error.message}`,
        { cause: error },
      );
    }
    // Never stale: the request went out, the script may have run.
    throw new FastCgiError(502, "FastCGI connection failed", {
      cause: body.error ?? error,
    });
  }
  if (record === null) {
    throw new FastCgiError(
      502,
      "FastCGI responder closed the connection before END_REQUEST",
      { cause: body.error },
    );
  }
  return record;
}

/**
 * What one record means for the request: STDOUT bytes to hand on, the end
 * of the request (`null`), or nothing to hand on (`undefined`: STDERR,
 * empty STDOUT, another request id). Throws a {@linkcode FastCgiError} for
 * a rejected request or an unexpected record.
 */
function _consume(
  record: FastCgiRecord,
  request: FastCgiRequest,
): Uint8Array<ArrayBuffer> | null | undefined {
  if (record.requestId !== _REQUEST_ID) return undefined; // management records and inactive ids
  switch (record.type) {
    case RecordType.STDOUT:
      return record.content.length > 0 ? record.content : undefined;
    case RecordType.STDERR:
      if (record.content.length > 0) {
        request.onStderr?.(_decoder.decode(record.content));
      }
      return undefined;
    case RecordType.END_REQUEST: {
      const protocolStatus = record.content[4];
      if (record.content.length < 8 || protocolStatus !== 0) {
        throw new FastCgiError(
          502,
          `FastCGI responder rejected the request (protocol status ${protocolStatus})`,
        );
      }
      return null;
    }
    default:
      throw new FastCgiError(
        502,
        `Unexpected FastCGI record type ${record.type}`,
      );
  }
}

/** Reads until STDOUT data (returned) or END_REQUEST (`null`). */
async function _nextChunk(
  conn: FastCgiConnection,
  request: FastCgiRequest,
  timeoutMs: number,
  body: _BodyState,
): Promise<Uint8Array<ArrayBuffer> | null> {
  while (true) {
    const chunk = _consume(await _readRecord(conn, timeoutMs, body), request);
    if (chunk !== undefined) return chunk;
  }
}

/**
 * The records that arrived together with the first STDOUT bytes: all of
 * STDOUT when END_REQUEST is among them (`complete`), else what there is.
 */
function _buffered(
  conn: FastCgiConnection,
  request: FastCgiRequest,
  first: Uint8Array<ArrayBuffer>,
): { bytes: Uint8Array<ArrayBuffer>; complete: boolean } {
  let chunks: Uint8Array[] | undefined;
  while (true) {
    let record: FastCgiRecord | undefined;
    try {
      record = conn.readBuffered();
    } catch (error) {
      throw new FastCgiError(
        502,
        `Malformed FastCGI record: ${(error as Error).message}`,
        { cause: error },
      );
    }
    if (record === undefined) break;
    const chunk = _consume(record, request);
    if (chunk === null) {
      return { bytes: chunks ? concatBytes(chunks) : first, complete: true };
    }
    if (chunk) (chunks ??= [first]).push(chunk);
  }
  return { bytes: chunks ? concatBytes(chunks) : first, complete: false };
}
