/**
 * The HTML of a directory listing: breadcrumbs, a sortable table (links,
 * so sorting works without JavaScript), a file-type icon per row drawn by
 * the style sheet, and a filter box that a small inline script turns on.
 * The page's style and script are fixed, so its Content-Security-Policy
 * allows exactly them by hash.
 *
 * @module
 */

import {
  _cspHash,
  _escapeHtml as escapeHtml,
  _PAGE_CSS,
  _PAGE_CSS_HASH,
  _pageCsp,
} from "../server/page_style.ts";
import type { ListingEntry } from "./listing.ts";

/** What a listing is sorted by (`?sort=`). */
export type _SortKey = "name" | "size" | "date";
/** Which way (`?order=`). */
export type _SortOrder = "asc" | "desc";

/** A listing's sort: by `key`, `order`; directories always first. */
export interface _Sort {
  readonly key: _SortKey;
  readonly order: _SortOrder;
}

/** Name, ascending: the order entries are read and capped in. */
export const _DEFAULT_SORT: _Sort = { key: "name", order: "asc" };

/** An SVG, as a CSS `url()` for a mask (the icon takes the text color). */
function _svg(body: string): string {
  const svg =
    `<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24'>${body}</svg>`;
  return `url("data:image/svg+xml,${
    svg.replace(/[<>#"%]/g, encodeURIComponent)
  }")`;
}

const _PAGE =
  "M6 2h8l6 6v12a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2zm7 1.5V9h5.5z";

/** Icon class → [mask, light color, dark color]. */
const _ICONS: Readonly<Record<string, readonly [string, string, string]>> = {
  up: [_svg("<path d='M12 3l7.5 7.5H15V21H9V10.5H4.5z'/>"), "", ""],
  dir: [
    _svg(
      "<path d='M2 6.5A2.5 2.5 0 0 1 4.5 4H9l2.5 2.5h8A2.5 2.5 0 0 1 22 9v9a2.5 2.5 0 0 1-2.5 2.5h-15A2.5 2.5 0 0 1 2 18z'/>",
    ),
    "#bf8700",
    "#d29922",
  ],
  file: [_svg(`<path fill-rule='evenodd' d='${_PAGE}'/>`), "", ""],
  text: [
    _svg(
      `<path fill-rule='evenodd' d='${_PAGE}M7.5 12h9v1.6h-9zm0 3.5h9v1.6h-9z'/>`,
    ),
    "",
    "",
  ],
  code: [
    _svg(
      "<path d='M9 6.5L3.5 12 9 17.5M15 6.5l5.5 5.5-5.5 5.5' fill='none' stroke='black' stroke-width='2.5' stroke-linecap='round' stroke-linejoin='round'/>",
    ),
    "#bc4c00",
    "#f0883e",
  ],
  img: [
    _svg(
      "<path fill-rule='evenodd' d='M4 3h16a2 2 0 0 1 2 2v14a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm1 15h14l-4.5-6-3.5 4.5-2.5-3zM8.5 10.5a2 2 0 1 0 0-4 2 2 0 0 0 0 4z'/>",
    ),
    "#1a7f37",
    "#3fb950",
  ],
  audio: [
    _svg(
      "<path d='M20 3v12.5a3.5 3.5 0 1 1-2-3.16V7.3l-8 1.6v8.6a3.5 3.5 0 1 1-2-3.16V5z'/>",
    ),
    "#bf3989",
    "#db61a2",
  ],
  video: [
    _svg(
      "<path fill-rule='evenodd' d='M4 4h16a2 2 0 0 1 2 2v12a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm6 4v8l6-4z'/>",
    ),
    "#8250df",
    "#a371f7",
  ],
  zip: [
    _svg(
      `<path fill-rule='evenodd' d='${_PAGE}M8 3.5h2v2H8zm2 2h2v2h-2zm-2 2h2v2H8zm2 2h2v2h-2zm-2 2h2v2H8zm0 3h4v4H8z'/>`,
    ),
    "#9a6700",
    "#d29922",
  ],
};

