/**
 * The baseline: the least a Deno static server can do. `Deno.serve` +
 * `Deno.open(path).readable`, no validators, no content type, no
 * `Content-Length` (the body is chunked), no checks beyond the URL parser's
 * dot-segment removal. Only for the benchmark, on loopback.
 *
 * Usage: `deno run -A bench/minimal_deno.ts ROOT` — prints
 * `Listening on http://127.0.0.1:PORT/` once ready.
 *
 * @module
 */

const root = Deno.args[0];
if (!root) {
  console.error("usage: minimal_deno.ts ROOT");
  Deno.exit(2);
}

Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ hostname, port }) => {
    console.log(`Listening on http://${hostname}:${port}/`);
  },
}, async (req) => {
  let path = decodeURIComponent(new URL(req.url).pathname);
  if (path.endsWith("/")) path += "index.html";
  try {
    const file = await Deno.open(root + path);
    return new Response(file.readable);
  } catch {
    return new Response("Not Found", { status: 404 });
  }
});
