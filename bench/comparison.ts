/**
 * The server comparison: @x/serve (CLI) vs nginx vs a minimal `Deno.serve`
 * on the same files, one case at a time.
 *
 * @module
 */

import { type Case, COMPARISON_CASES } from "./fixtures.ts";
import { measure, type Measurement, type Settings } from "./measure.ts";
import { sumMemory } from "./proc.ts";
import { int, mib, ms, ratio, type Report, type Table } from "./report.ts";
import {
  type RunningServer,
  startDenoMinimal,
  startNginx,
  startXServe,
} from "./servers.ts";

/** What the comparison produced (the JSON document's `comparison`). */
export interface ComparisonResult {
  /** The servers and how they were started. */
  servers: Array<{ name: string; command: string; idleRss: number }>;
  /** Every measurement. */
  measurements: Measurement[];
  /** Lifetime peak RSS (`VmHWM`, summed) of each server at the end. */
  lifetimeHwm: Record<string, number>;
}

const _X = "x-serve";
const _NGINX = "nginx";
const _MINIMAL = "deno-minimal";

/** req/s per second of server CPU (efficiency, less skewed by wrk). */
function _perCpu(m: Measurement): number {
  return m.cpuPercent > 0 ? m.rps / (m.cpuPercent / 100) : 0;
}

/** The per-case table: absolute rows, then the two ratio rows. */
function _caseTable(rows: Measurement[]): Table {
  const by = (name: string) => rows.find((m) => m.server === name);
  const head = [
    "server",
    "req/s",
    "MiB/s",
    "p50 ms",
    "p99 ms",
    "peak RSS MiB",
    "CPU %",
    "req/CPU-s",
    "non-2xx",
    "sock err",
  ];
  const abs = rows.map((m) => [
    m.server,
    int(m.rps),
    mib(m.bytesPerSecond),
    ms(m.p50Ms),
    ms(m.p99Ms),
    mib(m.peakRss),
    m.cpuPercent.toFixed(0),
    int(_perCpu(m)),
    int(m.non2xx),
    int(m.socketErrors),
  ]);
  const x = by(_X);
  const ratios = [_NGINX, _MINIMAL].flatMap((other) => {
    const o = by(other);
    if (!x || !o) return [];
    return [[
      `${_X} / ${other}`,
      ratio(x.rps, o.rps),
      ratio(x.bytesPerSecond, o.bytesPerSecond),
      ratio(x.p50Ms, o.p50Ms),
      ratio(x.p99Ms, o.p99Ms),
      ratio(x.peakRss, o.peakRss),
      ratio(x.cpuPercent, o.cpuPercent),
      ratio(_perCpu(x), _perCpu(o)),
      "",
      "",
    ]];
  });
  return { head, rows: [...abs, ...ratios] };
}

/** One line per case: req/s and p99 of each server, and the ratios. */
function _summaryTable(cases: Case[], all: Measurement[]): Table {
  const get = (c: Case, name: string) =>
    all.find((m) => m.case === c.id && m.server === name);
  return {
    head: [
      "case",
      `${_X} req/s`,
      `${_NGINX} req/s`,
      `${_MINIMAL} req/s`,
      `${_X}/${_NGINX}`,
      `${_X}/${_MINIMAL}`,
      `p99 ms (x / nginx / min)`,
    ],
    rows: cases.map((c) => {
      const [x, n, d] = [get(c, _X), get(c, _NGINX), get(c, _MINIMAL)];
      return [
        c.label,
        x ? int(x.rps) : "–",
        n ? int(n.rps) : "–",
        d ? int(d.rps) : "–",
        x && n ? ratio(x.rps, n.rps) : "–",
        x && d ? ratio(x.rps, d.rps) : "–",
        [x, n, d].map((m) => m ? ms(m.p99Ms) : "–").join(" / "),
      ];
    }),
  };
}

/**
 * Starts the three servers on `root`, measures every case on each (the
 * order of servers rotates per case), reports, and stops them.
 *
 * @param root The fixture directory.
 * @param settings wrk settings.
 * @param nginxWorkers nginx `worker_processes`.
 * @param report Where tables go.
 * @returns The data for the JSON file.
 */
export async function runComparison(
  root: string,
  settings: Settings,
  nginxWorkers: string,
  report: Report,
): Promise<ComparisonResult> {
  const servers: RunningServer[] = [];
  try {
    servers.push(await startXServe(root));
    servers.push(await startNginx(root, nginxWorkers));
    servers.push(await startDenoMinimal(root));
    const info = [];
    for (const s of servers) {
      const idleRss = (await sumMemory(await s.pids())).rss;
      info.push({ name: s.name, command: s.command, idleRss });
    }
    report.heading("Servers");
    report.table({
      head: ["server", "idle RSS MiB"],
      rows: info.map((s) => [s.name, mib(s.idleRss)]),
    });
    report.text(info.map((s) => `- ${s.name}: \`${s.command}\``).join("\n"));

    const measurements: Measurement[] = [];
    for (const [i, c] of COMPARISON_CASES.entries()) {
      const rows: Measurement[] = [];
      for (let k = 0; k < servers.length; k++) {
        const server = servers[(i + k) % servers.length]!;
        console.error(`  ${c.label}: ${server.name}...`);
        rows.push(await measure(server, c, settings));
      }
      const order = [_X, _NGINX, _MINIMAL];
      rows.sort((a, b) => order.indexOf(a.server) - order.indexOf(b.server));
      measurements.push(...rows);
      report.heading(`${c.label} — GET ${c.path}`, 3);
      report.table(_caseTable(rows));
    }

    report.heading("Summary");
    report.table(_summaryTable(COMPARISON_CASES, measurements));
    const lifetimeHwm: Record<string, number> = {};
    for (const s of servers) {
      lifetimeHwm[s.name] = (await sumMemory(await s.pids())).hwm;
    }
    report.text(
      "Lifetime peak RSS (VmHWM; nginx: master + workers summed): " +
        servers.map((s) => `${s.name} ${mib(lifetimeHwm[s.name]!)} MiB`)
          .join(", ") +
        ".",
    );
    return { servers: info, measurements, lifetimeHwm };
  } finally {
    await Promise.allSettled(servers.map((s) => s.stop()));
  }
}
