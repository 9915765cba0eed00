/**
 * `deno task bench`: every hot-path workload of @x/serve against its peer,
 * side by side in one run, driven by wrk (and h2load for HTTP/2) on
 * 127.0.0.1. See `bench/README.md`.
 *
 * Usage:
 *
 * ```sh
 * deno task bench                  # every group (static, cgi, php, tls)
 * deno task bench --static --tls   # some groups
 * deno task bench --small-files    # bufferBelow study
 * ```
 *
 * Environment: `BENCH_SECONDS` (measured seconds per run, default 3),
 * `BENCH_WARMUP` (warm-up seconds, default 1), `BENCH_CONNECTIONS` (32),
 * `BENCH_THREADS` (wrk threads, 1), `BENCH_NGINX_WORKERS` (1),
 * `BENCH_ROUNDS` (rounds per case; default 1 for static, 3 for cgi, php
 * and tls, 2 for small-files), `BENCH_MINIMAL` (1: add deno-minimal to
 * the static group).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { staticGroup } from "./comparison.ts";
import { type Fixtures, makeFixtures } from "./fixtures.ts";
import {
  type Group,
  type GroupResult,
  runGroup,
  type SummaryRow,
  summaryTable,
} from "./groups.ts";
import { closeClients, type Settings } from "./measure.ts";
import { environment, Report, saveResults } from "./report.ts";
import { runSmallFiles } from "./small_files.ts";
import { stopAll } from "./servers.ts";
import { cleanupWrk, wrkArgs } from "./wrk.ts";
import { cgiGroup, phpGroup, tlsGroup } from "./workloads.ts";

const _USAGE =
  `Usage: deno task bench [--static] [--cgi] [--php] [--tls] [--all]
                       [--small-files]

  --static       Static files: x-serve vs nginx (with and without
                 open_file_cache) vs an in-memory Deno.serve, 32 and 1 conn
  --cgi          CGI hello: x-serve --cgi vs lighttpd mod_cgi, 1 and 8 conn
  --php          PHP hello: x-serve --fastcgi vs nginx, same php-fpm pools,
                 TCP and unix socket, 1 and 16 conn; plus x-serve tuned
                 (--fastcgi-keep-alive 4 --fastcgi-max-connections 4)
  --tls          HTTPS 1 KiB (1 and 32 conn) and HTTP/2 (h2load -c 8 -m 10):
                 x-serve --cert --key vs nginx ssl http2
  --all          All four groups (the default when no flag is given)
  --small-files  serveStatic bufferBelow 0 (stream) vs read-whole study
                 (only when asked; combine with the flags above)

Static, CGI, PHP and TLS also run "x-serve guard" rows (the same CLI with
--connection-guard on, compared with the default x-serve: guard / x).

Environment: BENCH_SECONDS=3 (measured seconds per run) BENCH_WARMUP=1
BENCH_CONNECTIONS=32 BENCH_THREADS=1 BENCH_NGINX_WORKERS=1 BENCH_MINIMAL=0
BENCH_ROUNDS (default: static 1, cgi/php/tls 3, small-files 2)
Quick smoke run: BENCH_ROUNDS=1 BENCH_SECONDS=1 BENCH_WARMUP=0 deno task bench`;

/** The fixtures of this run, removed on exit and on signals. */
let _fixtures: Fixtures | undefined;

/** A positive number from the environment, or `fallback`. */
function _env(name: string, fallback: number, min = 1): number {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) {
    throw new Error(`${name}=${raw}: expected an integer >= ${min}`);
  }
  return n;
}

/** `12.3` s → `12.3 s`, `400` s → `6 min 40 s`. */
function _duration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  return `${m} min ${Math.round(seconds - m * 60)} s`;
}

