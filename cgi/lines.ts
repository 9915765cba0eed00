/**
 * {@linkcode pumpLines}: reads a child process's output stream (stderr of a
 * CGI script, stdout/stderr of a FastCGI worker) line by line for the log,
 * draining it to the end so the child never blocks on a full pipe. Used by
 * CGI and FastCGI alike.
 *
 * @module
 */

import { pipeReader } from "./pipe_reader.ts";

/**
 * Options of {@linkcode pumpLines}.
 *
 * @example Logging at most 1 KiB of a child's stderr
 * ```ts
 * import { pumpLines, type PumpLinesOptions } from "./lines.ts";
 *
 * const options: PumpLinesOptions = { maxBytes: 1024, maxLineLength: 256 };
 * const stderr = new Response("warning: low disk\n").body!;
 * await pumpLines(stderr, (line) => console.error(line), options);
 * ```
 */
export interface PumpLinesOptions {
  /**
   * How many bytes of text are handed to `onLine` in total; the rest is
   * still read (drained) but only counted.
   * @default {Infinity}
   */
  maxBytes?: number;
  /**
   * The longest line kept in memory: a longer run without a line break is
   * handed on as a line of its own.
   * @default {65536}
   */
  maxLineLength?: number;
  /**
   * Stops reading (the stream is cancelled) when it aborts, e.g. when a
   * process exited but a background child keeps the pipe open.
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * Reads `stream` to its end (or until `signal` aborts), calling `onLine`
 * for each line (without its `\n`). Read errors end the pump quietly: the
 * process went away.
 *
 * @example Logging a process's stderr
 * ```ts
 * import { pumpLines } from "./lines.ts";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const stream = ReadableStream.from([new TextEncoder().encode("one\ntw"), new TextEncoder().encode("o\nthree")]);
 * const dropped = await pumpLines(stream, (line) => lines.push(line), { maxBytes: 8 });
 * assert.deepEqual(lines, ["one", "two"]);
 * assert.equal(dropped, 6);
 * ```
 *
 * @param stream The bytes to read.
 * @param onLine Receives each line, in order.
 * @param options Byte caps and an abort signal.
 * @returns How many bytes were read but not handed to `onLine`.
 */
export async function pumpLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
  options: PumpLinesOptions = {},
): Promise<number> {
  const { maxBytes = Infinity, maxLineLength = 65536, signal } = options;
  let logged = 0;
  let dropped = 0;
  let pending = "";
  const decoder = new TextDecoder();
  const emit = (line: string): void => {
    if (logged >= maxBytes) {
      dropped += line.length + 1;
      return;
    }
    logged += line.length + 1;
    onLine(line);
  };
  // Decoded at once: a view of one reused buffer will do.
  const reader = pipeReader(stream, { copy: false, initialBytes: 4096 });
  const stop = (): void => void reader.cancel().catch(() => {});
  if (signal?.aborted) stop();
  signal?.addEventListener("abort", stop, { once: true });
  let ended = false;
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) {
        ended = true;
        break;
      }
      pending += decoder.decode(value, { stream: true });
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) emit(line);
      if (pending.length > maxLineLength) {
        emit(pending);
        pending = "";
      }
    }
  } catch {
    // The process went away (or the pump was stopped).
  } finally {
    signal?.removeEventListener("abort", stop);
    // At the end the stream is done with; a release would only build the
    // TypeError that the spec rejects the reader's `closed` with (~50 µs a
    // CGI request in the profile).
    if (!ended) reader.releaseLock();
  }
  pending += decoder.decode();
  if (pending) emit(pending);
  return dropped;
}
