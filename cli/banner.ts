/**
 * The startup banner: where the server listens (local and network URLs),
 * what it serves, which features are on (HTTPS and HTTP/2 first when on),
 * and the permissions it needs, with what is granted beyond that or missing.
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
  /** The permissions the configuration needs, and how the granted compare. */
  permissions: BannerPermissions;
  /** The connection guard is on (deadlines and caps). */
  guard?: boolean;
  /** Freed memory is given back to the system (`cli/memory_trim.ts`). */
  memoryTrim?: boolean;
  /** Virtual hosts: host names, root and options of each. */
  sites?: readonly {
    hosts: readonly string[];
    root: string;
    options: HandlerOptions;
  }[];
  /** What an unknown host gets (with `sites`). */
  unknownHost?: "default" | 421;
}

/**
 * The permission line's parts (see `cli/permissions.ts`). Internal to the
 * CLI (not exported from `mod.ts`).
 */
export interface BannerPermissions {
  /** The flags this configuration needs (`--allow-read=/srv/www`…). */
  needed: readonly string[];
  /** Granted beyond the need: `["-A"]`, or unscoped kinds (`--allow-run`). */
  broader: readonly string[];
  /** Needed but not granted (what the server does without). */
  missing: readonly string[];
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

function _features(o: HandlerOptions, scheme: "http" | "https"): string[] {
  // ALPN offers h2 on either TLS listener (the front and Deno's own).
  const on: string[] = scheme === "https" ? ["HTTPS", "HTTP/2"] : [];
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
  if (o.rules?.length) {
    on.push(`${o.rules.length} site rule${o.rules.length > 1 ? "s" : ""}`);
  }
  return on;
}

/**
 * `--allow-read=/srv --allow-net=…` when exactly that is granted, else
 * `needs …; granted -A` and/or `; missing …`.
 */
function _permissions(p: BannerPermissions): string {
  const needed = p.needed.join(" ") || "none";
  if (p.broader.length === 0 && p.missing.length === 0) return needed;
  let line = `needs ${needed}`;
  if (p.broader.length > 0) line += `; granted ${p.broader.join(" ")}`;
  if (p.missing.length > 0) line += `; missing ${p.missing.join(" ")}`;
  return line;
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
 *   permissions: {
 *     needed: ["--allow-read=/srv/www", "--allow-net=127.0.0.1:8000"],
 *     broader: ["-A"],
 *     missing: [],
 *   },
 * });
 * assert.match(lines.join("\n"), /Local:\s+http:\/\/127\.0\.0\.1:8000\//);
 * assert.match(lines.join("\n"), /Features:.*directory listing, CORS/);
 * assert.match(
 *   lines.join("\n"),
 *   /Permissions: needs --allow-read=\/srv\/www --allow-net=127\.0\.0\.1:8000; granted -A/,
 * );
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
  const features = _features(info.options, scheme);
  if (info.guard) features.push("connection guard");
  if (info.memoryTrim) features.push("memory trim");
  lines.push(
    `  Features:    ${features.length ? features.join(", ") : "static files"}`,
  );
  for (const site of info.sites ?? []) {
    const more = _features(site.options, scheme);
    lines.push(
      `  Site:        ${site.hosts.join(", ")} → ${site.root}${
        more.length ? ` (${more.join(", ")})` : ""
      }`,
    );
  }
  if (info.sites?.length) {
    lines.push(
      `  Other hosts: ${
        info.unknownHost === 421
          ? "421 Misdirected Request"
          : "the default site (Root above)"
      }`,
    );
  }
  lines.push(`  Permissions: ${_permissions(info.permissions)}`);
  return lines;
}
