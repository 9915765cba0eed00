/**
 * {@linkcode virtualHosts}: several sites in one server, chosen by the
 * request's host name.
 *
 * @module
 */

import { renderError } from "../server/error_response.ts";
import type { Handler } from "../server/types.ts";
import type { ClosableHandler } from "./create_handler.ts";

/** One site of {@linkcode virtualHosts}. */
export interface VirtualHost {
  /**
   * Its host names, matched without case and port; `*.example.com`
   * matches every subdomain (not `example.com` itself).
   */
  hosts: readonly string[];
  /** What answers its requests (e.g. a {@linkcode createHandler}). */
  handler: Handler | ClosableHandler;
}

/**
 * Options of {@linkcode virtualHosts}.
 *
 * @example Two sites and a strict default
 * ```ts
 * import { createHandler, virtualHosts, type VirtualHostsOptions } from "@x/serve";
 *
 * const options: VirtualHostsOptions = {
 *   sites: [
 *     { hosts: ["wiki.example"], handler: createHandler({ root: "." }) },
 *     { hosts: ["*.blog.example"], handler: createHandler({ root: "." }) },
 *   ],
 *   fallback: 421,
 * };
 * await using handler = virtualHosts(options);
 * ```
 */
export interface VirtualHostsOptions {
  /**
   * The sites; an exact name wins over a wildcard, a longer wildcard over a
   * shorter one.
   * @default {[]}
   */
  sites?: readonly VirtualHost[];
  /**
   * What a request for any other host gets: a handler (the default site,
   * like nginx's `default_server`) or `421` (Misdirected Request).
   * @default {421}
   */
  fallback?: Handler | ClosableHandler | 421;
}

function _closable(handler: unknown): handler is ClosableHandler {
  return typeof (handler as ClosableHandler).close === "function";
}

/**
 * Chooses the site by the request's host name (the `Host` header, or
 * HTTP/2's `:authority`), lower-cased and without its port or a trailing
 * dot; anything else goes to `fallback`. `close()` closes every site's
 * handler that can be closed.
 *
 * @example Choosing by host
 * ```ts
 * import { virtualHosts } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * await using handler = virtualHosts({
 *   sites: [{ hosts: ["a.example"], handler: () => Promise.resolve(new Response("a")) }],
 *   fallback: 421,
 * });
 * assert.equal(await (await handler(new Request("http://A.example:8000/"))).text(), "a");
 * const other = await handler(new Request("http://b.example/"));
 * assert.equal(other.status, 421);
 * await other.body?.cancel();
 * ```
 *
 * @param options The sites and the fallback.
 * @returns A handler with `close()`.
 */
export function virtualHosts(
  options: VirtualHostsOptions = {},
): ClosableHandler {
  const exact = new Map<string, VirtualHost["handler"]>();
  const wildcards: Array<[string, VirtualHost["handler"]]> = [];
  for (const site of options.sites ?? []) {
    for (const host of site.hosts) {
      const name = host.toLowerCase().replace(/\.$/, "");
      if (name.startsWith("*.")) wildcards.push([name.slice(1), site.handler]);
      else exact.set(name, site.handler);
    }
  }
  wildcards.sort((a, b) => b[0].length - a[0].length);
  const fallback = options.fallback ?? 421;

  function pick(hostname: string): VirtualHost["handler"] | undefined {
    const name = hostname.toLowerCase().replace(/\.$/, "");
    const found = exact.get(name);
    if (found) return found;
    for (const [suffix, handler] of wildcards) {
      if (name.endsWith(suffix) && name.length > suffix.length) return handler;
    }
    return undefined;
  }

  const handler: Handler = function virtualHostsHandler(req, info) {
    let hostname: string;
    try {
      hostname = new URL(req.url).hostname;
    } catch {
      return Promise.resolve(renderError(400, req));
    }
    const site = pick(hostname) ?? fallback;
    if (site === 421) {
      return req.body?.cancel().catch(() => {})
        .then(() => renderError(421, req)) ??
        Promise.resolve(renderError(421, req));
    }
    return site(req, info);
  };

  const all = new Set<unknown>([
    ...exact.values(),
    ...wildcards.map(([, h]) => h),
    fallback,
  ]);
  async function close(): Promise<void> {
    await Promise.all([...all].filter(_closable).map((h) => h.close()));
  }
  return Object.assign(handler, { close, [Symbol.asyncDispose]: close });
}
