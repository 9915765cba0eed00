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
   * How many bytes of a body are kept in memory before the rest goes to a
   * temporary file.
   * @default {1048576} (1 MiB)
   */
  bodyMemoryLimit?: number;
  /**
   * Where temporary files for large bodies go.
   * @default {undefined} (the system temporary directory)
   */
  tempDir?: string;
  /**
   * Milliseconds a body may go without a byte while it is buffered (nginx
   * `client_body_timeout`); then 408 and the partial body is dropped. 0
   * waits forever.
   * @default {60000}
   */
  bodyTimeoutMs?: number;
  /**
   * Stream a body with `Content-Length` to the script as it arrives
   * instead of buffering it first (nginx `fastcgi_request_buffering off`).
   * The script (and its CGI slot or FastCGI worker) then waits for a slow
   * client; only for scripts that must see the body early.
   * @default {false}
   */
  streamBody?: boolean;
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

/** Races each read against `timeoutMs` of silence (none for 0 ms): then 408. */
function _progress(timeoutMs: number): {
  within<T>(promise: Promise<T>): Promise<T>;
  clear(): void;
} {
  if (!(timeoutMs > 0)) return { within: (promise) => promise, clear() {} };
  let timer: ReturnType<typeof setTimeout> | undefined;
  return {
    within: (promise) => {
      clearTimeout(timer);
      const silent = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new HttpError(408, `Request body silent for ${timeoutMs} ms`),
            ),
          timeoutMs,
        );
      });
      silent.catch(() => {});
      return Promise.race([promise, silent]);
    },
    clear: () => clearTimeout(timer),
  };
}

/** What {@linkcode _buffer} needs. */
interface _BufferOptions {
  maxBodySize: number;
  bodyMemoryLimit: number;
  bodyTimeoutMs: number;
  tempDir: string | undefined;
  /** The `Content-Length`, when known. */
  expected?: number;
}

/** Reads the next chunk; a client that broke off is a 400. */
async function _read(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  try {
    return await reader.read();
  } catch (error) {
    throw new HttpError(400, "Request body broke off", { cause: error });
  }
}

/** Buffers a body: memory first, then a temp file. */
async function _buffer(
  body: ReadableStream<Uint8Array>,
  options: _BufferOptions,
): Promise<PreparedBody> {
  const { maxBodySize, expected } = options;
  const spool = new _Spool(options.bodyMemoryLimit, options.tempDir);
  const progress = _progress(options.bodyTimeoutMs);
  const reader = body.getReader();
  try {
    while (true) {
      const { value, done } = await progress.within(_read(reader));
      if (done) break;
      // Never more than `Content-Length` (a library caller's Request may
      // carry more; Deno.serve never does).
      const left = expected === undefined ? Infinity : expected - spool.length;
      const chunk = value.length > left ? value.subarray(0, left) : value;
      if (spool.length + chunk.length > maxBodySize) {
        throw new HttpError(
          413,
          `Chunked request body over ${maxBodySize} bytes`,
        );
      }
      // Not raced against the deadline: a spill to disk that outlived it
      // would leave its temporary file behind after dispose().
      await spool.add(chunk);
      if (spool.length === expected) break;
    }
    if (expected !== undefined && spool.length !== expected) {
      throw new HttpError(400, "Request body shorter than Content-Length");
    }
  } catch (error) {
    await reader.cancel().catch(() => {});
    await spool.dispose();
    throw error;
  } finally {
    progress.clear();
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
 * - Over `maxBodySize` → 413: before any byte is read when
 *   `Content-Length` says so, else once the body passes it (the partial
 *   file is removed).
 * - Otherwise the body is read in full before the script starts (and
 *   before it takes a CGI slot or a FastCGI connection): up to
 *   `bodyMemoryLimit` bytes in memory, the rest in a temporary file, with
 *   at most `bodyTimeoutMs` of silence between bytes (else 408); a body
 *   that ends short of its `Content-Length` → 400.
 * - With `streamBody`, a body with `Content-Length` is streamed as it
 *   arrives instead, cut at exactly that many bytes.
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
    streamBody = false,
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
    if (!streamBody) {
      return await _buffer(req.body, {
        maxBodySize,
        bodyMemoryLimit,
        tempDir,
        bodyTimeoutMs,
        expected: length,
      });
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
