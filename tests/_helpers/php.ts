/**
 * PHP for the FastCGI suites (not part of the published package): the PHP
 * fixtures, a real php-fpm started with its own pool config (TCP port or
 * unix socket), and the server's chain around a FastCGI gateway.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  compose,
  errorPages,
  type Handler,
  type Middleware,
  resolvePath,
  serveStatic,
} from "../../mod.ts";
import { freePort, waitForListen } from "./net.ts";

/** The PHP fixtures. */
export const PHP_ROOT: string = fileURLToPath(
  new URL("../testdata/php", import.meta.url),
);

/** A running php-fpm. */
export interface PhpFpm extends AsyncDisposable {
  /** `127.0.0.1:PORT` or `unix:/path`. */
  address: string;
  /** The pool's error log (php-fpm's own log). */
  errorLog: string;
  /** Stops php-fpm (TERM) and waits for it. */
  stop(): Promise<void>;
  /** Starts it again on the same address. */
  start(): Promise<void>;
}

/** Options of {@linkcode startPhpFpm}. */
export interface PhpFpmOptions {
  /** Listen on a unix socket instead of a TCP port. */
  unix?: boolean;
  /** `pm.max_children` (pm = static). */
  workers?: number;
  /** Use this TCP port (default: a free one). */
  port?: number;
}

/**
 * Starts php-fpm in the foreground with a private config in a temp dir.
 *
 * @param options Transport and worker count.
 * @returns The running php-fpm.
 */
export async function startPhpFpm(
  options: PhpFpmOptions = {},
): Promise<PhpFpm> {
  const { unix = false, workers = 4 } = options;
  const dir = await Deno.makeTempDir({ prefix: "x-serve-fpm-" });
  await Deno.chmod(dir, 0o755);
  const address = unix
    ? `unix:${join(dir, "fpm.sock")}`
    : `127.0.0.1:${options.port ?? freePort()}`;
  const errorLog = join(dir, "fpm.log");
  const conf = join(dir, "php-fpm.conf");
  await Deno.writeTextFile(
    conf,
    `[global]
pid = ${join(dir, "fpm.pid")}
error_log = ${errorLog}
daemonize = no
log_level = notice

[test]
listen = ${unix ? address.slice(5) : address}
pm = static
pm.max_children = ${workers}
catch_workers_output = yes
security.limit_extensions = .php
request_terminate_timeout = 60s
php_admin_flag[log_errors] = on
php_admin_value[display_errors] = off
php_admin_value[post_max_size] = 64M
php_admin_value[upload_max_filesize] = 64M
php_admin_value[memory_limit] = 256M
php_admin_value[output_buffering] = 4096
php_admin_flag[expose_php] = off
`,
  );
  let child: Deno.ChildProcess | undefined;
  const args = ["-n", "-y", conf, "-F", ...(Deno.uid() === 0 ? ["-R"] : [])];

  async function start(): Promise<void> {
    child = new Deno.Command("php-fpm8.2", {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitForListen(address);
  }

  async function stop(): Promise<void> {
    if (!child) return;
    const c = child;
    child = undefined;
    try {
      c.kill("SIGTERM");
    } catch {
      // gone
    }
    await c.status;
    if (unix) await Deno.remove(address.slice(5)).catch(() => {});
  }

  await start();
  return {
    address,
    errorLog,
    start,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Collected log lines of a test handler. */
export type LogLines = string[];

/**
 * The default chain with the FastCGI gateway: errorPages → resolvePath →
 * fastcgi → serveStatic, logging into `logs`.
 *
 * @param php The gateway.
 * @param logs Where log lines go.
 * @param root The document root.
 * @returns The handler.
 */
export function chain(
  php: Middleware,
  logs: LogLines = [],
  root: string = PHP_ROOT,
): Handler {
  return compose([errorPages(), resolvePath({ root }), php, serveStatic()], {
    log: (level, message) => logs.push(`${level} ${message}`),
  });
}
