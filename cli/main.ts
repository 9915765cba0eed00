/**
 * The command-line interface: `deno run -A jsr:@x/serve [ROOT] [flags]`.
 *
 * @module
 */

import { resolve } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import denoConfig from "../deno.json" with { type: "json" };
import type { HandlerOptions } from "../handler/create_handler.ts";
import { headerOptionsFromFlags } from "./header_flags.ts";
import { RULE_USAGE, ruleFlags } from "./rule_flags.ts";
import {
  type CertificateWatch,
  checkCertificatePair,
  watchCertificate,
} from "./cert_reload.ts";
import { serveTlsFront } from "./tls_front.ts";
import type { AccessLogFormat } from "../middleware/access_log.ts";
import { bannerLines } from "./banner.ts";
import {
  comparePermissions,
  type NeededPermissions,
  neededPermissions,
  permissionFacts,
  permissionFlags,
  shellLine,
} from "./permissions.ts";
import {
  type ConfigArgs,
  ConfigError,
  configToArgs,
  readConfig,
} from "./config.ts";
import { FASTCGI_USAGE, fastCgiOptionsFromFlags } from "./fastcgi_flags.ts";
import { GUARD_USAGE, guardOptionsFromFlags } from "./guard_flags.ts";
import { guardAvailable, serveGuarded } from "./conn_guard.ts";
import { CGI_USAGE, cgiOptionsFromFlags } from "./cgi_flags.ts";
import { errorMessage } from "../server/log.ts";
import { buildApp } from "./app.ts";
import { FORCE_WAIT_MS } from "./in_flight.ts";
import type { ServeConfig, ServeSite } from "./serve_config.ts";
import { testHooksEnabled } from "./test_hooks.ts";
import { startMemoryTrim } from "./memory_trim.ts";
import {
  plannedWorkers,
  serveWorkers,
  type WorkerCount,
  workerCount,
} from "./workers.ts";

const _USAGE = `Usage: serve [ROOT] [flags]

Serves the folder ROOT (default ".") over HTTP.

Flags:
  --host HOST            Address to listen on (default 127.0.0.1; 0.0.0.0 for all)
  --port PORT            Port to listen on, 0 picks a free one (default 8000)
  --no-dir-listing       Answer 404 for directories without index.html
  --dotfiles             Serve dotfiles and dot-directories (.env, .git/)
  --follow-symlinks      Follow symlinks that lead out of ROOT
  --file-cache-valid SECONDS
                         Trust cached lookups (stat, real path, misses) this long; the
                         root is watched, so changes show at once (default 1; 0 = off)
  --cors                 Add CORS headers and answer preflight requests
  --header "Name: value" Set a header on every response (repeatable)
  --cert FILE            TLS certificate (PEM); needs --key; enables HTTPS + HTTP/2
  --key FILE             TLS private key (PEM)
  --compress             Compress text-like responses on the fly (brotli/gzip)
  --no-precompressed     Ignore precompressed siblings (file.br, file.zst, file.gz)
  --spa                  Single-page app: unknown extension-less paths get /index.html
  --clean-urls           /about serves about.html when /about does not exist
  --cache-control "GLOB=VALUE"
                         Cache-Control for paths matching GLOB (repeatable; later wins),
                         e.g. "/assets/**=public, max-age=31536000, immutable"
  --config FILE          Read flags, per-path rules and sites from a JSON file (flags win)
${RULE_USAGE}${GUARD_USAGE}${CGI_USAGE}${FASTCGI_USAGE}  --log-format FORMAT    Access log format: text, common, combined or json (default text)
  --log-file FILE        Append the access log to FILE instead of stdout
  --live-reload          Developer mode: reload open HTML pages when files in ROOT change
  --workers N|auto       Isolates serving the port, each with its own handler; limits
                         hold for the whole server (default auto: one per core;
                         1 with --live-reload or HTTPS; Linux with --unstable-net,
                         else 1)
  --shutdown-grace SECONDS
                         On SIGINT/SIGTERM, let in-flight requests finish this long,
                         then cut them (a second signal cuts at once; default 10)
  --quiet                No access log
  --print-permissions    Print the deno run permission flags this configuration
                         needs (read, write, net, run, env, sys) and exit
  --version              Print the version and exit
  --help                 Print this help and exit
`;

