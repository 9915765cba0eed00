/**
 * FastCGI backend addresses: `host:port`, `[v6]:port` or `unix:/path`.
 *
 * @module
 */

/**
 * Where a FastCGI responder listens: TCP or a unix socket.
 *
 * @example Giving backends as parsed addresses
 * ```ts
 * import { createFastCgiClient, type FastCgiAddress } from "@x/serve/fastcgi";
 *
 * const backends: FastCgiAddress[] = [
 *   { transport: "tcp", hostname: "127.0.0.1", port: 9000 },
 *   { transport: "unix", path: "/run/php/php8.2-fpm.sock" },
 * ];
 * createFastCgiClient({ backends }).close();
 * ```
 */
export type FastCgiAddress =
  | { transport: "tcp"; hostname: string; port: number }
  | { transport: "unix"; path: string };

/**
 * Parses a backend address as given on the command line: `host:port`,
 * `[::1]:port`, a bare port (loopback), or `unix:/path/to.sock`. Throws a
 * `TypeError` for anything else.
 *
 * @example Parsing addresses
 * ```ts
 * import { parseAddress } from "@x/serve/fastcgi";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseAddress("127.0.0.1:9000"), { transport: "tcp", hostname: "127.0.0.1", port: 9000 });
 * assert.deepEqual(parseAddress("unix:/run/php/fpm.sock"), { transport: "unix", path: "/run/php/fpm.sock" });
 * ```
 *
 * @param input The address text, or an already parsed address.
 * @returns The parsed address.
 */
export function parseAddress(input: string | FastCgiAddress): FastCgiAddress {
  if (typeof input !== "string") return input;
  if (input.startsWith("unix:")) {
    const path = input.slice(5);
    if (path === "") {
      throw new TypeError(
        `Cannot parse FastCGI address "${input}": empty socket path`,
      );
    }
    return { transport: "unix", path };
  }
  let hostname = "127.0.0.1";
  let portText = input;
  const m = /^(\[[^\]]+\]|[^:\[\]]*):(\d+)$/.exec(input);
  if (m) {
    hostname = m[1]!.startsWith("[") ? m[1]!.slice(1, -1) : m[1] || "127.0.0.1";
    portText = m[2]!;
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
    throw new TypeError(
      `Cannot parse FastCGI address "${input}": expected host:port or unix:/path`,
    );
  }
  return { transport: "tcp", hostname, port };
}

/**
 * Formats an address for logs.
 *
 * @example Formatting
 * ```ts
 * import { formatAddress } from "./address.ts";
 * import assert from "node:assert/strict";
 * assert.equal(formatAddress({ transport: "unix", path: "/s" }), "unix:/s");
 * ```
 *
 * @param address The address.
 * @returns `host:port` or `unix:/path`.
 */
export function formatAddress(address: FastCgiAddress): string {
  if (address.transport === "unix") return `unix:${address.path}`;
  const host = address.hostname.includes(":")
    ? `[${address.hostname}]`
    : address.hostname;
  return `${host}:${address.port}`;
}
