/**
 * The CGI/1.1 environment (RFC 3875 §4.1): {@linkcode buildCgiEnv} turns a
 * request into the meta-variables a script (CGI or FastCGI) receives.
 *
 * @module
 */

import type { Context, DocumentRoot } from "../server/types.ts";

/** The value of `SERVER_SOFTWARE` when none is given. */
const _SERVER_SOFTWARE = "x-serve";

/**
 * Options of {@linkcode buildCgiEnv}.
 *
 * @example Naming the script and its extra path
 * ```ts
 * import { buildCgiEnv, type CgiEnvOptions } from "./env.ts";
 * import assert from "node:assert/strict";
 *
 * const options: CgiEnvOptions = { scriptName: "/app.py", pathInfo: "/users/7", documentRoot: "/srv" };
 * const req = new Request("http://localhost/app.py/users/7");
 * const env = buildCgiEnv(req, { url: new URL(req.url), info: undefined }, options);
 * assert.equal(env.PATH_TRANSLATED, "/srv/users/7");
 * ```
 */
export interface CgiEnvOptions {
  /**
   * The decoded URL path that names the script, without `PATH_INFO`
   * (e.g. `"/cgi-bin/env.py"`). Becomes `SCRIPT_NAME`.
   * @default {""}
   */
  scriptName?: string;
  /**
   * The absolute file-system path of the script. Becomes `SCRIPT_FILENAME`
   * (php-cgi and PHP-FPM need it); omitted when empty.
   * @default {""}
   */
  scriptFilename?: string;
  /**
   * The decoded extra path after the script (`""` or starting with `/`).
   * Becomes `PATH_INFO`; `PATH_TRANSLATED` is derived from it and
   * {@linkcode CgiEnvOptions.documentRoot} when it is non-empty.
   * @default {""}
   */
  pathInfo?: string;
  /**
   * The document root. Becomes `DOCUMENT_ROOT`, and is the base of
   * `PATH_TRANSLATED`.
   * @default {undefined} (`ctx.root.path`, else no `DOCUMENT_ROOT`/`PATH_TRANSLATED`)
   */
  documentRoot?: string;
  /**
   * The exact length of the body the script will read on stdin, after
   * transfer-codings were removed. `undefined` means the request has no
   * body: `CONTENT_LENGTH` is then not set (RFC 3875 §4.1.2).
   * @default {undefined}
   */
  contentLength?: number;
  /**
   * Pass the `Authorization` header as `HTTP_AUTHORIZATION`. Off by default
   * (RFC 3875 §9.2): credentials only reach scripts that need them.
   * `Proxy-Authorization` is never passed.
   * @default {false}
   */
  passAuthorization?: boolean;
  /**
   * The `SERVER_SOFTWARE` product token.
   * @default {"x-serve"}
   */
  serverSoftware?: string;
  /**
   * The `SERVER_PROTOCOL`. `Deno.serve` does not tell the HTTP version of a
   * request, so it defaults to HTTP/1.1.
   * @default {"HTTP/1.1"}
   */
  serverProtocol?: string;
  /**
   * Extra variables, applied last (they override computed ones).
   * @default {{}}
   */
  extra?: Record<string, string>;
}

/** Request headers that never become `HTTP_*` variables. */
const _SKIPPED_HEADERS = new Set([
  "proxy", // httpoxy: HTTP_PROXY is read as an outbound proxy by many clients
  "proxy-authorization",
  "content-type", // carried as CONTENT_TYPE
  "content-length", // carried as CONTENT_LENGTH
  "transfer-encoding", // the script always gets a de-chunked body
]);

/** A header name we export: letters, digits and hyphens only (no `_` smuggling). */
const _EXPORTABLE_NAME = /^[A-Za-z0-9-]+$/;

/**
 * Header values arrive as byte strings (one char per byte). Turns them back
 * into the UTF-8 text they usually are, so the environment carries the
 * bytes the client sent; non-UTF-8 values stay as they are.
 */
function _headerText(value: string): string {
  let ascii = true;
  for (let i = 0; i < value.length; i++) {
    if (value.charCodeAt(i) > 0x7f) {
      ascii = false;
      break;
    }
  }
  if (ascii) return value;
  const bytes = Uint8Array.from(value, (c) => c.charCodeAt(0) & 0xff);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return value;
  }
}

/** The request target as the client sent it (`Deno.serve` keeps it raw in `req.url`). */
function _requestTarget(raw: string): string | undefined {
  const start = raw.indexOf("/", raw.indexOf("//") + 2);
  if (start === -1) return undefined;
  const hash = raw.indexOf("#", start);
  return hash === -1 ? raw.slice(start) : raw.slice(start, hash);
}

/**
 * The target as the client sent it; after a rewrite (`ctx.requestUrl` is
 * not the request's own URL), the original one.
 */
function _requestUri(req: Request, ctx: { url: URL; requestUrl?: URL }) {
  const original = ctx.requestUrl;
  if (original !== undefined && original !== ctx.url) {
    return original.pathname + original.search;
  }
  return _requestTarget(req.url) ?? ctx.url.pathname + ctx.url.search;
}

