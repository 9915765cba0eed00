/**
 * {@linkcode compileMatcher}: which request paths a site rule applies to —
 * a path prefix, a glob or a regular expression.
 *
 * @module
 */

// @ts-types="@types/picomatch"
import picomatch from "picomatch";

/** How a rule names its paths: exactly one of the three. */
export interface RuleMatch {
  /**
   * A glob on the decoded path (`"/assets/**"`, `"**\/*.php"`; a glob
   * without `/` matches the last segment in any folder).
   * @default {undefined}
   */
  path?: string;
  /**
   * A URL path prefix: `"/data/"` matches `/data/` and everything below
   * it; `"/data"` also matches `/data` itself and `/data.txt`.
   * @default {undefined}
   */
  prefix?: string;
  /**
   * A regular expression on the decoded path (`"^/(conf|bin)/"`), as a
   * string or a `RegExp`; its groups are `$1`…, its named groups `${name}`.
   * @default {undefined}
   */
  regex?: string | RegExp;
}

/** What a match yields to templates. */
export interface MatchResult {
  /** `$0` (the whole match) and the numbered groups. */
  captures: readonly (string | undefined)[];
  /** Named groups. */
  named: Readonly<Record<string, string | undefined>>;
  /** The path after a prefix (`""` for globs and expressions). */
  rest: string;
}

/** A compiled matcher: the match, or `undefined` when the path is not one. */
export interface Matcher {
  /** Matches a decoded path. */
  (path: string): MatchResult | undefined;
  /** The prefix of a `prefix` matcher (its length orders mounts). */
  readonly prefix: string | undefined;
  /** How many numbered groups and which named groups templates may use. */
  readonly groups: { count: number; names: readonly string[] };
}

const _NONE: MatchResult = Object.freeze({
  captures: Object.freeze([]),
  named: Object.freeze({}),
  rest: "",
});

/**
 * Compiles the matcher of a rule (exactly one of `path`, `prefix`,
 * `regex`).
 *
 * @example The three kinds
 * ```ts
 * import { compileMatcher } from "./match.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(compileMatcher({ prefix: "/data/" })("/data/pages/a.txt")?.rest, "pages/a.txt");
 * assert.ok(compileMatcher({ path: "**\/*.php" })("/wp-admin/index.php"));
 * assert.equal(compileMatcher({ regex: "^/_media/(.*)" })("/_media/a.png")?.captures[1], "a.png");
 * assert.equal(compileMatcher({ prefix: "/data/" })("/database"), undefined);
 * ```
 *
 * @param rule The rule's matcher fields.
 * @returns The matcher.
 * @throws {TypeError} When none or several are given, or one is invalid.
 */
export function compileMatcher(rule: RuleMatch): Matcher {
  const given = (["path", "prefix", "regex"] as const).filter((k) =>
    rule[k] !== undefined
  );
  if (given.length !== 1) {
    throw new TypeError(
      given.length === 0
        ? 'needs one of "path", "prefix" or "regex"'
        : `has both "${given[0]}" and "${given[1]}": give one matcher`,
    );
  }
  if (rule.prefix !== undefined) return _prefix(rule.prefix);
  if (rule.regex !== undefined) return _regex(rule.regex);
  return _glob(rule.path!);
}

function _prefix(prefix: string): Matcher {
  if (typeof prefix !== "string" || !prefix.startsWith("/")) {
    throw new TypeError(`"prefix" must start with "/"`);
  }
  // "/data/" also matches "/data" (the folder without its slash, which
  // would otherwise slip past a deny).
  const bare = prefix.length > 1 && prefix.endsWith("/")
    ? prefix.slice(0, -1)
    : undefined;
  const match = (path: string): MatchResult | undefined => {
    if (path.startsWith(prefix)) {
      return { captures: [prefix], named: {}, rest: path.slice(prefix.length) };
    }
    if (path === bare) return { captures: [bare], named: {}, rest: "" };
    return undefined;
  };
  return Object.assign(match, { prefix, groups: { count: 0, names: [] } });
}

function _regex(source: string | RegExp): Matcher {
  let regex: RegExp;
  try {
    regex = source instanceof RegExp
      ? new RegExp(source.source, source.flags.replace(/[gy]/g, ""))
      : new RegExp(source, "u");
  } catch (error) {
    throw new TypeError(
      `"regex" is not a valid regular expression: ${(error as Error).message}`,
    );
  }
  // A probe match of the empty alternative counts the groups.
  const count = new RegExp(`${regex.source}|`, regex.flags).exec("")!.length -
    1;
  const names = [...regex.source.matchAll(/\(\?<([A-Za-z_$][\w$]*)>/g)].map(
    (m) => m[1]!,
  );
  const match = (path: string): MatchResult | undefined => {
    const found = regex.exec(path);
    if (!found) return undefined;
    return { captures: [...found], named: found.groups ?? {}, rest: "" };
  };
  return Object.assign(match, { prefix: undefined, groups: { count, names } });
}

function _glob(glob: string): Matcher {
  if (typeof glob !== "string" || glob === "") {
    throw new TypeError(`"path" must be a glob`);
  }
  // As per-path header rules: a glob without "/" matches in any folder.
  const test = picomatch(glob, { basename: !glob.includes("/"), dot: true });
  const match = (path: string): MatchResult | undefined =>
    test(path) ? _NONE : undefined;
  return Object.assign(match, {
    prefix: undefined,
    groups: { count: 0, names: [] },
  });
}