/** What a run of the CLI needs once flags are parsed. */
type _Config = ServeConfig;

/** A virtual host. */
type _Site = ServeSite;

/** A usage error: message + usage, exit 2. */
class _UsageError extends Error {}

/** Runs a flag parser; what it throws is a usage error (exit 2). */
function _usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new _UsageError(errorMessage(error));
  }
}

/** Every flag; a config file's keys are these names. */
const _FLAGS = {
  host: { type: "string", default: "127.0.0.1" },
  port: { type: "string", default: "8000" },
  "dir-listing": { type: "boolean", default: true },
  dotfiles: { type: "boolean", default: false },
  "follow-symlinks": { type: "boolean", default: false },
  "file-cache-valid": { type: "string", default: "1" },
  cors: { type: "boolean", default: false },
  header: { type: "string", multiple: true, default: [] as string[] },
  cert: { type: "string" },
  key: { type: "string" },
  cgi: { type: "boolean", default: false },
  "cgi-dir": { type: "string", multiple: true },
  "cgi-timeout": { type: "string" },
  "cgi-interpreter": { type: "string", multiple: true },
  "cgi-max-concurrent": { type: "string" },
  "cgi-pass-auth": { type: "boolean", default: false },
  "cgi-pass-env": { type: "string", multiple: true },
  fastcgi: { type: "string", multiple: true },
  "fastcgi-spawn": { type: "string" },
  "fastcgi-workers": { type: "string" },
  "fastcgi-front-controller": { type: "string" },
  "fastcgi-ext": { type: "string" },
  "fastcgi-pass-env": { type: "string", multiple: true },
  "fastcgi-index": { type: "string" },
  "fastcgi-param": { type: "string", multiple: true },
  "fastcgi-keep-alive": { type: "string" },
  "fastcgi-max-connections": { type: "string" },
  "connection-guard": { type: "string" },
  "header-timeout": { type: "string" },
  "keepalive-timeout": { type: "string" },
  "send-timeout": { type: "string" },
  "max-connections": { type: "string" },
  "max-connections-per-client": { type: "string" },
  quiet: { type: "boolean", default: false },
  version: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
  compress: { type: "boolean", default: false },
  precompressed: { type: "boolean", default: true },
  spa: { type: "boolean", default: false },
  "clean-urls": { type: "boolean", default: false },
  "cache-control": { type: "string", multiple: true, default: [] as string[] },
  config: { type: "string" },
  "log-format": { type: "string", default: "text" },
  "log-file": { type: "string" },
  "shutdown-grace": { type: "string", default: "10" },
  "live-reload": { type: "boolean", default: false },
  workers: { type: "string" },
  "print-permissions": { type: "boolean", default: false },
  deny: { type: "string", multiple: true },
  internal: { type: "string", multiple: true },
  alias: { type: "string", multiple: true },
  redirect: { type: "string", multiple: true },
  rewrite: { type: "string", multiple: true },
  "try-files": { type: "string" },
  "basic-auth": { type: "string", multiple: true },
} satisfies NonNullable<ParseArgsConfig["options"]>;

const _LOG_FORMATS: readonly AccessLogFormat[] = [
  "text",
  "common",
  "combined",
  "json",
];

/**
 * `--flag -1` as `--flag=-1` for flags that take a value: parseArgs would
 * take `-1` for a flag of its own ("argument is ambiguous"), while the
 * flag's own check says what is expected.
 */
