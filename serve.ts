/**
 * The `deno serve` entry: serves the current directory with the library
 * defaults (no listing, dotfiles hidden). `deno serve --parallel` runs one
 * handler per isolate. For flags, listings, CGI and FastCGI use the CLI
 * (`deno run -A jsr:@x/serve`) or build your own with `createHandler`.
 *
 * @example Running it
 * ```sh
 * deno serve --allow-read jsr:@x/serve/serve
 * ```
 *
 * @module
 */

import { createHandler } from "./handler/create_handler.ts";
import type { Handler } from "./server/types.ts";

/**
 * The default export `deno serve` calls: `{ fetch }` serving `.`.
 *
 * @example Calling it like `deno serve` does
 * ```ts
 * import server from "@x/serve/serve";
 * import assert from "node:assert/strict";
 *
 * const res = await server.fetch(new Request("http://localhost/no-such-file"));
 * assert.equal(res.status, 404);
 * await res.body?.cancel();
 * ```
 */
const server: { fetch: Handler } = { fetch: createHandler({ root: "." }) };
export default server;
