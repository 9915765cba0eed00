/**
 * Directory listings: HTML for people, JSON for programs.
 *
 * @module
 */

import { prefersJson } from "../server/negotiate.ts";
import type { DocumentRoot } from "../server/types.ts";

/**
 * One row of a listing (also the JSON form of a listing).
 *
 * @example Reading entries
 * ```ts
 * import { listDirectory, type ListingEntry } from "@x/serve/static";
 * import { documentRoot } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.realPath(await Deno.makeTempDir());
 * await Deno.writeTextFile(`${dir}/a.txt`, "abc");
 * const [entry]: ListingEntry[] = await listDirectory(documentRoot(dir), []);
 * assert.equal(entry?.name, "a.txt");
 * assert.equal(entry?.type, "file");
 * assert.equal(entry?.size, 3);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export interface ListingEntry {
  /** The entry's name. */
  name: string;
  /** `"directory"` or `"file"` (symlinks are described by their target). */
  type: "directory" | "file";
  /** Size in bytes (files), `null` for directories. */
  size: number | null;
  /** Last modification, ISO 8601, or `null` when unknown. */
  mtime: string | null;
}

/**
 * Options of {@linkcode renderListing} and {@linkcode listDirectory}.
 *
 * @example Showing dotfiles, capped
 * ```ts
 * import { listDirectory, type ListingOptions } from "@x/serve/static";
 * import { documentRoot } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.realPath(await Deno.makeTempDir());
 * for (const name of [".env", "a.txt", "b.txt"]) {
 *   await Deno.writeTextFile(`${dir}/${name}`, "x");
 * }
 * const options: ListingOptions = { maxEntries: 2 };
 * const root = documentRoot(dir, { dotfiles: true });
 * const names = (await listDirectory(root, [], options)).map((e) => e.name);
 * assert.deepEqual(names, [".env", "a.txt"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export interface ListingOptions {
  /**
   * Most entries listed (directories first, then by name); the rest are
   * counted and left out, so a huge folder cannot exhaust memory.
   * @default {10000}
   */
  maxEntries?: number;
}

/**
 * Reads a directory for a listing: directories first, then by name, at most
 * `maxEntries` of them; what the root's policy hides (dotfiles, symlinks
 * out of the root) is left out, as resolution would not serve it.
 *
 * @example Listing a folder
 * ```ts
 * import { listDirectory } from "@x/serve/static";
 * import { documentRoot } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.realPath(await Deno.makeTempDir());
 * await Deno.mkdir(`${dir}/sub`);
 * await Deno.writeTextFile(`${dir}/a.txt`, "a");
 * await Deno.writeTextFile(`${dir}/.env`, "secret");
 * const names = (await listDirectory(documentRoot(dir), [])).map((e) => e.name);
 * assert.deepEqual(names, ["sub", "a.txt"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param root The document root and its policy (`ctx.root`).
 * @param segments The directory's path segments under the root.
 * @param options The entry cap.
 * @returns The entries, sorted.
 */
export async function listDirectory(
  root: DocumentRoot,
  segments: readonly string[],
  options: ListingOptions = {},
): Promise<ListingEntry[]> {
  return (await _readListing(root, segments, options)).entries;
}

/** How many entries are stat'ed at once. */
const _STAT_CONCURRENCY = 32;

function _byTypeThenName(
  a: { dir: boolean; name: string },
  b: { dir: boolean; name: string },
): number {
  if (a.dir !== b.dir) return a.dir ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * Reads, sorts and caps a listing: names first (cheap), then a stat of at
 * most `maxEntries` of them, a few at a time, so a folder of 100,000 files
 * costs neither 100,000 parallel syscalls nor their memory.
 */
async function _readListing(
  root: DocumentRoot,
  segments: readonly string[],
  options: ListingOptions,
): Promise<{ entries: ListingEntry[]; omitted: number }> {
  const { maxEntries = 10_000 } = options;
  const all: Array<{ name: string; dir: boolean }> = [];
  for await (const entry of Deno.readDir([root.path, ...segments].join("/"))) {
    if (root.hides(entry.name)) continue;
    all.push({ name: entry.name, dir: entry.isDirectory });
  }
  all.sort(_byTypeThenName);
  const shown = all.slice(0, maxEntries);
  const found: Array<ListingEntry | undefined> = new Array(shown.length);
  let next = 0;
  async function worker(): Promise<void> {
    while (next < shown.length) {
      const index = next++;
      const { name } = shown[index]!;
      try {
        // The root's lookup keeps symlinks out of the root away (unless allowed).
        const file = await root.find([...segments, name]);
        if (!file) continue;
        const dir = file.info.isDirectory;
        found[index] = {
          name,
          type: dir ? "directory" : "file",
          size: dir ? null : file.info.size,
          mtime: file.info.mtime?.toISOString() ?? null,
        };
      } catch {
        // Unreadable entry: left out, the rest still renders.
      }
    }
  }
  await Promise.all(
    Array.from({ length: Math.min(_STAT_CONCURRENCY, shown.length) }, worker),
  );
  const entries = found.filter((e): e is ListingEntry => e !== undefined);
  // Symlinks to directories sort as directories once stat'ed.
  entries.sort((a, b) =>
    _byTypeThenName(
      { dir: a.type === "directory", name: a.name },
      { dir: b.type === "directory", name: b.name },
    )
  );
  return { entries, omitted: all.length - shown.length };
}

const _ENTITIES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/**
 * Escapes text for HTML content and attribute values.
 *
 * @example Escaping
 * ```ts
 * import { escapeHtml } from "./listing.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(escapeHtml(`<a href="x">&'`), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
 * ```
 *
 * @param text Any text.
 * @returns The escaped text.
 */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => _ENTITIES[c]!);
}

