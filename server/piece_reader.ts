/**
 * {@linkcode pieceReader}: reads a body for a stream that wraps it — a byte
 * stream (a file's `readable`) in large pieces, so a JS pass over its bytes
 * costs fewer hops per MiB; any other stream chunk by chunk.
 *
 * @module
 */

/**
 * How to read a wrapped body: the next chunk (`undefined` at its end), and
 * a cancel that reaches the source.
 *
 * @example Reading a body to its end
 * ```ts
 * import { pieceReader, type PieceReader } from "./piece_reader.ts";
 * import assert from "node:assert/strict";
 *
 * const reader: PieceReader = pieceReader(new Response("hello").body!, 1024);
 * assert.equal(new TextDecoder().decode(await reader.read()), "hello");
 * assert.equal(await reader.read(), undefined);
 * ```
 */
export interface PieceReader {
  /** The next chunk, or `undefined` once the body ended. */
  read(): Promise<Uint8Array | undefined>;
  /** Cancels the body with `reason`. */
  cancel(reason?: unknown): Promise<void>;
}

/**
 * A reader of `body`: `pieceBytes` at a time for a byte stream (BYOB; each
 * read gets a fresh buffer, since enqueueing it elsewhere transfers it),
 * else its own chunks.
 *
 * @example A file read in 1 MiB pieces
 * ```ts ignore
 * import { pieceReader } from "./piece_reader.ts";
 * const reader = pieceReader((await Deno.open("big.bin")).readable, 1 << 20);
 * ```
 *
 * @param body The stream to read.
 * @param pieceBytes Bytes asked of a byte stream per read.
 * @returns The reader (it holds the stream's lock).
 */
export function pieceReader(
  body: ReadableStream<Uint8Array>,
  pieceBytes: number,
): PieceReader {
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = body.getReader({ mode: "byob" });
  } catch {
    // Not a byte stream: read its chunks as they come.
  }
  if (byob) {
    const reader = byob;
    return {
      read: async () => {
        const { done, value } = await reader.read(new Uint8Array(pieceBytes));
        return done ? undefined : value;
      },
      cancel: (reason) => reader.cancel(reason),
    };
  }
  const reader = body.getReader();
  return {
    read: async () => {
      const { done, value } = await reader.read();
      return done ? undefined : value;
    },
    cancel: (reason) => reader.cancel(reason),
  };
}