/** `[::1]` → `::1`: addresses in the environment carry no brackets. */
function _unbracket(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/**
 * Builds the CGI/1.1 environment of a request: every RFC 3875 meta-variable
 * (`AUTH_TYPE` and `REMOTE_USER` only via `extra`, since they need
 * server-side authentication), the de-facto ones scripts rely on
 * (`REQUEST_URI`, `SCRIPT_FILENAME`, `DOCUMENT_ROOT`, `REQUEST_SCHEME`,
 * `HTTPS`, `REMOTE_PORT`, `REDIRECT_STATUS=200` for php-cgi), and one
 * `HTTP_*` variable per request header.
 *
 * Rules:
 * - `QUERY_STRING` is the raw (still percent-encoded) query, `""` when none;
 *   `REQUEST_URI` is the request target as sent (dot segments kept).
 * - `SERVER_NAME`/`SERVER_PORT` come from the request URL (the `Host`
 *   header); the port falls back to 443/80 by scheme.
 * - Header names are upper-cased with every `-` turned into `_`. Names with
 *   any other character (e.g. `X_Forwarded_For`) are dropped, as are `Proxy`
 *   (httpoxy), `Proxy-Authorization`, `Content-Type`, `Content-Length`,
 *   `Transfer-Encoding`, and `Authorization` unless
 *   {@linkcode CgiEnvOptions.passAuthorization}. Repeated headers arrive
 *   joined (`Headers` joins them with `", "`).
 * - `PATH` and other process variables are not added: the caller decides.
 *
 * @example Building the environment of a request
 * ```ts
 * import { buildCgiEnv } from "./env.ts";
 * import assert from "node:assert/strict";
 *
 * const req = new Request("http://localhost:8000/cgi-bin/env.py/a%20b?x=1", {
 *   headers: { "x-custom": "v", proxy: "http://evil", authorization: "Basic eA==" },
 * });
 * const env = buildCgiEnv(req, { url: new URL(req.url), info: undefined }, {
 *   scriptName: "/cgi-bin/env.py",
 *   scriptFilename: "/srv/cgi-bin/env.py",
 *   pathInfo: "/a b",
 *   documentRoot: "/srv/www",
 * });
 * assert.equal(env.QUERY_STRING, "x=1");
 * assert.equal(env.PATH_INFO, "/a b");
 * assert.equal(env.PATH_TRANSLATED, "/srv/www/a b");
 * assert.equal(env.SERVER_PORT, "8000");
 * assert.equal(env.HTTP_X_CUSTOM, "v");
 * assert.equal(env.HTTP_PROXY, undefined);
 * assert.equal(env.HTTP_AUTHORIZATION, undefined);
 * assert.equal(env.CONTENT_LENGTH, undefined);
 * ```
 *
 * @param req The request (only its method and headers are read).
 * @param ctx The request's URL and connection info (a {@linkcode Context}
 *   fits).
 * @param options Script location, body length and policy.
 * @returns The environment, as a fresh object.
 */
export function buildCgiEnv(
  req: Request,
  ctx: Pick<Context, "url" | "info"> & {
    root?: Pick<DocumentRoot, "path"> | undefined;
    requestUrl?: URL;
  },
  options: CgiEnvOptions = {},
): Record<string, string> {
  const {
    scriptName = "",
    scriptFilename = "",
    pathInfo = "",
    documentRoot = ctx.root?.path,
    contentLength,
    passAuthorization = false,
    serverSoftware = _SERVER_SOFTWARE,
    serverProtocol = "HTTP/1.1",
    extra = {},
  } = options;
  const { url } = ctx;
  const https = url.protocol === "https:";
  const env: Record<string, string> = {
    GATEWAY_INTERFACE: "CGI/1.1",
    SERVER_SOFTWARE: serverSoftware,
    SERVER_PROTOCOL: serverProtocol,
    SERVER_NAME: _unbracket(url.hostname) || "localhost",
    SERVER_PORT: url.port || (https ? "443" : "80"),
    REQUEST_METHOD: req.method,
    REQUEST_SCHEME: https ? "https" : "http",
    REQUEST_URI: _requestUri(req, ctx),
    QUERY_STRING: url.search.slice(1),
    SCRIPT_NAME: scriptName,
    PATH_INFO: pathInfo,
    REDIRECT_STATUS: "200",
  };
  // SERVER_NAME is case-insensitive but IPv6 literals keep their brackets (RFC 3875 §4.1.14).
  if (url.hostname.startsWith("[")) env.SERVER_NAME = url.hostname;
  if (https) env.HTTPS = "on";
  if (scriptFilename) env.SCRIPT_FILENAME = scriptFilename;
  if (documentRoot !== undefined) {
    env.DOCUMENT_ROOT = documentRoot;
    if (pathInfo) {
      env.PATH_TRANSLATED = documentRoot.replace(/\/+$/, "") + pathInfo;
    }
  }
  const addr = ctx.info?.remoteAddr;
  if (addr && (addr.transport === "tcp" || addr.transport === "udp")) {
    env.REMOTE_ADDR = _unbracket(addr.hostname);
    env.REMOTE_HOST = env.REMOTE_ADDR;
    env.REMOTE_PORT = String(addr.port);
  }
  if (contentLength !== undefined) env.CONTENT_LENGTH = String(contentLength);
  _addHeaders(env, req.headers, passAuthorization);
  return Object.assign(env, extra);
}

/** Adds `CONTENT_TYPE` and one `HTTP_*` variable per exportable header. */
function _addHeaders(
  env: Record<string, string>,
  headers: Headers,
  passAuthorization: boolean,
): void {
  const contentType = headers.get("content-type");
  if (contentType) env.CONTENT_TYPE = _headerText(contentType);
  // forEach, not for…of: Deno's Headers iterator costs ~6× more per call.
  headers.forEach((value, name) => {
    if (_SKIPPED_HEADERS.has(name) || !_EXPORTABLE_NAME.test(name)) return;
    if (name === "authorization" && !passAuthorization) return;
    env["HTTP_" + name.toUpperCase().replaceAll("-", "_")] = _headerText(value);
  });
}
