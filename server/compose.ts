/**
 * {@linkcode compose}: builds a middleware chain into a fetch handler.
 *
 * @module
 */

import { HttpError, statusOf } from "./errors.ts";
import { renderError } from "./error_response.ts";
import { defaultLog, describeError } from "./log.ts";
import type {
  Context,
  DispatchOptions,
  Handler,
  LogFn,
  Middleware,
  Next,
} from "./types.ts";

/**
 * Options of {@linkcode compose}.
 *
 * @example Collecting server-side errors
 * ```ts
 * import { compose, type ComposeOptions } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const logged: string[] = [];
 * const options: ComposeOptions = {
 *   log: (level, message) => logged.push(`${level}: ${message}`),
 *   maxDispatchDepth: 3,
 * };
 * const handler = compose([() => {
 *   throw new Error("boom");
 * }], options);
 * const res = await handler(new Request("http://localhost/x"));
 * assert.equal(res.status, 500);
 * assert.match(logged[0]!, /^error: GET \/x: Error: boom/);
 * await res.body?.cancel();
 * ```
 */
export interface ComposeOptions {
  /**
   * Where server-side messages (errors, script stderr) go.
   * @default {defaultLog} (timestamped lines on stderr)
   */
  log?: LogFn;
  /**
   * How many internal re-dispatches (`ctx.dispatch`, e.g. CGI local
   * redirects) one request may cause before it fails with 500.
   * @default {10}
   */
  maxDispatchDepth?: number;
}

/** A host name, an IPv4 address or a bracketed IPv6 one, with a port. */
const _HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9.])?|\[[0-9A-Fa-f:.]+\])?(?::\d{0,5})?$/;

/**
 * Builds the chain once and returns a `Deno.serve` handler. Each request gets
 * a fresh {@linkcode Context}; a middleware that calls `next()` twice gets an
 * error. When no middleware answers, the result is 404.
 *
 * This is the one error path: an error a middleware throws becomes its error
 * response right there (HTML or JSON by `Accept`, via `renderError`; 5xx
 * logged with the request line, details never sent), and is recorded as
 * {@linkcode Context.failure}. So `next()` always resolves, and every
 * middleware outside the thrower (access log, CORS, headers, your own) sees
 * the final response with its real status.
 *
 * @example Two middlewares
 * ```ts
 * import { compose } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const handler = compose([
 *   async (_req, _ctx, next) => {
 *     const res = await next();
 *     res.headers.set("x-outer", "1");
 *     return res;
 *   },
 *   () => new Response("inner"),
 * ]);
 * const res = await handler(new Request("http://localhost/"));
 * assert.equal(await res.text(), "inner");
 * assert.equal(res.headers.get("x-outer"), "1");
 * ```
 *
 * @param middlewares The chain, outermost first.
 * @param options Logging and re-dispatch limits.
 * @returns A fetch handler.
 */
export function compose(
  middlewares: readonly Middleware[],
  options: ComposeOptions = {},
): Handler {
  const { log = defaultLog, maxDispatchDepth = 10 } = options;
  const chain = [...middlewares];
  /** The last Host that passed the check. */
  let goodHost: string | undefined;

  function fail(error: unknown, req: Request, ctx: Context): Response {
    const status = statusOf(error);
    if (status >= 500) {
      log(
        "error",
        `${req.method} ${ctx.url.pathname}: ${describeError(error)}`,
      );
    }
    const headers = error instanceof HttpError ? error.headers : undefined;
    return answer(status, error, headers, req, ctx);
  }

  function answer(
    status: number,
    error: unknown,
    headers: Headers | undefined,
    req: Request,
    ctx: Context,
  ): Response {
    const response = renderError(status, req, headers);
    ctx.failure = {
      status,
      error,
      headers: headers ?? new Headers(),
      response,
    };
    return response;
  }

  function run(req: Request, ctx: Context, index: number): Promise<Response> {
    const mw = chain[index];
    if (!mw) {
      // The common miss: a 404 without an Error (and its stack) per request.
      return Promise.resolve(answer(404, undefined, undefined, req, ctx));
    }
    let called = false;
    const next: Next = () => {
      if (called) {
        return Promise.reject(new Error("next() called more than once"));
      }
      called = true;
      return run(req, ctx, index + 1);
    };
    try {
      const out = mw(req, ctx, next);
      if (out instanceof Response) return Promise.resolve(out);
      return out.then(undefined, (error) => fail(error, req, ctx));
    } catch (error) {
      return Promise.resolve(fail(error, req, ctx));
    }
  }

  function handle(
    req: Request,
    info: Deno.ServeHandlerInfo | undefined,
    depth: number,
    outer?: Context,
    fileOnly = false,
  ): Promise<Response> {
    let url: URL;
    try {
      url = new URL(req.url);
    } catch {
      return Promise.resolve(renderError(400, req));
    }
    // The request URL is built from Host: a Host that is not a name or an
    // address (with a port) would bend its path (`a\\@b`, `b/x`) or its
    // site (RFC 9112 §3.2: 400, as nginx answers).
    const host = depth === 0 ? req.headers.get("host") : null;
    if (host !== null && host !== goodHost) {
      if (!_HOST.test(host)) return Promise.resolve(renderError(400, req));
      goodHost = host; // a site's requests name the same host: test it once
    }
    const segments = url.pathname.split("/").filter((s) => s !== "");
    const ctx: Context = {
      url,
      info,
      segments,
      path: url.pathname,
      base: "",
      requestUrl: outer?.requestUrl ?? url,
      scriptVars: outer?.scriptVars,
      fileOnly,
      root: undefined,
      file: undefined,
      served: undefined,
      failure: undefined,
      depth,
      log,
      dispatch(inner: Request, options?: DispatchOptions): Promise<Response> {
        if (depth + 1 > maxDispatchDepth) {
          return Promise.reject(
            new HttpError(
              500,
              `Internal redirect limit (${maxDispatchDepth}) exceeded for ${url.pathname}`,
            ),
          );
        }
        return handle(
          inner,
          info,
          depth + 1,
          options?.internal ? ctx : undefined,
          options?.fileOnly,
        );
      },
    };
    return run(req, ctx, 0);
  }

  return function composedHandler(req, info) {
    return handle(req, info, 0);
  };
}
