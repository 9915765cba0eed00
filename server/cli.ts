/**
 * The command-line interface: `deno run -A jsr:@x/serve [ROOT] [flags]`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import denoConfig from "../deno.json" with { type: "json" };
import { createHandler, type HandlerOptions } from "./handler.ts";
import { parseHeader } from "./headers.ts";
import {
  FASTCGI_USAGE,
  fastCgiOptionsFromFlags,
} from "../cgi/fastcgi/flags.ts";
import { CGI_USAGE, cgiOptionsFromFlags } from "../cgi/flags.ts";

const _USAGE = `Usage: serve [ROOT] [flags]

Serves the folder ROOT (default ".") over HTTP.

Flags:
  --host HOST            Address to listen on (default 127.0.0.1; 0.0.0.0 for all)
  --port PORT            Port to listen on, 0 picks a free one (default 8000)
  --no-dir-listing       Answer 404 for directories without index.html
  --dotfiles             Serve dotfiles and dot-directories (.env, .git/)
  --follow-symlinks      Follow symlinks that lead out of ROOT
  --cors                 Add CORS headers and answer preflight requests
  --header "Name: value" Set a header on every response (repeatable)
  --cert FILE            TLS certificate (PEM); needs --key; enables HTTPS + HTTP/2
  --key FILE             TLS private key (PEM)
${CGI_USAGE}${FASTCGI_USAGE}  --quiet                No access log
  --version              Print the version and exit
  --help                 Print this help and exit
`;

/** What a run of the CLI needs once flags are parsed. */
interface _Config {
  root: string;
  host: string;
  port: number;
  cert: string | undefined;
  key: string | undefined;
  quiet: boolean;
  handler: HandlerOptions;
}

/** A usage error: message + usage, exit 2. */
class _UsageError extends Error {}

function _parse(args: string[]): _Config | "help" | "version" {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      allowNegative: true,
      strict: true,
      options: {
        host: { type: "string", default: "127.0.0.1" },
        port: { type: "string", default: "8000" },
        "dir-listing": { type: "boolean", default: true },
        dotfiles: { type: "boolean", default: false },
        "follow-symlinks": { type: "boolean", default: false },
        cors: { type: "boolean", default: false },
        header: { type: "string", multiple: true, default: [] },
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
        quiet: { type: "boolean", default: false },
        version: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    throw new _UsageError(
      error instanceof Error ? error.message : String(error),
    );
  }
  const { values, positionals } = parsed;
  if (values.help) return "help";
  if (values.version) return "version";
  if (positionals.length > 1) {
    throw new _UsageError(
      `Too many arguments: expected one ROOT, got ${positionals.length}`,
    );
  }
  const port = Number(values.port);
  if (!/^\d+$/.test(values.port) || port > 65535) {
    throw new _UsageError(`Invalid --port "${values.port}": expected 0-65535`);
  }
  if (values.host === "") {
    throw new _UsageError(`Invalid --host "": expected an address`);
  }
  if ((values.cert === undefined) !== (values.key === undefined)) {
    throw new _UsageError("--cert and --key must be given together");
  }
  let headers: Array<[string, string]>;
  try {
    headers = values.header.map(parseHeader);
  } catch (error) {
    throw new _UsageError(
      error instanceof Error ? error.message : String(error),
    );
  }
  let fastcgi;
  try {
    fastcgi = fastCgiOptionsFromFlags(values);
  } catch (error) {
    throw new _UsageError(
      error instanceof Error ? error.message : String(error),
    );
  }
  const root = positionals[0] ?? ".";
  let cgi;
  try {
    cgi = cgiOptionsFromFlags(values, root);
  } catch (error) {
    throw new _UsageError(
      error instanceof Error ? error.message : String(error),
    );
  }
  return {
    root,
    host: values.host,
    port,
    cert: values.cert,
    key: values.key,
    quiet: values.quiet,
    handler: {
      root,
      dirListing: values["dir-listing"],
      dotfiles: values.dotfiles,
      followSymlinks: values["follow-symlinks"],
      cors: values.cors,
      headers,
      accessLog: !values.quiet,
      ...(cgi ? { cgi } : {}),
      ...(fastcgi ? { fastcgi } : {}),
    },
  };
}

/** Returns the missing-permission flag, or undefined when all are granted. */
async function _missingPermission(
  config: _Config,
): Promise<string | undefined> {
  const checks: Array<[Deno.PermissionDescriptor, string]> = [
    [{ name: "read", path: config.root }, `--allow-read=${config.root}`],
    [{ name: "net", host: config.host }, `--allow-net=${config.host}`],
  ];
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

function _fail(message: string): number {
  console.error(`error: ${message}`);
  return 1;
}

/**
 * Runs the CLI with `args` (without the program name); resolves with the
 * exit code once the server has stopped.
 *
 * @example Printing the version
 * ```ts ignore
 * import { main } from "./server/cli.ts";
 * Deno.exit(await main(["--version"]));
 * ```
 *
 * @param args Command-line arguments.
 * @returns The exit code.
 */
export async function main(args: string[]): Promise<number> {
  let config: _Config | "help" | "version";
  try {
    config = _parse(args);
  } catch (error) {
    if (!(error instanceof _UsageError)) throw error;
    console.error(`error: ${error.message}\n\n${_USAGE}`);
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
  const missing = await _missingPermission(config);
  if (missing) return _fail(`missing permission: run with ${missing} (or -A)`);
  try {
    const info = await Deno.stat(config.root);
    if (!info.isDirectory) {
      return _fail(`root "${config.root}" is not a directory`);
    }
    for await (const _ of Deno.readDir(config.root)) break;
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound
      ? "does not exist"
      : "cannot be read";
    return _fail(`root "${config.root}" ${why}`);
  }
  let tls: { cert: string; key: string } | undefined;
  if (config.cert !== undefined && config.key !== undefined) {
    try {
      tls = {
        cert: await Deno.readTextFile(config.cert),
        key: await Deno.readTextFile(config.key),
      };
    } catch {
      return _fail(
        `cannot read --cert "${config.cert}" or --key "${config.key}"`,
      );
    }
  }

  const handler = createHandler(config.handler);
  const controller = new AbortController();
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: config.host,
      port: config.port,
      signal: controller.signal,
      ...tls,
      onListen({ hostname, port }) {
        const host = hostname.includes(":") ? `[${hostname}]` : hostname;
        console.log(
          `Listening on ${tls ? "https" : "http"}://${host}:${port}/`,
        );
      },
    }, handler);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    await handler.close();
    return _fail(`cannot listen on ${config.host}:${config.port}: ${why}`);
  }

  const stop = () => {
    // Stop accepting; in-flight requests get a bounded grace period.
    const grace = setTimeout(() => controller.abort(), 10_000);
    server.shutdown().finally(() => clearTimeout(grace));
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  try {
    await server.finished;
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
    await handler.close(); // stops spawned FastCGI workers
  }
  return 0;
}
