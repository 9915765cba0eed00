/**
 * The startup banner: where the server listens (local and network URLs),
 * what it serves, which features are on, and the permissions it runs with.
 *
 * @module
 */

import type { HandlerOptions } from "../handler/create_handler.ts";

/** What the banner describes. Internal to the CLI (not exported from `mod.ts`). */
export interface BannerInfo {
  /** `http` or `https`. */
  scheme: "http" | "https";
  /** The address bound (`127.0.0.1`, `0.0.0.0`, `::`…). */
  hostname: string;
  /** The port bound. */
  port: number;
  /** The served folder (absolute). */
  root: string;
  /** The handler's options (for the feature list). */
  options: HandlerOptions;
}

function _url(scheme: string, host: string, port: number): string {
  return `${scheme}://${host.includes(":") ? `[${host}]` : host}:${port}/`;
}

/** Non-loopback addresses, when the sys permission allows looking. */
function _networkAddresses(family: "IPv4" | "IPv6" | "any"): string[] {
  const sys = Deno.permissions.querySync({
    name: "sys",
    kind: "networkInterfaces",
  });
  if (sys.state !== "granted") return [];
  return Deno.networkInterfaces()
    .filter((i) =>
      (family === "any" || i.family === family) &&
      !i.address.startsWith("127.") && i.address !== "::1"
    )
    .filter((i) => !i.address.startsWith("fe80:"))
    .map((i) => i.address);
}

function _features(o: HandlerOptions): string[] {
  const on: string[] = [];
  const files = o.serveStatic ?? {};
  if (files.dirListing) on.push("directory listing");
  if (o.dotfiles) on.push("dotfiles");
  if (o.followSymlinks) on.push("symlinks out of root");
  if (o.cache) on.push(`file cache (${o.cache.validMs ?? 1000} ms)`);
  if (o.cors) on.push("CORS");
  if (files.compress) on.push("compression");
  // Siblings are served unless turned off (serveStatic's own default).
  if (files.precompressed !== false) on.push("precompressed files");
  if (files.spa) on.push("SPA fallback");
  if (files.cleanUrls) on.push("clean URLs");
  if (o.setHeaders) on.push("custom headers");
  if (o.cgi) on.push("CGI");
  if (o.fastcgi) on.push("FastCGI");
  if (o.liveReload) on.push("live reload");
  return on;
}

function _permissions(root: string, host: string, port: number): string[] {
  const state = (d: Deno.PermissionDescriptor) =>
    Deno.permissions.querySync(d).state === "granted";
  const out: string[] = [];
  if (state({ name: "read" })) out.push("read");
  else if (state({ name: "read", path: root })) out.push(`read=${root}`);
  if (state({ name: "net" })) out.push("net");
  else if (state({ name: "net", host })) out.push(`net=${host}`);
  else if (state({ name: "net", host: `${host}:${port}` })) {
    out.push(`net=${host}:${port}`);
  }
  for (const name of ["write", "env", "run", "sys", "ffi"] as const) {
    if (state({ name })) out.push(name);
  }
  if (
    !out.includes("sys") && state({ name: "sys", kind: "networkInterfaces" })
  ) {
    out.push("sys=networkInterfaces");
  }
  return out;
}

/**
 * The banner's lines (after the `Listening on …` line tools read).
 * Internal to the CLI (not exported from `mod.ts`).
 *
 * @example A banner
 * ```ts
 * import { bannerLines } from "./banner.ts";
 * import assert from "node:assert/strict";
 *
 * const lines = bannerLines({
 *   scheme: "http",
 *   hostname: "127.0.0.1",
 *   port: 8000,
 *   root: "/srv/www",
 *   options: { serveStatic: { dirListing: true }, cors: true },
 * });
 * assert.match(lines.join("\n"), /Local:\s+http:\/\/127\.0\.0\.1:8000\//);
 * assert.match(lines.join("\n"), /Features:.*directory listing, CORS/);
 * ```
 *
 * @param info Address, root and options.
 * @returns The lines.
 */
export function bannerLines(info: BannerInfo): string[] {
  const { scheme, hostname, port } = info;
  const wildcard = hostname === "0.0.0.0" || hostname === "::";
  const lines = [
    `  Local:       ${_url(scheme, wildcard ? "localhost" : hostname, port)}`,
  ];
  if (wildcard) {
    for (
      const address of _networkAddresses(hostname === "::" ? "any" : "IPv4")
    ) {
      lines.push(`  Network:     ${_url(scheme, address, port)}`);
    }
  }
  lines.push(`  Root:        ${info.root}`);
  const features = _features(info.options);
  lines.push(
    `  Features:    ${features.length ? features.join(", ") : "static files"}`,
  );
  const perms = _permissions(info.root, hostname, port);
  lines.push(
    `  Permissions: ${perms.map((p) => `--allow-${p}`).join(" ") || "none"}`,
  );
  return lines;
}
