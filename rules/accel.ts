/**
 * {@linkcode serveAccel}: a script's `X-Accel-Redirect` (nginx) or
 * `X-Sendfile` (Apache, lighttpd) answer, served by the server itself.
 *
 * @module
 */

import { HttpError } from "../server/errors.ts";
import type { Context } from "../server/types.ts";

/** What a script asked the server to send. */
export type AccelTarget =
  /** `X-Accel-Redirect: /uri`: a decoded URL path (query apart). */
  | { kind: "uri"; path: string; search: string }
  /** `X-Sendfile: /abs/file`: a file path. */
  | { kind: "file"; path: string };

/**
 * Decides where a target may be served from: the URL path to dispatch, or
 * `undefined` when it lies outside every `internal` location.
 */
export type AccelCheck = (target: AccelTarget) => Promise<string | undefined>;

/** The request headers the served file answers by (ranges, validators, codings). */
const _KEPT_REQUEST = [
  "range",
  "if-range",
  "if-match",
  "if-none-match",
  "if-modified-since",
  "if-unmodified-since",
  "accept-encoding",
  "accept",
  "authorization",
  "cookie",
  "user-agent",
];

/** The script's headers that go with the file (as nginx passes them). */
const _KEPT_RESPONSE = [
  "content-type",
  "content-disposition",
  "cache-control",
  "expires",
  "set-cookie",
];

/** Reads the target from a script response's headers. */
function _target(headers: Headers): AccelTarget | string {
  const accel = headers.get("x-accel-redirect");
  if (accel !== null) {
    // As nginx's ngx_http_parse_unsafe_uri: one decoded segment is one
    // segment — no encoded "/" or "\\", no "." or "..", no NUL.
    const query = accel.indexOf("?");
    const raw = query === -1 ? accel : accel.slice(0, query);
    const search = query === -1 ? "" : accel.slice(query);
    if (!raw.startsWith("/")) {
      return `X-Accel-Redirect "${accel}" is not a path`;
    }
    const segments: string[] = [];
    for (const part of raw.split("/").slice(1)) {
      let segment: string;
      try {
        segment = decodeURIComponent(part);
      } catch {
        return `X-Accel-Redirect "${accel}" is not a URL path`;
      }
      if (
        segment === "." || segment === ".." || /[/\\\0]/.test(segment)
      ) {
        return `X-Accel-Redirect "${accel}" is an unsafe path`;
      }
      segments.push(segment);
    }
    return { kind: "uri", path: "/" + segments.join("/"), search };
  }
  const file = headers.get("x-sendfile") ??
    headers.get("x-lighttpd-send-file")!;
  if (!file.startsWith("/") || file.includes("\0")) {
    return `X-Sendfile "${file}" is not an absolute path`;
  }
  return { kind: "file", path: file };
}

/**
 * Serves what a script's `X-Accel-Redirect` (a URL path, as nginx reads
 * it) or `X-Sendfile` / `X-LIGHTTPD-send-file` (a file path) names: the
 * script's body is dropped and the path is run through the chain again as
 * an internal GET (HEAD stays HEAD) with the client's range, conditional
 * and coding headers, so ranges, 304s, the content type and compression
 * all work. `Content-Type`, `Content-Disposition`, `Cache-Control`,
 * `Expires` and `Set-Cookie` set by the script are kept. A target that
 * `allowed` refuses → 502 (with a log line); the headers never reach the
 * client.
 *
 * @example Serving an internal file
 * ```ts
 * import { compose } from "../server/compose.ts";
 * import { serveAccel } from "./accel.ts";
 * import assert from "node:assert/strict";
 *
 * const handler = compose([
 *   async (req, ctx, next) => {
 *     const res = await next();
 *     return res.headers.has("x-accel-redirect")
 *       ? serveAccel(req, ctx, res, (t) =>
 *         Promise.resolve(t.kind === "uri" && t.path.startsWith("/files/") ? t.path : undefined))
 *       : res;
 *   },
 *   (_req, ctx) =>
 *     ctx.url.pathname === "/app"
 *       ? new Response("ignored", { headers: { "x-accel-redirect": "/files/a.txt" } })
 *       : new Response(`file ${ctx.url.pathname}`),
 * ]);
 * const res = await handler(new Request("http://localhost/app"));
 * assert.equal(await res.text(), "file /files/a.txt");
 * assert.equal(res.headers.get("x-accel-redirect"), null);
 * ```
 *
 * @param req The request the script answered.
 * @param ctx Its context.
 * @param res The script's response (its body is discarded).
 * @param allowed Where the target may be served from.
 * @returns The served file's response.
 */
export async function serveAccel(
  req: Request,
  ctx: Context,
  res: Response,
  allowed: AccelCheck,
): Promise<Response> {
  await res.body?.cancel().catch(() => {});
  const target = _target(res.headers);
  const path = typeof target === "string" ? undefined : await allowed(target);
  if (path === undefined) {
    const what = typeof target === "string"
      ? target
      : `${target.kind === "uri" ? "X-Accel-Redirect" : "X-Sendfile"} ${
        JSON.stringify(target.path)
      } is outside every internal location`;
    throw new HttpError(502, `${ctx.path}: ${what}`);
  }
  const headers = new Headers();
  for (const name of _KEPT_REQUEST) {
    const value = req.headers.get(name);
    if (value !== null) headers.set(name, value);
  }
  const search = typeof target !== "string" && target.kind === "uri"
    ? target.search
    : "";
  const url = new URL(ctx.url);
  url.pathname = path.split("/").map(encodeURIComponent).join("/");
  url.search = search;
  const served = await ctx.dispatch(
    new Request(url, {
      method: req.method === "HEAD" ? "HEAD" : "GET",
      headers,
      signal: req.signal,
    }),
    { internal: true, fileOnly: true },
  );
  if (served.status >= 300 && served.status !== 304) return served;
  const out = new Headers(served.headers);
  for (const name of _KEPT_RESPONSE) {
    if (name === "set-cookie") {
      for (const cookie of res.headers.getSetCookie()) {
        out.append("set-cookie", cookie);
      }
      continue;
    }
    const value = res.headers.get(name);
    if (value !== null) out.set(name, value);
  }
  return new Response(served.body, {
    status: served.status,
    statusText: served.statusText,
    headers: out,
  });
}
