/**
 * The `"rules"` of a config file: per-path header rules and site rules
 * (deny, internal, redirect, rewrite, try-files, alias, cgi, fastcgi, env,
 * fastcgi-params, fastcgi-index, basic-auth), checked at start with
 * messages that name the file, the rule and the key. Internal to the CLI.
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import {
  checkRuleMounts,
  type HandlerRule,
} from "../handler/create_handler.ts";
import type { HeaderRule } from "../middleware/headers.ts";
import { siteRules } from "../rules/site_rules.ts";

/** A config rule problem; the message names the file, rule and key. */
export class RuleConfigError extends Error {
  /**
   * Creates the error.
   *
   * @param message `serve.json: rules[3].rewrite: unknown placeholder $urx`.
   */
  constructor(message: string) {
    super(message);
    this.name = "RuleConfigError";
  }
}

/** The rules of one site, split by the middleware that applies them. */
export interface ConfigRules {
  /** `headers` / `cache-control` rules (setHeaders). */
  headers: HeaderRule[];
  /** Everything else (siteRules and the mounts). */
  site: HandlerRule[];
}

/** Config key → HandlerRule key, for the keys that differ. */
const _KEYS: Readonly<Record<string, keyof HandlerRule>> = {
  "try-files": "tryFiles",
  "basic-auth": "basicAuth",
  "fastcgi-index": "index",
};
/** HandlerRule key → config key, for messages. */
const _NAMES: Readonly<Record<string, string>> = {
  tryFiles: "try-files",
  basicAuth: "basic-auth",
  index: "fastcgi-index",
};
const _SITE_KEYS = new Set([
  "path",
  "prefix",
  "regex",
  "deny",
  "internal",
  "redirect",
  "status",
  "rewrite",
  "try-files",
  "alias",
  "cgi",
  "fastcgi",
  "env",
  "fastcgi-params",
  "fastcgi-index",
  "index",
  "basic-auth",
  "realm",
]);
/** Keys whose values are file-system paths (relative to the config file). */
const _PATHS = new Set(["alias", "cgi", "fastcgi", "basic-auth"]);

function _strings(
  at: string,
  value: unknown,
  fail: (why: string) => never,
): Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail(`"${at}" must be an object of names to strings`);
  }
  const out: Record<string, string> = {};
  for (const [name, v] of Object.entries(value as object)) {
    if (typeof v !== "string") fail(`"${at}.${name}" must be a string`);
    out[name] = v as string;
  }
  return out;
}

function _headerRule(
  at: string,
  rule: Record<string, unknown>,
  fail: (why: string) => never,
): HeaderRule | undefined {
  const { headers, "cache-control": cache } = rule;
  if (headers === undefined && cache === undefined) return undefined;
  if (typeof rule.path !== "string" || rule.path === "") {
    fail(`"${at}.headers" needs "path" (a glob) to say where`);
  }
  const pairs = Object.entries(
    headers === undefined ? {} : _strings(`${at}.headers`, headers, fail),
  );
  if (cache !== undefined) {
    if (typeof cache !== "string") {
      fail(`"${at}.cache-control" must be a string`);
    }
    pairs.push(["cache-control", cache as string]);
  }
  try {
    new Headers(pairs);
  } catch {
    fail(`"${at}.headers" has an invalid header name or value`);
  }
  return { path: rule.path as string, headers: pairs };
}

function _siteRule(
  file: string,
  at: string,
  rule: Record<string, unknown>,
  fail: (why: string) => never,
): HandlerRule | undefined {
  const out: Record<string, unknown> = {};
  let acts = false;
  for (const [key, value] of Object.entries(rule)) {
    if (!_SITE_KEYS.has(key)) continue;
    if (!["path", "prefix", "regex"].includes(key)) acts = true;
    if (key === "env" || key === "fastcgi-params") {
      out.env = {
        ...out.env as object,
        ..._strings(`${at}.${key}`, value, fail),
      };
      continue;
    }
    if (_PATHS.has(key) && typeof value === "string" && value !== "") {
      out[_KEYS[key] ?? key] = resolve(dirname(file), value) +
        (value.endsWith("/") ? "/" : "");
      continue;
    }
    if (key === "try-files" && !Array.isArray(value)) {
      fail(`"${at}.try-files" must be an array of targets`);
    }
    out[_KEYS[key] ?? key] = value;
  }
  return acts ? out as HandlerRule : undefined;
}

