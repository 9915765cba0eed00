/**
 * {@linkcode renderError}: the one place an error status becomes a
 * response body (the built-in HTML/JSON page, or a custom HTML page).
 *
 * @module
 */

import { STATUS_CODES } from "node:http";
import { prefersJson } from "./negotiate.ts";
import { _sharedClone } from "./shared_response.ts";
import {
  _escapeHtml,
  _PAGE_CSS,
  _PAGE_CSS_HASH,
  _pageCsp,
} from "./page_style.ts";

/** The reason phrase of a status, e.g. `"Not Found"`. */
export function _reason(status: number): string {
  return STATUS_CODES[status] ?? "Error";
}

/** What a status means, in one plain sentence a visitor can read. */
const _MEANING: Readonly<Record<number, string>> = {
  400: "The server could not understand this request.",
  401: "This address needs you to sign in first.",
  403: "You are not allowed to see what is at this address.",
  404: "Nothing is at this address.",
  405: "This address does not accept that kind of request.",
  406: "The server cannot answer in a form your browser accepts.",
  408: "The request took too long to arrive, so the server stopped waiting.",
  409: "The request conflicts with what is at this address now.",
  410: "What was at this address has been removed for good.",
  411: "The request has to say how long its body is.",
  412: "The conditions the request set do not hold, so nothing was done.",
  413: "The request is larger than the server accepts.",
  414: "This address is longer than the server accepts.",
  415: "The server does not accept this kind of content.",
  416: "The part of the file that was asked for is not in it.",
  417: "The server cannot meet what the request expects.",
  421: "This connection cannot answer for this address.",
  422: "The server understood the request but cannot act on what it contains.",
  428: "The request has to be conditional.",
  429: "Too many requests arrived in a short time; try again later.",
  431: "The request's headers are larger than the server accepts.",
  451: "What is at this address cannot be shown for legal reasons.",
  500: "Something went wrong on the server.",
  501: "The server does not support what this request asks for.",
  502: "The program behind the server did not give a usable answer.",
  503: "The server cannot answer right now; try again in a moment.",
  504: "The program behind the server took too long to answer.",
  505: "The server does not support this version of HTTP.",
};

/** The sentence for `status` (a generic one for an unlisted 4xx or 5xx). */
export function _meaning(status: number): string {
  return _MEANING[status] ??
    (status >= 500
      ? "Something went wrong on the server."
      : "The server cannot answer this request.");
}

/** The built-in page's policy: its one inline style sheet, nothing else. */
const _CSP = _pageCsp([_PAGE_CSS_HASH]);

interface _Page {
  readonly html: Uint8Array<ArrayBuffer>;
  readonly htmlLength: string;
  readonly json: Uint8Array<ArrayBuffer>;
  readonly jsonLength: string;
  /**
   * The page as a whole response (no extra headers, not HEAD), cloned per
   * request: a clone shares the bytes, a new `Response` copies them. Made
   * for the statuses with a name (rendered once), not for others.
   */
  readonly htmlAnswer?: Response;
  readonly jsonAnswer?: Response;
}

function _render(status: number, answers: boolean): _Page {
  const reason = _reason(status);
  const encoder = new TextEncoder();
  const html = encoder.encode(_html(status, reason));
  const json = encoder.encode(JSON.stringify({ status, error: reason }) + "\n");
  const page = {
    html,
    htmlLength: String(html.byteLength),
    json,
    jsonLength: String(json.byteLength),
  };
  if (!answers) return page;
  return {
    ...page,
    htmlAnswer: _compose(status, _builtIn(page, false), undefined, false),
    jsonAnswer: _compose(status, _builtIn(page, true), undefined, false),
  };
}

/** Headers every error response carries. */
const _ownHeaders: readonly [string, string][] = [
  ["x-content-type-options", "nosniff"],
];

/**
 * The built-in pages of every error status with a name, rendered once when
 * the module loads (a table that never changes: nothing is shared between
 * requests, or isolates, but constants).
 */
