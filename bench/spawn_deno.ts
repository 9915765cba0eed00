/**
 * The CGI ceiling: a bare `Deno.serve` that runs `ROOT/cgi-bin/hello` with
 * `Deno.Command` for every request and answers with what the script printed
 * after its header block. No CGI environment, no script lookup, no own
 * process group (`setsid`), no timeout, no header parsing beyond the blank
 * line: the fastest a Deno server can spawn a script per request, the
 * ceiling beside @x/serve's `--cgi` (which keeps every script in a process
 * group of its own). One isolate. Only for the benchmark, on loopback.
 *
 * Usage: `deno run -A bench/spawn_deno.ts ROOT` — prints
 * `Listening on http://127.0.0.1:PORT/` once ready.
 *
 * @module
 */

const root = Deno.args[0];
if (!root) {
  console.error("usage: spawn_deno.ts ROOT");
  Deno.exit(2);
}

const script = `${root}/cgi-bin/hello`;
const headers = { "content-type": "text/plain" };

Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ hostname, port }) => {
    console.log(`Listening on http://${hostname}:${port}/`);
  },
}, async (req) => {
  if (new URL(req.url).pathname !== "/cgi-bin/hello") {
    return new Response("not found", { status: 404 });
  }
  const { stdout, success } = await new Deno.Command(script, {
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  if (!success) return new Response("script failed", { status: 502 });
  // The body starts after the first blank line (CRLF or LF).
  let at = stdout.indexOf(10);
  while (at >= 0 && !(stdout[at + 1] === 10 || stdout[at + 1] === 13)) {
    at = stdout.indexOf(10, at + 1);
  }
  const start = at < 0 ? 0 : stdout[at + 1] === 13 ? at + 3 : at + 2;
  return new Response(stdout.subarray(start), { headers });
});
