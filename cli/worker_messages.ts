/**
 * The messages between the main thread and its `--workers` isolates.
 * Internal to the CLI (not exported from `mod.ts`).
 *
 * @module
 */

import type { ServeConfig } from "./serve_config.ts";

/** The first message to a worker: what to serve and where. */
export interface StartMessage {
  type: "start";
  /** The worker's index (kept by its replacements). */
  index: number;
  /** The parsed command line, with FastCGI pools as addresses. */
  config: ServeConfig;
  /** The port every worker listens on (already chosen for `--port 0`). */
  port: number;
  /**
   * Per site (0: the default site, then `config.sites` in order), the CGI
   * slot count shared by every worker, when that site runs CGI.
   */
  cgiSlots: (SharedArrayBuffer | undefined)[];
  /**
   * The connection guard's counts shared by every worker
   * (cli/shared_conns.ts), when the guard runs.
   */
  connSlots: SharedArrayBuffer | undefined;
  /**
   * Per site (as `cgiSlots`), per FastCGI backend (in the order of its
   * `backends`), the connection counts shared by every worker
   * (cgi/fastcgi/shared.ts), when the site has FastCGI.
   */
  fastcgiSlots: (SharedArrayBuffer[] | undefined)[];
  /** Whether the test hooks are on (see cli/test_hooks.ts). */
  testHooks: boolean;
  /** HTTPS: the certificate and key (PEM) its TLS front serves with. */
  tls?: { cert: string; key: string };
}

/** What the main thread tells a worker. */
export type ToWorker =
  | StartMessage
  /** Stop accepting; in-flight requests finish (answered with `draining`). */
  | { type: "drain" }
  /** The grace is over: kill scripts, cut bodies, close (then `stopped`). */
  | { type: "cut" }
  /** A renewed certificate and key (PEM, checked): for new connections. */
  | { type: "certificate"; cert: string; key: string };

/** What a worker tells the main thread. */
export type FromWorker =
  /** Its module ran: it takes the `start` message now. */
  | { type: "loaded" }
  /** It listens; `tid` is its thread (to find its CGI children). */
  | { type: "listening"; tid: number | undefined }
  /** It could not start (the handler, or the port): fatal at start. */
  | { type: "failed"; message: string }
  /** Whole access-log lines, in order. */
  | { type: "log"; lines: string[] }
  /** Answer to `drain`: the requests it had in flight. */
  | { type: "draining"; count: number }
  /** Drained (or cut): everything it owned is closed. */
  | { type: "stopped" }
  /** An uncaught error: it stopped accepting and is cleaning up. */
  | { type: "crashed"; message: string }
  /** Done cleaning up after `crashed`: terminate it. */
  | { type: "dead" };