/** File extension → icon class (anything else is `file`). */
const _BY_EXTENSION: ReadonlyMap<string, string> = new Map(
  Object.entries({
    img: "png jpg jpeg gif webp avif svg ico bmp tif tiff heic jxl",
    audio: "mp3 wav ogg oga flac m4a aac opus mid midi",
    video: "mp4 webm mkv mov avi m4v ogv mpg mpeg",
    zip: "zip tar gz tgz bz2 xz zst 7z rar br jar deb rpm iso dmg",
    code:
      "js mjs cjs ts mts cts jsx tsx json jsonc html htm css scss sass less php py rb go rs c h cc cpp hpp java kt swift sh bash zsh fish ps1 sql xml yaml yml toml ini lua pl r vue svelte wasm",
    text: "txt md markdown rst csv tsv log pdf doc docx odt rtf epub tex",
  }).flatMap(([icon, list]) =>
    list.split(" ").map((ext) => [ext, icon] as const)
  ),
);

function _iconOf(entry: ListingEntry): string {
  if (entry.type === "directory") return "dir";
  const dot = entry.name.lastIndexOf(".");
  if (dot <= 0) return "file";
  return _BY_EXTENSION.get(entry.name.slice(dot + 1).toLowerCase()) ?? "file";
}

function _iconCss(): string {
  const rules = [
    "td a::before{content:'';display:inline-block;width:1.15em;height:1.15em;" +
    "margin-right:.5em;vertical-align:-.2em;background:var(--ic,var(--muted));" +
    "-webkit-mask:var(--m) center/contain no-repeat;mask:var(--m) center/contain no-repeat}",
  ];
  const dark: string[] = [];
  for (const [name, [mask, light, night]] of Object.entries(_ICONS)) {
    rules.push(`.i-${name}{--m:${mask}${light ? `;--ic:${light}` : ""}}`);
    if (night) dark.push(`.i-${name}{--ic:${night}}`);
  }
  rules.push(`@media (prefers-color-scheme:dark){${dark.join("")}}`);
  return rules.join("\n");
}

/** The listing's own style, after the shared one. */
const _LISTING_CSS: string = [
  "[hidden]{display:none!important}",
  ".bar{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;" +
  "justify-content:space-between;margin:0 0 .5rem;min-height:2.25rem}",
  ".filter{display:flex;gap:.5rem;align-items:center}",
  ".filter input{font:inherit;width:15rem;max-width:55vw;padding:.2rem .5rem;" +
  "color:var(--fg);background:var(--bg);border:1px solid var(--line);border-radius:6px}",
  "h1 a{padding:.1em .15em;margin:0 -.15em;border-radius:3px}",
  "h1 a[aria-current]{color:inherit}",
  "h1 a:focus-visible{outline-offset:0}",
  "table{border-collapse:collapse;width:100%}",
  "th,td{padding:.35rem .5rem;text-align:left;vertical-align:top;border-bottom:1px solid var(--line)}",
  "th{font-weight:600;white-space:nowrap;border-bottom-width:2px}",
  "th a{color:inherit}",
  "th[aria-sort] a{color:var(--link)}",
  ".arrow{font-size:.75em;margin-left:.3em}",
  "td:first-child{overflow-wrap:anywhere}",
  "tbody tr:hover{background:var(--hover)}",
  // Size and date: th.n and th.d, and each row's second and third cell.
  ".n,td:nth-child(2){text-align:right}",
  ".n,.d,td:nth-child(2),td:nth-child(3){white-space:nowrap;font-variant-numeric:tabular-nums}",
  "td:nth-child(3){color:var(--muted)}",
  ".vh{position:absolute;width:1px;height:1px;padding:0;margin:-1px;" +
  "overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}",
  "@media (max-width:40rem){th,td{padding:.35rem .3rem}.t{display:none}" +
  ".bar{justify-content:flex-start}.filter input{width:12rem}}",
  _iconCss(),
].join("\n");

