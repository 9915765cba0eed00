/**
 * The Deno permissions a configuration needs, for `--print-permissions` and
 * the banner: {@linkcode neededPermissions} (a pure function of the parsed
 * configuration and a few facts about the machine), {@linkcode permissionFlags}
 * (the `deno run` flags), {@linkcode comparePermissions} (what is granted
 * beyond the need, or missing) and {@linkcode permissionFacts} (the facts).
 *
 * What Deno 2.9 checks, found by running the server under each scope:
 * reading ROOT (and its real path when it is a symlink: files are opened by
 * real path), CGI directories, `--cert`/`--key`, `--config`; `setsid(1)`
 * must be readable as well as runnable (it is looked up with a stat), and
 * so must every interpreter it starts (resolved on the scripts' `PATH`);
 * request bodies over 1 MiB spill to the temporary directory (created, written,
 * read back, removed); a unix FastCGI socket needs read, write and
 * `--allow-net=unix:PATH`; spawned FastCGI workers listen on sockets with
 * random names, which only an unscoped `--allow-net` covers. CGI scripts and
 * spawned workers need `--allow-run` unscoped: their process groups are
 * signalled with `Deno.kill` (timeouts, clients that leave, shutdown), which
 * Deno allows only then. Loading the module, its npm dependencies and
 * `deno.json` needs nothing.
 *
 * @module
 */

import { isAbsolute, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULT_PATH } from "../cgi/base_env.ts";
import type { CgiOptions } from "../cgi/cgi.ts";
import type { HandlerRule } from "../handler/create_handler.ts";
import { type FastCgiAddress, parseAddress } from "../cgi/fastcgi/address.ts";
import type { FastCgiOptions } from "../cgi/fastcgi/fastcgi.ts";

/**
 * What the computation reads of a parsed configuration (the CLI's own
 * configuration has this shape). Internal to the CLI (not exported from `mod.ts`).
 */
export interface PermissionConfig {
  /** The served folder, as given. */
  root: string;
  /** The listen address (IPv6 without brackets). */
  host: string;
  /** The listen port; `0` picks one, so only the host can be scoped. */
  port: number;
  /** `--cert FILE`. */
  cert?: string | undefined;
  /** `--key FILE`. */
  key?: string | undefined;
  /** `--log-file FILE`. */
  logFile?: string | undefined;
  /** `--config FILE`. */
  configFile?: string | undefined;
  /** `--quiet`: no banner, so no network interfaces to list. */
  quiet?: boolean;
  /** The connection guard's settings, when it is on. */
  guard?: object | undefined;
  /**
   * How many isolates serve (`--workers` once its fallbacks are applied,
   * the missing permission aside): over 1, each worker reads the modules
   * of a local copy of the package.
   */
  isolates?: number;
  /** Virtual hosts: each site's root and options. */
  sites?: readonly { root: string; handler: PermissionConfig["handler"] }[];
  /** The gateways' options. */
  handler: {
    /** Site rules: folders, scripts and htpasswd files they read. */
    rules?: readonly Pick<
      HandlerRule,
      "alias" | "cgi" | "fastcgi" | "basicAuth"
    >[];
    /** CGI, when on. */
    cgi?: Pick<
      CgiOptions,
      "dirs" | "interpreters" | "passEnv" | "path" | "tempDir"
    >;
    /** FastCGI, when on. */
    fastcgi?: Pick<
      FastCgiOptions,
      "backends" | "spawn" | "spawnPassEnv" | "spawnPath" | "tempDir"
    >;
  };
}

/**
 * What the computation needs to know of the machine, gathered by
 * {@linkcode permissionFacts} (or given by a test). Internal to the CLI.
 */
