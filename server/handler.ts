/**
 * {@linkcode createHandler}: the default middleware chain, ready for
 * `Deno.serve`.
 *
 * @module
 */

import { accessLog, type AccessLogOptions } from "./access_log.ts";
import { compose } from "./compose.ts";
import { cors, type CorsOptions } from "./cors.ts";
import { errorPages, type ErrorPagesOptions } from "./error_page.ts";
import { liveReload } from "./live_reload.ts";
import { type HeaderRule, setHeaders } from "./headers.ts";
import { resolvePath } from "./resolve.ts";
import type { Handler, LogFn, Middleware } from "./types.ts";
import { serveStatic } from "../static/serve_static.ts";
import { fastcgi, type FastCgiOptions } from "../cgi/fastcgi/fastcgi.ts";
import { cgi, type CgiOptions } from "../cgi/cgi.ts";

/**
 * Options of {@linkcode createHandler}.
 *
 * @example A single-page app with long-lived asset caching
 * ```ts
 * import { createHandler, type HandlerOptions } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/index.html`, "<h1>app</h1>");
 * const options: HandlerOptions = {
 *   root,
 *   spa: true,
 *   headerRules: [{
 *     path: "/assets/**",
 *     headers: [["cache-control", "public, max-age=31536000, immutable"]],
 *   }],
 * };
 * await using handler = createHandler(options);
 * const res = await handler(new Request("http://localhost/settings/profile"));
 * assert.equal(res.status, 200);
 * assert.equal(await res.text(), "<h1>app</h1>");
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export interface HandlerOptions {
  /**
   * The folder to serve.
   * @default {"."}
   */
  root?: string;
  /**
   * List directories without an index file.
   * @default {false}
   */
  dirListing?: boolean;
  /**
   * Serve and list dotfiles (`.env`, `.git/`).
   * @default {false}
   */
  dotfiles?: boolean;
  /**
   * Follow symlinks that lead out of the root.
   * @default {false}
   */
  followSymlinks?: boolean;
  /**
   * Compress text-like files on the fly (brotli or gzip, by
   * `Accept-Encoding`).
   * @default {false}
   */
  compress?: boolean;
  /**
   * Serve precompressed siblings (`file.br`, `file.zst`, `file.gz`).
   * @default {true}
   */
  precompressed?: boolean;
  /**
   * Single-page app fallback: unknown extension-less paths answer 200 with
   * this file (`true`: `index.html`).
   * @default {false}
   */
  spa?: boolean | string;
  /**
   * Clean URLs: `/about` serves `about.html` when `/about` does not exist.
   * @default {false}
   */
  cleanUrls?: boolean;
  /**
   * Per-path headers by glob (e.g. `Cache-Control` for `/assets/**`), on
   * successful responses.
   * @default {[]}
   */
  headerRules?: HeaderRule[];
  /**
   * Index file names for directories.
   * @default {["index.html"]}
   */
  index?: string[];
  /**
   * Add CORS headers and answer preflights (`true` for the defaults).
   * @default {false}
   */
  cors?: boolean | CorsOptions;
  /**
   * Headers set on every response.
   * @default {[]}
   */
  headers?: Array<[string, string]>;
  /**
   * Custom error pages; `<status>.html` in the root is used by default.
   * @default {{ root }}
   */
  errorPages?: ErrorPagesOptions;
  /**
   * Access log (`true` logs to stdout).
   * @default {false}
   */
  accessLog?: boolean | AccessLogOptions;
  /**
   * Where server-side messages (errors) go.
   * @default {defaultLog} (stderr)
   */
  log?: LogFn;
  /**
   * Run `*.php` (see {@linkcode FastCgiOptions.extensions}) through FastCGI
   * responders (php-fpm) or spawned workers (`spawn: "php-cgi"`).
   * @default {undefined} (off)
   */
  fastcgi?: FastCgiOptions;
  /**
   * Run CGI/1.1 scripts (by default the executables under `ROOT/cgi-bin/`
   * at `/cgi-bin/`; see {@linkcode CgiOptions.dirs}).
   * @default {undefined} (off)
   */
  cgi?: CgiOptions;
  /**
   * Developer mode: watch the root and reload open HTML pages when files
   * change (see {@linkcode liveReload}). Abort
   * {@linkcode HandlerOptions.signal} (or call `close()`) to end the pages'
   * event streams, or `server.shutdown()` waits for them.
   * @default {false}
   */
  liveReload?: boolean;
  /**
   * Abort it when the server starts shutting down: ends long-lived
   * responses (live-reload event streams) so in-flight requests can finish.
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * A handler that may own resources (spawned FastCGI workers, pooled
 * connections, the live-reload watcher): call
 * {@linkcode ClosableHandler.close} on shutdown.
 *
 * @example Closing on shutdown
 * ```ts ignore
 * import { createHandler } from "@x/serve";
 *
 * const handler = createHandler({ root: ".", fastcgi: { spawn: "php-cgi" } });
 * const server = Deno.serve(handler);
 * Deno.addSignalListener("SIGTERM", async () => {
 *   await server.shutdown();
 *   await handler.close();
 * });
 * ```
 */