/**
 * Reads a config file's `"rules"` array: each rule has one matcher
 * (`"path"` glob, `"prefix"` or `"regex"`) and its actions; they are
 * compiled once here, so a mistake stops the server at start with the
 * file, the rule and the key: `serve.json: rules[3].rewrite: unknown
 * placeholder $urx`. Relative paths (`alias`, `cgi`, `fastcgi`,
 * `basic-auth`) are relative to the file's folder. {INT}
 *
 * @example Two rules
 * ```ts
 * import { rulesFromConfig } from "./rules_config.ts";
 * import assert from "node:assert/strict";
 *
 * const rules = rulesFromConfig("/srv/serve.json", [
 *   { path: "/assets/**", "cache-control": "max-age=60" },
 *   { prefix: "/data/", deny: 404 },
 * ]);
 * assert.equal(rules.headers.length, 1);
 * assert.deepEqual(rules.site, [{ prefix: "/data/", deny: 404 }]);
 * assert.throws(
 *   () => rulesFromConfig("serve.json", [{ path: "/**", rewrite: "/$urx" }]),
 *   /^RuleConfigError: serve.json: rules\[0\].rewrite: unknown placeholder \$urx$/,
 * );
 * ```
 *
 * @param file The config file (for messages and relative paths).
 * @param value The `"rules"` value.
 * @param key Where the rules sit in the file (`rules`, `sites[0].rules`).
 * @returns Header rules and site rules.
 * @throws {RuleConfigError} Naming the file, the rule and the key.
 */
export function rulesFromConfig(
  file: string,
  value: unknown,
  key = "rules",
): ConfigRules {
  if (!Array.isArray(value)) {
    throw new RuleConfigError(`${file}: "${key}" must be an array`);
  }
  const headers: HeaderRule[] = [];
  const site: HandlerRule[] = [];
  const places: string[] = [];
  value.forEach((rule, i) => {
    const at = `${key}[${i}]`;
    const fail = (why: string): never => {
      throw new RuleConfigError(`${file}: ${why}`);
    };
    if (typeof rule !== "object" || rule === null || Array.isArray(rule)) {
      fail(`"${at}" must be an object`);
    }
    const fields = rule as Record<string, unknown>;
    for (const name of Object.keys(fields)) {
      if (
        !_SITE_KEYS.has(name) && name !== "headers" && name !== "cache-control"
      ) {
        fail(`unknown key "${at}.${name}"`);
      }
    }
    const header = _headerRule(at, fields, fail);
    if (header) headers.push(header);
    const own = _siteRule(file, at, fields, fail);
    if (own) {
      site.push(own);
      places.push(at);
    }
    if (!header && !own) {
      fail(
        `"${at}" does nothing: give it an action (deny, rewrite, alias, headers, …)`,
      );
    }
  });
  _check(file, site, places);
  return { headers, site };
}

/** Compiles the site rules once, renaming their keys to the file's. */
function _check(file: string, site: HandlerRule[], places: string[]): void {
  const rename = (message: string) =>
    message.replace(
      /^rules\[(\d+)\](\.(\w+))?/,
      (_m, n: string, _d, k?: string) =>
        `${places[Number(n)]}${k ? "." + (_NAMES[k] ?? _kebab(k)) : ""}`,
    );
  try {
    siteRules({ rules: site });
    checkRuleMounts(site);
  } catch (error) {
    throw new RuleConfigError(`${file}: ${rename((error as Error).message)}`);
  }
  // What the rules name on disk must be there at start, not 404 later.
  site.forEach((rule, i) => {
    for (const key of ["alias", "cgi", "fastcgi"] as const) {
      const path = rule[key];
      if (typeof path !== "string") continue;
      let info: Deno.FileInfo;
      try {
        info = Deno.statSync(path);
      } catch {
        throw new RuleConfigError(
          `${file}: ${places[i]}.${key}: "${path}" does not exist`,
        );
      }
      if (key === "alias" && !info.isDirectory) {
        throw new RuleConfigError(
          `${file}: ${places[i]}.alias: "${path}" is not a folder`,
        );
      }
    }
  });
}

function _kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());
}
