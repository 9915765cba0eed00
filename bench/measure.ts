/**
 * One measurement: check the server answers the case correctly, warm it
 * up, then run the load generator (wrk, or h2load for HTTP/2) while
 * sampling the server's memory and CPU time.
 *
 * @module
 */

import type { Case } from "./fixtures.ts";
import { runH2load } from "./h2load.ts";
import { sampleRss, sumCpuTicks, sumMemory, ticksPerSecond } from "./proc.ts";
import type { RunningServer } from "./servers.ts";
import { runWrk, type WrkOptions, type WrkResult } from "./wrk.ts";

/** The benchmark's settings (from the environment). */
export interface Settings extends WrkOptions {
  /** Seconds of unmeasured wrk load before each measured run. */
  warmupSeconds: number;
}

/** One server on one case. */
export interface Measurement extends WrkResult {
  /** The server's name. */
  server: string;
  /** The case id. */
  case: string;
  /** Highest summed `VmRSS` sampled during the measured run, in bytes. */
  peakRss: number;
  /** Summed `VmHWM` (lifetime peak) after the run, in bytes. */
  hwm: number;
  /** Server CPU time during the measured run, in % of one core. */
  cpuPercent: number;
}

/** h2load streams per client (`-m`). */
export const H2_STREAMS = 10;
/** h2load clients (`-c`). */
export const H2_CLIENTS = 8;

/** One HTTP client per certificate (trusting it), for the checks. */
const _clients = new Map<string, Deno.HttpClient>();

/** The fetch client for `server` (`http2` forces HTTP/2 over TLS). */
function _client(
  server: RunningServer,
  http2: boolean,
): Deno.HttpClient | undefined {
  if (!server.caCert) return undefined;
  const key = `${http2} ${server.caCert}`;
  let client = _clients.get(key);
  if (!client) {
    client = Deno.createHttpClient({
      caCerts: [server.caCert],
      ...(http2 ? { http1: false, http2: true } : {}),
    });
    _clients.set(key, client);
  }
  return client;
}

/** Closes the check clients (end of the run). */
export function closeClients(): void {
  for (const c of _clients.values()) c.close();
  _clients.clear();
}

/**
 * Fetches the case once and throws unless the status, and the body length
 * or text when the case has one, are as expected, so a misconfigured
 * server cannot win by answering errors fast. For an `ifNoneMatch` case it
 * first fetches the path for its ETag, then checks the conditional request.
 * HTTP/2 cases are fetched over HTTP/2.
 *
 * @param server The server.
 * @param c The case.
 * @returns The request headers the load generator must send.
 */
export async function checkCase(
  server: RunningServer,
  c: Case,
): Promise<Record<string, string>> {
  const client = _client(server, c.tool === "h2load");
  const get = async (headers: Record<string, string>) => {
    const res = await fetch(server.origin + c.path, {
      headers,
      ...(client ? { client } : {}),
    });
    return { res, body: await res.bytes() };
  };
  const headers: Record<string, string> = {};
  const fail = (what: string) => {
    throw new Error(`${server.name} ${c.path} (${c.label}): ${what}`);
  };
  if (c.ifNoneMatch) {
    const etag = (await get({})).res.headers.get("etag");
    if (!etag) fail("no ETag to send in If-None-Match");
    headers["If-None-Match"] = etag!;
  }
  const { res, body } = await get(headers);
  if (res.status !== c.status) {
    fail(`status ${res.status}, expected ${c.status}`);
  }
  if (c.length !== undefined && body.byteLength !== c.length) {
    fail(`${body.byteLength} bytes, expected ${c.length}`);
  }
  const text = c.body !== undefined || c.contains !== undefined
    ? new TextDecoder().decode(body)
    : "";
  if (c.body !== undefined && text !== c.body) {
    fail(`body ${JSON.stringify(text.slice(0, 200))}, expected ${c.body}`);
  }
  if (c.contains !== undefined && !text.includes(c.contains)) {
    fail(`body does not contain ${JSON.stringify(c.contains)}`);
  }
  return headers;
}

/** Options of one {@linkcode measure} call. */
export interface MeasureOptions {
  /** Run the warm-up first (default true). */
  warmup?: boolean;
  /** h2load: req/s seen before on this server and case, to size `-n`. */
  h2Rps?: number;
}

/** Runs the case's load generator once for `seconds`. */
function _load(
  url: string,
  c: Case,
  settings: Settings,
  headers: Record<string, string>,
  seconds: number,
  h2Rps: number,
): Promise<WrkResult> {
  if (c.tool === "h2load") {
    // h2load runs a number of requests: size it to last about `seconds`.
    const requests = Math.max(
      H2_CLIENTS * H2_STREAMS * 10,
      Math.round(h2Rps * seconds),
    );
    return runH2load(url, {
      requests,
      clients: c.connections ?? H2_CLIENTS,
      streams: H2_STREAMS,
    });
  }
  return runWrk(url, {
    ...settings,
    seconds,
    connections: c.connections ?? settings.connections,
    headers,
  });
}

/**
 * Measures `server` on `c`: check, warm-up, then a measured run with
 * memory sampling (every 100 ms) and CPU accounting.
 *
 * @param server The server.
 * @param c The case.
 * @param settings wrk and warm-up settings.
 * @param options Skip the warm-up; h2load sizing.
 * @returns The measurement.
 */
export async function measure(
  server: RunningServer,
  c: Case,
  settings: Settings,
  options: MeasureOptions = {},
): Promise<Measurement> {
  const headers = await checkCase(server, c);
  const url = server.origin + c.path;
  let h2Rps = options.h2Rps ?? 0;
  const warm = options.warmup !== false && settings.warmupSeconds > 0;
  if (warm || (c.tool === "h2load" && !h2Rps)) {
    // For h2load this run also calibrates `-n`.
    const w = await _load(
      url,
      c,
      settings,
      headers,
      Math.max(1, settings.warmupSeconds),
      h2Rps || 1000,
    );
    if (c.tool === "h2load") h2Rps = w.rps;
  }
  const hz = await ticksPerSecond();
  const pidsBefore = await server.pids();
  const cpuBefore = await sumCpuTicks(pidsBefore);
  const started = performance.now();
  const sampler = sampleRss(() => server.pids());
  let result: WrkResult;
  let peakRss: number;
  try {
    result = await _load(url, c, settings, headers, settings.seconds, h2Rps);
  } finally {
    peakRss = await sampler.stop();
  }
  const elapsed = (performance.now() - started) / 1000;
  const pids = await server.pids();
  const cpuAfter = await sumCpuTicks(pids);
  return {
    server: server.name,
    case: c.id,
    ...result,
    peakRss,
    hwm: (await sumMemory(pids)).hwm,
    cpuPercent: ((cpuAfter - cpuBefore) / hz) / elapsed * 100,
  };
}
