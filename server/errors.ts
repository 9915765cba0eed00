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
 * The `errno` names of the file-system errors that mean "no file has this
 * name": nothing there (`ENOENT`), a file where a directory was expected
 * (`ENOTDIR`), a name or path longer than the file system takes
 * (`ENAMETOOLONG`), a symlink loop (`ELOOP`), a name that is not valid in
 * the file system's encoding (`EILSEQ`). Deno raises the first three as
 * `Deno.errors.NotFound`, `NotADirectory` and `FilesystemLoop`, the others
 * as a plain `Error` whose `code` names them.
 */
const _NO_SUCH_PATH = new Set([
  "ENOENT",
  "ENOTDIR",
  "ENAMETOOLONG",
  "ELOOP",
  "EILSEQ",
]);

/**
 * The `code` of an error (`"ENAMETOOLONG"`, `"EINVAL"`…), if it has one.
 *
 * @example Reading an errno name
 * ```ts
 * import { errorCode } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = Object.assign(new Error("File name too long"), {
 *   code: "ENAMETOOLONG",
 * });
 * assert.equal(errorCode(error), "ENAMETOOLONG");
 * assert.equal(errorCode(new Error("boom")), undefined);
 * ```
 *
 * @param error Anything thrown.
 * @returns Its string `code`, else `undefined`.
 */
export function errorCode(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" ? code : undefined;
}

/**
 * True for a file-system error that only says no file has the name asked
 * for (see the list above: `NotFound`, `NotADirectory`, `FilesystemLoop`,
 * `ENAMETOOLONG`, `EILSEQ`), whatever path a client sent: the server
 * answers it with 404, never 500.
 *
 * @example Telling a missing name from a failure
 * ```ts
 * import { isNoSuchPath } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const long = await Deno.stat("/" + "a".repeat(300)).catch((e) => e);
 * assert.equal(isNoSuchPath(long), true); // ENAMETOOLONG
 * assert.equal(isNoSuchPath(new Deno.errors.NotADirectory("x")), true);
 * assert.equal(isNoSuchPath(new Error("boom")), false);
 * ```
 *
 * @param error Anything thrown.
 * @returns Whether it means "no such file".
 */
export function isNoSuchPath(error: unknown): boolean {
  if (
    error instanceof Deno.errors.NotFound ||
    error instanceof Deno.errors.NotADirectory ||
    error instanceof Deno.errors.FilesystemLoop
  ) return true;
  const code = errorCode(error);
  return code !== undefined && _NO_SUCH_PATH.has(code);
}

/**
 * Maps any thrown value to a status: {@linkcode HttpError} keeps its own,
 * "no such file" errors ({@linkcode isNoSuchPath}: `NotFound`,
 * `NotADirectory`, `FilesystemLoop`, `ENAMETOOLONG`, `EILSEQ`) → 404,
 * `PermissionDenied`/`NotCapable` → 403, else 500.
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
  if (isNoSuchPath(error)) return 404;
  if (
    error instanceof Deno.errors.PermissionDenied ||
    error instanceof Deno.errors.NotCapable
  ) return 403;
  return 500;
}