export interface ClosableHandler extends Handler, AsyncDisposable {
  /**
   * Releases what the handler owns (ends live-reload event streams and its
   * file watcher, stops spawned FastCGI workers). Safe to call twice.
   */
  close(): Promise<void>;
}

/**
 * Builds the default handler: access log → CORS → headers → error pages →
 * live reload → path resolution → CGI → FastCGI → static files (the
 * optional steps only when configured). Call `close()` on shutdown to end
 * live-reload event streams and stop spawned FastCGI workers.
 *
 * @example Serving a folder
 * ```ts
 * import { createHandler } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/a.txt`, "hello");
 * const handler = createHandler({ root });
 * const res = await handler(new Request("http://localhost/a.txt"));
 * assert.equal(await res.text(), "hello");
 * const missing = await handler(new Request("http://localhost/nope"));
 * assert.equal(missing.status, 404);
 * await missing.body?.cancel();
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * @param options What to serve and how.
 * @returns A `Deno.serve` handler.
 */
export function createHandler(options: HandlerOptions = {}): ClosableHandler {
  const root = options.root ?? ".";
  const chain: Middleware[] = [];
  if (options.accessLog) {
    chain.push(accessLog(options.accessLog === true ? {} : options.accessLog));
  }
  if (options.cors) chain.push(cors(options.cors === true ? {} : options.cors));
  if (options.headers?.length || options.headerRules?.length) {
    chain.push(setHeaders({
      headers: options.headers ?? [],
      rules: options.headerRules ?? [],
    }));
  }
  chain.push(errorPages(options.errorPages ?? { root }));
  const reload = options.liveReload
    ? liveReload({
      root,
      ...(options.signal ? { signal: options.signal } : {}),
    })
    : undefined;
  if (reload) chain.push(reload);
  chain.push(resolvePath({
    root,
    dotfiles: options.dotfiles ?? false,
    followSymlinks: options.followSymlinks ?? false,
  }));
  if (options.cgi) chain.push(cgi(options.cgi));
  const php = options.fastcgi
    ? fastcgi({
      ...(options.log ? { log: options.log } : {}),
      ...options.fastcgi,
    })
    : undefined;
  if (php) chain.push(php);
  chain.push(serveStatic({
    index: options.index ?? ["index.html"],
    dirListing: options.dirListing ?? false,
    compress: options.compress ?? false,
    precompressed: options.precompressed ?? true,
    spa: options.spa ?? false,
    cleanUrls: options.cleanUrls ?? false,
    dotfiles: options.dotfiles ?? false,
    followSymlinks: options.followSymlinks ?? false,
  }));
  const handler = compose(chain, options.log ? { log: options.log } : {});
  const close = async (): Promise<void> => {
    await reload?.close();
    await php?.close();
  };
  return Object.assign(handler, { close, [Symbol.asyncDispose]: close });
}