/** Runs the selected parts; returns the exit code. */
async function main(args: string[]): Promise<number> {
  const t0 = performance.now();
  const { values } = parseArgs({
    args,
    options: {
      static: { type: "boolean", default: false },
      cgi: { type: "boolean", default: false },
      php: { type: "boolean", default: false },
      tls: { type: "boolean", default: false },
      all: { type: "boolean", default: false },
      "small-files": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(_USAGE);
    return 0;
  }
  const picked = ["static", "cgi", "php", "tls"].filter((g) =>
    values[g as "static"]
  );
  const smallFiles = values["small-files"];
  const groupIds = values.all || (picked.length === 0 && !smallFiles)
    ? ["static", "cgi", "php", "tls"]
    : picked;
  const settings: Settings = {
    threads: _env("BENCH_THREADS", 1),
    connections: _env("BENCH_CONNECTIONS", 32),
    seconds: _env("BENCH_SECONDS", 3),
    warmupSeconds: _env("BENCH_WARMUP", 1, 0),
  };
  const nginxWorkers = Deno.env.get("BENCH_NGINX_WORKERS") || "1";
  if (!/^(\d+|auto)$/.test(nginxWorkers)) {
    throw new Error(`BENCH_NGINX_WORKERS=${nginxWorkers}: a number or auto`);
  }
  const roundsEnv = Deno.env.get("BENCH_ROUNDS") ? _env("BENCH_ROUNDS", 1) : 0;
  const rounds = (fallback: number) => roundsEnv || fallback;
  const minimal = _env("BENCH_MINIMAL", 0, 0) > 0;

  const env = await environment();
  const report = new Report();
  report.heading("@x/serve benchmark", 1);
  report.text(
    [
      `- date: ${env.date}`,
      `- machine: ${env.cpus} CPU(s), ${env.cpuModel}, Linux ${env.kernel}`,
      `- load average at start: ${env.loadavg}`,
      `- deno ${env.deno}, nginx ${env.nginx}, ${env.wrk}`,
      `- groups: ${
        [...groupIds, ...(smallFiles ? ["small-files"] : [])]
          .join(", ")
      }`,
      `- load: \`wrk ${
        wrkArgs("URL", settings).join(" ")
      }\` (\`-c\` per case) after a ${settings.warmupSeconds} s warm-up ` +
      `(once per server and request), on 127.0.0.1`,
      `- nginx: worker_processes ${nginxWorkers}, master_process on, ` +
      `sendfile on, access_log off, keepalive_requests 1000000`,
      `- wrk and the servers share the same ${env.cpus} CPU(s) (no ` +
      `pinning): absolute numbers are lower than on separate machines; ` +
      `compare ratios. "CPU %" is the server's CPU time during the run ` +
      `(100 = one core), "req/CPU-s" = req/s per server core-second.`,
    ].join("\n"),
  );

  const fixtures = _fixtures = await makeFixtures();
  const data: Record<string, unknown> = {
    environment: env,
    settings,
    nginxWorkers,
  };
  const stamp = env.date.replace(/[:.]/g, "-");
  const summary: SummaryRow[] = [];
  const groupData: Record<string, GroupResult> = {};
  data.groups = groupData;
  try {
    const opts = { fixtures, nginxWorkers };
    const make: Record<string, () => Group> = {
      static: () =>
        staticGroup({
          root: fixtures.root,
          settings,
          nginxWorkers,
          rounds: rounds(1),
          minimal,
        }),
      cgi: () => cgiGroup({ ...opts, rounds: rounds(3) }),
      php: () => phpGroup({ ...opts, rounds: rounds(3) }),
      tls: () => tlsGroup({ ...opts, rounds: rounds(3) }, settings.connections),
    };
    for (const id of groupIds) {
      const result = await runGroup(make[id]!(), settings, report);
      groupData[id] = result;
      summary.push(...result.summary);
    }
    if (smallFiles) {
      data.smallFiles = await runSmallFiles(
        fixtures.root,
        settings,
        rounds(2),
        report,
      );
    }
  } finally {
    closeClients();
    await stopAll();
    await cleanupWrk();
    await fixtures.remove().catch(() => {});
  }
  const total = (performance.now() - t0) / 1000;
  data.summary = summary;
  data.totalSeconds = total;
  if (summary.length > 0) {
    report.heading("Summary: @x/serve vs its peer");
    const labels = new Set(
      summary.flatMap((r) => r.variants.map((v) => v.label)),
    );
    report.text(
      "Median req/s; `x / peer` above 1× means @x/serve is faster. " +
        "Latency: p50 (HTTP/2: mean)." +
        (labels.has("guard")
          ? " `guard / x`: `x-serve guard` (`--connection-guard on`) vs " +
            "the default x-serve (guard off on 127.0.0.1), below 1× is " +
            "the guard's cost."
          : "") +
        (labels.has("tuned")
          ? " `tuned / x`: PHP with `--fastcgi-keep-alive 4 " +
            "--fastcgi-max-connections 4` (own php-fpm pools) vs the " +
            "defaults."
          : ""),
    );
    report.table(summaryTable(summary));
  }
  report.text(`Total run time: ${_duration(total)}.`);
  const name = `${groupIds.length ? "bench" : "small-files"}-${stamp}`;
  const paths = await saveResults(name, data, report.markdown());
  console.log(`\nSaved ${paths.join(" and ")}`);
  return 0;
}

/** On Ctrl+C / SIGTERM: stop every server before exiting. */
function _onSignal(signal: Deno.Signal): void {
  Deno.addSignalListener(signal, async () => {
    console.error(`\n${signal}: stopping servers...`);
    await stopAll();
    await cleanupWrk();
    await _fixtures?.remove().catch(() => {});
    Deno.exit(130);
  });
}

if (import.meta.main) {
  _onSignal("SIGINT");
  _onSignal("SIGTERM");
  let code = 1;
  try {
    code = await main(Deno.args);
  } catch (error) {
    console.error(`error: ${error instanceof Error ? error.message : error}`);
  } finally {
    await stopAll();
  }
  Deno.exit(code);
}
