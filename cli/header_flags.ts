/**
 * The header flags: `--header "Name: value"` and `--cache-control
 * GLOB=VALUE`, turned into `setHeaders()` options.
 *
 * @module
 */

import type { HeaderRule, SetHeadersOptions } from "../middleware/headers.ts";

/**
 * Parses `"Name: value"` as given to `--header`. Throws a `TypeError` naming
 * the problem when the name or value is invalid.
 *
 * @example Parsing a header flag
 * ```ts
 * import { parseHeader } from "./header_flags.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseHeader("X-Frame-Options: DENY"), ["X-Frame-Options", "DENY"]);
 * assert.throws(() => parseHeader("no colon"));
 * ```
 *
 * @param text `Name: value`.
 * @returns The name and the trimmed value.
 */
export function parseHeader(text: string): [string, string] {
  const colon = text.indexOf(":");
  const name = colon > 0 ? text.slice(0, colon).trim() : "";
  const value = colon > 0 ? text.slice(colon + 1).trim() : "";
  try {
    new Headers([[name, value]]);
  } catch {
    throw new TypeError(
      `Invalid --header "${text}": expected "Name: value"`,
    );
  }
  if (name === "") {
    throw new TypeError(
      `Invalid --header "${text}": expected "Name: value"`,
    );
  }
  return [name, value];
}

/**
 * Parses `--cache-control GLOB=VALUE` into a header rule. Throws a
 * `TypeError` naming the flag and what was expected.
 *
 * @example Parsing a cache rule
 * ```ts
 * import { parseCacheControl } from "./header_flags.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseCacheControl("/assets/**=max-age=60"), {
 *   path: "/assets/**",
 *   headers: [["cache-control", "max-age=60"]],
 * });
 * assert.throws(() => parseCacheControl("no-glob"));
 * ```
 *
 * @param spec `GLOB=VALUE`.
 * @returns The rule.
 */
export function parseCacheControl(spec: string): HeaderRule {
  const eq = spec.indexOf("=");
  if (eq < 1 || spec.slice(eq + 1).trim() === "") {
    throw new TypeError(
      `Invalid --cache-control "${spec}": expected GLOB=VALUE`,
    );
  }
  const value = spec.slice(eq + 1).trim();
  try {
    new Headers([["cache-control", value]]);
  } catch {
    throw new TypeError(
      `Invalid --cache-control "${spec}": the value is not a valid header value`,
    );
  }
  return {
    path: spec.slice(0, eq).trim(),
    headers: [["cache-control", value]],
  };
}

/**
 * The `setHeaders()` options for `--header` and `--cache-control` (after
 * the config file's rules), or `undefined` when none is given.
 *
 * @example Flags to options
 * ```ts
 * import { headerOptionsFromFlags } from "./header_flags.ts";
 * import assert from "node:assert/strict";
 *
 * const options = headerOptionsFromFlags({
 *   header: ["X-Frame-Options: DENY"],
 *   "cache-control": ["*.html=no-cache"],
 * }, []);
 * assert.deepEqual(options?.headers, [["X-Frame-Options", "DENY"]]);
 * assert.equal(options?.rules?.[0]?.path, "*.html");
 * assert.equal(headerOptionsFromFlags({ header: [], "cache-control": [] }, []), undefined);
 * ```
 *
 * @param values The parsed flags.
 * @param fileRules Rules from the config file (flags come after them).
 * @returns The options, or `undefined`.
 */
export function headerOptionsFromFlags(
  values: { header: string[]; "cache-control": string[] },
  fileRules: readonly HeaderRule[],
): SetHeadersOptions | undefined {
  const headers = values.header.map(parseHeader);
  const rules = [
    ...fileRules,
    ...values["cache-control"].map(parseCacheControl),
  ];
  return headers.length || rules.length ? { headers, rules } : undefined;
}
