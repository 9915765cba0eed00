/**
 * The `--config serve.json` file: every flag by its name, plus per-path
 * rules. It becomes command-line arguments placed before the real ones, so
 * the flags validate it and flags given on the command line win.
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import type { HeaderRule } from "../middleware/headers.ts";
import { errorMessage } from "../server/log.ts";

/**
 * How a flag takes its value (as in `node:util` `parseArgs`). Internal to the CLI (not exported from `mod.ts`).
 */
export interface FlagSpec {
  /** `"boolean"` or `"string"`. */
  type: "boolean" | "string";
  /** Repeatable flag. */
  multiple?: boolean;
}

/** What a config file adds to the command line. Internal to the CLI (not exported from `mod.ts`). */
export interface ConfigArgs {
  /** Arguments equivalent to the file's flags (before the user's own). */
  args: string[];
  /** ROOT from the file (relative to the file's folder), if any. */
  root: string | undefined;
  /** Per-path header rules from `"rules"`. */
  rules: HeaderRule[];
}

/**
 * A config file problem: the message names the file and the key.
 * Internal to the CLI (not exported from `mod.ts`).
 */
export class ConfigError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong, naming the key.
   */
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Keys that are not flags. */
const _SPECIAL = new Set(["root", "rules", "$schema"]);
/** Flags that make no sense in a file. */
const _EXCLUDED = new Set([
  "config",
  "help",
  "version",
  "print-permissions",
]);

function _scalar(file: string, key: string, value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  throw new ConfigError(`${file}: "${key}" must be a string or a number`);
}

function _rules(file: string, value: unknown): HeaderRule[] {
  if (!Array.isArray(value)) {
    throw new ConfigError(`${file}: "rules" must be an array`);
  }
  return value.map((rule, i) => {
    const at = `rules[${i}]`;
    if (typeof rule !== "object" || rule === null || Array.isArray(rule)) {
      throw new ConfigError(`${file}: "${at}" must be an object`);
    }
    const { path, headers = {}, "cache-control": cache, ...rest } =
      rule as Record<string, unknown>;
    const extra = Object.keys(rest)[0];
    if (extra !== undefined) {
      throw new ConfigError(`${file}: unknown key "${at}.${extra}"`);
    }
    if (typeof path !== "string" || path === "") {
      throw new ConfigError(`${file}: "${at}.path" must be a glob string`);
    }
    if (
      typeof headers !== "object" || headers === null || Array.isArray(headers)
    ) {
      throw new ConfigError(
        `${file}: "${at}.headers" must be an object of header names to values`,
      );
    }
    const pairs: Array<[string, string]> = [];
    for (const [name, v] of Object.entries(headers)) {
      if (typeof v !== "string") {
        throw new ConfigError(
          `${file}: "${at}.headers.${name}" must be a string`,
        );
      }
      pairs.push([name, v]);
    }
    if (cache !== undefined) {
      if (typeof cache !== "string") {
        throw new ConfigError(
          `${file}: "${at}.cache-control" must be a string`,
        );
      }
      pairs.push(["cache-control", cache]);
    }
    try {
      new Headers(pairs);
    } catch {
      throw new ConfigError(
        `${file}: "${at}.headers" has an invalid header name or value`,
      );
    }
    return { path, headers: pairs };
  });
}

/**
 * Turns a parsed config file into arguments. Keys are flag names without
 * `--` (`"port": 8080`, `"dir-listing": false`, `"header": ["X-A: b"]`),
 * plus `"root"` and `"rules"` (`[{ "path": "/assets/**", "cache-control":
 * "…", "headers": { "X-A": "b" } }]`). Unknown keys and wrong types throw a
 * {@linkcode ConfigError} naming the key. {INT}
 *
 * @example A config file
 * ```ts
 * import { configToArgs } from "./config.ts";
 * import assert from "node:assert/strict";
 *
 * const flags = { port: { type: "string" }, cors: { type: "boolean" } } as const;
 * const out = configToArgs({ port: 9000, cors: true }, "/srv/serve.json", flags);
 * assert.deepEqual(out.args, ["--port=9000", "--cors"]);
 * assert.throws(() => configToArgs({ prot: 1 }, "serve.json", flags), /unknown key "prot"/);
 * ```
 *
 * @param json The parsed file.
 * @param file The file's path (for messages and relative paths).
 * @param flags The CLI's flag specs.
 * @returns Arguments, root and rules.
 */
export function configToArgs(
  json: unknown,
  file: string,
  flags: Readonly<Record<string, FlagSpec>>,
): ConfigArgs {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ConfigError(`${file}: expected a JSON object`);
  }
  const args: string[] = [];
  let root: string | undefined;
  let rules: HeaderRule[] = [];
  for (const [key, value] of Object.entries(json)) {
    if (key === "root") {
      root = resolve(dirname(file), _scalar(file, key, value));
      continue;
    }
    if (key === "rules") {
      rules = _rules(file, value);
      continue;
    }
    if (_SPECIAL.has(key)) continue;
    const spec = flags[key];
    if (!spec || _EXCLUDED.has(key)) {
      throw new ConfigError(`${file}: unknown key "${key}"`);
    }
    if (spec.type === "boolean") {
      if (typeof value !== "boolean") {
        throw new ConfigError(`${file}: "${key}" must be true or false`);
      }
      args.push(value ? `--${key}` : `--no-${key}`);
    } else if (spec.multiple) {
      const list = Array.isArray(value) ? value : [value];
      for (const item of list) {
        args.push(`--${key}=${_scalar(file, key, item)}`);
      }
    } else {
      args.push(`--${key}=${_scalar(file, key, value)}`);
    }
  }
  return { args, root, rules };
}

/**
 * Reads and parses a config file; throws a {@linkcode ConfigError} with a
 * one-line reason. Internal to the CLI (not exported from `mod.ts`).
 *
 * @example Loading a file
 * ```ts
 * import { readConfig } from "./config.ts";
 * import assert from "node:assert/strict";
 *
 * const path = await Deno.makeTempFile({ suffix: ".json" });
 * await Deno.writeTextFile(path, '{ "port": 8080 }');
 * assert.deepEqual(await readConfig(path), { port: 8080 });
 * await Deno.remove(path);
 * ```
 *
 * @param file The path.
 * @returns The parsed JSON.
 */
export async function readConfig(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound
      ? "does not exist"
      : "cannot be read";
    throw new ConfigError(`config file "${file}" ${why}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ConfigError(
      `${file}: invalid JSON (${errorMessage(error)})`,
    );
  }
}
