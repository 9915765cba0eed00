/**
 * The side-by-side runner shared by every workload group (static, CGI,
 * PHP, TLS): start the group's servers, measure every case on each of its
 * servers for several rounds (the order of servers rotating per case and
 * round), report the medians with `x-serve / peer` ratios (and `variant /
 * x-serve` for variants of @x/serve such as `x-serve guard`), and stop them.
 *
 * @module
 */

import type { Case } from "./fixtures.ts";
import { measure, type Measurement, type Settings } from "./measure.ts";
import { sumMemory } from "./proc.ts";
import { int, mib, ms, ratio, type Report, type Table } from "./report.ts";
import type { RunningServer } from "./servers.ts";

/**
 * A variant of the server under test (the same @x/serve CLI with other
 * flags, e.g. `--connection-guard on`): an extra row of the case, compared
 * with the default @x/serve (`variant / x`), not with the peer.
 */
export interface Variant {
  /** The server's name (`x-serve guard`, `x-serve tuned tcp`). */
  name: string;
  /** Short label for the summary column `LABEL / x` (`guard`, `tuned`). */
  label: string;
}

/** A case of a group and the servers that run it. */
export interface GroupCase extends Case {
  /**
   * The servers' names: the first is the one under test (@x/serve), the
   * second its peer (the summary's ratio), the others extra rows.
   */
  servers: string[];
  /** Variants of the first server, measured too (extra rows, own ratios). */
  variants?: Variant[];
}

/** Every server of `c`, in order: `servers`, then the variants. */
export function caseServers(c: GroupCase): string[] {
  return [...c.servers, ...(c.variants ?? []).map((v) => v.name)];
}

/** The servers of a group. */
export interface Started {
  /** The servers measured. */
  servers: RunningServer[];
  /** Processes they depend on (php-fpm): stopped with them, not measured. */
  backends?: RunningServer[];
}

/** A workload group. */
export interface Group {
  /** `static`, `cgi`, `php`, `tls`: the flag and the JSON key. */
  id: string;
  /** Its heading. */
  title: string;
  /** Markdown paragraphs printed under the heading. */
  notes: string[];
  /** Rounds per case and server. */
  rounds: number;
  /** The cases, in order. */
  cases: GroupCase[];
  /** Starts the servers (on failure, stops what it started). */
  start(): Promise<Started>;
}

/** One line of the final summary: a workload, @x/serve vs its peer. */
export interface SummaryRow {
  /** The group id. */
  group: string;
  /** The case id. */
  case: string;
  /** What it is (group and case). */
  workload: string;
  /** @x/serve's name and median req/s and latency (ms). */
  x: { name: string; rps: number; latencyMs: number };
  /** The peer's. */
  peer: { name: string; rps: number; latencyMs: number };
  /** The other servers of the case. */
  others: Array<{ name: string; rps: number }>;
  /** Variants of @x/serve (compared with `x`: `variant / x`). */
  variants: Array<
    { label: string; name: string; rps: number; latencyMs: number }
  >;
}

/** What a group produced (its entry in the JSON document). */
export interface GroupResult {
  /** Rounds per case and server. */
  rounds: number;
  /** The servers and how they were started. */
  servers: Array<{ name: string; command: string; idleRss: number }>;
  /** Every measurement of every round. */
  measurements: Array<Measurement & { round: number }>;
  /** Per case and server: the medians over the rounds (RSS: the maximum). */
  medians: Measurement[];
  /** The summary rows. */
  summary: SummaryRow[];
  /** Lifetime peak RSS (`VmHWM`, summed) of each server at the end. */
  lifetimeHwm: Record<string, number>;
}

