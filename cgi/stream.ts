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
