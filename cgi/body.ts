/**
 * Request bodies with an exact length (RFC 3875 §4.2):
 * {@linkcode prepareRequestBody} streams a body whose `Content-Length` is
 * known, and buffers a chunked one (in memory, then in a temporary file) to
 * learn its length. Used by CGI and FastCGI alike.
 *
 * @module
 */

import { HttpError } from "../server/errors.ts";

/** Options of {@linkcode prepareRequestBody}. */
export interface PrepareRequestBodyOptions {
  /**
   * The largest body accepted, in bytes. A longer body answers 413: at once
   * when `Content-Length` says so, while buffering for a chunked one.
   * @default {67108864} (64 MiB)
   */
  maxBodySize?: number;
  /**
   * How many bytes of a chunked body are kept in memory before the rest
   * goes to a temporary file.
   * @default {1048576} (1 MiB)
   */
  memoryLimit?: number;
  /**
   * Where temporary files for large chunked bodies go.
   * @default {undefined} (the system temporary directory)
   */
  tempDir?: string;
  /**
   * Milliseconds a chunked body may take to arrive in full (it is read
   * before the script starts); then 408 and the partial body is dropped.
   * 0 waits forever. A body with `Content-Length` is streamed while the
   * script runs instead, so this does not apply to it.
   * @default {0}
   */
  timeout?: number;
}

/**
 * A request body ready to hand to a script: its exact length and a stream of
 * exactly that many bytes. Dispose of it (`await using`, or
 * {@linkcode PreparedBody.dispose}) to remove a temporary file.
 */
export interface PreparedBody extends AsyncDisposable {
  /**
   * The exact length in bytes, or `undefined` when the request has no body
   * (then `CONTENT_LENGTH` must not be set).
   */
  readonly length: number | undefined;
  /** The body bytes (exactly `length` of them), or `null` without a body. */
  readonly stream: ReadableStream<Uint8Array> | null;
  /** Removes the temporary file, if any. Safe to call more than once. */
  dispose(): Promise<void>;
}

/** Stops `source` after exactly `length` bytes; fewer bytes is an error. */
function _exactly(
  source: ReadableStream<Uint8Array>,
  length: number,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let left = length;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (left === 0) {
        controller.close();
        reader.cancel().catch(() => {});
        return;
      }
      const { value, done } = await reader.read();
      if (done) {
        controller.error(
          new Deno.errors.UnexpectedEof(
            "Request body shorter than Content-Length",
          ),
        );
        return;
      }
      const chunk = value.length > left ? value.subarray(0, left) : value;
      left -= chunk.length;
      controller.enqueue(chunk);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

async function _removeQuietly(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** Buffers a body of unknown length: memory first, then a temp file. */
async function _buffer(
  body: ReadableStream<Uint8Array>,
  maxBodySize: number,
  memoryLimit: number,
  tempDir: string | undefined,
  timeout: number,
): Promise<PreparedBody> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  let tempPath: string | undefined;
  let file: Deno.FsFile | undefined;
  let readFile: Deno.FsFile | undefined;
  const dispose = async (): Promise<void> => {
    file?.close();
    file = undefined;
    try {
      readFile?.close(); // already closed once its stream was read to the end
    } catch {
      // closed by its readable
    }
    readFile = undefined;
    if (tempPath !== undefined) {
      const path = tempPath;
      tempPath = undefined;
      await _removeQuietly(path);
    }
  };
  const reader = body.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = timeout > 0
    ? new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new HttpError(408, `Chunked request body took over ${timeout} ms`),
          ),
        timeout,
      );
    })
    : undefined;
  expired?.catch(() => {});
  const within = <T>(promise: Promise<T>): Promise<T> =>
    expired ? Promise.race([promise, expired]) : promise;
  try {
    while (true) {
      const { value: chunk, done } = await within(reader.read());
      if (done) break;
      length += chunk.length;
      if (length > maxBodySize) {
        throw new HttpError(
          413,
          `Chunked request body over ${maxBodySize} bytes`,
        );
      }
      if (file) {
        await within(_writeAll(file, chunk));
      } else if (length > memoryLimit) {
        tempPath = await Deno.makeTempFile({
          dir: tempDir,
          prefix: "x-serve-body-",
        });
        file = await Deno.open(tempPath, { write: true, truncate: true });
        for (const c of chunks) await _writeAll(file, c);
        chunks.length = 0;
        await _writeAll(file, chunk);
      } else {
        chunks.push(chunk);
      }
    }
  } catch (error) {
    await reader.cancel().catch(() => {});
    await dispose();
    throw error;
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
  let stream: ReadableStream<Uint8Array>;
  if (file && tempPath !== undefined) {
    file.close();
    file = undefined;
    readFile = await Deno.open(tempPath, { read: true });
    stream = readFile.readable;
  } else {
    stream = new Blob(chunks as BlobPart[]).stream();
  }
  return {
    length,
    stream,
    dispose,
    [Symbol.asyncDispose]: dispose,
  };
}

async function _writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    written += await file.write(bytes.subarray(written));
  }
}

/**
 * Prepares the body of `req` for a script that needs its exact length.
 *
 * - No body → `length` and `stream` are `undefined`/`null`.
 * - `Content-Length` known → the body is streamed as it arrives, cut at
 *   exactly that many bytes; over `maxBodySize` → 413 before any byte is
 *   read.
 * - Unknown length (chunked) → the body is read in full: up to
 *   `memoryLimit` bytes in memory, the rest in a temporary file, at most
 *   `maxBodySize` bytes (else 413 and the partial file is removed), within
 *   `timeout` ms (else 408).
 *
 * @example Buffering a streamed body
 * ```ts
 * import { prepareRequestBody } from "./body.ts";
 * import assert from "node:assert/strict";
 *
 * const req = new Request("http://localhost/", {
 *   method: "POST",
 *   body: ReadableStream.from([new TextEncoder().encode("hello")]),
 * });
 * await using body = await prepareRequestBody(req);
 * assert.equal(body.length, 5);
 * assert.equal(await new Response(body.stream).text(), "hello");
 * ```
 *
 * @param req The request.
 * @param options Size limits, the temporary directory and the time limit.
 * @returns The body with its exact length.
 */
export async function prepareRequestBody(
  req: Request,
  options: PrepareRequestBodyOptions = {},
): Promise<PreparedBody> {
  const {
    maxBodySize = 64 * 1024 * 1024,
    memoryLimit = 1024 * 1024,
    tempDir,
    timeout = 0,
  } = options;
  const noop = (): Promise<void> => Promise.resolve();
  if (req.body === null) {
    return {
      length: undefined,
      stream: null,
      dispose: noop,
      [Symbol.asyncDispose]: noop,
    };
  }
  const header = req.headers.get("content-length");
  if (header !== null && /^\d+$/.test(header.trim())) {
    const length = Number(header.trim());
    if (length > maxBodySize) {
      await req.body.cancel().catch(() => {});
      throw new HttpError(
        413,
        `Request body of ${length} bytes over ${maxBodySize}`,
      );
    }
    return {
      length,
      stream: _exactly(req.body, length),
      dispose: noop,
      [Symbol.asyncDispose]: noop,
    };
  }
  return await _buffer(req.body, maxBodySize, memoryLimit, tempDir, timeout);
}
