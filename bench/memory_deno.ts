/**
 * The ceiling: a bare `Deno.serve` answering from memory. Every file under
 * ROOT is read at start; each answer is a prepared `Response` (a content
 * type, `Content-Length` and an ETag; `If-None-Match` → 304) cloned per
 * request — Deno's `Response.clone()` shares a bytes body, where a new
 * `Response` copies it — a directory gets its `index.html` or a prebuilt
 * HTML listing, anything else a 404. No per-request file system work at
 * all: what Deno's HTTP layer does at best with the same bytes. Only for
 * the benchmark, on loopback.
 *
 * Usage: `deno run -A bench/memory_deno.ts ROOT` — prints
 * `Listening on http://127.0.0.1:PORT/` once ready.
 *
 * @module
 */

const root = Deno.args[0];
if (!root) {
  console.error("usage: memory_deno.ts ROOT");
  Deno.exit(2);
}

/** A prepared answer. */
interface Entry {
  body: Uint8Array<ArrayBuffer>;
  type: string;
  etag: string;
  /** The 200 and 304 to clone, made at the first request. */
  ok?: Response;
  notModified?: Response;
}

const types: Record<string, string> = {
  html: "text/html; charset=UTF-8",
  txt: "text/plain; charset=UTF-8",
};
const entries = new Map<string, Entry>();
const encoder = new TextEncoder();

/** `&<>"` escaped for HTML. */
function escape(s: string): string {
  return s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Reads `dir` (URL path `url`, ending in `/`) into `entries`. */
async function load(dir: string, url: string): Promise<void> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    names.push(e.isDirectory ? `${e.name}/` : e.name);
    if (e.isDirectory) {
      await load(`${dir}/${e.name}`, `${url}${e.name}/`);
    } else if (e.isFile) {
      const path = `${dir}/${e.name}`;
      const info = await Deno.stat(path);
      const ext = e.name.slice(e.name.lastIndexOf(".") + 1);
      entries.set(url + e.name, {
        body: await Deno.readFile(path),
        type: types[ext] ?? "application/octet-stream",
        etag: `"${info.size.toString(16)}-${
          (info.mtime?.getTime() ?? 0).toString(16)
        }"`,
      });
    }
  }
  const index = entries.get(`${url}index.html`);
  if (index) {
    entries.set(url, index);
    return;
  }
  names.sort();
  const html = `<!doctype html>\n<html><head><meta charset="utf-8"><title>` +
    `Index of ${escape(url)}</title></head><body><h1>Index of ${
      escape(url)
    }</h1>\n<ul>\n` +
    names.map((n) =>
      `<li><a href="${encodeURIComponent(n).replace(/%2F$/, "/")}">${
        escape(n)
      }</a></li>\n`
    ).join("") + `</ul></body></html>\n`;
  entries.set(url, {
    body: encoder.encode(html),
    type: types.html!,
    etag: `"listing-${names.length}"`,
  });
}

await load(root.replace(/\/$/, ""), "/");
const notFound = new Response(encoder.encode("Not Found"), {
  status: 404,
  headers: { "content-type": types.txt! },
});

Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ hostname, port }) => {
    console.log(`Listening on http://${hostname}:${port}/`);
  },
}, (req) => {
  const url = req.url;
  const start = url.indexOf("/", url.indexOf("//") + 2);
  const q = url.indexOf("?", start);
  const path = decodeURIComponent(url.slice(start, q < 0 ? undefined : q));
  const e = entries.get(path);
  if (!e) return notFound.clone();
  if (req.headers.get("if-none-match") === e.etag) {
    e.notModified ??= new Response(null, {
      status: 304,
      headers: { etag: e.etag },
    });
    return e.notModified.clone();
  }
  e.ok ??= new Response(e.body, {
    headers: { "content-type": e.type, etag: e.etag },
  });
  return e.ok.clone();
});
