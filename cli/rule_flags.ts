/**
 * The common site rules as flags: `--deny`, `--internal`, `--alias`,
 * `--redirect`, `--rewrite`, `--try-files`, `--basic-auth`. They come
 * after the config file's rules. Internal to the CLI.
 *
 * @module
 */

import type { HandlerRule } from "../handler/create_handler.ts";
import { siteRules } from "../rules/site_rules.ts";

/** The rule flags' lines of `--help`. */
export const RULE_USAGE =
  `  --deny PATH            Answer 403 for PATH: a prefix (/data/) or a glob
                         (**/*.bak) (repeatable)
  --internal PATH        Only rewrites and X-Accel-Redirect/X-Sendfile reach PATH;
                         clients get 404 (repeatable)
  --alias URL=DIR        Serve folder DIR at URL prefix (repeatable)
  --redirect "REGEX TARGET [STATUS]"
                         Redirect matching paths to TARGET ($1, $uri, $query…;
                         default 302) (repeatable)
  --rewrite "REGEX TARGET"
                         Rewrite matching paths inside the server (repeatable)
  --try-files "LIST"     For every path, the first of LIST that exists, else its
                         last entry, e.g. '$uri $uri/ /index.php?$query'
  --basic-auth [URL=]HTPASSWD
                         Require a user from HTPASSWD (bcrypt, htpasswd -B) for
                         URL prefix, or for the whole site (repeatable)
`;

/** The values of the rule flags. */
export interface RuleFlags {
  /** `--deny PATH`. */
  deny?: string[] | undefined;
  /** `--internal PATH`. */
  internal?: string[] | undefined;
  /** `--alias URL=DIR`. */
  alias?: string[] | undefined;
  /** `--redirect "REGEX TARGET [STATUS]"`. */
  redirect?: string[] | undefined;
  /** `--rewrite "REGEX TARGET"`. */
  rewrite?: string[] | undefined;
  /** `--try-files "LIST"`. */
  "try-files"?: string | undefined;
  /** `--basic-auth [URL=]HTPASSWD`. */
  "basic-auth"?: string[] | undefined;
}

/** A prefix, or a glob when it has glob characters. */
function _where(
  path: string,
  flag: string,
): { prefix: string } | { path: string } {
  if (/[*?[{]/.test(path)) return { path };
  if (!path.startsWith("/")) {
    throw new Error(
      `Invalid --${flag} "${path}": expected a URL path (/data/) or a glob (**/*.bak)`,
    );
  }
  return { prefix: path };
}

function _pair(text: string, flag: string, what: string): [string, string] {
  const at = text.indexOf("=");
  if (at <= 0 || at === text.length - 1 || !text.startsWith("/")) {
    throw new Error(`Invalid --${flag} "${text}": expected ${what}`);
  }
  return [text.slice(0, at), text.slice(at + 1)];
}

/**
 * Turns the rule flags into site rules (after the config file's), checked
 * at once: a mistake is a usage error naming the flag.
 *
 * @example Flags to rules
 * ```ts
 * import { ruleFlags } from "./rule_flags.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(
 *   ruleFlags({ deny: ["/data/"], "try-files": "$uri /index.php?$query" }),
 *   [{ prefix: "/data/", deny: true }, { prefix: "/", tryFiles: ["$uri", "/index.php?$query"] }],
 * );
 * assert.throws(() => ruleFlags({ rewrite: ["^/x"] }), /Invalid --rewrite/);
 * ```
 *
 * @param values The parsed flags.
 * @returns The rules, in flag order: deny, internal, basic-auth,
 *   redirect, rewrite, try-files, alias.
 */
export function ruleFlags(values: RuleFlags): HandlerRule[] {
  const rules: Array<[string, HandlerRule]> = [];
  for (const path of values.deny ?? []) {
    rules.push([`--deny "${path}"`, { ..._where(path, "deny"), deny: true }]);
  }
  for (const path of values.internal ?? []) {
    rules.push([`--internal "${path}"`, {
      ..._where(path, "internal"),
      internal: true,
    }]);
  }
  for (const spec of values["basic-auth"] ?? []) {
    const [prefix, file] = spec.includes("=")
      ? _pair(spec, "basic-auth", "URL=HTPASSWD or HTPASSWD")
      : ["/", spec];
    if (file === "") {
      throw new Error(`Invalid --basic-auth "${spec}": expected a file`);
    }
    rules.push([`--basic-auth "${spec}"`, { prefix, basicAuth: file }]);
  }
  for (const spec of values.redirect ?? []) {
    const parts = spec.trim().split(/\s+/);
    const status = parts.length === 3 ? Number(parts[2]) : undefined;
    if (parts.length < 2 || parts.length > 3 || Number.isNaN(status)) {
      throw new Error(
        `Invalid --redirect "${spec}": expected "REGEX TARGET [STATUS]"`,
      );
    }
    rules.push([`--redirect "${spec}"`, {
      regex: parts[0]!,
      redirect: parts[1]!,
      ...(status === undefined ? {} : { status: status as 301 }),
    }]);
  }
  for (const spec of values.rewrite ?? []) {
    const parts = spec.trim().split(/\s+/);
    if (parts.length !== 2) {
      throw new Error(`Invalid --rewrite "${spec}": expected "REGEX TARGET"`);
    }
    rules.push([`--rewrite "${spec}"`, {
      regex: parts[0]!,
      rewrite: parts[1]!,
    }]);
  }
  const tries = values["try-files"];
  if (tries !== undefined) {
    rules.push([`--try-files "${tries}"`, {
      prefix: "/",
      tryFiles: tries.trim().split(/\s+/),
    }]);
  }
  for (const spec of values.alias ?? []) {
    const [prefix, dir] = _pair(spec, "alias", "URL=DIR");
    rules.push([`--alias "${spec}"`, {
      prefix: prefix.endsWith("/") ? prefix : prefix + "/",
      alias: dir,
    }]);
  }
  rules.forEach(([flag, rule]) => {
    try {
      siteRules({ rules: [rule] });
      if (rule.alias !== undefined && !_isFolder(rule.alias)) {
        throw new Error(`"${rule.alias}" is not a folder`);
      }
    } catch (error) {
      const why = (error as Error).message.replace(/^rules\[0\](\.\w+)?: /, "");
      throw new Error(`Invalid ${flag}: ${why}`);
    }
  });
  return rules.map(([, rule]) => rule);
}

function _isFolder(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}
