/**
 * The `--config serve.json` file: every flag by its name, plus per-path
 * rules. It becomes command-line arguments placed before the real ones, so
 * the flags validate it and flags given on the command line win.
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import type { HandlerRule } from "../handler/create_handler.ts";
import type { HeaderRule } from "../middleware/headers.ts";
import { errorMessage } from "../server/log.ts";
import { RuleConfigError, rulesFromConfig } from "./rules_config.ts";

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
  /** Site rules from `"rules"` (deny, rewrite, alias, …). */
  siteRules: HandlerRule[];
  /** Virtual hosts from `"sites"`, in order. */
  sites: ConfigSite[];
  /** `"unknown-host"`: the default site (`"default"`) or `421`. */
  unknownHost: "default" | 421;
}

/** One entry of `"sites"`. Internal to the CLI. */
export interface ConfigSite {
  /** Where it is in the file (`sites[0]`), for messages. */
  at: string;
  /** Its host names (lower case; `*.example.com` for subdomains). */
  hosts: string[];
  /** Its flags, as arguments (after the file's top-level ones). */
  args: string[];
  /** Its ROOT (relative to the file's folder). */
  root: string | undefined;
  /** Its header rules. */
  rules: HeaderRule[];
  /** Its site rules. */
  siteRules: HandlerRule[];
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
const _SPECIAL = new Set(["root", "rules", "sites", "unknown-host", "$schema"]);
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
  const own = _flags(json as Record<string, unknown>, file, flags, "");
  const out: ConfigArgs = {
    ...own,
    sites: [],
    unknownHost: "default",
  };
  const { sites, "unknown-host": unknown } = json as Record<string, unknown>;
  if (unknown !== undefined) {
    if (unknown !== "default" && unknown !== 421) {
      throw new ConfigError(`${file}: "unknown-host" must be "default" or 421`);
    }
    out.unknownHost = unknown;
  }
  if (sites === undefined) return out;
  if (!Array.isArray(sites)) {
    throw new ConfigError(`${file}: "sites" must be an array of sites`);
  }
  const seen = new Set<string>();
  sites.forEach((site, i) => {
    const at = `sites[${i}]`;
    if (typeof site !== "object" || site === null || Array.isArray(site)) {
      throw new ConfigError(`${file}: "${at}" must be an object`);
    }
    const { host, ...rest } = site as Record<string, unknown>;
    const hosts = (Array.isArray(host) ? host : [host]).map((h) => {
      if (
        typeof h !== "string" ||
        !/^(?:\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?$|^\[[0-9a-f:.]+\]$/i.test(h)
      ) {
        throw new ConfigError(
          `${file}: "${at}.host" must be a host name (or "*.name"), or a list of them`,
        );
      }
      const name = h.toLowerCase();
      if (seen.has(name)) {
        throw new ConfigError(`${file}: "${at}.host": "${h}" is given twice`);
      }
      seen.add(name);
      return name;
    });
    for (const key of Object.keys(rest)) {
      if (_LISTENER.has(key)) {
        throw new ConfigError(
          `${file}: "${at}.${key}" belongs to the server, not to a site (put it at the top level)`,
        );
      }
    }
    out.sites.push({ at, hosts, ..._flags(rest, file, flags, `${at}.`) });
  });
  return out;
}

/** Flags that belong to the listener, not to one site. */
const _LISTENER = new Set([
  "host",
  "port",
  "cert",
  "key",
  "connection-guard",
  "header-timeout",
  "keepalive-timeout",
  "send-timeout",
  "max-connections",
  "max-connections-per-client",
  "log-format",
  "log-file",
  "quiet",
  "shutdown-grace",
  "live-reload",
  "sites",
  "unknown-host",
]);

/** A site's (or the top level's) flags, root and rules. */
function _flags(
  json: Record<string, unknown>,
  file: string,
  flags: Readonly<Record<string, FlagSpec>>,
  at: string,
): Pick<ConfigArgs, "args" | "root" | "rules" | "siteRules"> {
  const args: string[] = [];
  let root: string | undefined;
  let rules: HeaderRule[] = [];
  let siteRules: HandlerRule[] = [];
  for (const [name, value] of Object.entries(json)) {
    const key = at + name;
    if (name === "root") {
      root = resolve(dirname(file), _scalar(file, key, value));
      continue;
    }
    if (name === "rules") {
      try {
        ({ headers: rules, site: siteRules } = rulesFromConfig(
          file,
          value,
          key,
        ));
      } catch (error) {
        if (error instanceof RuleConfigError) {
          throw new ConfigError(error.message);
        }
        throw error;
      }
      continue;
    }
    if (_SPECIAL.has(name)) continue;
    const spec = flags[name];
    if (!spec || _EXCLUDED.has(name)) {
      throw new ConfigError(`${file}: unknown key "${key}"`);
    }
    if (spec.type === "boolean") {
      if (typeof value !== "boolean") {
        throw new ConfigError(`${file}: "${key}" must be true or false`);
      }
      args.push(value ? `--${name}` : `--no-${name}`);
    } else if (spec.multiple) {
      const list = Array.isArray(value) ? value : [value];
      for (const item of list) {
        args.push(`--${name}=${_scalar(file, key, item)}`);
      }
    } else {
      args.push(`--${name}=${_scalar(file, key, value)}`);
    }
  }
  return { args, root, rules, siteRules };
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
