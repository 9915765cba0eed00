/**
 * {@linkcode cgiOptionsFromFlags}: turns the CLI's `--cgi*` flags into
 * {@linkcode CgiOptions}, validating them.
 *
 * @module
 */

import { join } from "node:path";
import { type CgiOptions, DEFAULT_CGI_INTERPRETERS } from "../cgi/cgi.ts";

/**
 * The raw `--cgi*` flag values, as `parseArgs` returns them.
 *
 * @example Flags as parseArgs gives them
 * ```ts
 * import { type CgiFlags, cgiOptionsFromFlags } from "./cgi_flags.ts";
 * import assert from "node:assert/strict";
 *
 * const flags: CgiFlags = { cgi: true, "cgi-max-concurrent": "8" };
 * assert.equal(cgiOptionsFromFlags(flags, ".")?.maxConcurrent, 8);
 * ```
 */
export interface CgiFlags {
  /** `--cgi`: ROOT/cgi-bin at /cgi-bin/. */
  cgi?: boolean;
  /** `--cgi-dir URL=DIR` (repeatable). */
  "cgi-dir"?: string[];
  /** `--cgi-timeout SECONDS`. */
  "cgi-timeout"?: string;
  /** `--cgi-interpreter .EXT=CMD` (repeatable). */
  "cgi-interpreter"?: string[];
  /** `--cgi-max-concurrent N`. */
  "cgi-max-concurrent"?: string;
  /** `--cgi-pass-auth`. */
  "cgi-pass-auth"?: boolean;
  /** `--cgi-pass-env NAME` (repeatable). */
  "cgi-pass-env"?: string[];
}

/**
 * The `--help` lines of the CGI flags.
 *
 * @example Printing them
 * ```ts
 * import { CGI_USAGE } from "./cgi_flags.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(CGI_USAGE, /--cgi-timeout SECONDS/);
 * ```
 */
export const CGI_USAGE =
  `  --cgi                  Run executables under ROOT/cgi-bin/ as CGI scripts at /cgi-bin/
  --cgi-dir URL=DIR      Run scripts in DIR as CGI at URL prefix (repeatable)
  --cgi-timeout SECONDS  Kill a script silent for this long: 504 (default 60)
  --cgi-interpreter .EXT=CMD
                         Run *.EXT scripts with CMD (repeatable; ".EXT=" removes;
                         defaults .php=php-cgi .py=python3 .pl=perl)
  --cgi-max-concurrent N Scripts running at once; more get 503 (default 64)
  --cgi-pass-auth        Pass the Authorization header to scripts
  --cgi-pass-env NAME    Pass the server's variable NAME to scripts (repeatable)
`;

function _number(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < min) {
    throw new TypeError(
      `Invalid --${flag} "${value}": expected a number of at least ${min}`,
    );
  }
  return n;
}

/** The flags that only make sense with `--cgi` or `--cgi-dir`. */
const _DEPENDENT_FLAGS = [
  "cgi-timeout",
  "cgi-interpreter",
  "cgi-max-concurrent",
  "cgi-pass-auth",
  "cgi-pass-env",
] as const;

/** Throws for a dependent flag given without `--cgi` or `--cgi-dir`. */
function _refuseDependents(flags: CgiFlags): void {
  for (const flag of _DEPENDENT_FLAGS) {
    const value = flags[flag];
    if (
      value !== undefined && value !== false &&
      !(Array.isArray(value) && value.length === 0)
    ) {
      throw new TypeError(`--${flag} needs --cgi or --cgi-dir`);
    }
  }
}

/** `--cgi` and every `--cgi-dir URL=DIR` as the `dirs` option. */
function _dirs(flags: CgiFlags, root: string): Record<string, string> {
  const dirs: Record<string, string> = {};
  if (flags.cgi) dirs["/cgi-bin/"] = join(root, "cgi-bin");
  for (const entry of flags["cgi-dir"] ?? []) {
    const eq = entry.indexOf("=");
    const url = entry.slice(0, eq);
    const dir = entry.slice(eq + 1);
    if (eq === -1 || !url.startsWith("/") || dir === "") {
      throw new TypeError(
        `Invalid --cgi-dir "${entry}": expected URL=DIR, e.g. /scripts/=./scripts`,
      );
    }
    dirs[url.endsWith("/") ? url : url + "/"] = dir;
  }
  return dirs;
}

