/**
 * The CGI limit across `--workers` isolates: one `SharedArrayBuffer` per
 * site, counted with `Atomics`. Cell 0 holds the scripts running in every
 * isolate; cell `1 + i` those of worker `i`, so that the slots of a worker
 * that died can be given back. Internal to the CLI (not exported from
 * `mod.ts`).
 *
 * @module
 */

import type { CgiOptions } from "../cgi/cgi.ts";

/**
 * A shared count for `count` workers.
 *
 * @example Two workers under one limit
 * ```ts
 * import { createSlotBuffer, sharedSlots } from "./shared_slots.ts";
 * import assert from "node:assert/strict";
 *
 * const buffer = createSlotBuffer(2);
 * const a = sharedSlots(buffer, 0);
 * const b = sharedSlots(buffer, 1);
 * assert.ok(a.tryTake(1));
 * assert.ok(!b.tryTake(1));
 * a.release();
 * assert.ok(b.tryTake(1));
 * ```
 *
 * @param count How many workers share it.
 * @returns The buffer (to post to each worker).
 */
export function createSlotBuffer(count: number): SharedArrayBuffer {
  return new SharedArrayBuffer(4 * (1 + count));
}

/**
 * Worker `index`'s view of the shared count, for `CgiOptions.sharedSlots`,
 * with `retire()`: called as the worker says it is done, it makes later
 * releases no-ops (a script of a crashed run can finish after that, even
 * in a Worker being terminated); the main thread then gives back what the
 * index still holds ({@linkcode releaseWorkerSlots}), once, before a
 * replacement takes the index.
 *
 * @param buffer From {@linkcode createSlotBuffer}.
 * @param index The worker's index.
 * @returns The slots.
 */
export function sharedSlots(
  buffer: SharedArrayBuffer,
  index: number,
): NonNullable<CgiOptions["sharedSlots"]> & { retire(): void } {
  const cells = new Int32Array(buffer);
  let retired = false;
  return {
    retire() {
      retired = true;
    },
    count: () => Atomics.load(cells, 0),
    tryTake(limit) {
      if (retired) return false;
      for (;;) {
        const running = Atomics.load(cells, 0);
        if (running >= limit) return false;
        if (
          Atomics.compareExchange(cells, 0, running, running + 1) === running
        ) {
          Atomics.add(cells, 1 + index, 1);
          return true;
        }
      }
    },
    release() {
      if (retired) return;
      Atomics.sub(cells, 1 + index, 1);
      Atomics.sub(cells, 0, 1);
    },
  };
}

/**
 * Gives back the slots worker `index` still held (call once it is gone:
 * its scripts were killed with it).
 *
 * @example Releasing a dead worker's slots
 * ```ts
 * import { createSlotBuffer, releaseWorkerSlots, sharedSlots } from "./shared_slots.ts";
 * import assert from "node:assert/strict";
 *
 * const buffer = createSlotBuffer(1);
 * sharedSlots(buffer, 0).tryTake(4);
 * assert.equal(releaseWorkerSlots(buffer, 0), 1);
 * assert.equal(sharedSlots(buffer, 0).count(), 0);
 * ```
 *
 * @param buffer From {@linkcode createSlotBuffer}.
 * @param index The worker's index.
 * @returns How many it held.
 */
export function releaseWorkerSlots(
  buffer: SharedArrayBuffer,
  index: number,
): number {
  const cells = new Int32Array(buffer);
  const held = Atomics.exchange(cells, 1 + index, 0);
  Atomics.sub(cells, 0, held);
  return held;
}