export interface PermissionFacts {
  /** The working directory relative paths start from (absolute). */
  cwd: string;
  /** Deno's temporary directory (`$TMPDIR` or `/tmp`). */
  tmpDir: string;
  /** The `setsid(1)` CGI scripts start through, when there is one. */
  setsid: string | undefined;
  /** Interpreter name → the file it resolves to on the scripts' `PATH`. */
  programs: Readonly<Record<string, string>>;
  /** Absolute path → its real path, for the folders read by real path. */
  realPaths: Readonly<Record<string, string>>;
  /**
   * The package's folder when it runs from local files (see
   * {@linkcode workerModuleFolder}); `undefined` when it runs from a
   * remote URL (`jsr:`, `https:`), which workers import without read.
   */
  moduleFolder?: string | undefined;
}

/**
 * The folder whose modules a `--workers` isolate loads, when the package
 * runs from local files: Deno checks read access for each local module a
 * Worker imports (the main thread's own imports need none), so workers
 * need `--allow-read` on the package's folder. `undefined` for a remote
 * copy (`jsr:`, `https:`): Deno imports it without read access.
 *
 * @example Where the workers' modules are
 * ```ts
 * import { workerModuleFolder } from "./permissions.ts";
 *
 * console.log(workerModuleFolder() ?? "remote: nothing to read");
 * ```
 *
 * @returns The folder (absolute, no trailing slash), or `undefined`.
 */
export function workerModuleFolder(): string | undefined {
  const url = new URL("../", import.meta.url);
  if (url.protocol !== "file:") return undefined;
  return fileURLToPath(url).replace(/(?<=.)\/$/, "");
}

/** One kind of permission: nothing, these values, or all (`"any"`). */
export type PermissionScope = readonly string[] | "any";

/** The permissions a configuration needs, by kind. Internal to the CLI. */
export interface NeededPermissions {
  /** Paths read. */
  read: PermissionScope;
  /** Paths written. */
  write: PermissionScope;
  /** `host:port`, `host` or `unix:/path`. */
  net: PermissionScope;
  /** Environment variables read. */
  env: PermissionScope;
  /** `Deno.*` system calls (`networkInterfaces`). */
  sys: PermissionScope;
  /** Programs started. */
  run: PermissionScope;
}

/** The kinds, in the order the flags are printed. */
const _KINDS = ["read", "write", "net", "env", "sys", "run"] as const;

/** The `setsid(1)` paths `findSetsid()` tries, in its order. */
const _SETSID = ["/usr/bin/setsid", "/bin/setsid"];

type _Kind = typeof _KINDS[number];

/** Collects values per kind, in order, without duplicates. */
class _Needs {
  readonly #values = new Map<_Kind, string[] | "any">(
    _KINDS.map((kind) => [kind, []]),
  );

  add(kind: _Kind, ...values: string[]): void {
    const list = this.#values.get(kind)!;
    if (list === "any") return;
    for (const value of values) if (!list.includes(value)) list.push(value);
  }

  any(kind: _Kind): void {
    this.#values.set(kind, "any");
  }

  get(kind: _Kind): PermissionScope {
    return this.#values.get(kind)!;
  }
}

function _bracket(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/** Drops paths inside another listed path (Deno grants a folder's tree). */
function _withoutNested(paths: readonly string[]): string[] {
  const inside = (dir: string, path: string) => {
    const rel = relative(dir, path);
    return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
  };
  // The values are distinct (see _Needs.add).
  return paths.filter((path, i) =>
    !paths.some((other, j) => j !== i && inside(other, path))
  );
}

/** Drops `host:port` when the bare host is listed too. */
function _withoutCoveredPorts(hosts: readonly string[]): string[] {
  return hosts.filter((entry) => {
    const m = /^(\[[^\]]+\]|[^:]+):\d+$/.exec(entry);
    return !m || !hosts.includes(m[1]!);
  });
}

/** The root, the CGI folders…: the path, and its real path when it differs. */
function _readFolder(needs: _Needs, path: string, facts: PermissionFacts) {
  needs.add("read", path);
  const real = facts.realPaths[path];
  if (real !== undefined && real !== path) needs.add("read", real);
}

