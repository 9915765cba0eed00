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
  /** When it expires (`Date.now()` milliseconds). */
  readonly at: number;
}

interface _Entry extends Deadline {
  readonly onExpire: () => void;
}

/**
 * A set of deadlines sharing one timer, which never keeps the process
 * alive by itself (what waits for a deadline — a socket, a request — does).
 * Callbacks run at or soon after their time, from the timer (as a
 * timer's callback would).
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

  /** Deadlines added and neither cleared nor expired yet. */
  get size(): number {
    return this.#pending.size;
  }

  /**
   * Runs `onExpire` once `ms` milliseconds have passed, unless the
   * deadline is cleared first. After {@linkcode Deadlines.close} it never
   * runs.
   *
   * @param ms Milliseconds from now.
   * @param onExpire What to do then.
   * @returns The deadline, for {@linkcode Deadlines.clear}.
   */
  add(ms: number, onExpire: () => void): Deadline {
    const entry: _Entry = { at: Date.now() + ms, onExpire };
    if (this.#closed) return entry;
    this.#pending.add(entry);
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
    this.#pending.delete(deadline as _Entry);
  }

  /** Forgets every deadline and stops the timer (idempotent). */
  close(): void {
    this.#closed = true;
    this.#pending.clear();
    this.#disarm();
  }

  #arm(at: number): void {
    this.#disarm();
    this.#armedAt = at;
    this.#timer = setTimeout(
      () => this.#fire(),
      Math.max(0, at - Date.now()),
    );
    Deno.unrefTimer(this.#timer);
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedAt = Infinity;
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedAt = Infinity;
    const now = Date.now();
    const due: _Entry[] = [];
    let next = Infinity;
    for (const entry of this.#pending) {
      if (entry.at <= now) due.push(entry);
      else if (entry.at < next) next = entry.at;
    }
    for (const entry of due) this.#pending.delete(entry);
    // Armed before the callbacks run, so those adding deadlines see it.
    if (next !== Infinity) this.#arm(next);
    for (const entry of due) entry.onExpire();
  }
}
