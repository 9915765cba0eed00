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
import { setHeaders } from "./headers.ts";
import { resolvePath } from "./resolve.ts";
import type { Handler, LogFn, Middleware } from "./types.ts";
import { serveStatic } from "../static/serve_static.ts";

/** Options of {@linkcode createHandler}. */
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
}

/**
 * Builds the default handler: access log → CORS → headers → error pages →
 * path resolution → static files.
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
export function createHandler(options: HandlerOptions = {}): Handler {
  const root = options.root ?? ".";
  const chain: Middleware[] = [];
  if (options.accessLog) {
    chain.push(accessLog(options.accessLog === true ? {} : options.accessLog));
  }
  if (options.cors) chain.push(cors(options.cors === true ? {} : options.cors));
  if (options.headers?.length) {
    chain.push(setHeaders({ headers: options.headers }));
  }
  chain.push(errorPages(options.errorPages ?? { root }));
  chain.push(resolvePath({
    root,
    dotfiles: options.dotfiles ?? false,
    followSymlinks: options.followSymlinks ?? false,
  }));
  chain.push(serveStatic({
    index: options.index ?? ["index.html"],
    dirListing: options.dirListing ?? false,
    dotfiles: options.dotfiles ?? false,
    followSymlinks: options.followSymlinks ?? false,
  }));
  return compose(chain, options.log ? { log: options.log } : {});
}