function _cgi(
  needs: _Needs,
  cgi: NonNullable<PermissionConfig["handler"]["cgi"]>,
  root: string,
  facts: PermissionFacts,
): void {
  const dirs = cgi.dirs ?? { "/cgi-bin/": resolve(root, "cgi-bin") };
  for (const dir of Object.values(dirs)) {
    _readFolder(needs, resolve(facts.cwd, dir), facts);
  }
  // Request bodies over 1 MiB: created, written, read back, removed.
  const tmp = resolve(facts.cwd, cgi.tempDir ?? facts.tmpDir);
  needs.add("read", tmp);
  needs.add("write", tmp);
  needs.add("env", ...cgi.passEnv ?? []);
  // Scripts are any program in a folder, and their process groups are
  // killed with Deno.kill: both need --allow-run unscoped.
  needs.any("run");
  if (facts.setsid === undefined) return;
  // Scripts start through setsid(1) (found with a stat), which resolves the
  // program first (a stat of each interpreter on the scripts' PATH).
  needs.add("read", facts.setsid);
  for (const command of Object.values(cgi.interpreters ?? {})) {
    const program = typeof command === "string" ? command : command[0];
    if (program === undefined || program === "") continue;
    const path = program.includes("/")
      ? resolve(facts.cwd, program)
      : facts.programs[program];
    if (path !== undefined) needs.add("read", path);
  }
}

/** What one site's gateways and rules need. */
function _site(
  needs: _Needs,
  handler: PermissionConfig["handler"],
  root: string,
  facts: PermissionFacts,
): void {
  const { cgi, fastcgi, rules = [] } = handler;
  if (cgi) _cgi(needs, cgi, root, facts);
  else if (rules.some((r) => r.cgi !== undefined)) {
    _cgi(needs, { dirs: {} }, root, facts);
  }
  if (fastcgi) _fastcgi(needs, fastcgi, facts);
  for (const rule of rules) {
    for (const path of [rule.alias, rule.cgi, rule.fastcgi]) {
      if (path !== undefined) {
        _readFolder(needs, resolve(facts.cwd, path), facts);
      }
    }
    if (rule.basicAuth !== undefined) {
      needs.add("read", resolve(facts.cwd, rule.basicAuth));
    }
  }
}

function _backend(
  needs: _Needs,
  backend: string | FastCgiAddress,
  cwd: string,
): void {
  const address = parseAddress(backend);
  if (address.transport === "tcp") {
    needs.add("net", `${_bracket(address.hostname)}:${address.port}`);
    return;
  }
  const path = resolve(cwd, address.path);
  needs.add("read", path);
  needs.add("write", path);
  needs.add("net", `unix:${path}`);
}

function _fastcgi(
  needs: _Needs,
  fastcgi: NonNullable<PermissionConfig["handler"]["fastcgi"]>,
  facts: PermissionFacts,
): void {
  const tmp = resolve(facts.cwd, fastcgi.tempDir ?? facts.tmpDir);
  needs.add("read", tmp);
  needs.add("write", tmp);
  if (fastcgi.spawn === undefined) {
    for (const backend of fastcgi.backends ?? ["127.0.0.1:9000"]) {
      _backend(needs, backend, facts.cwd);
    }
    return;
  }
  // The workers' sockets are in a fresh folder of the temporary directory
  // (made there whatever tempDir says), with random names: only an
  // unscoped --allow-net reaches them.
  needs.add("read", facts.tmpDir);
  needs.add("write", facts.tmpDir);
  needs.any("net");
  // Each worker is its own process group, stopped with Deno.kill.
  needs.any("run");
  // The workers get the server's PATH unless told one.
  if (fastcgi.spawnPath === undefined) needs.add("env", "PATH");
  needs.add("env", ...fastcgi.spawnPassEnv ?? []);
}