function _joinNegativeValues(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const next = args[i + 1];
    const spec = _FLAGS[arg.slice(2) as keyof typeof _FLAGS] as
      | { type: string }
      | undefined;
    if (
      arg.startsWith("--") && spec?.type === "string" && next !== undefined &&
      /^-[\d.]/.test(next)
    ) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

function _parseFlags(args: string[]) {
  try {
    return parseArgs({
      args: _joinNegativeValues(args),
      allowPositionals: true,
      allowNegative: true,
      strict: true,
      options: _FLAGS,
    });
  } catch (error) {
    const code = (error as { code?: string }).code;
    const flag = /'(-{1,2}[^']+)'/.exec(String(error))?.[1];
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && flag) {
      throw new _UsageError(`Unknown flag "${flag}"`);
    }
    throw new _UsageError(
      errorMessage(error),
    );
  }
}

/** Where a config file's values came from, for its errors. */
interface _FromFile {
  file?: string;
  args: string[];
}

async function _parse(args: string[]): Promise<_Config | "help" | "version"> {
  const fromFile: _FromFile = { args: [] };
  try {
    return await _parseWith(args, fromFile);
  } catch (error) {
    throw _namedInFile(error, fromFile, args);
  }
}

/**
 * A value error about a flag the config file gave (and the command line did
 * not) names the file and the key: `serve.json: "port": invalid value
 * "eighty": expected 0-65535`.
 */
