/**
 * **@x/serve/cgi** — the CGI/1.1 gateway (RFC 3875): the {@linkcode cgi}
 * middleware runs programs under CGI directories as scripts, each in a
 * process group of its own, with an environment built from scratch.
 *
 * @example Running ./cgi-bin scripts at /cgi-bin/ next to static files
 * ```ts
 * import { compose, resolvePath } from "@x/serve";
 * import { cgi } from "@x/serve/cgi";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/cgi-bin`);
 * await Deno.writeTextFile(
 *   `${root}/cgi-bin/hello.sh`,
 *   '#!/bin/sh\nprintf "Content-Type: text/plain\\n\\nhello %s" "$QUERY_STRING"\n',
 *   { mode: 0o755 },
 * );
 * const handler = compose([
 *   resolvePath({ root }),
 *   cgi({ timeoutMs: 10_000 }),
 *   () => new Response("static"),
 * ]);
 * const res = await handler(new Request("http://localhost/cgi-bin/hello.sh?you"));
 * assert.equal(await res.text(), "hello you");
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * @module
 */

export { cgi, type CgiOptions, DEFAULT_CGI_INTERPRETERS } from "./cgi.ts";
export { DEFAULT_PATH } from "./base_env.ts";
export type { RequestBodyOptions } from "./body.ts";