/**
 * The filter: shows the box, hides the rows whose name does not contain
 * what is typed (case-insensitive), says how many match; `/` focuses it,
 * Escape clears it. Without it the page is a plain sortable table.
 */
const _SCRIPT = `(()=>{"use strict";
const box=document.getElementById("filter-box"),input=document.getElementById("filter"),count=document.getElementById("count");
if(!box||!input||!count)return;
const rows=[...document.querySelectorAll("tbody tr:not(.up)")];
const names=rows.map((r)=>r.cells[0].textContent.toLowerCase());
box.removeAttribute("hidden");
function apply(){
const q=input.value.trim().toLowerCase();let n=0;
for(let i=0;i<rows.length;i++){const show=!q||names[i].includes(q);rows[i].toggleAttribute("hidden",!show);if(show)n++;}
count.textContent=q?(n===0?"No matches":n===1?"1 match":n+" matches"):"";
}
input.addEventListener("input",apply);
input.addEventListener("keydown",(e)=>{if(e.key==="Escape"&&input.value){input.value="";apply();}});
document.addEventListener("keydown",(e)=>{if(e.key==="/"&&e.target!==input&&!e.ctrlKey&&!e.metaKey&&!e.altKey){e.preventDefault();input.focus();}});
addEventListener("pageshow",apply);
apply();
})();`;

/** The listing's Content-Security-Policy: its two style sheets and its script. */
export const _LISTING_CSP: string = _pageCsp(
  [_PAGE_CSS_HASH, await _cspHash(_LISTING_CSS)],
  [await _cspHash(_SCRIPT)],
  true,
);

/**
 * Sorts entries (a copy) as `sort` asks: directories first, then by name,
 * size or modification time; equal sizes or times by name.
 */
export function _sorted(entries: ListingEntry[], sort: _Sort): ListingEntry[] {
  const { key, order } = sort;
  if (key === "name" && order === "asc") return entries; // as read
  const sign = order === "desc" ? -1 : 1;
  const byName = (a: ListingEntry, b: ListingEntry) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  return entries.slice().sort((a, b) => {
    const ad = a.type === "directory";
    if (ad !== (b.type === "directory")) return ad ? -1 : 1;
    if (key === "name") return sign * byName(a, b);
    let c: number;
    if (key === "size") c = (a.size ?? -1) - (b.size ?? -1);
    else {
      const am = a.mtime ?? "";
      const bm = b.mtime ?? "";
      c = am < bm ? -1 : am > bm ? 1 : 0;
    }
    return c !== 0 ? sign * c : byName(a, b);
  });
}

