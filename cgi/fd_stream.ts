/**
 * Web streams over a pipe's file descriptor: {@linkcode fdReadable} and
 * {@linkcode fdWritable} hand the descriptor to `node:net`, whose pipe
 * handle waits on it in Deno's event loop (epoll), so a read or a write
 * pins no thread, and closing the stream closes the descriptor even while
 * another process still holds the other end.
 *
 * @module
 */

import { Socket } from "node:net";
import { markChunkStream } from "./pipe_reader.ts";

/**
 * A readable byte stream of the pipe `fd`, which it owns: read only as fast
 * as it is pulled (the pipe fills and the writer blocks), closed at the end
 * of the pipe, and the descriptor closed at the end or on cancel.
 *
 * @example Reading the end of a pipe
 * ```ts ignore
 * import { fdReadable } from "./fd_stream.ts";
 *
 * const text = await new Response(fdReadable(fd)).text();
 * ```
 *
 * @param fd An open descriptor of the reading end of a pipe.
 * @returns The stream.
 */
export function fdReadable(fd: number): ReadableStream<Uint8Array> {
  const socket = new Socket({ fd, readable: true, writable: false });
  socket.pause();
  let done = false;
  return markChunkStream(
    new ReadableStream<Uint8Array>({
      start(controller) {
        socket.on("data", (chunk: Uint8Array) => {
          if (done) return;
          controller.enqueue(chunk);
          if ((controller.desiredSize ?? 0) <= 0) socket.pause();
        });
        socket.once("end", () => {
          if (done) return;
          done = true;
          controller.close();
        });
        socket.on("error", (error) => {
          if (done) return;
          done = true;
          controller.error(error);
        });
      },
      pull() {
        socket.resume();
      },
      cancel() {
        done = true;
        socket.destroy();
      },
    }, { highWaterMark: 0 }),
  );
}

/**
 * A writable stream into the pipe `fd`, which it owns: each write settles
 * once the pipe took the bytes (or rejects, e.g. `EPIPE` once the reader
 * is gone); close and abort close the descriptor.
 *
 * @example Writing to a pipe
 * ```ts ignore
 * import { fdWritable } from "./fd_stream.ts";
 *
 * await ReadableStream.from([new TextEncoder().encode("hi")])
 *   .pipeTo(fdWritable(fd));
 * ```
 *
 * @param fd An open descriptor of the writing end of a pipe.
 * @returns The stream.
 */
export function fdWritable(fd: number): WritableStream<Uint8Array> {
  const socket = new Socket({ fd, readable: false, writable: true });
  let failure: Error | undefined;
  const closed = new Promise<void>((resolve) => socket.once("close", resolve));
  // Without a listener an error (EPIPE) would be thrown as uncaught.
  socket.on("error", (error) => failure ??= error);
  return new WritableStream<Uint8Array>({
    write(chunk) {
      return new Promise<void>((resolve, reject) => {
        socket.write(chunk, (error) => error ? reject(error) : resolve());
      });
    },
    async close() {
      socket.end();
      await closed;
      if (failure) throw failure;
    },
    abort() {
      socket.destroy();
      return closed;
    },
  });
}