function _size(n: number | null): string {
  if (n === null) return "";
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u++;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/**
 * Renders a directory listing response: JSON when the client prefers it,
 * otherwise a small responsive HTML table (name, size, modified) with a
 * parent link. Names are HTML-escaped and hrefs percent-encoded. Entries
 * past `maxEntries` are left out and counted (a note in the HTML, an
 * `X-Listing-Omitted` header with JSON). No body for HEAD.
 *
 * @example HTML and JSON listings
 * ```ts
 * import { renderListing } from "@x/serve/static";
 * import { documentRoot } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.realPath(await Deno.makeTempDir());
 * await Deno.writeTextFile(`${dir}/<b>.txt`, "x");
 * const root = documentRoot(dir);
 * const html = await renderListing(new Request("http://x/"), root, []);
 * assert.match(await html.text(), /&lt;b&gt;\.txt/);
 * const json = await renderListing(
 *   new Request("http://x/", { headers: { accept: "application/json" } }), root, []);
 * assert.equal((await json.json())[0].name, "<b>.txt");
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param req The request.
 * @param root The document root and its policy (`ctx.root`).
 * @param segments The directory's segments under the root.
 * @param options The entry cap.
 * @returns The listing response.
 */
export async function renderListing(
  req: Request,
  root: DocumentRoot,
  segments: readonly string[],
  options: ListingOptions = {},
): Promise<Response> {
  const json = prefersJson(req);
  const key = `${json ? "json" : "html"} ${options.maxEntries ?? ""}`;
  const page = await root.remember(
    segments,
    key,
    () => _render(root, segments, options, json),
  );
  const headers = new Headers({
    vary: "Accept",
    "content-type": json
      ? "application/json; charset=UTF-8"
      : "text/html; charset=UTF-8",
    "content-length": String(page.bytes.byteLength),
  });
  if (json && page.omitted > 0) {
    headers.set("x-listing-omitted", String(page.omitted));
  }
  return new Response(req.method === "HEAD" ? null : page.bytes, {
    status: 200,
    headers,
  });
}

/** A listing rendered once: its bytes and how many entries were left out. */
async function _render(
  root: DocumentRoot,
  segments: readonly string[],
  options: ListingOptions,
  json: boolean,
): Promise<{ bytes: Uint8Array<ArrayBuffer>; omitted: number }> {
  const { entries, omitted } = await _readListing(root, segments, options);
  const body = json
    ? JSON.stringify(entries) + "\n"
    : _html(segments, entries, omitted);
  return { bytes: new TextEncoder().encode(body), omitted };
}

function _html(
  segments: readonly string[],
  entries: ListingEntry[],
  omitted: number,
): string {
  const title = escapeHtml("/" + segments.map((s) => s + "/").join(""));
  const rows: string[] = [];
  if (segments.length > 0) {
    rows.push(`<tr><td><a href="../">../</a></td><td></td><td></td></tr>`);
  }
  for (const e of entries) {
    const slash = e.type === "directory" ? "/" : "";
    const href = encodeURIComponent(e.name) + slash;
    const when = e.mtime ? e.mtime.slice(0, 16).replace("T", " ") : "";
    rows.push(
      `<tr><td><a href="./${escapeHtml(href)}">${
        escapeHtml(e.name)
      }${slash}</a></td>` +
        `<td class="n">${_size(e.size)}</td><td><time datetime="${
          e.mtime ?? ""
        }">${when}</time></td></tr>`,
    );
  }
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Index of ${title}</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:60rem;padding:0 1rem;color:#222}
h1{font-size:1.25rem;word-break:break-all}
table{border-collapse:collapse;width:100%}
th,td{padding:.4rem .5rem;text-align:left;border-bottom:1px solid #ddd}
td:first-child{word-break:break-all}
.n{text-align:right;white-space:nowrap}
a{color:#0645ad;text-decoration:none}a:hover{text-decoration:underline}
@media (max-width:40rem){th:nth-child(3),td:nth-child(3){display:none}}
@media (prefers-color-scheme:dark){body{background:#111;color:#ddd}a{color:#8ab4f8}th,td{border-color:#333}}
</style></head><body>
<h1>Index of ${title}</h1>
<table><thead><tr><th>Name</th><th class="n">Size</th><th>Modified (UTC)</th></tr></thead><tbody>
${rows.join("\n")}
</tbody></table>${
    omitted > 0 ? `\n<p>${omitted} more entries are not listed.</p>` : ""
  }</body></html>
`;
}
