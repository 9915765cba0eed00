/**
 * Giving freed memory back: {@linkcode startMemoryTrim} calls glibc's
 * `malloc_trim(0)` while glibc holds freed memory.
 *
 * glibc keeps what a program frees in its arenas for reuse instead of
 * returning it to the system, and Deno's per-connection state (its HTTP
 * engine's buffers) is allocated there: after 5 000 idle connections
 * closed, the server stayed 31–54 MiB above its baseline for good; one
 * `malloc_trim(0)` brought it back to it (measured here, Deno 2.9.6). Deno
 * calls it itself only after loading modules, when a Worker ends, and on
 * SIGUSR2 when started with `DENO_USR2_MEMORY_TRIM` set (see
 * denoland/deno#28880).
 *
 * The call goes through FFI, so it runs only where FFI on the C library is
 * already granted (`-A`, `--allow-ffi`, or `--allow-ffi=` its path): it
 * never prompts, and `--print-permissions` leaves it out, since FFI lets
 * code call anything in the library, outside Deno's sandbox. Elsewhere
 * (other systems, musl, glibc before 2.33, no permission) nothing runs.
 *
 * @module
 */

import { openLibc } from "../server/libc.ts";

/** What {@linkcode startMemoryTrim} is told. Internal to the CLI. */
export interface MemoryTrimOptions {
  /**
   * How often the allocator is asked what it holds free, in milliseconds.
   *
   * @default {10000}
   */
  everyMs?: number;
  /**
   * The freed memory the allocator must hold for a trim, in bytes; that
   * much more freed since the last trim calls for one at once.
   *
   * @default {16777216}
   */
  minFree?: number;
  /**
   * Reads the resident size, in bytes.
   *
   * @default {() => Deno.memoryUsage().rss}
   */
  residentSize?: () => number;
  /**
   * The allocator's side: the bytes it holds free (glibc's
   * `mallinfo2().fordblks`, every arena) and the trim.
   *
   * @default {glibc's `mallinfo2()` and `malloc_trim(0)` through FFI, when it is granted}
   */
  allocator?: MemoryAllocator | undefined;
  /**
   * Told, once, why the trim stopped when a look failed.
   *
   * @default {a `warning:` line on stderr}
   */
  onError?: (error: unknown) => void;
}

/** The allocator's side of {@linkcode MemoryTrimOptions}. */
export interface MemoryAllocator {
  /** Bytes freed by the program and held by the allocator. */
  freeBytes(): number | Promise<number>;
  /** Hands what it can of them back to the system. */
  trim(): void | Promise<void>;
}

/** A running trim; `stop()` ends it. */
export interface MemoryTrim {
  /**
   * Stops looking (the C library is closed once a call in progress has
   * returned). Safe to call twice.
   */
  stop(): void;
}

/** Less than this of change is none (bytes). */
const _STILL = 1048576;

/** The most looks skipped after trims that gave nothing back. */
const _MAX_SKIP = 32;

// Both on Deno's blocking threads: the JavaScript thread never waits for
// them (a trim of 100 MiB takes 5–20 ms), and neither gets a JIT-compiled
// fast path, which costs 2 MiB more (measured here).
const _SYMBOLS = {
  malloc_trim: { parameters: ["usize"], result: "i32", nonblocking: true },
  // struct mallinfo2: ten size_t; the ninth, fordblks, is the free bytes.
  mallinfo2: {
    parameters: [],
    result: { struct: Array(10).fill("usize") },
    nonblocking: true,
  },
} as const;

/**
 * glibc's allocator (2.33 or later, for `mallinfo2`), when this is Linux
 * and FFI on the C library is granted (see `server/libc.ts`).
 */
function _openGlibc():
  | (MemoryAllocator & { close(): void })
  | undefined {
  const lib = openLibc(_SYMBOLS);
  if (lib === undefined) return undefined;
  const { malloc_trim, mallinfo2 } = lib.symbols;
  return {
    async freeBytes() {
      const info = await mallinfo2();
      return Number(new BigUint64Array(info.buffer, info.byteOffset, 10)[8]);
    },
    async trim() {
      await malloc_trim(0n);
    },
    close: () => lib.close(),
  };
}

