/**
 * {@linkcode slowAbort}: an abort signal that follows a request's own
 * `signal` only once its answer is slow to come. Reading `req.signal` makes
 * `Deno.serve` watch the connection for a cancel (an extra async op, ~50 µs
 * of CPU per request here), so a quick FastCGI answer never touches it.
 *
 * @module
 */

import type { Deadline, Deadlines } from "../../server/deadlines.ts";

/**
 * The signal and its switch-off; see {@linkcode slowAbort}.
 *
 * @example Stopping the watch once the answer is complete
 * ```ts
 * import { type SlowAbort, slowAbort } from "./slow_abort.ts";
 * import { Deadlines } from "../../server/deadlines.ts";
 * import assert from "node:assert/strict";
 *
 * const deadlines = new Deadlines();
 * const watch: SlowAbort = slowAbort(new Request("http://localhost/"), 50, deadlines);
 * watch.stop();
 * assert.equal(deadlines.size, 0);
 * ```
 */
export interface SlowAbort {
  /** Aborts when the client goes away, once `afterMs` have passed. */
  readonly signal: AbortSignal;
  /** Stops following the request (the answer is complete). */
  stop(): void;
}

/**
 * A signal that aborts when `req.signal` does, watched from `afterMs`
 * after the call on (earlier aborts are seen then, as `aborted`).
 *
 * @example A client that went away is seen after the delay
 * ```ts
 * import { slowAbort } from "./slow_abort.ts";
 * import { Deadlines } from "../../server/deadlines.ts";
 * import assert from "node:assert/strict";
 *
 * const client = new AbortController();
 * const request = new Request("http://localhost/", { signal: client.signal });
 * const watch = slowAbort(request, 10, new Deadlines());
 * client.abort();
 * assert.equal(watch.signal.aborted, false);
 * // (In a server the open request keeps the process alive meanwhile.)
 * const hold = setTimeout(() => {}, 1_000);
 * await new Promise((resolve) => watch.signal.addEventListener("abort", resolve));
 * clearTimeout(hold);
 * watch.stop();
 * ```
 *
 * @param req The request.
 * @param afterMs Milliseconds before `req.signal` is watched.
 * @param deadlines Where the delay is kept (one timer for many requests).
 * @returns The signal and `stop()`.
 */
export function slowAbort(
  req: Request,
  afterMs: number,
  deadlines: Deadlines,
): SlowAbort {
  const controller = new AbortController();
  let follow: (() => void) | undefined;
  let delay: Deadline | undefined = deadlines.add(
    afterMs,
    function watchRequest() {
      delay = undefined;
      const signal = req.signal;
      if (signal.aborted) return controller.abort(signal.reason);
      follow = () => controller.abort(signal.reason);
      signal.addEventListener("abort", follow, { once: true });
    },
  );
  function stop(): void {
    if (delay !== undefined) deadlines.clear(delay);
    delay = undefined;
    if (follow) req.signal.removeEventListener("abort", follow);
    follow = undefined;
  }
  return { signal: controller.signal, stop };
}
