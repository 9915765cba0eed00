/**
 * What a run of the CLI serves, once its flags are parsed: shared by the
 * main thread and the worker isolates (`--workers`), which get it by
 * structured clone. Internal to the CLI (not exported from `mod.ts`).
 *
 * @module
 */

import type { HandlerOptions } from "../handler/create_handler.ts";
import type { AccessLogFormat } from "../middleware/access_log.ts";
import type { GuardSettings } from "./guard_flags.ts";

/**
 * A parsed command line (flags, config file). Plain data: it crosses to
 * worker isolates by `postMessage` (the access log's `write` is set again
 * on the other side).
 */
export interface ServeConfig {
  /** The default site's folder. */
  root: string;
  /** The address to listen on. */
  host: string;
  /** The port (`0`: a free one). */
  port: number;
  /** `--cert FILE`. */
  cert: string | undefined;
  /** `--key FILE`. */
  key: string | undefined;
  /** The connection guard's settings; `undefined`: off. */
  guard: GuardSettings | undefined;
  /** `--quiet`. */
  quiet: boolean;
  /** `--log-format`. */
  logFormat: AccessLogFormat;
  /** `--log-file FILE`. */
  logFile: string | undefined;
  /** `--shutdown-grace`, in milliseconds. */
  shutdownGraceMs: number;
  /** `--config FILE`. */
  configFile: string | undefined;
  /** `--print-permissions`. */
  printPermissions: boolean;
  /**
   * `--workers`: a count, `"auto"` (the cores), or `undefined` (not given:
   * the default, see cli/workers.ts).
   */
  workers: number | "auto" | undefined;
  /** The default site's handler options. */
  handler: HandlerOptions;
  /** Virtual hosts (`"sites"` in the config file); the default site is `handler`. */
  sites: ServeSite[];
  /** What an unknown Host gets: the default site, or 421. */
  unknownHost: "default" | 421;
}

/** A virtual host. */
export interface ServeSite {
  /** Its host names. */
  hosts: string[];
  /** Its folder. */
  root: string;
  /** Its handler options. */
  handler: HandlerOptions;
}
