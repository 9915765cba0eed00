/**
 * Directory listings: HTML for people, JSON for programs.
 *
 * @module
 */

import { prefersJson } from "../server/negotiate.ts";
import { _escapeHtml } from "../server/page_style.ts";
import { _sharedClone } from "../server/shared_response.ts";
import type { DocumentRoot } from "../server/types.ts";
import {
  _DEFAULT_SORT,
  _LISTING_CSP,
  _listingHtml,
  type _Sort,
  _sorted,
} from "./listing_html.ts";

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
  return _escapeHtml(text);
}

/**
 * Renders a directory listing response: JSON when the client prefers it,
 * otherwise an HTML page: breadcrumbs (each segment of the path a link), a
 * table of name (with a file-type icon), size and modification time, a
 * parent link, and a filter box a small inline script enables. The query
 * picks the order, for both forms: `?sort=name|size|date&order=asc|desc`
 * (default name, ascending; directories always first; other values are
 * ignored); the column headers are links to those, so sorting works
 * without JavaScript. Names are HTML-escaped and hrefs percent-encoded.
 * Entries past `maxEntries` (chosen by name) are left out and counted (a
 * note in the HTML, an `X-Listing-Omitted` header with JSON). The HTML
 * comes with a `Content-Security-Policy` that allows only its own inline
 * style and script. No body for HEAD.
 *
 * The directory is read once per state (kept by the open-file cache until
 * it changes) and each form and order rendered once from that reading.
 *
 * @example HTML and JSON listings
 * ```ts
 * import { renderListing } from "@x/serve/static";
 * import { documentRoot } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.realPath(await Deno.makeTempDir());
 * await Deno.writeTextFile(`${dir}/<b>.txt`, "x");
 * await Deno.writeTextFile(`${dir}/big.txt`, "xxxx");
 * const root = documentRoot(dir);
 * const html = await renderListing(new Request("http://x/"), root, []);
 * assert.match(await html.text(), /&lt;b&gt;\.txt/);
 * const json = await renderListing(
 *   new Request("http://x/?sort=size&order=desc", {
 *     headers: { accept: "application/json" },
 *   }),
 *   root,
 *   [],
 * );
 * assert.deepEqual((await json.json()).map((e: { name: string }) => e.name), [
 *   "big.txt",
 *   "<b>.txt",
 * ]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param req The request (its `Accept` and query).
 * @param root The document root and its policy (`ctx.root`).
 * @param segments The directory's segments under the root.
 * @param options The entry cap.
 * @param base The URL prefix the root is mounted at (`ctx.base`), shown in
 *   the title and the breadcrumbs.
 * @returns The listing response.
 */
export async function renderListing(
  req: Request,
  root: DocumentRoot,
  segments: readonly string[],
  options: ListingOptions = {},
  base = "",
): Promise<Response> {
  const json = prefersJson(req);
  const sort = _sortOf(req.url);
  const listed = await root.remember(
    segments,
    `listing ${options.maxEntries ?? ""}`,
    () => _read(root, segments, options),
  );
  const variant = `${json ? "json" : "html"} ${sort.key} ${sort.order} ${base}`;
  let page = listed.pages.get(variant);
  if (page === undefined) {
    const entries = _sorted(listed.entries, sort);
    const bytes = _encoder.encode(
      json ? JSON.stringify(entries) + "\n" : _listingHtml(
        [...base.split("/").filter((s) => s !== ""), ...segments],
        entries,
        listed.omitted,
        sort,
      ),
    );
    const headers: [string, string][] = [
      ["vary", "Accept"],
      [
        "content-type",
        json ? "application/json; charset=UTF-8" : "text/html; charset=UTF-8",
      ],
      ["content-length", String(bytes.byteLength)],
    ];
    if (json && listed.omitted > 0) {
      headers.push(["x-listing-omitted", String(listed.omitted)]);
    }
    if (!json) headers.push(["content-security-policy", _LISTING_CSP]);
    // Made once per rendering and cloned per request (a clone shares the
    // bytes; a new Response copies them).
    page = new Response(bytes, { status: 200, headers });
    listed.pages.set(variant, page);
  }
  if (req.method === "HEAD") {
    return new Response(null, { status: 200, headers: page.headers });
  }
  return _sharedClone(page);
}

const _encoder = new TextEncoder();

/**
 * A directory read once: its entries, how many were left out, and the
 * pages rendered from it so far (by form and order: at most twelve).
 */
interface _Listed {
  readonly entries: ListingEntry[];
  readonly omitted: number;
  readonly pages: Map<string, Response>;
}

async function _read(
  root: DocumentRoot,
  segments: readonly string[],
  options: ListingOptions,
): Promise<_Listed> {
  const { entries, omitted } = await _readListing(root, segments, options);
  return { entries, omitted, pages: new Map() };
}

/** The order the query asks for (`?sort=name|size|date&order=asc|desc`). */
function _sortOf(url: string): _Sort {
  const q = url.indexOf("?");
  if (q === -1) return _DEFAULT_SORT;
  const params = new URLSearchParams(url.slice(q + 1));
  const key = params.get("sort");
  const order = params.get("order") === "desc" ? "desc" : "asc";
  return {
    key: key === "size" || key === "date" ? key : "name",
    order,
  };
}
