/**
 * Request bodies with an exact length (RFC 3875 §4.2):
 * {@linkcode prepareRequestBody} streams a body whose `Content-Length` is
 * known, and buffers a chunked one (in memory, then in a temporary file) to
 * learn its length. Used by CGI and FastCGI alike.
 *
 * @module
 */

import { HttpError } from "../server/errors.ts";

/**
 * How a gateway takes request bodies: the size cap, where a chunked body is
 * buffered, and how long it may take. `cgi()` and `fastcgi()` options extend
 * it; {@linkcode prepareRequestBody} applies it.
 *
 * @example Capping uploads at 1 MiB, buffered in memory up to 64 KiB
 * ```ts
 * import { prepareRequestBody, type RequestBodyOptions } from "./body.ts";
 * import assert from "node:assert/strict";
 *
 * const options: RequestBodyOptions = {
 *   maxBodySize: 1024 * 1024,
 *   bodyMemoryLimit: 64 * 1024,
 *   bodyTimeoutMs: 10_000,
 * };
 * const req = new Request("http://localhost/", {
 *   method: "POST",
 *   body: "x".repeat(2 * 1024 * 1024),
 * });
 * await assert.rejects(prepareRequestBody(req, options), /over 1048576/);
 * ```
 */
export interface RequestBodyOptions {
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
  bodyMemoryLimit?: number;
  /**
   * Where temporary files for large chunked bodies go.
   * @default {undefined} (the system temporary directory)
   */
  tempDir?: string;
  /**
   * Milliseconds a chunked body may take to arrive in full (it is buffered
   * before the script starts); then 408 and the partial body is dropped.
   * 0 waits forever. A body with `Content-Length` is streamed while the
   * script runs instead, so this does not apply to it.
   * @default {60000}
   */
  bodyTimeoutMs?: number;
}

/**
 * A request body ready to hand to a script: its exact length and a stream of
 * exactly that many bytes. Dispose of it (`await using`, or
 * {@linkcode PreparedBody.dispose}) to remove a temporary file.
 *
 * @example Handing a body to a child process
 * ```ts
 * import { prepareRequestBody, type PreparedBody } from "./body.ts";
 * import assert from "node:assert/strict";
 *
 * const req = new Request("http://localhost/", { method: "POST", body: "name=x" });
 * await using body: PreparedBody = await prepareRequestBody(req);
 * assert.equal(body.length, 6);
 * assert.equal(await new Response(body.stream).text(), "name=x");
 * ```
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

/** A chunked body being buffered: in memory up to a limit, then in a temporary file. */
class _Spool {
  length = 0;
  #chunks: Uint8Array[] = [];
  #tempPath: string | undefined;
  #file: Deno.FsFile | undefined;
  #readFile: Deno.FsFile | undefined;
  readonly #memoryLimit: number;
  readonly #tempDir: string | undefined;

  constructor(memoryLimit: number, tempDir: string | undefined) {
    this.#memoryLimit = memoryLimit;
    this.#tempDir = tempDir;
  }

  /** Adds a chunk, spilling everything to the file once over the limit. */
  async add(chunk: Uint8Array): Promise<void> {
    this.length += chunk.length;
    if (this.#file) {
      await _writeAll(this.#file, chunk);
    } else if (this.length > this.#memoryLimit) {
      this.#tempPath = await Deno.makeTempFile({
        dir: this.#tempDir,
        prefix: "x-serve-body-",
      });
      this.#file = await Deno.open(this.#tempPath, {
        write: true,
        truncate: true,
      });
      for (const c of this.#chunks) await _writeAll(this.#file, c);
      this.#chunks.length = 0;
      await _writeAll(this.#file, chunk);
    } else {
      this.#chunks.push(chunk);
    }
  }

  /** The buffered bytes, from memory or the file. */
  async stream(): Promise<ReadableStream<Uint8Array>> {
    if (!this.#file || this.#tempPath === undefined) {
      return new Blob(this.#chunks as BlobPart[]).stream();
    }
    this.#file.close();
    this.#file = undefined;
    this.#readFile = await Deno.open(this.#tempPath, { read: true });
    return this.#readFile.readable;
  }

  /** Closes and removes the temporary file, if any. */
  dispose = async (): Promise<void> => {
    this.#file?.close();
    this.#file = undefined;
    try {
      this.#readFile?.close(); // already closed once its stream was read to the end
    } catch {
      // closed by its readable
    }
    this.#readFile = undefined;
    if (this.#tempPath !== undefined) {
      const path = this.#tempPath;
      this.#tempPath = undefined;
      await _removeQuietly(path);
    }
  };
}

/** Races promises against one deadline (none for 0 ms): then 408. */
function _deadline(timeoutMs: number): {
  within<T>(promise: Promise<T>): Promise<T>;
  clear(): void;
} {
  if (!(timeoutMs > 0)) return { within: (promise) => promise, clear() {} };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new HttpError(408, `Chunked request body took over ${timeoutMs} ms`),
        ),
      timeoutMs,
    );
  });
  expired.catch(() => {});
  return {
    within: (promise) => Promise.race([promise, expired]),
    clear: () => clearTimeout(timer),
  };
}

/** Buffers a body of unknown length: memory first, then a temp file. */
async function _buffer(
  body: ReadableStream<Uint8Array>,
  options: Required<Omit<RequestBodyOptions, "tempDir">> & {
    tempDir: string | undefined;
  },
): Promise<PreparedBody> {
  const { maxBodySize } = options;
  const spool = new _Spool(options.bodyMemoryLimit, options.tempDir);
  const deadline = _deadline(options.bodyTimeoutMs);
  const reader = body.getReader();
  try {
    while (true) {
      const { value: chunk, done } = await deadline.within(reader.read());
      if (done) break;
      if (spool.length + chunk.length > maxBodySize) {
        throw new HttpError(
          413,
          `Chunked request body over ${maxBodySize} bytes`,
        );
      }
      // Not raced against the deadline: a spill to disk that outlived it
      // would leave its temporary file behind after dispose().
      await spool.add(chunk);
    }
  } catch (error) {
    await reader.cancel().catch(() => {});
    await spool.dispose();
    throw error;
  } finally {
    deadline.clear();
    reader.releaseLock();
  }
  const { dispose } = spool;
  return {
    length: spool.length,
    stream: await spool.stream(),
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
 *   `bodyMemoryLimit` bytes in memory, the rest in a temporary file, at
 *   most `maxBodySize` bytes (else 413 and the partial file is removed),
 *   within `bodyTimeoutMs` (else 408).
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
  options: RequestBodyOptions = {},
): Promise<PreparedBody> {
  const {
    maxBodySize = 64 * 1024 * 1024,
    bodyMemoryLimit = 1024 * 1024,
    tempDir,
    bodyTimeoutMs = 60_000,
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
  return await _buffer(req.body, {
    maxBodySize,
    bodyMemoryLimit,
    tempDir,
    bodyTimeoutMs,
  });
}