function _namedInFile(error: unknown, from: _FromFile, args: string[]) {
  if (!(error instanceof _UsageError) || from.file === undefined) return error;
  const match = /^Invalid --([\w-]+) ("(?:[^"\\]|\\.)*"): (.*)$/s.exec(
    error.message,
  );
  if (!match) return error;
  const [, name, value, expected] = match;
  const given = (list: string[]) =>
    list.some((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (!given(from.args) || given(args)) return error;
  return new _UsageError(
    `${from.file}: "${name}": invalid value ${value}: ${expected}`,
  );
}

async function _parseWith(
  args: string[],
  from: _FromFile,
): Promise<_Config | "help" | "version"> {
  let parsed = _parseFlags(args);
  if (parsed.values.help) return "help";
  if (parsed.values.version) return "version";
  let fromFile: ConfigArgs = {
    args: [],
    root: undefined,
    rules: [],
    siteRules: [],
    sites: [],
    unknownHost: "default",
  };
  if (parsed.values.config !== undefined) {
    try {
      const file = parsed.values.config;
      fromFile = configToArgs(await readConfig(file), file, _FLAGS);
      from.file = file;
      from.args = fromFile.args;
    } catch (error) {
      if (error instanceof ConfigError) throw new _UsageError(error.message);
      throw error;
    }
    // The file's flags first: the command line's come later and win.
    parsed = _parseFlags([...fromFile.args, ...args]);
  }
  const { values, positionals } = parsed;
  if (positionals.length > 1) {
    throw new _UsageError(
      `Too many arguments: expected one ROOT, got ${positionals.length}`,
    );
  }
  const graceSpec = values["shutdown-grace"];
  const shutdownGraceMs = Number(graceSpec) * 1000;
  if (!/^\d+(?:\.\d+)?$/.test(graceSpec) || !Number.isFinite(shutdownGraceMs)) {
    throw new _UsageError(
      `Invalid --shutdown-grace "${graceSpec}": expected seconds, 0 or more`,
    );
  }
  const port = Number(values.port);
  if (!/^\d+$/.test(values.port) || port > 65535) {
    throw new _UsageError(`Invalid --port "${values.port}": expected 0-65535`);
  }
  // A name or an IPv4/IPv6 address (brackets allowed around IPv6).
  if (!/^(?:[A-Za-z0-9.-]+|\[?[0-9A-Fa-f:.]+\]?)$/.test(values.host)) {
    throw new _UsageError(
      `Invalid --host "${values.host}": expected a host name or an IP address`,
    );
  }
  const host = values.host.replace(/^\[(.*)\]$/, "$1");
  if ((values.cert === undefined) !== (values.key === undefined)) {
    throw new _UsageError("--cert and --key must be given together");
  }
  const guard = _usage(() => guardOptionsFromFlags(values, host));
  const workers = _workers(values.workers);
  const root = positionals[0] ?? fromFile.root ?? ".";
  const logFormat = values["log-format"] as AccessLogFormat;
  if (!_LOG_FORMATS.includes(logFormat)) {
    throw new _UsageError(
      `Invalid --log-format "${logFormat}": expected ${
        _LOG_FORMATS.join(", ")
      }`,
    );
  }
  const handler = _handler(values, root, fromFile.rules, fromFile.siteRules);
  const sites = fromFile.sites.map((site): _Site => {
    if (site.root === undefined) {
      throw new _UsageError(`${from.file}: "${site.at}.root" is missing`);
    }
    // The file's top-level flags, the site's own, then the command line's.
    const own = _parseFlags([...fromFile.args, ...site.args, ...args]).values;
    return {
      hosts: site.hosts,
      root: site.root,
      handler: _handler(own, site.root, site.rules, site.siteRules),
    };
  });
  return {
    root,
    host,
    port,
    cert: values.cert,
    key: values.key,
    guard,
    quiet: values.quiet,
    logFormat,
    logFile: values["log-file"],
    shutdownGraceMs,
    configFile: values.config,
    printPermissions: values["print-permissions"],
    workers,
    handler,
    sites,
    unknownHost: fromFile.unknownHost,
  };
}

/** `--workers N|auto`: a count, `"auto"`, or `undefined` (not given). */
function _workers(spec: string | undefined): number | "auto" | undefined {
  if (spec === undefined || spec === "auto") return spec;
  const count = Number(spec);
  if (!/^\d+$/.test(spec) || count < 1 || count > 1024) {
    throw new _UsageError(
      `Invalid --workers "${spec}": expected auto or a count, 1-1024`,
    );
  }
  return count;
}

/** The flags' values, as parsed. */
type _Values = ReturnType<typeof _parseFlags>["values"];

/** One site's handler options from its flags, root and rules. */
function _handler(
  values: _Values,
  root: string,
  headerRules: ConfigArgs["rules"],
  rules: ConfigArgs["siteRules"],
): HandlerOptions {
  const cacheSpec = values["file-cache-valid"];
  const cacheMs = Number(cacheSpec) * 1000;
  if (!/^\d+(?:\.\d+)?$/.test(cacheSpec) || !Number.isFinite(cacheMs)) {
    throw new _UsageError(
      `Invalid --file-cache-valid "${cacheSpec}": expected seconds, 0 or more`,
    );
  }
  const setHeaders = _usage(() => headerOptionsFromFlags(values, headerRules));
  const fastcgi = _usage(() => fastCgiOptionsFromFlags(values));
  const cgi = _usage(() => cgiOptionsFromFlags(values, root));
  const flagged = _usage(() => ruleFlags(values));
  const all = [...rules, ...flagged];
  const needsFastcgi = all.findIndex((r) => r.fastcgi !== undefined);
  if (needsFastcgi >= 0 && !fastcgi) {
    throw new _UsageError(
      `a "fastcgi" rule (${
        all[needsFastcgi]!.prefix
      }) needs --fastcgi or --fastcgi-spawn`,
    );
  }
  return {
    root,
    dotfiles: values.dotfiles,
    followSymlinks: values["follow-symlinks"],
    ...(cacheMs > 0 ? { cache: { validMs: cacheMs } } : {}),
    serveStatic: {
      dirListing: values["dir-listing"],
      compress: values.compress,
      precompressed: values.precompressed,
      spa: values.spa,
      cleanUrls: values["clean-urls"],
    },
    cors: values.cors,
    ...(setHeaders ? { setHeaders } : {}),
    liveReload: values["live-reload"],
    ...(cgi ? { cgi } : {}),
    ...(fastcgi ? { fastcgi } : {}),
    ...(all.length ? { rules: all } : {}),
  };
}

/** What `config` needs (see cli/permissions.ts). */
function _needed(config: _Config): NeededPermissions {
  // What the planned workers need (also when they fell back to one for
  // lack of it: --print-permissions says how to run them).
  const isolates = plannedWorkers(config).count;
  return neededPermissions({ ...config, isolates }, permissionFacts(config));
}

/** Returns the missing-permission flag, or undefined when all are granted. */
async function _missingPermission(
  config: _Config,
): Promise<string | undefined> {
  const checks: Array<[Deno.PermissionDescriptor, string]> = [
    [{ name: "read", path: config.root }, `--allow-read=${config.root}`],
    // A fixed port may be granted on its own (--allow-net=127.0.0.1:8000).
    config.port === 0
      ? [{ name: "net", host: config.host }, `--allow-net=${config.host}`]
      : [
        { name: "net", host: `${config.host}:${config.port}` },
        `--allow-net=${config.host}:${config.port}`,
      ],
  ];
  if (config.logFile !== undefined) {
    checks.push([
      { name: "write", path: config.logFile },
      `--allow-write=${config.logFile}`,
    ]);
  }
  for (const file of [config.cert, config.key]) {
    if (file !== undefined) {
      checks.push([{ name: "read", path: file }, `--allow-read=${file}`]);
    }
  }
  if (config.handler.cgi) {
    // Scripts are programs anywhere under a directory: Deno cannot scope
    // --allow-run to a directory, so CGI needs it unscoped.
    checks.push([{ name: "run" }, "--allow-run"]);
  }
  if (config.handler.fastcgi?.spawn !== undefined) {
    checks.push([{ name: "run" }, "--allow-run"]);
  }
  for (const [descriptor, flag] of checks) {
    const status = await Deno.permissions.query(descriptor);
    if (status.state !== "granted") return flag;
  }
  return undefined;
}

/** Whole access-log lines to a file, in order. */
interface _LogWriter {
  write(line: string): void;
  flush(): Promise<void>;
}

/**
 * Appends access-log lines to a file, one write after another (whole lines,
 * in order). If the file fails (disk full, …) the server keeps running: one
 * error line on stderr, and the log goes on on stdout.
 */
function _logWriter(file: Deno.FsFile, name: string): _LogWriter {
  const encoder = new TextEncoder();
  let chain = Promise.resolve();
  let failed = false;
  return {
    write(line: string): void {
      chain = chain.then(async () => {
        if (failed) return console.log(line);
        let bytes = encoder.encode(line + "\n");
        try {
          while (bytes.length > 0) {
            bytes = bytes.subarray(await file.write(bytes));
          }
        } catch (error) {
          failed = true;
          const why = errorMessage(error);
          console.error(
            `error: cannot write to --log-file "${name}" (${why}); logging to stdout`,
          );
          console.log(line);
        }
      });
    },
    flush(): Promise<void> {
      return chain;
    },
  };
}

function _fail(message: string): number {
  console.error(`error: ${message}`);
  return 1;
}

/**
 * Runs the CLI with `args` (without the program name); resolves with the
 * exit code once the server has stopped. Internal to the CLI (not exported from `mod.ts`). `mod.ts` imports it
 * dynamically when run as a program.
 *
 * @example Printing the version
 * ```ts ignore
 * import { main } from "./main.ts";
 * Deno.exit(await main(["--version"]));
 * ```
 *
 * @param args Command-line arguments.
 * @returns The exit code.
 */
export async function main(args: string[]): Promise<number> {
  await _useCallerFolder();
  let config: _Config | "help" | "version";
  try {
    config = await _parse(args);
  } catch (error) {
    if (!(error instanceof _UsageError)) throw error;
    // One line, not the whole usage (it would scroll the message away).
    console.error(`error: ${error.message}\nRun with --help for usage.`);
    return 2;
  }
  if (config === "help") {
    console.log(_USAGE);
    return 0;
  }
  if (config === "version") {
    console.log(`@x/serve ${denoConfig.version}`);
    return 0;
  }
  if (config.printPermissions) {
    console.log(shellLine(permissionFlags(_needed(config))));
    return 0;
  }
  const missing = await _missingPermission(config);
  if (missing) return _fail(`missing permission: run with ${missing} (or -A)`);
  for (const root of [config.root, ...config.sites.map((s) => s.root)]) {
    const problem = await _rootProblem(root);
    if (problem) return _fail(problem);
  }
  const tls = await _readTls(config);
  if (typeof tls === "string") return _fail(tls);
  const log = await _openAccessLog(config);
  if (typeof log === "string") return _fail(log);
  // Freed memory back to the system after peaks (where FFI is granted).
  const trim = startMemoryTrim();
  try {
    return await _serve(config, tls, trim !== undefined);
  } finally {
    trim?.stop();
    await log?.writer.flush();
    log?.file.close();
  }
}

/**
 * `deno task` runs in the folder of deno.json and keeps the user's own
 * folder in INIT_CWD: relative ROOT, --config, --cert, … mean the latter.
 */
async function _useCallerFolder(): Promise<void> {
  const env = { name: "env", variable: "INIT_CWD" } as const;
  if ((await Deno.permissions.query(env)).state !== "granted") return;
  const initCwd = Deno.env.get("INIT_CWD");
  if (!initCwd) return;
  try {
    Deno.chdir(initCwd);
  } catch { /* keep the task's folder */ }
}

/** Why ROOT cannot be served, or `undefined` when it can. */
async function _rootProblem(root: string): Promise<string | undefined> {
  try {
    const info = await Deno.stat(root);
    if (!info.isDirectory) return `root "${root}" is not a directory`;
    for await (const _ of Deno.readDir(root)) break;
    return undefined;
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound
      ? "does not exist"
      : "cannot be read";
    return `root "${root}" ${why}`;
  }
}

type _Tls = { cert: string; key: string } | undefined;

/** The certificate and key, or the error message when they cannot be read. */
async function _readTls(config: _Config): Promise<_Tls | string> {
  if (config.cert === undefined || config.key === undefined) return undefined;
  try {
    const cert = await _readPem("cert", config.cert);
    const key = await _readPem("key", config.key);
    try {
      checkCertificatePair(cert, key);
    } catch (error) {
      throw new Error(
        `--cert "${config.cert}" / --key "${config.key}": ${
          errorMessage(error)
        }`,
      );
    }
    return { cert, key };
  } catch (error) {
    return errorMessage(error);
  }
}

/** Reads a PEM file given as `--FLAG`; throws with the file and the reason. */
async function _readPem(
  flag: "cert" | "key",
  file: string,
): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    const where = resolve(file) === file ? "" : ` (${resolve(file)})`;
    // Deno appends the call (": readfile '/path'"): the path is named already.
    const why = errorMessage(error).replace(/: \w+ '[^']*'$/, "");
    throw new Error(`cannot read --${flag} "${file}"${where}: ${why}`);
  }
  const pem = flag === "cert"
    ? /-----BEGIN CERTIFICATE-----/
    : /-----BEGIN [A-Z ]*PRIVATE KEY-----/;
  if (!pem.test(text)) {
    throw new Error(
      `--${flag} "${file}" is not a PEM ${
        flag === "cert" ? "certificate" : "private key"
      }`,
    );
  }
  return text;
}

