/**
 * {@linkcode guardOptionsFromFlags}: turns the CLI's connection-guard flags
 * into the deadlines and caps of {@linkcode serveGuarded}, and decides
 * whether the guard runs (`--connection-guard auto`: whenever the server
 * listens beyond loopback, or a deadline or cap flag is given).
 *
 * @module
 */

import type { ConnectionGuardOptions } from "./conn_guard.ts";

/**
 * The raw flag values, as `parseArgs` returns them.
 *
 * @example Flags as parseArgs gives them
 * ```ts
 * import { type GuardFlags, guardOptionsFromFlags } from "./guard_flags.ts";
 * import assert from "node:assert/strict";
 *
 * const flags: GuardFlags = { "connection-guard": "on", "send-timeout": "30" };
 * assert.equal(guardOptionsFromFlags(flags, "127.0.0.1")?.sendTimeoutMs, 30_000);
 * ```
 */
export interface GuardFlags {
  /** `--connection-guard auto|on|off`. */
  "connection-guard"?: string;
  /** `--header-timeout SECONDS`. */
  "header-timeout"?: string;
  /** `--keepalive-timeout SECONDS`. */
  "keepalive-timeout"?: string;
  /** `--send-timeout SECONDS`. */
  "send-timeout"?: string;
  /** `--max-connections N`. */
  "max-connections"?: string;
  /** `--max-connections-per-client N`. */
  "max-connections-per-client"?: string;
}

/** The deadlines and caps the flags set (the address and callbacks come later). */
export type GuardSettings = Pick<
  ConnectionGuardOptions,
  | "headerTimeoutMs"
  | "keepAliveTimeoutMs"
  | "sendTimeoutMs"
  | "maxConnections"
  | "maxConnectionsPerClient"
>;

/**
 * The `--help` lines of the connection-guard flags.
 *
 * @example Printing them
 * ```ts
 * import { GUARD_USAGE } from "./guard_flags.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(GUARD_USAGE, /--send-timeout SECONDS/);
 * ```
 */
export const GUARD_USAGE = `  --connection-guard MODE
                         auto, on or off: deadlines and connection caps
                         (auto = on beyond loopback or when one is set)
  --header-timeout SECONDS
                         Close a connection whose request head is not complete (default 60)
  --keepalive-timeout SECONDS
                         Close a kept connection idle this long (default 75)
  --send-timeout SECONDS Drop a client that takes no response bytes this long (default 60)
  --max-connections N    Refuse (503) connections beyond N open, all workers
                         together (default 10000)
  --max-connections-per-client N
                         Refuse (503) beyond N from one address, all workers
                         together (default 0 = no limit)
`;

const _TIMEOUTS = [
  ["header-timeout", "headerTimeoutMs"],
  ["keepalive-timeout", "keepAliveTimeoutMs"],
  ["send-timeout", "sendTimeoutMs"],
] as const;

const _CAPS = [
  ["max-connections", "maxConnections"],
  ["max-connections-per-client", "maxConnectionsPerClient"],
] as const;

/** True for a loopback host (`127.0.0.0/8`, `::1`, `localhost`). */
function _loopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

/**
 * The guard's settings, or `undefined` when it is off. Throws a
 * `TypeError` with a user-facing message for invalid values.
 *
 * @example Off on loopback by default, on beyond it or when asked for
 * ```ts
 * import { guardOptionsFromFlags } from "./guard_flags.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(guardOptionsFromFlags({}, "127.0.0.1"), undefined);
 * assert.deepEqual(guardOptionsFromFlags({}, "0.0.0.0"), {});
 * assert.deepEqual(guardOptionsFromFlags({ "header-timeout": "5" }, "::1"), { headerTimeoutMs: 5_000 });
 * assert.throws(() => guardOptionsFromFlags({ "send-timeout": "soon" }, "0.0.0.0"), TypeError);
 * ```
 *
 * @param flags The parsed flag values.
 * @param host The address the server listens on.
 * @returns The settings, or `undefined`.
 */
export function guardOptionsFromFlags(
  flags: GuardFlags,
  host: string,
): GuardSettings | undefined {
  const mode = flags["connection-guard"] ?? "auto";
  if (!["auto", "on", "off"].includes(mode)) {
    throw new TypeError(
      `Invalid --connection-guard "${mode}": expected auto, on or off`,
    );
  }
  const settings: GuardSettings = {};
  for (const [flag, key] of _TIMEOUTS) {
    const value = flags[flag];
    if (value === undefined) continue;
    const seconds = Number(value);
    if (value.trim() === "" || !Number.isFinite(seconds) || seconds < 0) {
      throw new TypeError(
        `Invalid --${flag} "${value}": expected seconds (0 = no deadline)`,
      );
    }
    settings[key] = Math.round(seconds * 1000);
  }
  for (const [flag, key] of _CAPS) {
    const value = flags[flag];
    if (value === undefined) continue;
    if (!/^\d+$/.test(value)) {
      throw new TypeError(
        `Invalid --${flag} "${value}": expected a whole number (0 = no limit)`,
      );
    }
    settings[key] = Number(value);
  }
  // A deadline or cap asked for is enforced, on loopback too.
  const asked = Object.keys(settings).length > 0;
  if (settings.maxConnections === 0) settings.maxConnections = Infinity;
  if (mode === "off" || (mode === "auto" && _loopback(host) && !asked)) {
    return undefined;
  }
  return settings;
}
