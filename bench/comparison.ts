/**
 * The static comparison: @x/serve (CLI) vs nginx with `open_file_cache`,
 * nginx as shipped (no `open_file_cache`), and the in-memory `Deno.serve`
 * ceiling (optionally the minimal streaming `Deno.serve` too), on the same
 * files, at the settings' connections and at 1 connection; plus `x-serve
 * guard`, the same CLI with `--connection-guard on`, as a variant row.
 *
 * @module
 */

import { type Case, COMPARISON_CASES } from "./fixtures.ts";
import {
  type Group,
  type GroupCase,
  startEach,
  type Variant,
} from "./groups.ts";
import type { Settings } from "./measure.ts";
import {
  GUARD,
  GUARD_FLAGS,
  guardNote,
  startDenoMinimal,
  startMemoryDeno,
  startNginx,
  startXServe,
} from "./servers.ts";

const _X = "x-serve";
const _NGINX_OFC = "nginx-ofc";
const _NGINX = "nginx";
const _MEMORY = "memory-deno";
const _MINIMAL = "deno-minimal";
const _VARIANTS: Variant[] = [{ name: GUARD, label: "guard" }];

/** The `open_file_cache` directives of the tuned nginx. */
export const OPEN_FILE_CACHE =
  "open_file_cache max=10000 inactive=60s; open_file_cache_valid 60s;";

/** Options of {@linkcode staticGroup}. */
export interface StaticOptions {
  /** The fixture directory. */
  root: string;
  /** wrk settings (their connections and 1). */
  settings: Settings;
  /** nginx `worker_processes`. */
  nginxWorkers: string;
  /** Rounds per case and server. */
  rounds: number;
  /** Also run `bench/minimal_deno.ts` (streams files, no validators). */
  minimal: boolean;
}

/** `c` at `connections`, run by `servers` and the variants. */
function _at(c: Case, connections: number, servers: string[]): GroupCase {
  return {
    ...c,
    id: `${c.id}-c${connections}`,
    label: `${c.label}, ${connections} conn`,
    connections,
    servers,
    variants: _VARIANTS,
  };
}

/**
 * The static group.
 *
 * @param o Root, settings, nginx workers, rounds, minimal baseline.
 * @returns The group.
 */
export function staticGroup(o: StaticOptions): Group {
  const base = [_X, _NGINX_OFC, _NGINX, _MEMORY];
  const counts = [...new Set([o.settings.connections, 1])];
  const cases = COMPARISON_CASES.flatMap((c) => {
    // deno-minimal has no validators and no listings.
    const minimal = o.minimal && !c.ifNoneMatch && c.contains === undefined;
    const servers = minimal ? [...base, _MINIMAL] : base;
    return counts.map((n) => _at(c, n, servers));
  });
  return {
    id: "static",
    title: "Static files",
    notes: [
      `Peers: \`${_NGINX_OFC}\` = nginx with \`${OPEN_FILE_CACHE}\`, ` +
      `\`${_NGINX}\` = nginx as shipped (no open_file_cache), ` +
      `\`${_MEMORY}\` = the ceiling: a bare \`Deno.serve\` answering the ` +
      `same bytes (and ETags, 304s, a listing) from memory` +
      (o.minimal
        ? `, \`${_MINIMAL}\` = \`Deno.serve\` streaming \`Deno.open()\``
        : "") +
      `. The summary's peer is ${_NGINX_OFC}. The 304 case sends the ETag ` +
      `each server gave; the listing is @x/serve's listing vs nginx ` +
      `\`autoindex on\`.`,
      guardNote(),
    ],
    rounds: o.rounds,
    cases,
    start: async () => ({
      servers: await startEach([
        () => startXServe(o.root),
        () => startXServe(o.root, { name: GUARD, flags: [...GUARD_FLAGS] }),
        () =>
          startNginx(o.root, {
            name: _NGINX_OFC,
            workers: o.nginxWorkers,
            http: OPEN_FILE_CACHE,
            server: "autoindex on;",
          }),
        () =>
          startNginx(o.root, {
            name: _NGINX,
            workers: o.nginxWorkers,
            server: "autoindex on;",
          }),
        () => startMemoryDeno(o.root),
        ...(o.minimal ? [() => startDenoMinimal(o.root)] : []),
      ]),
    }),
  };
}
