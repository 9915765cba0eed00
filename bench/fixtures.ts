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
  /** The expected body, exactly (CGI and PHP output). */
  body?: string;
  /** Text the body must contain (listings, whose HTML differs per server). */
  contains?: string;
  /** Send `If-None-Match` with the ETag the server gave for `path`. */
  ifNoneMatch?: boolean;
  /** wrk `-c` (default: the settings' `BENCH_CONNECTIONS`). */
  connections?: number;
  /** The load generator: `wrk` (HTTP/1.1, default) or `h2load` (HTTP/2). */
  tool?: "wrk" | "h2load";
}

/** The generated fixture directory. */
export interface Fixtures {
  /** Its absolute path. */
  root: string;
  /** The self-signed certificate for the TLS servers (in `root/../`). */
  tls: Tls;
  /** Removes it. */
  remove(): Promise<void>;
}

import type { Tls } from "./servers.ts";

const KiB = 1024;

/** File sizes written as `<n>k.txt` (in KiB). */
const _SIZES_KIB = [1, 16, 32, 64, 100, 256, 1024, 10240];

/** Files in the `/big/` listing. */
export const LISTING_FILES = 1000;

/** The CGI script (`/cgi-bin/hello`). */
export const CGI_HELLO = `#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\nhello'
`;

/** The PHP script (`/hello.php`). */
export const PHP_HELLO = `<?php echo "hello";`;

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

/** The name of the `i`th file of the `/big/` listing. */
export function listingName(i: number): string {
  return `file-${String(i).padStart(4, "0")}.txt`;
}

/**
 * Writes a self-signed certificate for `localhost` and `127.0.0.1` with
 * openssl (`CA:FALSE`, so rustls-based clients accept it as a leaf).
 */
async function _makeCert(dir: string): Promise<Tls> {
  const certFile = `${dir}/cert.pem`;
  const keyFile = `${dir}/key.pem`;
  const out = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-days",
      "2",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-addext",
      "basicConstraints=critical,CA:FALSE",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`openssl failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return { certFile, keyFile, certPem: await Deno.readTextFile(certFile) };
}

/**
 * Writes the fixtures in a temp dir: `www/` (the served root) with
 * `/<n>k.txt` for 1, 16, 32, 64, 100, 256, 1024 and 10240 KiB,
 * `/dir/index.html`, `/big/` (1 000 small files, no index),
 * `/cgi-bin/hello` and `/hello.php`; next to it a self-signed certificate.
 *
 * @returns The directory and its remover.
 */
export async function makeFixtures(): Promise<Fixtures> {
  const top = await Deno.makeTempDir({ prefix: "x-serve-bench-" });
  const root = `${top}/www`;
  await Deno.mkdir(root);
  const remove = () => Deno.remove(top, { recursive: true });
  try {
    for (const kib of _SIZES_KIB) {
      await Deno.writeFile(`${root}${sizedPath(kib)}`, _content(kib * KiB));
    }
    await Deno.mkdir(`${root}/dir`);
    await Deno.writeTextFile(`${root}/dir/index.html`, _INDEX_HTML);
    await Deno.mkdir(`${root}/big`);
    for (let i = 0; i < LISTING_FILES; i++) {
      await Deno.writeTextFile(`${root}/big/${listingName(i)}`, `${i}\n`);
    }
    await Deno.mkdir(`${root}/cgi-bin`);
    await Deno.writeTextFile(`${root}/cgi-bin/hello`, CGI_HELLO, {
      mode: 0o755,
    });
    await Deno.chmod(`${root}/cgi-bin/hello`, 0o755);
    await Deno.writeTextFile(`${root}/hello.php`, PHP_HELLO);
    return { root, tls: await _makeCert(top), remove };
  } catch (error) {
    await remove().catch(() => {});
    throw error;
  }
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

/**
 * The static cases of the server comparison (at the settings'
 * connections; `comparison.ts` adds the 1-connection variants).
 */
export const COMPARISON_CASES: Case[] = [
  fileCase(1),
  fileCase(64),
  fileCase(100),
  fileCase(1024),
  fileCase(10240),
  { id: "404", label: "404 (missing file)", path: "/missing.txt", status: 404 },
  {
    id: "index",
    label: "directory index",
    path: "/dir/",
    status: 200,
    length: new TextEncoder().encode(_INDEX_HTML).byteLength,
  },
  {
    id: "304",
    label: "1 KiB If-None-Match → 304",
    path: sizedPath(1),
    status: 304,
    length: 0,
    ifNoneMatch: true,
  },
  {
    id: "listing",
    label: `listing of ${LISTING_FILES} files`,
    path: "/big/",
    status: 200,
    contains: listingName(LISTING_FILES - 1),
  },
];