/**
 * Sets up the access log on `config.handler` (stdout, or `--log-file`):
 * the open file, or the error message. `--quiet` silences stdout (access
 * log and banner); a `--log-file` still gets the access log.
 */
async function _openAccessLog(
  config: _Config,
): Promise<{ file: Deno.FsFile; writer: _LogWriter } | undefined | string> {
  if (config.quiet && config.logFile === undefined) return undefined;
  let opened: { file: Deno.FsFile; writer: _LogWriter } | undefined;
  if (config.logFile !== undefined) {
    try {
      const file = await Deno.open(config.logFile, {
        append: true,
        create: true,
      });
      opened = { file, writer: _logWriter(file, config.logFile) };
    } catch {
      return `cannot open --log-file "${config.logFile}"`;
    }
  }
  const write = opened?.writer.write;
  config.handler.accessLog = {
    format: config.logFormat,
    color: write === undefined && Deno.stdout.isTerminal() && !Deno.noColor,
    ...(write ? { write } : {}),
  };
  return opened;
}

/**
 * Listens, prints the banner, and serves until SIGINT/SIGTERM. The first
 * signal prints `stopping: N requests in flight`, stops accepting and gives
 * in-flight requests `--shutdown-grace`; past it, or on a second signal,
 * every CGI script's process group is killed, open bodies are cancelled
 * and FastCGI is closed (spawned workers stopped), then it returns and the
 * process exit closes the connections still open. Exit code 0 either way.
 */