/** The median of `values` (`NaN` when empty or all `NaN`). */
export function median(values: number[]): number {
  const s = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The per-field median of runs of one server on one case. */
function _medianOf(runs: Measurement[]): Measurement {
  const first = runs[0]!;
  const med = (f: (m: Measurement) => number) => median(runs.map(f));
  return {
    server: first.server,
    case: first.case,
    requests: med((m) => m.requests),
    rps: med((m) => m.rps),
    bytesPerSecond: med((m) => m.bytesPerSecond),
    meanMs: med((m) => m.meanMs),
    p50Ms: med((m) => m.p50Ms),
    p90Ms: med((m) => m.p90Ms),
    p99Ms: med((m) => m.p99Ms),
    maxMs: Math.max(...runs.map((m) => m.maxMs)),
    non2xx: med((m) => m.non2xx),
    socketErrors: med((m) => m.socketErrors),
    peakRss: Math.max(...runs.map((m) => m.peakRss)),
    hwm: Math.max(...runs.map((m) => m.hwm)),
    cpuPercent: med((m) => m.cpuPercent),
  };
}

/** req/s per second of server CPU (efficiency, less skewed by wrk). */
function _perCpu(m: Measurement): number {
  return m.cpuPercent > 0 ? m.rps / (m.cpuPercent / 100) : 0;
}

/** The latency shown in summaries: p50, or the mean when there is none. */
function _latency(m: Measurement): number {
  return Number.isNaN(m.p50Ms) ? m.meanMs : m.p50Ms;
}

/** The ratio cells `a / b` of a case table row (after the name). */
function _ratioCells(a: Measurement, b: Measurement): string[] {
  return [
    ratio(a.rps, b.rps),
    ratio(a.bytesPerSecond, b.bytesPerSecond),
    ratio(a.p50Ms, b.p50Ms),
    ratio(a.p99Ms, b.p99Ms),
    ratio(a.meanMs, b.meanMs),
    ratio(a.peakRss, b.peakRss),
    ratio(a.cpuPercent, b.cpuPercent),
    ratio(_perCpu(a), _perCpu(b)),
    "",
    "",
  ];
}

/**
 * The per-case table: a row per server (variants last), then `x / other`
 * ratio rows, then `variant / x` rows.
 */
function _caseTable(c: GroupCase, rows: Measurement[]): Table {
  const head = [
    "server",
    "req/s",
    "MiB/s",
    "p50 ms",
    "p99 ms",
    "mean ms",
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
    ms(m.meanMs),
    mib(m.peakRss),
    m.cpuPercent.toFixed(0),
    int(_perCpu(m)),
    int(m.non2xx),
    int(m.socketErrors),
  ]);
  const [xName, ...others] = c.servers;
  const x = rows.find((m) => m.server === xName);
  const ratios = others.flatMap((other) => {
    const o = rows.find((m) => m.server === other);
    if (!x || !o) return [];
    return [[`${x.server} / ${other}`, ..._ratioCells(x, o)]];
  });
  const variants = (c.variants ?? []).flatMap((v) => {
    const o = rows.find((m) => m.server === v.name);
    if (!x || !o) return [];
    return [[`${v.name} / ${x.server}`, ..._ratioCells(o, x)]];
  });
  return { head, rows: [...abs, ...ratios, ...variants] };
}

/**
 * The summary table of rows (one per workload): @x/serve's req/s, the
 * peer's, the ratio, the other servers' ratios, the latencies, and a
 * `LABEL / x` req/s column per variant label (`guard / x`: the variant of
 * @x/serve vs the default one; empty where a workload has no such variant).
 *
 * @param rows The rows.
 * @param withGroup Prefix the workload with its group.
 * @returns The table.
 */
export function summaryTable(rows: SummaryRow[], withGroup = true): Table {
  const labels = [
    ...new Set(rows.flatMap((r) => r.variants.map((v) => v.label))),
  ];
  return {
    head: [
      "workload",
      "x-serve req/s",
      "peer",
      "peer req/s",
      "x / peer",
      "x / others",
      "p50 ms (x / peer)",
      ...labels.map((l) => `${l} / x`),
    ],
    rows: rows.map((r) => [
      withGroup ? `${r.group}: ${r.workload}` : r.workload,
      int(r.x.rps),
      r.peer.name,
      int(r.peer.rps),
      ratio(r.x.rps, r.peer.rps),
      r.others.map((o) => `${o.name} ${ratio(r.x.rps, o.rps)}`).join(", "),
      `${ms(r.x.latencyMs)} / ${ms(r.peer.latencyMs)}`,
      ...labels.map((l) => {
        const v = r.variants.find((v) => v.label === l);
        return v ? ratio(v.rps, r.x.rps) : "";
      }),
    ]),
  };
}

/**
 * Runs `group`: starts its servers, measures each case on each of its
 * servers `group.rounds` times (rounds outermost; the server order rotates
 * with the case and the round; a warm-up only the first time a server gets
 * a request kind),
 * reports per-case medians and the group summary, and stops the servers.
 *
 * @param group The group.
 * @param settings wrk settings.
 * @param report Where tables go.
 * @returns The data for the JSON file.
 */