/**
 * The permissions `config` needs: read the root (and what the
 * configuration reads), write only where it writes, net only the listen
 * address and the FastCGI backends, run only when it starts programs (then
 * unscoped: see the module doc), env and sys only what it reads. Pure: the
 * machine comes in as `facts`. Relative paths are made absolute from
 * `facts.cwd`.
 *
 * @example A static site
 * ```ts
 * import { neededPermissions, permissionFlags } from "./permissions.ts";
 * import assert from "node:assert/strict";
 *
 * const needed = neededPermissions(
 *   { root: "public", host: "127.0.0.1", port: 8000, handler: {} },
 *   { cwd: "/srv", tmpDir: "/tmp", setsid: undefined, programs: {}, realPaths: {} },
 * );
 * assert.deepEqual(permissionFlags(needed), [
 *   "--allow-read=/srv/public",
 *   "--allow-net=127.0.0.1:8000",
 * ]);
 * ```
 *
 * @param config The parsed configuration.
 * @param facts The working directory, temporary directory, programs found.
 * @returns The needs, by kind.
 */
export function neededPermissions(
  config: PermissionConfig,
  facts: PermissionFacts,
): NeededPermissions {
  const needs = new _Needs();
  const root = resolve(facts.cwd, config.root);
  _readFolder(needs, root, facts);
  if (config.configFile !== undefined) {
    needs.add("read", resolve(facts.cwd, config.configFile));
  }
  for (const file of [config.cert, config.key]) {
    if (file !== undefined) needs.add("read", resolve(facts.cwd, file));
  }
  if (config.logFile !== undefined) {
    needs.add("write", resolve(facts.cwd, config.logFile));
  }
  const host = _bracket(config.host);
  needs.add("net", config.port === 0 ? host : `${host}:${config.port}`);
  // The TLS front's inner server: 127.0.0.1 on a port picked at start.
  if (config.cert !== undefined) needs.add("net", "127.0.0.1");
  const wildcard = config.host === "0.0.0.0" || config.host === "::";
  if (wildcard && !config.quiet) needs.add("sys", "networkInterfaces");
  // The guard's send timeout samples the kernel's send queues (Linux).
  if (config.guard !== undefined) {
    needs.add("read", "/proc/net/tcp");
    needs.add("read", "/proc/net/tcp6");
  }
  _site(needs, config.handler, root, facts);
  for (const site of config.sites ?? []) {
    const siteRoot = resolve(facts.cwd, site.root);
    _readFolder(needs, siteRoot, facts);
    _site(needs, site.handler, siteRoot, facts);
  }
  // --workers: each isolate loads the package's modules.
  if ((config.isolates ?? 1) > 1 && facts.moduleFolder !== undefined) {
    needs.add("read", facts.moduleFolder);
  }
  // --workers with scripts: the main thread finds what a dead or hung
  // worker's scripts left in /proc/self/task/TID/children (and a worker
  // its thread id in /proc/thread-self), to kill it.
  const scripts = [
    config.handler,
    ...(config.sites ?? []).map((s) => s.handler),
  ]
    .some((h) =>
      h.cgi !== undefined || h.rules?.some((r) => r.cgi !== undefined)
    );
  if ((config.isolates ?? 1) > 1 && scripts) {
    needs.add("read", "/proc/self/task", "/proc/thread-self");
  }
  const scope = (kind: _Kind): PermissionScope => {
    const values = needs.get(kind);
    if (values === "any") return "any";
    // Deno splits a list on commas and has no escape for one.
    if (values.some((v) => v.includes(","))) return "any";
    if (kind === "read" || kind === "write") return _withoutNested(values);
    if (kind === "net") return _withoutCoveredPorts(values);
    return values;
  };
  return {
    read: scope("read"),
    write: scope("write"),
    net: scope("net"),
    env: scope("env"),
    sys: scope("sys"),
    run: scope("run"),
  };
}