/**
 * Every `everyMs`, asks the allocator how much freed memory it holds and,
 * when that is at least `minFree`, trims:
 *
 * - at once when `minFree` more has been freed since the last trim
 *   (connections closed);
 * - else unless nothing moved since the last trim (free bytes and resident
 *   size both within 1 MiB of what they were just after it): freed bytes
 *   stay counted as free after a trim, only their pages go back, so the
 *   free figure cannot tell a heap already trimmed from one whose pages were
 *   used and freed again; the resident size can;
 * - a trim that gave back less than 1 MiB doubles the looks skipped before
 *   the next such one (up to 32, about 5 minutes), so a busy server whose
 *   free memory is all in use again soon is not trimmed for nothing.
 *
 * Memory the program uses is never a reason to trim. The calls run off the
 * JavaScript thread; the timer does not keep the process alive. Call it
 * once per process (the main thread: a trim covers every thread's arenas).
 *
 * @example Trimming when freed memory has piled up
 * ```ts
 * import { startMemoryTrim } from "./memory_trim.ts";
 * import assert from "node:assert/strict";
 *
 * let free = 0;
 * let trims = 0;
 * const running = startMemoryTrim({
 *   everyMs: 5,
 *   minFree: 10 * 1048576,
 *   residentSize: () => 100 * 1048576,
 *   allocator: { freeBytes: () => free, trim: () => void trims++ },
 * });
 * free = 40 * 1048576; // connections closed: memory free, not given back
 * await new Promise((resolve) => setTimeout(resolve, 50));
 * running?.stop();
 * assert.equal(trims, 1); // once: nothing moved after it
 * ```
 *
 * @param options How often, how much free memory, and the allocator to ask.
 * @returns The running trim, or `undefined` when there is nothing to call.
 */
export function startMemoryTrim(
  options: MemoryTrimOptions = {},
): MemoryTrim | undefined {
  const {
    everyMs = 10_000,
    minFree = 16 * 1048576,
    residentSize = () => Deno.memoryUsage().rss,
    onError = (error: unknown) =>
      console.error(`warning: memory trim stopped: ${String(error)}`),
  } = options;
  const glibc = options.allocator === undefined ? _openGlibc() : undefined;
  const found = options.allocator ?? glibc;
  if (found === undefined) return undefined;
  const allocator: MemoryAllocator = found;
  // Just after the last trim.
  let lastFree = NaN;
  let lastSize = NaN;
  let skip = 0; // looks to skip before a trim that nothing called for
  let skipNext = 0; // the same after the next trim that gives nothing back
  let looking = false;
  let stopped = false;
  const close = () => {
    clearInterval(timer);
    glibc?.close();
  };
  async function look(): Promise<void> {
    const free = await allocator.freeBytes();
    if (stopped || free < minFree) return;
    const size = residentSize();
    if (!(free - lastFree >= minFree)) {
      const still = Math.abs(free - lastFree) < _STILL &&
        Math.abs(size - lastSize) < _STILL;
      if (still) return;
      if (skip > 0) return void skip--;
    }
    await allocator.trim();
    if (stopped) return;
    lastSize = residentSize();
    lastFree = await allocator.freeBytes();
    if (size - lastSize >= _STILL) skipNext = 0;
    else skipNext = Math.min(_MAX_SKIP, Math.max(1, skipNext * 2));
    skip = skipNext;
  }
  const timer = setInterval(function tick() {
    if (looking || stopped) return;
    looking = true;
    look().catch((error) => {
      if (stopped) return;
      stopped = true;
      onError(error);
    }).finally(() => {
      looking = false;
      if (stopped) close();
    });
  }, everyMs);
  Deno.unrefTimer(timer as unknown as number);
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      // A call in progress finishes first (then the tick closes).
      if (!looking) close();
    },
  };
}
