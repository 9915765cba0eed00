/**
 * @x/serve used as a library, with a chosen `bufferBelow`, for the
 * small-file study (`deno task bench --small-files`). The chain is the one
 * `createHandler` builds for a plain static server (error pages → path
 * resolution → static files), composed here because `createHandler` does
 * not take `bufferBelow`.
 *
 * Usage: `deno run -A bench/lib_server.ts ROOT [BUFFER_BELOW | cached]` —
 * without it the library default applies (no open-file cache); `cached`
 * turns the open-file cache on with its defaults (as the CLI does). Prints
 * `Listening on http://127.0.0.1:PORT/` once ready.
 *
 * @module
 */

import { compose, errorPages, resolvePath, serveStatic } from "../mod.ts";

const [root, bufferArg] = Deno.args;
if (
  !root ||
  (bufferArg !== undefined && !/^(\d+|cached)$/.test(bufferArg))
) {
  console.error("usage: lib_server.ts ROOT [BUFFER_BELOW | cached]");
  Deno.exit(2);
}

const handler = compose([
  errorPages(),
  resolvePath({
    root,
    dotfiles: false,
    followSymlinks: false,
    ...(bufferArg === "cached" ? { cache: {} } : {}),
  }),
  serveStatic(
    bufferArg === undefined || bufferArg === "cached"
      ? {}
      : { bufferBelow: Number(bufferArg) },
  ),
]);

Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ hostname, port }) => {
    console.log(`Listening on http://${hostname}:${port}/`);
  },
}, handler);
