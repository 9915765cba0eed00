/**
 * One measurement: check the server answers the case correctly, warm it
 * up, then run wrk while sampling the server's memory and CPU time.
 *
 * @module
 */

import type { Case } from "./fixtures.ts";
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

/**
 * Fetches the case once and throws unless the status (and the body
 * length, when the case has one) is as expected, so a misconfigured server
 * cannot win by answering errors fast.
 *
 * @param server The server.
 * @param c The case.
 */
export async function checkCase(server: RunningServer, c: Case) {
  const res = await fetch(server.origin + c.path);
  const body = await res.bytes();
  if (res.status !== c.status) {
    throw new Error(
      `${server.name} ${c.path}: status ${res.status}, expected ${c.status}`,
    );
  }
  if (c.length !== undefined && body.byteLength !== c.length) {
    throw new Error(
      `${server.name} ${c.path}: ${body.byteLength} bytes, expected ${c.length}`,
    );
  }
}

/**
 * Measures `server` on `c`: check, warm-up, then a wrk run with memory
 * sampling (every 100 ms) and CPU accounting.
 *
 * @param server The server.
 * @param c The case.
 * @param settings wrk and warm-up settings.
 * @returns The measurement.
 */
export async function measure(
  server: RunningServer,
  c: Case,
  settings: Settings,
): Promise<Measurement> {
  await checkCase(server, c);
  const url = server.origin + c.path;
  if (settings.warmupSeconds > 0) {
    await runWrk(url, { ...settings, seconds: settings.warmupSeconds });
  }
  const hz = await ticksPerSecond();
  const pidsBefore = await server.pids();
  const cpuBefore = await sumCpuTicks(pidsBefore);
  const started = performance.now();
  const sampler = sampleRss(() => server.pids());
  let result: WrkResult;
  let peakRss: number;
  try {
    result = await runWrk(url, settings);
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
