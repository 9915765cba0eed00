/**
 * {@linkcode renderError}: the one place an error status becomes a
 * response body (the built-in HTML/JSON page, or a custom HTML page).
 *
 * @module
 */

import { STATUS_CODES } from "node:http";
import { prefersJson } from "./negotiate.ts";

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
 * import { renderError } from "./error_response.ts";
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
