/**
 * The files every server serves, generated into a temp dir at start.
 *
 * @module
 */

/** One benchmarked request. */
export interface Case {
  /** Short id (`1k`, `404`...), used in the JSON. */
  id: string;
  /** What it is, for the tables. */
  label: string;
  /** The request path. */
  path: string;
  /** The expected status. */
  status: number;
  /** The expected body length (`undefined`: not checked, e.g. 404 pages). */
  length?: number;
}

/** The generated fixture directory. */
export interface Fixtures {
  /** Its absolute path. */
  root: string;
  /** Removes it. */
  remove(): Promise<void>;
}

const KiB = 1024;

/** File sizes written as `<n>k.txt` (in KiB). */
const _SIZES_KIB = [1, 16, 32, 64, 256, 1024];

const _INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Bench index</title>
</head>
<body>
<h1>Directory index</h1>
<p>This page is served for <code>/dir/</code> as the index file.</p>
${"<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>\n".repeat(8)}
</body>
</html>
`;

/** The path of the file of `kib` KiB. */
export function sizedPath(kib: number): string {
  return `/${kib}k.txt`;
}

/** The size label of `kib` KiB (`1 KiB`, `1 MiB`). */
export function sizeLabel(kib: number): string {
  return kib >= 1024 && kib % 1024 === 0 ? `${kib / 1024} MiB` : `${kib} KiB`;
}

/** Printable ASCII, so every server's content type is irrelevant. */
function _content(bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) {
    out[i] = i % 64 === 63 ? 0x0a : 0x21 + (i * 7 + (i >> 6)) % 94;
  }
  return out;
}

/**
 * Writes the fixtures: `/<n>k.txt` for 1, 16, 32, 64, 256 and 1024 KiB, and
 * `/dir/index.html`.
 *
 * @returns The directory and its remover.
 */
export async function makeFixtures(): Promise<Fixtures> {
  const root = await Deno.makeTempDir({ prefix: "x-serve-bench-" });
  for (const kib of _SIZES_KIB) {
    await Deno.writeFile(`${root}${sizedPath(kib)}`, _content(kib * KiB));
  }
  await Deno.mkdir(`${root}/dir`);
  await Deno.writeTextFile(`${root}/dir/index.html`, _INDEX_HTML);
  return {
    root,
    remove: () => Deno.remove(root, { recursive: true }),
  };
}

/** A GET of the `kib` KiB file. */
export function fileCase(kib: number): Case {
  return {
    id: `${kib}k`,
    label: `${sizeLabel(kib)} file`,
    path: sizedPath(kib),
    status: 200,
    length: kib * KiB,
  };
}

/** The cases of the server comparison. */
export const COMPARISON_CASES: Case[] = [
  fileCase(1),
  fileCase(64),
  fileCase(1024),
  { id: "404", label: "404 (missing file)", path: "/missing.txt", status: 404 },
  {
    id: "index",
    label: "directory index",
    path: "/dir/",
    status: 200,
    length: new TextEncoder().encode(_INDEX_HTML).byteLength,
  },
];
