/**
 * {@linkcode FastCgiError}: what the FastCGI client throws, carrying the HTTP
 * status the gateway answers with (502 or 504).
 *
 * @module
 */

/**
 * Options of {@linkcode FastCgiError}.
 *
 * @example Wrapping a socket error
 * ```ts
 * import { FastCgiError, type FastCgiErrorOptions } from "@x/serve/fastcgi";
 * import assert from "node:assert/strict";
 *
 * const options: FastCgiErrorOptions = { cause: new Deno.errors.ConnectionRefused("refused") };
 * const error = new FastCgiError(502, "Cannot connect", options);
 * assert.equal(error.stale, false);
 * ```
 */
export interface FastCgiErrorOptions {
  /**
   * A reused connection was found dead before any byte of the request went
   * out, so the request may be retried once on a fresh connection.
   * @default {false}
   */
  stale?: boolean;
  /**
   * The underlying error (logged only).
   * @default {undefined}
   */
  cause?: unknown;
}

/**
 * A failure talking to a FastCGI responder. `status` is 502 (refused,
 * reset, malformed or rejected) or 504 (a timeout).
 *
 * @example Mapping to a status
 * ```ts
 * import { FastCgiError } from "@x/serve/fastcgi";
 * import assert from "node:assert/strict";
 *
 * const error = new FastCgiError(504, "Timed out waiting for the first byte");
 * assert.equal(error.status, 504);
 * ```
 */
export class FastCgiError extends Error {
  /** 502 or 504. */
  readonly status: 502 | 504;
  /** True when a retry on a fresh connection is safe. */
  readonly stale: boolean;

  /**
   * Creates the error.
   *
   * @param status 502 or 504.
   * @param message Server-side detail.
   * @param options Stale flag and cause.
   */
  constructor(
    status: 502 | 504,
    message: string,
    options: FastCgiErrorOptions = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "FastCgiError";
    this.status = status;
    this.stale = options.stale ?? false;
  }
}
