/**
 * Running `h2load` (nghttp2) for the HTTP/2 case and reading its text
 * report into the same shape as a wrk run. h2load has no duration-free
 * percentiles: the latency columns carry its mean (p50 and p99 are `NaN`,
 * printed as `–`).
 *
 * @module
 */

import type { WrkResult } from "./wrk.ts";

/** Path of the h2load binary. */
export const H2LOAD = "/usr/bin/h2load";

/** Options of one h2load run. */
export interface H2loadOptions {
  /** Total requests (`-n`). */
  requests: number;
  /** Clients, i.e. connections (`-c`). */
  clients: number;
  /** Concurrent streams per client (`-m`). */
  streams: number;
}

/**
 * The h2load command line for `url`.
 *
 * @param url The target.
 * @param o Requests, clients, streams.
 * @returns h2load's arguments.
 */
export function h2loadArgs(url: string, o: H2loadOptions): string[] {
  return [`-n${o.requests}`, `-c${o.clients}`, `-m${o.streams}`, url];
}

/** `12.3ms` / `450us` / `1.2s` → milliseconds. */
function _toMs(value: string, unit: string): number {
  const n = Number(value);
  return unit === "us" ? n / 1000 : unit === "s" ? n * 1000 : n;
}

/** `1.5KB` / `2MB` / `800B` → bytes (h2load uses powers of 1024). */
function _toBytes(value: string, unit: string): number {
  const n = Number(value);
  const pow = { B: 0, KB: 1, MB: 2, GB: 3 }[unit] ?? 0;
  return n * 1024 ** pow;
}

/**
 * Parses h2load's report (`finished in …, X req/s, Y MB/s`, the
 * `requests:` and `status codes:` lines, `time for request:`).
 *
 * @param text h2load's stdout.
 * @returns The measurements, or `undefined` if it has no summary.
 */
export function parseH2load(text: string): WrkResult | undefined {
  const fin = text.match(
    /finished in ([\d.]+)(ms|us|s), ([\d.]+) req\/s, ([\d.]+)(B|KB|MB|GB)\/s/,
  );
  const req = text.match(
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/,
  );
  const codes = text.match(/status codes: (\d+) 2xx, (\d+) 3xx/);
  const time = text.match(
    /time for request:\s+([\d.]+)(ms|us|s)\s+([\d.]+)(ms|us|s)\s+([\d.]+)(ms|us|s)/,
  );
  if (!fin || !req || !codes || !time) return undefined;
  const done = Number(req[3]);
  const ok = Number(codes[1]) + Number(codes[2]);
  return {
    requests: done,
    rps: Number(fin[3]),
    bytesPerSecond: _toBytes(fin[4]!, fin[5]!),
    meanMs: _toMs(time[5]!, time[6]!),
    p50Ms: NaN,
    p90Ms: NaN,
    p99Ms: NaN,
    maxMs: _toMs(time[3]!, time[4]!),
    non2xx: Math.max(0, Number(req[4]) - ok),
    socketErrors: Number(req[5]) + Number(req[6]) + Number(req[7]),
  };
}

/**
 * Runs h2load against `url` and parses its report.
 *
 * @param url The target; only `https://127.0.0.1:` URLs are accepted.
 * @param options Requests, clients, streams.
 * @returns The measurements.
 */
export async function runH2load(
  url: string,
  options: H2loadOptions,
): Promise<WrkResult> {
  if (!url.startsWith("https://127.0.0.1:")) {
    throw new Error(`refusing to load a non-loopback target: ${url}`);
  }
  const args = h2loadArgs(url, options);
  const out = await new Deno.Command(H2LOAD, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const result = parseH2load(text);
  if (!out.success || !result) {
    throw new Error(
      `h2load ${args.join(" ")} failed (code ${out.code}):\n${text}\n` +
        new TextDecoder().decode(out.stderr),
    );
  }
  if (result.requests < options.requests / 2) {
    throw new Error(`h2load ${args.join(" ")}: only ${result.requests} done`);
  }
  return result;
}
