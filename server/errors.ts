/**
 * {@linkcode HttpError}: what a middleware throws to answer with an error page.
 *
 * @module
 */

/**
 * Options of {@linkcode HttpError}.
 *
 * @example A 503 with Retry-After
 * ```ts
 * import { HttpError, type HttpErrorOptions } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const options: HttpErrorOptions = {
 *   headers: { "retry-after": "120" },
 *   cause: new Error("database down"),
 * };
 * const error = new HttpError(503, "maintenance", options);
 * assert.equal(error.headers.get("retry-after"), "120");
 * assert.equal((error.cause as Error).message, "database down");
 * ```
 */
export interface HttpErrorOptions {
  /**
   * Headers the error response carries (e.g. `Allow`, `Retry-After`,
   * `Content-Range`).
   * @default {undefined}
   */
  headers?: HeadersInit;
  /**
   * The underlying error, logged server-side only.
   * @default {undefined}
   */
  cause?: unknown;
}

/**
 * An error that maps to an HTTP status. The error-page middleware renders it;
 * its message is logged, never sent to the client.
 *
 * @example Throwing a 404 from a middleware
 * ```ts
 * import { compose, HttpError } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const handler = compose([() => {
 *   throw new HttpError(404);
 * }]);
 * const res = await handler(new Request("http://localhost/"));
 * assert.equal(res.status, 404);
 * await res.body?.cancel();
 * ```
 */
export class HttpError extends Error {
  /** The HTTP status (400-599). */
  readonly status: number;
  /** Headers for the error response. */
  readonly headers: Headers;

  /**
   * Creates the error.
   *
   * @param status HTTP status code, 400-599.
   * @param message Server-side detail for the log.
   * @param options Headers and cause.
   */
  constructor(
    status: number,
    message?: string,
    options: HttpErrorOptions = {},
  ) {
    super(message ?? `HTTP ${status}`, { cause: options.cause });
    if (!Number.isInteger(status) || status < 400 || status > 599) {
      throw new RangeError(
        `Cannot create HttpError: status "${status}" is not 400-599`,
      );
    }
    this.name = "HttpError";
    this.status = status;
    this.headers = new Headers(options.headers);
  }
}

/**
 * Maps any thrown value to a status: {@linkcode HttpError} keeps its own,
 * `NotFound` → 404, `PermissionDenied`/`NotCapable` → 403, else 500.
 *
 * @example Mapping Deno errors
 * ```ts
 * import { statusOf } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(statusOf(new Deno.errors.NotFound("x")), 404);
 * assert.equal(statusOf(new Error("boom")), 500);
 * ```
 *
 * @param error Anything thrown.
 * @returns The status to answer with.
 */
export function statusOf(error: unknown): number {
  if (error instanceof HttpError) return error.status;
  if (error instanceof Deno.errors.NotFound) return 404;
  if (error instanceof Deno.errors.NotADirectory) return 404;
  if (
    error instanceof Deno.errors.PermissionDenied ||
    error instanceof Deno.errors.NotCapable
  ) return 403;
  return 500;
}
