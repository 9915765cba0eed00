/**
 * The small-file study (`deno task bench --small-files`): is reading a file
 * whole (`Deno.readFile`, `serveStatic({ bufferBelow })`) faster than
 * streaming it, and up to which size?
 *
 * Three @x/serve library servers (`bench/lib_server.ts`) serve the same
 * files: `stream` with `bufferBelow: 0` (every file streamed), `buffer`
 * with `bufferBelow: 1 GiB` (every file read whole, per request) — both
 * without the open-file cache — and `cached`, the defaults with the cache
 * on as the CLI runs (files up to the cache's `maxFileSize`, 16 MiB, read
 * once and sent from memory; larger ones streamed). Without the cache the
 * default `bufferBelow` (16 KiB) behaves as `buffer` up to 16 KiB and as
 * `stream` above. Rounds rotate which server goes first; the median of the
 * rounds is reported.
 *
 * @module
 */

import { fileCase } from "./fixtures.ts";
import { measure, type Measurement, type Settings } from "./measure.ts";
import { int, mib, ms, ratio, type Report } from "./report.ts";
import { type RunningServer, startLibServer } from "./servers.ts";

/** File sizes of the study, in KiB. */
export const SMALL_FILE_SIZES_KIB = [1, 16, 32, 64, 256, 1024];

/** The buffer-everything threshold (1 GiB: larger than any fixture). */
const _BUFFER_ALL = 2 ** 30;

/** The library's current default, for the "default picks" column. */
const _DEFAULT_BUFFER_BELOW = 16384;

/** What the study produced (the JSON document's `smallFiles`). */
export interface SmallFilesResult {
  /** Rounds per size and variant. */
  rounds: number;
  /** Every measurement (`server` is `stream`, `buffer` or `cached`). */
  measurements: Array<Measurement & { round: number }>;
  /** Per size: median req/s of each variant and buffer/stream. */
  summary: Array<{
    kib: number;
    streamRps: number;
    bufferRps: number;
    cachedRps: number;
    bufferOverStream: number;
    cachedOverStream: number;
  }>;
}

/** req/s per server core-second (less sensitive to other load). */
function _perCpu(m: Measurement): number {
  return m.cpuPercent > 0 ? m.rps / (m.cpuPercent / 100) : 0;
}

/** The median of `values`. */
function _median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Runs the study on `root` and reports it.
 *
 * @param root The fixture directory.
 * @param settings wrk settings.
 * @param rounds Measurements per size and variant.
 * @param report Where tables go.
 * @returns The data for the JSON file.
 */
export async function runSmallFiles(
  root: string,
  settings: Settings,
  rounds: number,
  report: Report,
): Promise<SmallFilesResult> {
  const servers: RunningServer[] = [];
  try {
    servers.push(await startLibServer("stream", root, 0));
    servers.push(await startLibServer("buffer", root, _BUFFER_ALL));
    servers.push(await startLibServer("cached", root, "cached"));
    const measurements: Array<Measurement & { round: number }> = [];
    for (const kib of SMALL_FILE_SIZES_KIB) {
      const c = fileCase(kib);
      for (let round = 0; round < rounds; round++) {
        const first = round % servers.length;
        const order = [...servers.slice(first), ...servers.slice(0, first)];
        for (const server of order) {
          console.error(`  ${c.label}: ${server.name} (round ${round + 1})...`);
          measurements.push({ ...(await measure(server, c, settings)), round });
        }
      }
    }

    const summary = SMALL_FILE_SIZES_KIB.map((kib) => {
      const of = (name: string) =>
        measurements.filter((m) => m.case === `${kib}k` && m.server === name);
      const streamRps = _median(of("stream").map((m) => m.rps));
      const bufferRps = _median(of("buffer").map((m) => m.rps));
      const cachedRps = _median(of("cached").map((m) => m.rps));
      return {
        kib,
        streamRps,
        bufferRps,
        cachedRps,
        bufferOverStream: bufferRps / streamRps,
        cachedOverStream: cachedRps / streamRps,
      };
    });

    report.heading(
      "Small files: read whole (buffer) vs streamed vs the open-file cache",
    );
    report.text(
      `\`stream\` = \`serveStatic({ bufferBelow: 0 })\`, \`buffer\` = ` +
        `\`serveStatic({ bufferBelow: ${_BUFFER_ALL} })\`, both without ` +
        `the open-file cache; \`cached\` = the defaults with ` +
        `\`resolvePath({ cache: {} })\` (as the CLI): files up to 16 MiB ` +
        `read once, then sent from memory. Median of ${rounds} round(s), ` +
        `rotating order. Without the cache the default ` +
        `(${_DEFAULT_BUFFER_BELOW}) buffers files up to that size.`,
    );
    const med = (kib: number, name: string, f: (m: Measurement) => number) =>
      _median(
        measurements.filter((m) => m.case === `${kib}k` && m.server === name)
          .map(f),
      );
    report.table({
      head: [
        "file",
        "stream req/s",
        "buffer req/s",
        "buffer/stream",
        "cached req/s",
        "cached/stream",
        "req/CPU-s (stream / buffer)",
        "buffer/stream per CPU",
        "p99 ms (stream / buffer)",
        "peak RSS MiB (stream / buffer)",
        "default picks (no cache)",
      ],
      rows: summary.map((s) => [
        fileCase(s.kib).label,
        int(s.streamRps),
        int(s.bufferRps),
        ratio(s.bufferRps, s.streamRps),
        int(s.cachedRps),
        ratio(s.cachedRps, s.streamRps),
        `${int(med(s.kib, "stream", _perCpu))} / ${
          int(med(s.kib, "buffer", _perCpu))
        }`,
        ratio(med(s.kib, "buffer", _perCpu), med(s.kib, "stream", _perCpu)),
        `${ms(med(s.kib, "stream", (m) => m.p99Ms))} / ${
          ms(med(s.kib, "buffer", (m) => m.p99Ms))
        }`,
        `${mib(med(s.kib, "stream", (m) => m.peakRss))} / ${
          mib(med(s.kib, "buffer", (m) => m.peakRss))
        }`,
        s.kib * 1024 <= _DEFAULT_BUFFER_BELOW ? "buffer" : "stream",
      ]),
    });
    if (rounds > 1) {
      report.text(
        "Per round req/s (stream / buffer / cached): " +
          SMALL_FILE_SIZES_KIB.map((kib) => {
            const per = (name: string) =>
              measurements.filter((m) =>
                m.case === `${kib}k` && m.server === name
              ).map((m) => int(m.rps)).join(", ");
            return `${fileCase(kib).label}: ${per("stream")} / ${
              per("buffer")
            } / ${per("cached")}`;
          }).join("; ") + ".",
      );
    }
    return { rounds, measurements, summary };
  } finally {
    await Promise.allSettled(servers.map((s) => s.stop()));
  }
}
