/**
 * {@linkcode accessLog}: one line per request, as text, Common or Combined
 * Log Format, or JSON lines.
 *
 * @module
 */

import type { Middleware } from "../server/types.ts";

/**
 * Access-log line formats: `text` (readable), `common` / `combined`
 * (Apache/nginx, for log tools) or `json` (one object per line).
 *
 * @example Choosing a format
 * ```ts
 * import { accessLog, type AccessLogFormat, compose } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const format: AccessLogFormat = "json";
 * const lines: string[] = [];
 * const handler = compose([
 *   accessLog({ format, write: (l) => lines.push(l) }),
 *   () => new Response("ok"),
 * ]);
 * await (await handler(new Request("http://localhost/a"))).text();
 * assert.equal(JSON.parse(lines[0]!).path, "/a");
 * ```
 */
export type AccessLogFormat = "text" | "common" | "combined" | "json";

/**
 * Options of {@linkcode accessLog}.
 *
 * @example Combined Log Format into an array
 * ```ts
 * import { accessLog, type AccessLogOptions, compose } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const options: AccessLogOptions = {
 *   format: "combined",
 *   write: (line) => lines.push(line),
 * };
 * const handler = compose([accessLog(options), () => new Response("ok")]);
 * const req = new Request("http://localhost/", { headers: { "user-agent": "curl/8" } });
 * await (await handler(req)).text();
 * assert.match(lines[0]!, /"GET \/ HTTP\/1\.1" 200 - "-" "curl\/8"$/);
 * ```
 */
export interface AccessLogOptions {
  /**
   * Where lines go.
   * @default {console.log}
   */
  write?: (line: string) => void;
  /**
   * `text` (ISO time, client, method, path, status, bytes, duration),
   * `common` / `combined` (Apache/nginx formats, for log tools) or `json`
   * (one object per line).
   * @default {"text"}
   */
  format?: AccessLogFormat;
  /**
   * Colour the status in `text` lines (for terminals).
   * @default {false}
   */
  color?: boolean;
}

const _MONTHS = [
  "Jan",
  "Feb",
  "Mar",
  "Apr",
  "May",
  "Jun",
  "Jul",
  "Aug",
  "Sep",
  "Oct",
  "Nov",
  "Dec",
];

function _clfTime(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${p(d.getUTCDate())}/${
    _MONTHS[d.getUTCMonth()]
  }/${d.getUTCFullYear()}:` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${
      p(d.getUTCSeconds())
    } +0000`;
}

function _quote(value: string | null): string {
  if (value === null) return "-";
  const escaped = value.replace(/["\\]/g, (c) => `\\${c}`);
  // Header values can still hold tabs and other controls: drop them.
  // deno-lint-ignore no-control-regex
  return escaped.replace(/[\x00-\x1f\x7f]/g, "");
}

function _colored(status: number): string {
  const code = status >= 500
    ? 31
    : status >= 400
    ? 33
    : status >= 300
    ? 36
    : 32;
  return `\x1b[${code}m${status}\x1b[0m`;
}

/**
 * Logs one line per request once the response is ready. Paths are logged
 * still percent-encoded (with the query), so a line never holds a raw
 * control character. Body bytes are the `Content-Length` (`-` when the body
 * is streamed without one). The protocol in Common/Combined lines is
 * `HTTP/1.1`: Deno does not tell a handler which version the client used.
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
 * @param options The sink and the format.
 * @returns The middleware.
 */
export function accessLog(options: AccessLogOptions = {}): Middleware {
  const write = options.write ?? ((line: string) => console.log(line));
  const { format = "text", color = false } = options;

  return async function accessLogMiddleware(req, ctx, next) {
    // An internal re-dispatch (CGI local redirect) is part of the request
    // already being logged.
    if (ctx.depth > 0) return next();
    const started = performance.now();
    const remote = ctx.info?.remoteAddr && "hostname" in ctx.info.remoteAddr
      ? ctx.info.remoteAddr.hostname
      : "-";
    const line = (status: number, bytes: string) => {
      const now = new Date();
      const target = `${ctx.url.pathname}${ctx.url.search}`;
      const ms = performance.now() - started;
      switch (format) {
        case "json":
          return JSON.stringify({
            time: now.toISOString(),
            remote,
            method: req.method,
            path: target,
            status,
            bytes: bytes === "-" ? null : Number(bytes),
            duration_ms: Number(ms.toFixed(3)),
            referer: req.headers.get("referer"),
            user_agent: req.headers.get("user-agent"),
          });
        case "common":
        case "combined": {
          const base = `${remote} - - [${
            _clfTime(now)
          }] "${req.method} ${target} HTTP/1.1" ${status} ${bytes}`;
          return format === "common"
            ? base
            : `${base} "${_quote(req.headers.get("referer"))}" "${
              _quote(req.headers.get("user-agent"))
            }"`;
        }
        default:
          return `${now.toISOString()} ${remote} ${req.method} ${target} ` +
            `${color ? _colored(status) : status} ${bytes} ${ms.toFixed(1)}ms`;
      }
    };
    // next() always resolves: an error further in is already its error
    // response, with its real status.
    const res = await next();
    write(line(res.status, res.headers.get("content-length") ?? "-"));
    return res;
  };
}
