/**
 * **@x/serve/static** — the static-file layer: the {@linkcode serveStatic}
 * middleware and the pieces it is built from, for composing your own
 * (one file as a response with validators and ranges, content types,
 * conditional requests, listings).
 *
 * @example Serving one file from your own middleware
 * ```ts
 * import { compose } from "@x/serve";
 * import { serveFile } from "@x/serve/static";
 * import assert from "node:assert/strict";
 *
 * const path = await Deno.makeTempFile({ suffix: ".txt" });
 * await Deno.writeTextFile(path, "report");
 * const handler = compose([async (req) => serveFile(req, path, await Deno.stat(path))]);
 * const res = await handler(new Request("http://localhost/report"));
 * assert.equal(res.headers.get("content-type"), "text/plain; charset=UTF-8");
 * assert.equal(await res.text(), "report");
 * await Deno.remove(path);
 * ```
 *
 * @module
 */

export { serveStatic, type ServeStaticOptions } from "./serve_static.ts";
export { serveFile, type ServeFileOptions } from "./file.ts";
export { contentType } from "./content_type.ts";
export { fileEtag } from "./etag.ts";
export {
  checkPreconditions,
  ifRangeAllows,
  type Validators,
} from "./conditional.ts";
export {
  listDirectory,
  type ListingEntry,
  type ListingOptions,
  renderListing,
} from "./listing.ts";
