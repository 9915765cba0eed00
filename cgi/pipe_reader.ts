/**
 * {@linkcode pipeReader}: reads a child process's pipe into one buffer of
 * its own, reused from read to read.
 *
 * Deno's default reader of a pipe (`child.stdout.getReader()`) allocates a
 * fresh 64 KiB buffer for every read, and the chunk it returns — 34 bytes
 * of a CGI "hello" — keeps the whole buffer alive. A CGI request reads
 * stdout and stderr twice each (the data, then the end): about 256 KiB of
 * garbage per request that V8 collects late, so a server running 300
 * scripts a second grew by 100 MiB and more (measured: 3 000 spawns in a
 * loop, 130 MiB of RSS with the default reader, 64 MiB with this one).
 *
 * @module
 */

/** What {@linkcode pipeReader} reads with: a stream reader's `read` and `cancel`. */
export interface PipeReader {
  /** The next chunk (`done` at the end). */
  read(): Promise<ReadableStreamReadResult<Uint8Array>>;
  /** Cancels the stream with `reason`. */
  cancel(reason?: unknown): Promise<void>;
  /** Releases the stream's lock. */
  releaseLock(): void;
}

/** Options of {@linkcode pipeReader}. */
export interface PipeReaderOptions {
  /**
   * Hand out copies of exactly the bytes read (they may be kept, e.g.
   * enqueued in a response); `false`: a view of the reader's buffer, valid
   * until the next `read()` (for a consumer that decodes it at once).
   * @default {true}
   */
  copy?: boolean;
  /**
   * The buffer's first size; a read that fills it doubles it, up to
   * `maxBytes`.
   * @default {16384}
   */
  initialBytes?: number;
  /**
   * The largest buffer (a pipe holds 64 KiB on Linux).
   * @default {65536}
   */
  maxBytes?: number;
}

const _CHUNKS = Symbol.for("@x/serve/chunk-stream");

/**
 * Marks `stream` as one that is not a byte stream, so that
 * {@linkcode pipeReader} reads its chunks as they come without first
 * asking for (and being refused) a BYOB reader.
 *
 * @example Marking a stream of chunks
 * ```ts
 * import { markChunkStream, pipeReader } from "./pipe_reader.ts";
 * import assert from "node:assert/strict";
 *
 * const stream = markChunkStream(ReadableStream.from([new Uint8Array([1])]));
 * const reader = pipeReader(stream);
 * assert.deepEqual((await reader.read()).value, new Uint8Array([1]));
 * ```
 *
 * @param stream A stream that is not a byte stream.
 * @returns The same stream.
 */
export function markChunkStream<T extends ReadableStream<Uint8Array>>(
  stream: T,
): T {
  Object.defineProperty(stream, _CHUNKS, { value: true });
  return stream;
}

/**
 * A reader of `stream` that reads a byte stream (a child's pipe) into one
 * reused buffer (BYOB), and any other stream chunk by chunk as it comes.
 *
 * @example Reading a child's output
 * ```ts
 * import { pipeReader } from "./pipe_reader.ts";
 * import assert from "node:assert/strict";
 *
 * const child = new Deno.Command("echo", {
 *   args: ["hello"],
 *   stdout: "piped",
 * }).spawn();
 * const reader = pipeReader(child.stdout);
 * const { value } = await reader.read();
 * assert.equal(new TextDecoder().decode(value), "hello\n");
 * assert.equal((await reader.read()).done, true);
 * await child.status;
 * ```
 *
 * @param stream The stream to read (its lock is taken).
 * @param options Copies or views, and the buffer's sizes.
 * @returns The reader.
 */
export function pipeReader(
  stream: ReadableStream<Uint8Array>,
  options: PipeReaderOptions = {},
): PipeReader {
  const { copy = true, initialBytes = 16384, maxBytes = 65536 } = options;
  // A stream known to be no byte stream: its own chunks, without the
  // exception (~10 µs) that asking for a BYOB reader would cost.
  if ((stream as { [_CHUNKS]?: true })[_CHUNKS]) return stream.getReader();
  let reader: ReadableStreamBYOBReader;
  try {
    reader = stream.getReader({ mode: "byob" });
  } catch {
    // Not a byte stream: its own chunks.
    return stream.getReader();
  }
  let buffer: Uint8Array<ArrayBuffer> | undefined = new Uint8Array(
    initialBytes,
  );
  return {
    async read() {
      // A read under way (or a failed one) holds the buffer: a read
      // beside it gets one of its own.
      const into = buffer ?? new Uint8Array(initialBytes);
      buffer = undefined;
      const { done, value } = await reader.read(into);
      if (value === undefined || done) {
        return { done: true, value: undefined };
      }
      // The read transferred the buffer: `value` views it now.
      const full = value.byteLength === value.buffer.byteLength;
      buffer = full && value.buffer.byteLength < maxBytes
        ? new Uint8Array(Math.min(value.buffer.byteLength * 2, maxBytes))
        : new Uint8Array(value.buffer);
      return { done: false, value: copy ? value.slice() : value };
    },
    cancel: (reason) => reader.cancel(reason),
    releaseLock: () => reader.releaseLock(),
  };
}