/**
 * The `deno run` flags for `needed`, one per kind that is needed
 * (`--allow-read=/a,/b`, or `--allow-run` for all).
 *
 * @example Flags
 * ```ts
 * import { permissionFlags } from "./permissions.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(
 *   permissionFlags({ read: ["/srv"], write: [], net: "any", env: [], sys: [], run: [] }),
 *   ["--allow-read=/srv", "--allow-net"],
 * );
 * ```
 *
 * @param needed What is needed.
 * @returns The flags.
 */
export function permissionFlags(needed: NeededPermissions): string[] {
  const flags: string[] = [];
  for (const kind of _KINDS) {
    const scope = needed[kind];
    if (scope === "any") flags.push(`--allow-${kind}`);
    else if (scope.length > 0) flags.push(`--allow-${kind}=${scope.join(",")}`);
  }
  return flags;
}

/**
 * The flags as one shell line: a flag with characters a shell would
 * interpret (spaces, quotes, `[`…) is single-quoted, the others are left
 * bare so that `$(… --print-permissions)` works for plain paths.
 *
 * @example A line
 * ```ts
 * import { shellLine } from "./permissions.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   shellLine(["--allow-read=/srv/my site", "--allow-net=[::1]:8000", "--allow-env=PATH"]),
 *   "'--allow-read=/srv/my site' '--allow-net=[::1]:8000' --allow-env=PATH",
 * );
 * ```
 *
 * @param flags The flags.
 * @returns The line.
 */
