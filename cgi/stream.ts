/**
 * {@linkcode pullStream}: the byte stream every gateway hands on (a script's
 * body, FastCGI's STDOUT): it reads its source only when the consumer asks,
 * so a script is read as fast as the client takes the bytes. Used by CGI
 * and FastCGI alike.
 *
 * @module
 */

/**
 * Where a {@linkcode pullStream} gets its bytes.
 *
 * @example A countdown source
 * ```ts
 * import { pullStream, type PullSource } from "./stream.ts";
 * import assert from "node:assert/strict";
 *
 * let left = 3;
 * const source: PullSource = {
 *   read: () => Promise.resolve(left-- > 0 ? new Uint8Array([0x61]) : null),
 * };
 * assert.equal(await new Response(pullStream(source)).text(), "aaa");
 * ```
 */
export interface PullSource {
  /**
   * Bytes already read, handed out before `read()` is first called.
   * @default {undefined}
   */
  first?: Uint8Array;
  /**
   * Reads the next chunk; `null` ends the stream, a rejection errors it.
   */
  read(): Promise<Uint8Array | null>;
  /**
   * Called when the consumer cancels the stream.
   * @default {undefined}
   */
  cancel?(reason: unknown): void | Promise<void>;
}

/**
 * A byte stream that reads `source` on demand only (no read-ahead:
 * `highWaterMark` 0), starting with `source.first`.
 *
 * @example The rest of a reader after bytes already read
 * ```ts
 * import { pullStream, readChunk } from "./stream.ts";
 * import assert from "node:assert/strict";
 *
 * const reader = new Response("world").body!.getReader();
 * const stream = pullStream({
 *   first: new TextEncoder().encode("hello "),
 *   read: () => readChunk(reader),
 *   cancel: (reason) => reader.cancel(reason),
 * });
 * assert.equal(await new Response(stream).text(), "hello world");
 * ```
 *
 * @param source The first bytes, how to read more, and what cancelling does.
 * @returns The stream.
 */
export function pullStream(source: PullSource): ReadableStream<Uint8Array> {
  let first = source.first;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (first) {
        controller.enqueue(first);
        first = undefined;
        return;
      }
      const chunk = await source.read();
      if (chunk === null) controller.close();
      else controller.enqueue(chunk);
    },
    cancel(reason) {
      return source.cancel?.(reason);
    },
  }, { highWaterMark: 0 });
}

/**
 * Reads a reader's next chunk as {@linkcode PullSource.read} wants it:
 * `null` at the end.
 *
 * @example Draining a reader
 * ```ts
 * import { readChunk } from "./stream.ts";
 * import assert from "node:assert/strict";
 *
 * const reader = new Response("hi").body!.getReader();
 * assert.equal((await readChunk(reader))?.length, 2);
 * assert.equal(await readChunk(reader), null);
 * ```
 *
 * @param reader The reader.
 * @returns The chunk, or `null` once the reader is done.
 */
export async function readChunk(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): Promise<Uint8Array | null> {
  const { value, done } = await reader.read();
  return done ? null : value;
}

/**
 * Options of {@linkcode exactLength}.
 *
 * @example Logging a cut
 * ```ts
 * import type { ExactLengthOptions } from "./stream.ts";
 *
 * const options: ExactLengthOptions = {
 *   onExcess: () => console.warn("longer than its Content-Length: cut"),
 *   short: (got, length) => new Error(`${got} of ${length} bytes`),
 * };
 * ```
 */
export interface ExactLengthOptions {
  /**
   * The reason `source` is cancelled with when it gives more bytes than
   * the length (the rest is dropped).
   * @default {undefined}
   */
  cutReason?: unknown;
  /**
   * Called once when `source` gave more bytes than the length, before it
   * is cancelled.
   * @default {undefined}
   */
  onExcess?(): void;
  /**
   * The error the stream errors with when `source` ends short (`got`
   * bytes of `length`).
   * @default {(got, length) => new Error(`body ended after ${got} of ${length} bytes`)}
   */
  short?(got: number, length: number): Error;
}

/**
 * `source` as a stream of exactly `length` bytes, read on demand (no
 * read-ahead), for a response whose `Content-Length` says `length`:
 *
 * - once `length` bytes were handed on, the stream closes at once (the
 *   response is complete), and `source` is read once more in the
 *   background: its end is waited for (a FastCGI connection is then
 *   reusable), and any byte more is dropped and `source` cancelled with
 *   `cutReason` (`onExcess` tells);
 * - a chunk that crosses the length is cut there, the rest dropped and
 *   `source` cancelled the same way;
 * - a `source` that ends short makes the stream error (`short`), so the
 *   server aborts the connection instead of ending the response cleanly;
 *   an error of `source` is passed on, and cancelling the stream cancels
 *   `source` with the same reason.
 *
 * @example Cutting a longer body
 * ```ts
 * import { exactLength } from "./stream.ts";
 * import assert from "node:assert/strict";
 *
 * const body = exactLength(new Response("hello world").body!, 5);
 * assert.equal(await new Response(body).text(), "hello");
 * ```
 *
 * @example A shorter body errors
 * ```ts
 * import { exactLength } from "./stream.ts";
 * import assert from "node:assert/strict";
 *
 * const body = exactLength(new Response("hi").body!, 5);
 * await assert.rejects(new Response(body).text(), /after 2 of 5 bytes/);
 * ```
 *
 * @param source The bytes.
 * @param length How many bytes the stream gives (a safe integer ≥ 0).
 * @param options The cut's reason and report, the short body's error.
 * @returns The stream.
 */
export function exactLength(
  source: ReadableStream<Uint8Array>,
  length: number,
  options: ExactLengthOptions = {},
): ReadableStream<Uint8Array> {
  const {
    cutReason,
    onExcess,
    short = (got, length) =>
      new Error(`body ended after ${got} of ${length} bytes`),
  } = options;
  const reader = source.getReader();
  let remaining = length;
  let cancelled = false;
  const cut = (): void => {
    onExcess?.();
    reader.cancel(cutReason).catch(() => {});
  };
  // Every byte was handed on: wait for the end, drop anything more.
  const drain = async (): Promise<void> => {
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) return;
        if (value.length > 0) return cut();
      }
    } catch {
      // The source failed once the whole body was out: nothing to tell.
    }
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (remaining === 0) {
        controller.close();
        void drain();
        return;
      }
      let chunk;
      do chunk = await reader.read(); while (
        !chunk.done && !chunk.value.length
      );
      if (cancelled) return;
      if (chunk.done) {
        controller.error(short(length - remaining, length));
        return;
      }
      const value = chunk.value;
      if (value.length < remaining) {
        remaining -= value.length;
        controller.enqueue(value);
        return;
      }
      const excess = value.length > remaining;
      controller.enqueue(excess ? value.subarray(0, remaining) : value);
      remaining = 0;
      controller.close();
      if (excess) cut();
      else void drain();
    },
    cancel(reason) {
      cancelled = true;
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