async function _serve(
  config: _Config,
  tls: _Tls,
  memoryTrim: boolean,
): Promise<number> {
  const workers = workerCount(config);
  if (workers.count > 1) {
    return await _serveWorkers(config, workers, tls, memoryTrim);
  }
  if (workers.reason !== undefined && config.workers !== undefined) {
    console.error(
      `warning: --workers ${config.workers}: ${workers.reason}; serving with one`,
    );
  }
  // Aborted on the first SIGINT/SIGTERM: ends live-reload event streams,
  // which would otherwise keep server.shutdown() waiting for the open pages.
  const stopping = new AbortController();
  // Aborted past the grace: kills every running CGI script's group.
  const killing = new AbortController();
  const { app, requests } = buildApp(config, {
    stopping: stopping.signal,
    killing: killing.signal,
  });
  const handler = requests.handler;
  const root = await Deno.realPath(config.root);
  // Aborted only while the server has not started: once shutdown() was
  // called, aborting Deno.serve's signal throws BadResource (uncaught).
  const controller = new AbortController();
  let server:
    | { shutdown(): Promise<void>; finished: Promise<void> }
    | undefined;
  let grace: ReturnType<typeof setTimeout> | undefined;
  let giveUp: ReturnType<typeof setTimeout> | undefined;
  const cutOff = Promise.withResolvers<void>();
  let forced: Promise<unknown> | undefined;
  const force = (): void => {
    if (forced) return;
    clearTimeout(grace);
    killing.abort();
    forced = Promise.race([
      Promise.allSettled([requests.cut(), app.close()]),
      new Promise((resolve) => giveUp = setTimeout(resolve, FORCE_WAIT_MS)),
    ]);
    forced.then(() => cutOff.resolve());
  };
  const stop = (): void => {
    if (stopping.signal.aborted) return force();
    // --quiet: nothing on stdout but the Listening line.
    if (!config.quiet) {
      console.log(`stopping: ${requests.count} requests in flight`);
    }
    stopping.abort();
    if (!server) return controller.abort();
    // Stop accepting; in-flight requests get the grace period.
    grace = setTimeout(force, config.shutdownGraceMs);
    server.shutdown().catch(() => {}).finally(() => clearTimeout(grace));
  };
  // Listening before `Listening on` is printed: a signal right after that
  // line must stop the server, not kill the process.
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  const scheme = tls ? "https" : "http";
  // Set once the server is started with the guard (for the banner).
  let guarded = false;
  const onListen = ({ hostname, port }: { hostname: string; port: number }) =>
    _announce(config, {
      scheme,
      hostname,
      port,
      root,
      guarded,
      workers,
      memoryTrim,
    });
  const listen = { hostname: config.host, port: config.port };
  let certificates: CertificateWatch | undefined;
  try {
    if (tls && await _frontAllowed()) {
      guarded = config.guard !== undefined && guardAvailable();
      const front = await serveTlsFront(handler, {
        ...listen,
        ...tls,
        ...(config.guard ? { guard: config.guard } : {}),
        signal: controller.signal,
        onListen,
      });
      server = front;
      certificates = watchCertificate(
        config.cert!,
        config.key!,
        front.setCertificate,
        (line) => console.error(line),
      );
    } else if (config.guard && !tls && guardAvailable()) {
      guarded = true;
      server = serveGuarded(handler, {
        ...listen,
        ...config.guard,
        signal: controller.signal,
        onListen,
        log: (level, message) => {
          if (level !== "info") console.error(`${level}: ${message}`);
        },
      });
    } else {
      server = Deno.serve({
        ...listen,
        ...tls,
        signal: controller.signal,
        onListen,
      }, handler);
    }
    await Promise.race([server.finished, cutOff.promise]);
  } catch (error) {
    return _fail(
      `cannot listen on ${config.host}:${config.port}: ${errorMessage(error)}`,
    );
  } finally {
    clearTimeout(grace);
    // A background child still holding a finished script's pipe dies too.
    killing.abort();
    await forced;
    clearTimeout(giveUp);
    await certificates?.close();
    await app.close(); // stops spawned FastCGI workers
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
  }
  return 0;
}

