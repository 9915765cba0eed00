/**
 * {@linkcode Deadlines}: many timeouts on one timer. A request that would
 * make and clear a timer or two of its own (each a `Timeout` object and
 * two runtime calls in Deno 2.9, ~20 µs of CPU per request on this path)
 * adds an entry to a set instead; the one timer is armed only for an entry
 * earlier than the one it waits for, and clearing an entry never touches
 * it (it fires, finds nothing due and re-arms for the next, or stops).
 *
 * @module
 */

/** A pending deadline of {@linkcode Deadlines.add}. */
export interface Deadline {
  /**
   * When it expires, on the monotonic clock of `performance.now()` (a
   * change of the system clock moves no deadline).
   */
  readonly at: number;
}

interface _Entry extends Deadline {
  readonly onExpire: () => void;
  /** Keeps the process alive while pending (see Deadlines.add). */
  readonly ref: boolean;
}

/**
 * A set of deadlines sharing one timer, which does not keep the process
 * alive by itself (what waits for a deadline — a socket, a request — does)
 * unless a pending deadline was added with `ref`.
 * Callbacks run at or soon after their time, from the timer. An error one
 * throws is reported as uncaught (`reportError`), as a timer's would be;
 * where an error handler keeps the process alive, the others still run.
 *
 * @example A read timeout, cleared when the data comes
 * ```ts
 * import { Deadlines } from "./deadlines.ts";
 * import assert from "node:assert/strict";
 *
 * const deadlines = new Deadlines();
 * const { promise: data, resolve } = Promise.withResolvers<string>();
 * const timeout = deadlines.add(5_000, () => console.error("no data in 5 s"));
 * setTimeout(() => resolve("data"), 10); // what keeps the process alive
 * assert.equal(await data, "data");
 * deadlines.clear(timeout);
 * assert.equal(deadlines.size, 0);
 * deadlines.close();
 * ```
 */
export class Deadlines {
  readonly #pending = new Set<_Entry>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #armedAt = Infinity;
  #closed = false;
  /** Pending deadlines added with `ref`: the timer keeps the process alive. */
  #refs = 0;

  /** Deadlines added and neither cleared nor expired yet. */
  get size(): number {
    return this.#pending.size;
  }

  /**
   * Runs `onExpire` once `ms` milliseconds have passed, unless the
   * deadline is cleared first. After {@linkcode Deadlines.close} it never
   * runs. As with `setTimeout`, a negative or `NaN` delay means now;
   * `Infinity` means never (any finite delay is kept, however long).
   *
   * @param ms Milliseconds from now.
   * @param onExpire What to do then.
   * @param ref Keep the process alive until it is due or cleared (for a
   *   wait that nothing else keeps alive), as a plain timer would.
   * @returns The deadline, for {@linkcode Deadlines.clear}.
   */
  add(ms: number, onExpire: () => void, ref = false): Deadline {
    const delay = ms > 0 ? ms : 0; // NaN too
    const entry: _Entry = { at: performance.now() + delay, onExpire, ref };
    if (this.#closed) return entry;
    this.#pending.add(entry);
    if (ref && this.#refs++ === 0 && this.#timer !== undefined) {
      Deno.refTimer(this.#timer);
    }
    if (entry.at < this.#armedAt) this.#arm(entry.at);
    return entry;
  }

  /**
   * Forgets `deadline` (its callback will not run); cheap, and a no-op
   * for one already expired or cleared.
   *
   * @param deadline What {@linkcode Deadlines.add} returned.
   */
  clear(deadline: Deadline): void {
    if (this.#pending.delete(deadline as _Entry)) this.#unref(deadline);
  }

  /** Counts a ref'd deadline gone; the timer stops holding the process. */
  #unref(deadline: Deadline): void {
    if (!(deadline as _Entry).ref) return;
    if (--this.#refs === 0 && this.#timer !== undefined) {
      Deno.unrefTimer(this.#timer);
    }
  }

  /** Forgets every deadline and stops the timer (idempotent). */
  close(): void {
    this.#closed = true;
    this.#pending.clear();
    this.#refs = 0;
    this.#disarm();
  }

  #arm(at: number): void {
    this.#disarm();
    this.#armedAt = at;
    // At most what a timer takes (~24.8 days; longer would fire at once):
    // a later deadline is armed again when this fires.
    this.#timer = setTimeout(
      () => this.#fire(),
      Math.min(_MAX_DELAY, Math.max(0, at - performance.now())),
    );
    if (this.#refs === 0) Deno.unrefTimer(this.#timer);
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedAt = Infinity;
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedAt = Infinity;
    const now = performance.now();
    const due: _Entry[] = [];
    let next = Infinity;
    for (const entry of this.#pending) {
      if (entry.at <= now) due.push(entry);
      else if (entry.at < next) next = entry.at;
    }
    // Armed before the callbacks run, so those adding deadlines see it.
    if (next !== Infinity) this.#arm(next);
    for (const entry of due) {
      // One cleared by an earlier callback of this round does not run.
      if (!this.#pending.delete(entry)) continue;
      this.#unref(entry);
      try {
        entry.onExpire();
      } catch (error) {
        reportError(error);
      }
    }
  }
}

/** The longest delay `setTimeout` keeps (2^31 - 1 ms). */
const _MAX_DELAY = 0x7fffffff;
