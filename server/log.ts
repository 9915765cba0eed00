/**
 * Server-side logging: the default sink and the one way an error becomes a
 * log line. Nothing here ever reaches a client.
 *
 * @module
 */

import type { LogFn } from "./types.ts";

/**
 * The default log sink: a timestamped line on stderr.
 *
 * @example Logging a line
 * ```ts
 * import { defaultLog } from "./log.ts";
 * defaultLog("info", "hello");
 * ```
 */
export const defaultLog: LogFn = function defaultLog(level, message) {
  console.error(`${new Date().toISOString()} ${level}: ${message}`);
};

/**
 * One line describing an error, its cause chain included (for the log,
 * never for clients).
 *
 * @example Describing a wrapped error
 * ```ts
 * import { describeError } from "./log.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new Error("read failed", { cause: new Deno.errors.NotFound("gone") });
 * assert.equal(describeError(error), "Error: read failed (cause: NotFound: gone)");
 * assert.equal(describeError("plain"), "plain");
 * ```
 *
 * @param error Anything thrown.
 * @returns The line.
 */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause ? ` (cause: ${describeError(error.cause)})` : "";
    return `${error.name}: ${error.message}${cause}`;
  }
  return String(error);
}

/**
 * The message of an error without its name or cause (for one-line CLI and
 * log messages).
 *
 * @example
 * ```ts
 * import { errorMessage } from "./log.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(errorMessage(new TypeError("bad")), "bad");
 * assert.equal(errorMessage(42), "42");
 * ```
 *
 * @param error Anything thrown.
 * @returns Its message.
 */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