/** What the `Listening on` line and the banner tell. */
interface _Listening {
  scheme: "http" | "https";
  hostname: string;
  port: number;
  /** The real ROOT. */
  root: string;
  guarded: boolean;
  workers: WorkerCount;
  /** Freed memory is given back (`cli/memory_trim.ts`). */
  memoryTrim: boolean;
}

/** Prints `Listening on URL` (the first stdout line), then the banner. */
function _announce(config: _Config, at: _Listening): void {
  const { scheme, hostname, port } = at;
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  console.log(`Listening on ${scheme}://${host}:${port}/`);
  // --quiet: nothing on stdout but the Listening line.
  if (config.quiet) return;
  const needed = _needed(config);
  const lines = bannerLines({
    scheme,
    hostname,
    port,
    root: at.root,
    options: config.handler,
    guard: at.guarded,
    memoryTrim: at.memoryTrim,
    sites: config.sites.map((s) => ({
      hosts: s.hosts,
      root: s.root,
      options: s.handler,
    })),
    unknownHost: config.unknownHost,
    permissions: {
      needed: permissionFlags(needed),
      ...comparePermissions(needed),
    },
  });
  const { count, reason } = at.workers;
  // Before the permissions line (the banner's last).
  lines.splice(
    lines.length - 1,
    0,
    `  Workers:     ${
      count > 1
        ? `${count} isolates sharing the port`
        : reason === undefined
        ? "1"
        : `1 (${reason})`
    }`,
  );
  console.log(lines.join("\n"));
}

