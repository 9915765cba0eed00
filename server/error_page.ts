/**
 * Error pages: {@linkcode renderError} and the {@linkcode errorPages}
 * middleware.
 *
 * @module
 */

import { STATUS_CODES } from "node:http";
import { _describe, HttpError, statusOf } from "./errors.ts";
import { prefersJson } from "./negotiate.ts";
import { findFile } from "./resolve.ts";
import type { Middleware } from "./types.ts";

/** The reason phrase of a status, e.g. `"Not Found"`. */
export function _reason(status: number): string {
  return STATUS_CODES[status] ?? "Error";
}

/**
 * Builds a small error response: HTML by default, JSON when the client
 * prefers it, no body for HEAD. It carries the status and reason only.
 *
 * @example A 404 page
 * ```ts
 * import { renderError } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const res = renderError(404, new Request("http://localhost/x"));
 * assert.equal(res.status, 404);
 * assert.match(await res.text(), /404 Not Found/);
 * ```
 *
 * @param status HTTP status (4xx/5xx).
 * @param req The request being answered.
 * @param headers Extra headers (e.g. `Allow`).
 * @param html A custom HTML body to use instead of the built-in page.
 * @returns The error response.
 */
export function renderError(
  status: number,
  req: Request,
  headers?: HeadersInit,
  html?: Uint8Array | string,
): Response {
  const reason = _reason(status);
  const out = new Headers(headers);
  out.set("x-content-type-options", "nosniff");
  // The built-in page is HTML or JSON by Accept; a custom page is always HTML.
  if (html === undefined) out.append("vary", "Accept");
  let body: string | Uint8Array;
  if (html === undefined && prefersJson(req)) {
    out.set("content-type", "application/json; charset=UTF-8");
    body = JSON.stringify({ status, error: reason }) + "\n";
  } else {
    out.set("content-type", "text/html; charset=UTF-8");
    body = html ??
      `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">` +
        `<meta name="viewport" content="width=device-width, initial-scale=1">` +
        `<title>${status} ${reason}</title><style>body{font-family:system-ui,sans-serif;margin:3rem auto;max-width:40rem;padding:0 1rem;color:#222}` +
        `@media (prefers-color-scheme:dark){body{background:#111;color:#ddd}}</style></head>` +
        `<body><h1>${status} ${reason}</h1></body></html>\n`;
  }
  const bytes = typeof body === "string"
    ? new TextEncoder().encode(body)
    : body;
  out.set("content-length", String(bytes.byteLength));
  return new Response(req.method === "HEAD" ? null : bytes as BodyInit, {
    status,
    headers: out,
  });
}

/**
 * Options of {@linkcode errorPages}.
 *
 * @example An explicit page for 500
 * ```ts
 * import { compose, errorPages, type ErrorPagesOptions } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const page = await Deno.makeTempFile({ suffix: ".html" });
 * await Deno.writeTextFile(page, "<h1>Sorry</h1>");
 * const options: ErrorPagesOptions = { pages: { 500: page } };
 * const handler = compose([errorPages(options), () => {
 *   throw new Error("boom");
 * }], { log: () => {} });
 * const res = await handler(new Request("http://localhost/"));
 * assert.equal(res.status, 500);
 * assert.equal(await res.text(), "<h1>Sorry</h1>");
 * await Deno.remove(page);
 * ```
 */
export interface ErrorPagesOptions {
  /**
   * A folder where `<status>.html` (e.g. `404.html`) replaces the built-in
   * page for that status (a symlink there must stay inside the folder).
   * @default {undefined} (no lookup)
   */
  root?: string;
  /**
   * Explicit pages: status → HTML file path. Wins over `root`.
   * @default {{}}
   */
  pages?: Record<number, string>;
}

/**
 * The outermost middleware: turns thrown errors into error pages. NotFound →
 * 404, permission errors → 403, {@linkcode HttpError} → its status, anything
 * else → 500 with a generic page and a log line. Pages never contain a path,
 * a message or a stack trace.
 *
 * @example A custom 404 page
 * ```ts
 * import { compose, errorPages, HttpError } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/404.html`, "<h1>Lost?</h1>");
 * const handler = compose([errorPages({ root: dir }), () => {
 *   throw new HttpError(404);
 * }]);
 * const res = await handler(new Request("http://localhost/nope"));
 * assert.equal(res.status, 404);
 * assert.equal(await res.text(), "<h1>Lost?</h1>");
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param options Custom pages.
 * @returns The middleware.
 */
export function errorPages(options: ErrorPagesOptions = {}): Middleware {
  const { root, pages = {} } = options;
  let realRoot: string | undefined;

  async function customPage(status: number): Promise<Uint8Array | undefined> {
    try {
      const configured = pages[status];
      if (configured !== undefined) return await Deno.readFile(configured);
      if (root === undefined) return undefined;
      // Same rules as any file under the root: no symlink out of it.
      realRoot ??= await Deno.realPath(root);
      const found = await findFile(realRoot, [`${status}.html`]);
      return found?.info.isFile ? await Deno.readFile(found.path) : undefined;
    } catch {
      return undefined;
    }
  }

  return async function errorPagesMiddleware(req, ctx, next) {
    try {
      return await next();
    } catch (error) {
      const status = statusOf(error);
      if (status >= 500) {
        ctx.log(
          "error",
          `${req.method} ${ctx.url.pathname}: ${_describe(error)}`,
        );
      }
      const headers = error instanceof HttpError ? error.headers : undefined;
      return renderError(status, req, headers, await customPage(status));
    }
  };
}
