/**
 * The CLI's application: every site's handler chain, counted for shutdown.
 * Built once per isolate (the main thread, or each `--workers` isolate).
 * Internal to the CLI (not exported from `mod.ts`).
 *
 * @module
 */

import {
  type ClosableHandler,
  createHandler,
  type HandlerOptions,
} from "../handler/create_handler.ts";
import { virtualHosts } from "../handler/virtual_hosts.ts";
import { accessLog } from "../middleware/access_log.ts";
import { compose } from "../server/compose.ts";
import { HttpError } from "../server/errors.ts";
import type { Handler } from "../server/types.ts";
import { type InFlight, inFlight } from "./in_flight.ts";
import type { ServeConfig } from "./serve_config.ts";

/** The signals of one isolate's shutdown. */
export interface AppSignals {
  /**
   * Aborted on the first SIGINT/SIGTERM: ends live-reload event streams,
   * which would otherwise keep `server.shutdown()` waiting for open pages.
   */
  stopping: AbortSignal;
  /** Aborted past the grace: kills every running CGI script's group. */
  killing: AbortSignal;
}

/** The application of one isolate. */
export interface App {
  /** Every site's handler (closing it stops what they own). */
  app: ClosableHandler;
  /** The same, counted and cuttable: what the server is given. */
  requests: InFlight;
}

/**
 * Builds the sites' handlers from `config` (one access log for every site:
 * the default site's), wraps them for shutdown, and returns both.
 *
 * @example Building the app of a folder
 * ```ts ignore
 * const { requests } = buildApp(config, { stopping, killing });
 * Deno.serve(requests.handler);
 * ```
 *
 * @param config The parsed command line.
 * @param signals The isolate's shutdown signals.
 * @returns The handlers.
 */
export function buildApp(config: ServeConfig, signals: AppSignals): App {
  const site = (options: HandlerOptions) => {
    const cgi = options.cgi && { ...options.cgi, signal: signals.killing };
    return createHandler({
      ...options,
      // One access log for every site (the default site's).
      ...(config.handler.accessLog
        ? { accessLog: config.handler.accessLog }
        : {}),
      ...(cgi ? { cgi } : {}),
      signal: signals.stopping,
    });
  };
  const app = config.sites.length === 0 ? site(config.handler) : virtualHosts({
    sites: config.sites.map((s) => ({
      hosts: s.hosts,
      handler: site(s.handler),
    })),
    fallback: config.unknownHost === 421
      ? _misdirected(config)
      : site(config.handler),
  });
  const cgi = [config.handler, ...config.sites.map((s) => s.handler)]
    .some((h) => h.cgi !== undefined || h.rules?.some((r) => r.cgi));
  return { app, requests: inFlight(app, cgi) };
}

/** 421 for an unknown host, through the access log like every request. */
function _misdirected(config: ServeConfig): Handler | 421 {
  const log = config.handler.accessLog;
  if (!log) return 421;
  return compose([
    accessLog(log === true ? {} : log),
    () => {
      throw new HttpError(421, "No site for this host");
    },
  ]);
}
