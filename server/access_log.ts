/**
 * {@linkcode accessLog}: one line per request.
 *
 * @module
 */

import type { Middleware } from "./types.ts";

/** Options of {@linkcode accessLog}. */
export interface AccessLogOptions {
  /**
   * Where lines go.
   * @default {console.log}
   */
  write?: (line: string) => void;
}

/**
 * Logs one line per request once the response is ready: time, client
 * address, method, path (still percent-encoded, with the query), status,
 * body bytes (`-` when not known up front) and the handling time.
 *
 * @example Collecting log lines
 * ```ts
 * import { accessLog, compose } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const handler = compose([
 *   accessLog({ write: (l) => lines.push(l) }),
 *   () => new Response("hello", { headers: { "content-length": "5" } }),
 * ]);
 * await (await handler(new Request("http://localhost/a?b=1"))).text();
 * assert.match(lines[0]!, / GET \/a\?b=1 200 5 [\d.]+ms$/);
 * ```
 *
 * @param options The sink.
 * @returns The middleware.
 */
export function accessLog(options: AccessLogOptions = {}): Middleware {
  const write = options.write ?? ((line: string) => console.log(line));

  return async function accessLogMiddleware(req, ctx, next) {
    const started = performance.now();
    const remote = ctx.info?.remoteAddr && "hostname" in ctx.info.remoteAddr
      ? ctx.info.remoteAddr.hostname
      : "-";
    const line = (status: number, bytes: string) =>
      `${
        new Date().toISOString()
      } ${remote} ${req.method} ${ctx.url.pathname}${ctx.url.search} ` +
      `${status} ${bytes} ${(performance.now() - started).toFixed(1)}ms`;
    let res: Response;
    try {
      res = await next();
    } catch (error) {
      write(line(500, "-"));
      throw error;
    }
    write(line(res.status, res.headers.get("content-length") ?? "-"));
    return res;
  };
}