/**
 * `--workers` over 1: the isolates of cli/workers.ts serve, this thread
 * announces, logs and supervises.
 */
async function _serveWorkers(
  config: _Config,
  workers: WorkerCount,
  tls: _Tls,
  memoryTrim: boolean,
): Promise<number> {
  const root = await Deno.realPath(config.root);
  const accessLog = config.handler.accessLog;
  const write = typeof accessLog === "object"
    ? accessLog.write ?? ((lines: string) => console.log(lines))
    : undefined;
  const result = await serveWorkers(config, {
    count: workers.count,
    writeLog: write,
    testHooks: await testHooksEnabled(),
    ...(tls ? { tls } : {}),
    onListen: ({ hostname, port }) =>
      _announce(config, {
        scheme: tls ? "https" : "http",
        hostname,
        port,
        root,
        guarded: config.guard !== undefined && guardAvailable(),
        workers,
        memoryTrim,
      }),
  });
  return typeof result === "string" ? _fail(result) : result;
}

/**
 * The TLS front listens on loopback too (its inner plain server): without
 * that permission, Deno's own TLS listener serves (with its Nagle stall).
 */
async function _frontAllowed(): Promise<boolean> {
  const net = { name: "net", host: "127.0.0.1" } as const;
  return (await Deno.permissions.query(net)).state === "granted";
}
