/**
 * {@linkcode fastCgiOptionsFromFlags}: turns the CLI's `--fastcgi*` flags
 * into {@linkcode FastCgiOptions}, validating them.
 *
 * @module
 */

import { parseAddress } from "../cgi/fastcgi/address.ts";
import type { FastCgiOptions } from "../cgi/fastcgi/fastcgi.ts";
import { splitCommand } from "../cgi/fastcgi/spawn.ts";

/**
 * The raw `--fastcgi*` flag values, as `parseArgs` returns them.
 *
 * @example Flags as parseArgs gives them
 * ```ts
 * import { type FastCgiFlags, fastCgiOptionsFromFlags } from "./fastcgi_flags.ts";
 * import assert from "node:assert/strict";
 *
 * const flags: FastCgiFlags = { "fastcgi-spawn": "php-cgi", "fastcgi-workers": "2" };
 * assert.equal(fastCgiOptionsFromFlags(flags)?.workers, 2);
 * ```
 */
export interface FastCgiFlags {
  /** `--fastcgi ADDR` (repeatable). */
  fastcgi?: string[];
  /** `--fastcgi-spawn "CMD"`. */
  "fastcgi-spawn"?: string;
  /** `--fastcgi-workers N`. */
  "fastcgi-workers"?: string;
  /** `--fastcgi-front-controller PATH`. */
  "fastcgi-front-controller"?: string;
  /** `--fastcgi-ext .php,.phtml`. */
  "fastcgi-ext"?: string;
  /** `--fastcgi-pass-env NAME` (repeatable). */
  "fastcgi-pass-env"?: string[];
  /** `--fastcgi-keep-alive N`. */
  "fastcgi-keep-alive"?: string;
  /** `--fastcgi-max-connections N`. */
  "fastcgi-max-connections"?: string;
  /** `--fastcgi-index NAME`. */
  "fastcgi-index"?: string;
  /** `--fastcgi-param NAME=VALUE` (repeatable). */
  "fastcgi-param"?: string[];
}

/**
 * The `--help` lines of the FastCGI flags.
 *
 * @example Printing them
 * ```ts
 * import { FASTCGI_USAGE } from "./fastcgi_flags.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(FASTCGI_USAGE, /--fastcgi-spawn "CMD"/);
 * ```
 */
export const FASTCGI_USAGE =
  `  --fastcgi ADDR         Run *.php through a FastCGI responder such as php-fpm:
                         host:port or unix:/path (repeatable: round-robin)
  --fastcgi-spawn "CMD"  Start and supervise FastCGI workers, e.g. "php-cgi"
                         (each gets -b SOCKET, or {socket} is replaced)
  --fastcgi-workers N    Worker processes for --fastcgi-spawn (default 4)
  --fastcgi-front-controller PATH
                         Send paths that do not exist to this script (/index.php)
  --fastcgi-ext LIST     Script extensions, comma-separated (default .php)
  --fastcgi-pass-env NAME
                         Pass the server's variable NAME to spawned workers
                         (repeatable; nothing else of its environment is passed)
  --fastcgi-index NAME   Directory index script (default index.php; "" = none)
  --fastcgi-param NAME=VALUE
                         Send (or override) a param with every request, like
                         nginx fastcgi_param (repeatable)
  --fastcgi-keep-alive N Idle connections kept per --fastcgi backend, all workers
                         together (default 2; each pins a php-fpm worker;
                         0 = one per request)
  --fastcgi-max-connections N
                         Most connections per --fastcgi backend, all workers
                         together; further requests queue (default 0 = no
                         limit); set it and
                         --fastcgi-keep-alive to pm.max_children when this
                         server is the pool's only client
`;

/** The flags that only make sense with `--fastcgi` or `--fastcgi-spawn`. */
const _DEPENDENT_FLAGS = [
  "fastcgi-workers",
  "fastcgi-index",
  "fastcgi-param",
  "fastcgi-keep-alive",
  "fastcgi-max-connections",
  "fastcgi-front-controller",
  "fastcgi-ext",
  "fastcgi-pass-env",
] as const;

/** Throws unless every `--fastcgi` address parses. */
function _checkBackends(backends: readonly string[]): void {
  for (const address of backends) {
    try {
      parseAddress(address);
    } catch {
      throw new TypeError(
        `Invalid --fastcgi "${address}": expected host:port or unix:/path`,
      );
    }
  }
}

/** The argv of `--fastcgi-spawn "CMD"`. */
function _spawnArgv(spawn: string): string[] {
  let argv: string[];
  try {
    argv = splitCommand(spawn);
  } catch {
    throw new TypeError(
      `Invalid --fastcgi-spawn "${spawn}": unterminated quote`,
    );
  }
  if (argv.length === 0) {
    throw new TypeError("Invalid --fastcgi-spawn: empty command");
  }
  return argv;
}

/** `--fastcgi-workers N` (1-256). */
function _workers(workers: string): number {
  const n = Number(workers);
  if (!/^\d+$/.test(workers) || n < 1 || n > 256) {
    throw new TypeError(
      `Invalid --fastcgi-workers "${workers}": expected 1-256`,
    );
  }
  return n;
}

/** A connection count flag (0-1024). */
function _count(name: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 1024) {
    throw new TypeError(`Invalid --${name} "${value}": expected 0-1024`);
  }
  return n;
}