/** `?sort=…&order=…`, or `""` for the default sort. */
function _query(sort: _Sort): string {
  return sort.key === _DEFAULT_SORT.key && sort.order === _DEFAULT_SORT.order
    ? ""
    : `?sort=${sort.key}&amp;order=${sort.order}`;
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

/** The columns: sort key, header, the order a first click asks for. */
const _COLUMNS: ReadonlyArray<readonly [_SortKey, string, _SortOrder, string]> =
  [
    ["name", "Name", "asc", ""],
    ["size", "Size", "desc", ' class="n"'],
    ["date", 'Modified<span class="t"> (UTC)</span>', "desc", ' class="d"'],
  ];

const _WORD: Readonly<Record<_SortOrder, string>> = {
  asc: "ascending",
  desc: "descending",
};

function _header(sort: _Sort): string {
  return _COLUMNS.map(([key, label, first, cls]) => {
    const current = sort.key === key;
    const next: _SortOrder = current
      ? (sort.order === "asc" ? "desc" : "asc")
      : first;
    const aria = current ? ` aria-sort="${_WORD[sort.order]}"` : "";
    const arrow = current
      ? `<span class="arrow" aria-hidden="true">${
        sort.order === "asc" ? "▲" : "▼"
      }</span>`
      : "";
    return `<th scope="col"${cls}${aria}><a href="?sort=${key}&amp;order=${next}">${label}${arrow}<span class="vh"> (sort ${
      _WORD[next]
    })</span></a></th>`;
  }).join("");
}

/** The relative link `levels` directories up (`./` for this one). */
function _up(levels: number): string {
  return levels === 0 ? "./" : "../".repeat(levels);
}

/** The path as breadcrumbs: `/`, then each segment, each a link. */
function _crumbs(segments: readonly string[], query: string): string {
  const n = segments.length;
  const current = (i: number) => i === n ? ' aria-current="page"' : "";
  let out = `<a href="${_up(n)}${query}"${current(0)}>/</a>`;
  segments.forEach((segment, i) => {
    out += `<a href="${_up(n - 1 - i)}${query}"${current(i + 1)}>${
      escapeHtml(segment)
    }/</a>`;
  });
  return out;
}

function _count(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * The listing page of `entries` (sorted as `sort` says). Names are
 * HTML-escaped and links percent-encoded; directory links keep a
 * non-default sort.
 */
export function _listingHtml(
  segments: readonly string[],
  entries: ListingEntry[],
  omitted: number,
  sort: _Sort,
): string {
  const path = escapeHtml("/" + segments.map((s) => s + "/").join(""));
  const query = _query(sort);
  const rows: string[] = [];
  if (segments.length > 0) {
    rows.push(
      `<tr class="up"><td><a class="i-up" href="../${query}">../</a></td><td></td><td></td></tr>`,
    );
  }
  let dirs = 0;
  for (const e of entries) {
    const dir = e.type === "directory";
    if (dir) dirs++;
    const slash = dir ? "/" : "";
    const href = escapeHtml(encodeURIComponent(e.name)) + slash +
      (dir ? query : "");
    // To the minute, as shown; the time of day is hidden on a phone.
    const when = e.mtime
      ? `<time datetime="${escapeHtml(e.mtime.slice(0, 16))}Z">${
        escapeHtml(e.mtime.slice(0, 10))
      }<span class="t"> ${escapeHtml(e.mtime.slice(11, 16))}</span></time>`
      : "";
    rows.push(
      `<tr><td><a class="i-${_iconOf(e)}" href="./${href}">${
        escapeHtml(e.name)
      }${slash}</a></td><td>${_size(e.size)}</td><td>${when}</td></tr>`,
    );
  }
  const files = entries.length - dirs;
  const summary = entries.length === 0
    ? "Empty directory"
    : `${_count(dirs, "directory", "directories")}, ${
      _count(files, "file", "files")
    }`;
  const sorted = `sorted by ${
    sort.key === "date" ? "date modified" : sort.key
  }, ${_WORD[sort.order]}`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Index of ${path}</title>
<style>${_PAGE_CSS}</style>
<style>${_LISTING_CSS}</style></head><body>
<main>
<h1><span class="muted">Index of </span>${_crumbs(segments, query)}</h1>
<div class="bar"><span class="muted">${summary}</span><span class="filter" id="filter-box" hidden><label for="filter">Filter</label><input id="filter" type="search" autocomplete="off" spellcheck="false" aria-keyshortcuts="/" aria-describedby="count"><span id="count" class="muted" role="status"></span></span></div>
<table>
<caption class="vh">Contents of ${path}, ${sorted}</caption>
<thead><tr>${_header(sort)}</tr></thead>
<tbody>
${rows.join("\n")}
</tbody></table>${
    omitted > 0
      ? `\n<p class="muted">${omitted} more entries are not listed.</p>`
      : ""
  }
</main>
<script>${_SCRIPT}</script>
</body></html>
`;
}