export function shellLine(flags: readonly string[]): string {
  return flags.map((flag) =>
    /^[A-Za-z0-9_\-=.,:/@%+]+$/.test(flag)
      ? flag
      : `'${flag.replaceAll("'", `'\\''`)}'`
  ).join(" ");
}

/** How the granted permissions compare with the needed ones. */
export interface PermissionComparison {
  /**
   * Kinds granted for everything though less is needed: `["-A"]` when
   * every kind is, else flags such as `--allow-read`.
   */
  broader: string[];
  /**
   * Needed but not granted, as flags. The CLI refuses to start without the
   * essential ones, so these are what it does without: the network URLs
   * in the banner, the TLS front, spilling large request bodies…
   */
  missing: string[];
}

/** Every kind `-A` grants that can be queried. */
const _ALL = ["read", "write", "net", "env", "sys", "run", "ffi"] as const;

function _descriptor(
  kind: _Kind,
  value: string | undefined,
): Deno.PermissionDescriptor {
  if (value === undefined) return { name: kind };
  switch (kind) {
    case "read":
    case "write":
      return { name: kind, path: value };
    case "net":
      return { name: kind, host: value };
    case "env":
      return { name: kind, variable: value };
    case "sys":
      return {
        name: kind,
        kind: value as Deno.SysPermissionDescriptor["kind"],
      };
    case "run":
      return { name: kind, command: value };
  }
}

function _granted(descriptor: Deno.PermissionDescriptor): boolean {
  return Deno.permissions.querySync(descriptor).state === "granted";
}

/**
 * Compares `needed` with what `granted` says is granted (by default
 * `Deno.permissions.querySync`): kinds granted unscoped beyond the need,
 * and needs that are not granted.
 *
 * @example Under -A
 * ```ts
 * import { comparePermissions } from "./permissions.ts";
 * import assert from "node:assert/strict";
 *
 * const needed = { read: ["/srv"], write: [], net: ["127.0.0.1:8000"], env: [], sys: [], run: [] };
 * assert.deepEqual(comparePermissions(needed, () => true), { broader: ["-A"], missing: [] });
 * assert.deepEqual(comparePermissions(needed, (d) => d.name === "read"), {
 *   broader: ["--allow-read"],
 *   missing: ["--allow-net=127.0.0.1:8000"],
 * });
 * ```
 *
 * @param needed What is needed.
 * @param granted Whether a descriptor is granted.
 * @returns The comparison.
 */
export function comparePermissions(
  needed: NeededPermissions,
  granted: (descriptor: Deno.PermissionDescriptor) => boolean = _granted,
): PermissionComparison {
  const everything = _ALL.every((name) => granted({ name }));
  const broader = everything ? ["-A"] : _KINDS
    .filter((kind) => needed[kind] !== "any" && granted({ name: kind }))
    .map((kind) => `--allow-${kind}`);
  const lacking = { ...needed };
  for (const kind of _KINDS) {
    const scope = needed[kind];
    lacking[kind] = scope === "any"
      ? (granted(_descriptor(kind, undefined)) ? [] : "any")
      : scope.filter((value) => !granted(_descriptor(kind, value)));
  }
  return { broader, missing: permissionFlags(lacking) };
}

/** Deno's temporary directory (Rust's `temp_dir()`: `$TMPDIR`, else `/tmp`). */
function _tmpDir(): string {
  try {
    const env = { name: "env", variable: "TMPDIR" } as const;
    if (Deno.permissions.querySync(env).state === "granted") {
      const dir = Deno.env.get("TMPDIR");
      if (dir) return dir;
    }
  } catch { /* no such permission */ }
  return "/tmp";
}

function _isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false; // missing, or not readable: the server cannot use it either
  }
}

function _realPath(path: string): string | undefined {
  try {
    return Deno.realPathSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Gathers the facts {@linkcode neededPermissions} needs: the working
 * directory, the temporary directory, `setsid(1)`, where the CGI
 * interpreters are, the real paths of the root and CGI folders. What it
 * may not look at counts as absent.
 *
 * @example Facts
 * ```ts
 * import { permissionFacts } from "./permissions.ts";
 * import assert from "node:assert/strict";
 *
 * const facts = permissionFacts({ root: ".", host: "127.0.0.1", port: 8000, handler: {} });
 * assert.equal(facts.cwd, Deno.cwd());
 * ```
 *
 * @param config The parsed configuration.
 * @returns The facts.
 */
export function permissionFacts(config: PermissionConfig): PermissionFacts {
  const cwd = Deno.cwd();
  const root = resolve(cwd, config.root);
  const realPaths: Record<string, string> = {};
  const programs: Record<string, string> = {};
  const folders = [root];
  const sites = [
    { root, handler: config.handler },
    ...(config.sites ?? []).map((site) => ({
      root: resolve(cwd, site.root),
      handler: site.handler,
    })),
  ];
  for (const site of sites) {
    if (site.root !== root) folders.push(site.root);
    for (const rule of site.handler.rules ?? []) {
      for (const path of [rule.alias, rule.cgi, rule.fastcgi]) {
        if (path !== undefined) folders.push(resolve(cwd, path));
      }
    }
    const { cgi } = site.handler;
    if (!cgi) continue;
    const dirs = cgi.dirs ?? { "/cgi-bin/": resolve(site.root, "cgi-bin") };
    folders.push(...Object.values(dirs).map((dir) => resolve(cwd, dir)));
    const path = (cgi.path ?? DEFAULT_PATH).split(":").filter((d) => d !== "");
    for (const command of Object.values(cgi.interpreters ?? {})) {
      const name = typeof command === "string" ? command : command[0];
      if (name === undefined || name === "" || name.includes("/")) continue;
      const found = path.map((dir) => `${dir}/${name}`).find(_isFile);
      if (found !== undefined) programs[name] = found;
    }
  }
  for (const folder of folders) {
    const real = _realPath(folder);
    if (real !== undefined) realPaths[folder] = real;
  }
  return {
    cwd,
    tmpDir: _tmpDir(),
    setsid: Deno.build.os === "linux" ? _SETSID.find(_isFile) : undefined,
    programs,
    realPaths,
    moduleFolder: workerModuleFolder(),
  };
}