/** `--fastcgi-keep-alive` and `--fastcgi-max-connections` (for `--fastcgi`). */
function _poolFlags(
  flags: FastCgiFlags,
  spawn: string | undefined,
  options: FastCgiOptions,
): void {
  for (
    const name of ["fastcgi-keep-alive", "fastcgi-max-connections"] as const
  ) {
    const value = flags[name];
    if (value === undefined) continue;
    if (spawn !== undefined) {
      throw new TypeError(
        `--${name} is for --fastcgi (spawned workers get one connection each)`,
      );
    }
    const n = _count(name, value);
    if (name === "fastcgi-keep-alive") options.keepAlive = n;
    else options.maxConnections = n;
  }
}

/** `--fastcgi-param NAME=VALUE` pairs (names as CGI variables; values one line). */
function _params(pairs: string[]): Record<string, string> {
  const params: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    if (
      eq < 1 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || /[\r\n\0]/.test(value)
    ) {
      throw new TypeError(
        `Invalid --fastcgi-param "${pair}": expected NAME=VALUE (a variable name, a one-line value)`,
      );
    }
    params[name] = value;
  }
  return params;
}

/** `--fastcgi-index NAME`: a file name, or `""` for none. */
function _index(index: string): string {
  if (
    index !== "" && (/[\/\0]/.test(index) || index === "." || index === "..")
  ) {
    throw new TypeError(
      `Invalid --fastcgi-index "${index}": expected a file name like index.php`,
    );
  }
  return index;
}

/** The validated `--fastcgi-pass-env` names. */
function _passEnv(passEnv: string[]): string[] {
  const bad = passEnv.find((name) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name));
  if (bad !== undefined) {
    throw new TypeError(
      `Invalid --fastcgi-pass-env "${bad}": expected a variable name`,
    );
  }
  return passEnv;
}

/** `--fastcgi-ext .php,.phtml` as a list. */
function _extensions(ext: string): string[] {
  const list = ext.split(",").map((e) => e.trim()).filter((e) => e !== "");
  if (list.length === 0 || list.some((e) => !/^\.[A-Za-z0-9_-]+$/.test(e))) {
    throw new TypeError(
      `Invalid --fastcgi-ext "${ext}": expected a list like .php,.phtml`,
    );
  }
  return list;
}

/** The spawn-only flags (`--fastcgi-workers`, `--fastcgi-pass-env`). */
function _spawnFlags(
  flags: FastCgiFlags,
  spawn: string | undefined,
  options: FastCgiOptions,
): void {
  const workers = flags["fastcgi-workers"];
  if (workers !== undefined) {
    if (spawn === undefined) {
      throw new TypeError("--fastcgi-workers needs --fastcgi-spawn");
    }
    options.workers = _workers(workers);
  }
  const passEnv = flags["fastcgi-pass-env"] ?? [];
  if (passEnv.length > 0) {
    if (spawn === undefined) {
      throw new TypeError("--fastcgi-pass-env needs --fastcgi-spawn");
    }
    options.spawnPassEnv = _passEnv(passEnv);
  }
}

/**
 * Builds the gateway options from the flags; `undefined` when neither
 * `--fastcgi` nor `--fastcgi-spawn` is given. Throws a `TypeError` with a
 * user-facing message for invalid values.
 *
 * @example Parsing flags
 * ```ts
 * import { fastCgiOptionsFromFlags } from "./fastcgi_flags.ts";
 * import assert from "node:assert/strict";
 *
 * const options = fastCgiOptionsFromFlags({
 *   fastcgi: ["127.0.0.1:9000", "unix:/run/php/fpm.sock"],
 *   "fastcgi-front-controller": "/index.php",
 * });
 * assert.deepEqual(options?.backends, ["127.0.0.1:9000", "unix:/run/php/fpm.sock"]);
 * assert.equal(fastCgiOptionsFromFlags({}), undefined);
 * assert.throws(() => fastCgiOptionsFromFlags({ fastcgi: ["nope"] }), TypeError);
 * ```
 *
 * @param flags The parsed flag values.
 * @returns The options, or `undefined`.
 */
export function fastCgiOptionsFromFlags(
  flags: FastCgiFlags,
): FastCgiOptions | undefined {
  const backends = flags.fastcgi ?? [];
  const spawn = flags["fastcgi-spawn"];
  if (backends.length === 0 && spawn === undefined) {
    const given = _DEPENDENT_FLAGS.find((name) => flags[name] !== undefined);
    if (given !== undefined) {
      throw new TypeError(`--${given} needs --fastcgi or --fastcgi-spawn`);
    }
    return undefined;
  }
  if (backends.length > 0 && spawn !== undefined) {
    throw new TypeError("--fastcgi and --fastcgi-spawn cannot be combined");
  }
  _checkBackends(backends);
  const options: FastCgiOptions = {};
  if (backends.length > 0) options.backends = backends;
  if (spawn !== undefined) options.spawn = _spawnArgv(spawn);
  _spawnFlags(flags, spawn, options);
  _poolFlags(flags, spawn, options);
  const front = flags["fastcgi-front-controller"];
  if (front !== undefined) {
    if (!front.startsWith("/")) {
      throw new TypeError(
        `Invalid --fastcgi-front-controller "${front}": expected a path like /index.php`,
      );
    }
    options.frontController = front;
  }
  const ext = flags["fastcgi-ext"];
  if (ext !== undefined) options.extensions = _extensions(ext);
  const index = flags["fastcgi-index"];
  if (index !== undefined) options.index = _index(index);
  const params = flags["fastcgi-param"] ?? [];
  if (params.length > 0) options.params = _params(params);
  return options;
}
