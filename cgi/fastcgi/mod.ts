/**
 * **@x/serve/fastcgi** — the FastCGI gateway: the {@linkcode fastcgi}
 * middleware sends script requests to responders such as php-fpm (or to
 * workers it spawns and supervises itself), and the client, address and
 * process-manager pieces it is built from.
 *
 * @example Sending *.php to php-fpm, everything else on
 * ```ts
 * import { compose, resolvePath } from "@x/serve";
 * import { fastcgi } from "@x/serve/fastcgi";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/style.css`, "body {}");
 * await using php = fastcgi({ backends: ["unix:/run/php/php8.2-fpm.sock"] });
 * const handler = compose([resolvePath({ root }), php, () => new Response("static")]);
 * const res = await handler(new Request("http://localhost/style.css"));
 * assert.equal(await res.text(), "static");
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * @module
 */

export {
  fastcgi,
  type FastCgiMiddleware,
  type FastCgiOptions,
} from "./fastcgi.ts";
export {
  createFastCgiClient,
  type FastCgiBackendStats,
  type FastCgiClient,
  type FastCgiClientOptions,
  type FastCgiOutput,
  type FastCgiRequest,
} from "./client.ts";
export type { BackendPoolStats, SharedBackendCount } from "./pool.ts";
export { type FastCgiAddress, parseAddress } from "./address.ts";
export { FastCgiError, type FastCgiErrorOptions } from "./errors.ts";
export {
  type FastCgiSpawnOptions,
  type FastCgiWorkers,
  spawnFastCgiWorkers,
} from "./spawn.ts";
export type { RequestBodyOptions } from "../body.ts";