const _PAGES: ReadonlyMap<number, _Page> = new Map(
  Object.keys(STATUS_CODES).map(Number).filter((s) => s >= 400)
    .map((s) => [s, _render(s, true)]),
);

function _page(status: number): _Page {
  return _PAGES.get(status) ?? _render(status, false);
}

function _html(status: number, reason: string): string {
  const title = _escapeHtml(`${status} ${reason}`);
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${title}</title>
<style>${_PAGE_CSS}</style></head><body>
<main class="err">
<h1>${title}</h1>
<p>${_meaning(status)}</p>
<p><a href="/">Go to the home page</a></p>
</main>
</body></html>
`;
}

/**
 * Builds a small error response: HTML by default, JSON when the client
 * prefers it, no body for HEAD. The built-in page has the status, its
 * reason, one plain sentence of what it means and a link to `/`, in the
 * look of the directory listing; never a path, a message or a stack. It is
 * rendered once per status and sent with a `Content-Security-Policy` that
 * allows only its own inline style.
 *
 * @example A 404 page
 * ```ts
 * import { renderError } from "./error_response.ts";
 * import assert from "node:assert/strict";
 *
 * const res = renderError(404, new Request("http://localhost/x"));
 * assert.equal(res.status, 404);
 * const html = await res.text();
 * assert.match(html, /404 Not Found/);
 * assert.match(html, /Nothing is at this address\./);
 * assert.match(html, /<a href="\/">/);
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
  const head = req.method === "HEAD";
  if (html !== undefined) {
    return _compose(status, _custom(html), headers, head);
  }
  const page = _page(status);
  const json = prefersJson(req);
  const answer = json ? page.jsonAnswer : page.htmlAnswer;
  if (answer !== undefined && headers === undefined && !head) {
    return _sharedClone(answer);
  }
  return _compose(status, _builtIn(page, json), headers, head);
}

/** An error response's body and the headers that describe it. */
interface _Body {
  readonly bytes: Uint8Array;
  /** Its own headers, after `x-content-type-options`. */
  readonly own: readonly [string, string][];
  /** What it varies on, if anything. */
  readonly vary?: string;
}

/** The built-in page, HTML or JSON (by `Accept`). */
function _builtIn(page: _Page, json: boolean): _Body {
  return json
    ? {
      bytes: page.json,
      own: [
        ["content-type", "application/json; charset=UTF-8"],
        ["content-length", page.jsonLength],
      ],
      vary: "Accept",
    }
    : {
      bytes: page.html,
      own: [
        ["content-type", "text/html; charset=UTF-8"],
        ["content-security-policy", _CSP],
        ["content-length", page.htmlLength],
      ],
      vary: "Accept",
    };
}

/** A custom page: always HTML, sent as it is (with its own policy, if any). */
function _custom(html: Uint8Array | string): _Body {
  const bytes = typeof html === "string"
    ? new TextEncoder().encode(html)
    : html;
  return {
    bytes,
    own: [
      ["content-type", "text/html; charset=UTF-8"],
      ["content-length", String(bytes.byteLength)],
    ],
  };
}

/**
 * The response: `headers` first (those named as the response's own give
 * way to them; a `Vary` is merged), then the response's own, as a list
 * (no Headers object and set() per error). The Response copies the bytes:
 * a cached page cannot be changed through it.
 */
function _compose(
  status: number,
  body: _Body,
  headers: HeadersInit | undefined,
  head: boolean,
): Response {
  const own: [string, string][] = [..._ownHeaders, ...body.own];
  let vary = body.vary;
  const list: [string, string][] = [];
  if (headers !== undefined) {
    for (const [name, value] of new Headers(headers)) {
      if (own.some(([n]) => n === name)) continue;
      if (name === "vary" && vary) {
        list.push(["vary", `${value}, ${vary}`]);
        vary = undefined;
      } else {
        list.push([name, value]);
      }
    }
  }
  if (vary) list.push(["vary", vary]);
  list.push(...own);
  return new Response(head ? null : body.bytes as BodyInit, {
    status,
    headers: list,
  });
}
