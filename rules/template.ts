/**
 * {@linkcode compileTemplate}: the targets of `redirect`, `rewrite` and
 * `try-files` rules, with nginx-style placeholders (`$uri`, `$query`, `$1`).
 *
 * @module
 */

/** What a template's placeholders are filled from. */
export interface TemplateValues {
  /** The decoded, normalised request path (`$uri`). */
  uri: string;
  /** The query string without its `?` (`$query`, `$args`). */
  query: string;
  /** The original request target, still encoded (`$request_uri`). */
  requestUri: string;
  /** The request's host, without the port (`$host`). */
  host: string;
  /** `http` or `https` (`$scheme`). */
  scheme: string;
  /** The path after the rule's prefix (`$rest`); `""` for other matchers. */
  rest: string;
  /** Numbered captures: `$0` is the whole match, `$1`… the groups. */
  captures: readonly (string | undefined)[];
  /** Named captures (`${name}`). */
  named: Readonly<Record<string, string | undefined>>;
}

/** Fills a compiled template. */
export type Template = (values: TemplateValues) => string;

/** A template that cannot be compiled: the message names the problem. */
export class TemplateError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong (`unknown placeholder $urx`).
   */
  constructor(message: string) {
    super(message);
    this.name = "TemplateError";
  }
}

/** The named placeholders and how each is filled. */
const _NAMED: Readonly<Record<string, (v: TemplateValues) => string>> = {
  uri: (v) => v.uri,
  query: (v) => v.query,
  args: (v) => v.query,
  "is_args": (v) => v.query === "" ? "" : "?",
  "request_uri": (v) => v.requestUri,
  host: (v) => v.host,
  scheme: (v) => v.scheme,
  rest: (v) => v.rest,
};

/** `$$`, `${name}`, `$name` or `$1`. */
const _PLACEHOLDER =
  /\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*)|(\d))/g;

/**
 * Compiles a target once. Placeholders: `$uri`, `$query` (also `$args`),
 * `$is_args` (`?` when there is a query), `$request_uri`, `$host`,
 * `$scheme`, `$rest` (the path after a `prefix` rule's prefix), `$0`–`$9`
 * (regular-expression captures), `${name}` (named captures; `${uri}` works
 * too, to write `${uri}x`) and `$$` (a `$`). Captures need a `regex`
 * matcher with that many groups or names: `groups` says which exist.
 * A capture that did not take part in the match is empty.
 *
 * @example Filling a rewrite target
 * ```ts
 * import { compileTemplate } from "./template.ts";
 * import assert from "node:assert/strict";
 *
 * const target = compileTemplate("/doku.php?id=$1&$query", { count: 1, names: [] });
 * assert.equal(
 *   target({
 *     uri: "/wiki/start", query: "do=edit", requestUri: "/wiki/start?do=edit",
 *     host: "localhost", scheme: "http", rest: "", captures: ["/wiki/start", "wiki/start"], named: {},
 *   }),
 *   "/doku.php?id=wiki/start&do=edit",
 * );
 * assert.throws(() => compileTemplate("/$urx", { count: 0, names: [] }), /unknown placeholder \$urx/);
 * ```
 *
 * @param text The target as written.
 * @param groups How many numbered groups and which named groups the
 *   rule's matcher has.
 * @returns The filler.
 * @throws {TemplateError} For an unknown placeholder or a missing group.
 */
export function compileTemplate(
  text: string,
  groups: { count: number; names: readonly string[] },
): Template {
  const parts: Array<string | ((v: TemplateValues) => string)> = [];
  // Before the target's own "?", a filled-in path is still a path: its
  // "%", "?" and "#" are escaped so they stay in it.
  let inQuery = false;
  const literal = (piece: string): void => {
    if (piece.includes("$")) {
      throw new TemplateError(
        `"$" must start a placeholder (write $$ for a "$")`,
      );
    }
    if (piece.includes("?")) inQuery = true;
    parts.push(piece);
  };
  // Decoded values ($uri, $rest, captures) are escaped for where they land:
  // in the path so that they stay one path (no "?", "#", "\\" or
  // control character can end or bend it), in the query so that they stay
  // one value ("&", "+", "#", "%" escaped, as nginx's NGX_ESCAPE_ARGS).
  // Raw parts of the request ($query, $request_uri) are sent as they came.
  const value = (fill: (v: TemplateValues) => string, raw = false): void => {
    if (raw) parts.push(fill);
    else if (inQuery) parts.push((v) => _escapeArg(fill(v)));
    else parts.push((v) => _escapePath(fill(v)));
  };
  let last = 0;
  for (const match of text.matchAll(_PLACEHOLDER)) {
    const [whole, dollar, braced, bare, digit] = match;
    literal(text.slice(last, match.index));
    last = match.index + whole.length;
    if (dollar) {
      parts.push("$");
      continue;
    }
    if (digit !== undefined) {
      const n = Number(digit);
      if (n > groups.count) {
        throw new TemplateError(
          groups.count === 0
            ? `placeholder $${n} needs a "regex" matcher with a group`
            : `placeholder $${n}: the regex has only ${groups.count} group(s)`,
        );
      }
      value((v) => v.captures[n] ?? "");
      continue;
    }
    const name = (braced ?? bare)!;
    const fill = _NAMED[name];
    if (fill) {
      value(fill, _RAW.has(name));
    } else if (braced !== undefined && groups.names.includes(name)) {
      value((v) => v.named[name] ?? "");
    } else {
      throw new TemplateError(`unknown placeholder ${whole}`);
    }
  }
  literal(text.slice(last));
  const fixed = parts.filter((p) => p !== "");
  return function fillTemplate(values) {
    let out = "";
    for (const part of fixed) {
      out += typeof part === "string" ? part : part(values);
    }
    return out;
  };
}

/** Placeholders whose values are still encoded: never escaped again. */
const _RAW = new Set(["query", "args", "is_args", "request_uri", "scheme"]);

// deno-lint-ignore no-control-regex
const _UNSAFE_IN_PATH = /[%?#\\\x00-\x1f\x7f]/g;
// deno-lint-ignore no-control-regex
const _UNSAFE_IN_ARG = /[%?#&+\\\s\x00-\x1f\x7f]/g;

function _escape(c: string): string {
  return "%" + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0");
}

/** Keeps a decoded path one path inside a URL. */
function _escapePath(path: string): string {
  return path.replace(_UNSAFE_IN_PATH, _escape);
}

/** Keeps a decoded value one query value. */
function _escapeArg(value: string): string {
  return value.replace(_UNSAFE_IN_ARG, _escape);
}