export async function runGroup(
  group: Group,
  settings: Settings,
  report: Report,
): Promise<GroupResult> {
  report.heading(group.title);
  for (const note of group.notes) report.text(note);
  console.error(`${group.title}: starting servers...`);
  const started = await group.start();
  const all = [...started.servers, ...(started.backends ?? [])];
  try {
    const byName = new Map(started.servers.map((s) => [s.name, s]));
    const info = [];
    for (const s of started.servers) {
      const idleRss = (await sumMemory(await s.pids())).rss;
      info.push({ name: s.name, command: s.command, idleRss });
    }
    report.table({
      head: ["server", "idle RSS MiB"],
      rows: info.map((s) => [s.name, mib(s.idleRss)]),
    });
    report.text(
      [...info, ...(started.backends ?? [])]
        .map((s) => `- ${s.name}: \`${s.command}\``).join("\n"),
    );

    const measurements: Array<Measurement & { round: number }> = [];
    const h2Rps = new Map<string, number>();
    // Warm each server up once per kind of request (not again for the
    // 1-connection variant of a path, nor in later rounds).
    const warmed = new Set<string>();
    for (let round = 0; round < group.rounds; round++) {
      for (const [i, c] of group.cases.entries()) {
        const names = caseServers(c);
        for (let k = 0; k < names.length; k++) {
          const name = names[(i + round + k) % names.length]!;
          const server = byName.get(name);
          if (!server) throw new Error(`${group.id}: no server ${name}`);
          console.error(
            `  [${group.id} ${round + 1}/${group.rounds}] ${c.label}: ${name}`,
          );
          const key = `${name} ${c.id}`;
          const kind = `${name} ${c.path} ${c.tool} ${c.ifNoneMatch}`;
          const m = await measure(server, c, settings, {
            warmup: !warmed.has(kind),
            ...(h2Rps.has(key) ? { h2Rps: h2Rps.get(key)! } : {}),
          });
          warmed.add(kind);
          if (c.tool === "h2load") h2Rps.set(key, m.rps);
          measurements.push({ ...m, round });
        }
      }
    }

    const medians: Measurement[] = [];
    const summary: SummaryRow[] = [];
    for (const c of group.cases) {
      const rows = caseServers(c).map((name) =>
        _medianOf(
          measurements.filter((m) => m.case === c.id && m.server === name),
        )
      );
      medians.push(...rows);
      report.heading(`${c.label} — GET ${c.path}`, 3);
      report.table(_caseTable(c, rows));
      if (group.rounds > 1) {
        report.text(
          `req/s per round: ` + caseServers(c).map((name) =>
            `${name} ` + measurements.filter((m) =>
              m.case === c.id && m.server === name
            ).map((m) =>
              int(m.rps)
            ).join(", ")
          ).join("; ") + ".",
        );
      }
      const [x, peer, ...others] = rows.slice(0, c.servers.length);
      if (x && peer) {
        summary.push({
          group: group.id,
          case: c.id,
          workload: c.label,
          x: { name: x.server, rps: x.rps, latencyMs: _latency(x) },
          peer: { name: peer.server, rps: peer.rps, latencyMs: _latency(peer) },
          others: others.map((o) => ({ name: o.server, rps: o.rps })),
          variants: (c.variants ?? []).flatMap((v) => {
            const m = rows.find((m) => m.server === v.name);
            return m
              ? [{
                label: v.label,
                name: m.server,
                rps: m.rps,
                latencyMs: _latency(m),
              }]
              : [];
          }),
        });
      }
    }

    report.heading(`${group.title}: summary`, 3);
    report.table(summaryTable(summary, false));
    const lifetimeHwm: Record<string, number> = {};
    for (const s of started.servers) {
      lifetimeHwm[s.name] = (await sumMemory(await s.pids())).hwm;
    }
    report.text(
      `Medians of ${group.rounds} round(s). Lifetime peak RSS (VmHWM; ` +
        `nginx: master + workers summed): ` +
        started.servers.map((s) => `${s.name} ${mib(lifetimeHwm[s.name]!)}`)
          .join(", ") +
        " MiB.",
    );
    return {
      rounds: group.rounds,
      servers: info,
      measurements,
      medians,
      summary,
      lifetimeHwm,
    };
  } finally {
    await Promise.allSettled(all.map((s) => s.stop()));
  }
}

/**
 * Starts servers one after the other; if one fails, stops those already
 * started and rethrows.
 *
 * @param starts The starters, in order.
 * @returns The running servers.
 */
export async function startEach(
  starts: Array<() => Promise<RunningServer>>,
): Promise<RunningServer[]> {
  const out: RunningServer[] = [];
  try {
    for (const start of starts) out.push(await start());
    return out;
  } catch (error) {
    await Promise.allSettled(out.map((s) => s.stop()));
    throw error;
  }
}