/** The default interpreters changed by every `--cgi-interpreter .EXT=CMD`. */
function _interpreters(
  flags: CgiFlags,
): Record<string, string | readonly string[]> {
  const interpreters: Record<string, string | readonly string[]> = {
    ...DEFAULT_CGI_INTERPRETERS,
  };
  for (const entry of flags["cgi-interpreter"] ?? []) {
    const eq = entry.indexOf("=");
    const ext = entry.slice(0, eq).toLowerCase();
    if (eq === -1 || !/^\.[a-z0-9_-]+$/.test(ext)) {
      throw new TypeError(
        `Invalid --cgi-interpreter "${entry}": expected .EXT=CMD, e.g. .py=python3`,
      );
    }
    const command = entry.slice(eq + 1).trim().split(/\s+/).filter((s) =>
      s !== ""
    );
    if (command.length === 0) delete interpreters[ext];
    else interpreters[ext] = command;
  }
  return interpreters;
}

/** The validated `--cgi-pass-env` names. */
function _passEnv(flags: CgiFlags): string[] {
  const names = flags["cgi-pass-env"] ?? [];
  for (const name of names) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new TypeError(
        `Invalid --cgi-pass-env "${name}": expected a variable name`,
      );
    }
  }
  return names;
}

/**
 * Builds the gateway options from the flags; `undefined` when neither
 * `--cgi` nor `--cgi-dir` is given. Throws a `TypeError` with a
 * user-facing message for invalid values. `--cgi-timeout` is in seconds,
 * as every duration flag; the option it sets, `timeoutMs`, in milliseconds.
 *
 * @example Parsing flags
 * ```ts
 * import { cgiOptionsFromFlags } from "./cgi_flags.ts";
 * import assert from "node:assert/strict";
 *
 * const options = cgiOptionsFromFlags({
 *   cgi: true,
 *   "cgi-dir": ["/tools/=/srv/tools"],
 *   "cgi-interpreter": [".rb=ruby -w", ".pl="],
 *   "cgi-timeout": "30",
 * }, "/srv/www");
 * assert.deepEqual(options?.dirs, { "/cgi-bin/": "/srv/www/cgi-bin", "/tools/": "/srv/tools" });
 * assert.deepEqual(options?.interpreters?.[".rb"], ["ruby", "-w"]);
 * assert.equal(options?.interpreters?.[".pl"], undefined);
 * assert.equal(options?.timeoutMs, 30_000);
 * assert.equal(cgiOptionsFromFlags({}, "."), undefined);
 * assert.throws(() => cgiOptionsFromFlags({ "cgi-dir": ["nope"] }, "."), TypeError);
 * ```
 *
 * @param flags The parsed flag values.
 * @param root The document root (for `--cgi`).
 * @returns The options, or `undefined`.
 */
export function cgiOptionsFromFlags(
  flags: CgiFlags,
  root: string,
): CgiOptions | undefined {
  if (!flags.cgi && (flags["cgi-dir"] ?? []).length === 0) {
    _refuseDependents(flags);
    return undefined;
  }
  const options: CgiOptions = {
    dirs: _dirs(flags, root),
    interpreters: _interpreters(flags),
  };
  const timeout = flags["cgi-timeout"];
  if (timeout !== undefined) {
    options.timeoutMs = Math.round(
      _number("cgi-timeout", timeout, 0.001) * 1000,
    );
  }
  const maxConcurrent = flags["cgi-max-concurrent"];
  if (maxConcurrent !== undefined) {
    options.maxConcurrent = Math.floor(
      _number("cgi-max-concurrent", maxConcurrent, 1),
    );
  }
  if (flags["cgi-pass-auth"]) options.passAuthorization = true;
  const passEnv = _passEnv(flags);
  if (passEnv.length) options.passEnv = passEnv;
  return options;
}
