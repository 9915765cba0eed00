/**
 * `deno task bench`: @x/serve vs nginx vs a minimal `Deno.serve`, driven by
 * wrk on 127.0.0.1. See `bench/README.md`.
 *
 * Usage:
 *
 * ```sh
 * deno task bench                 # server comparison (~1.5 min)
 * deno task bench --small-files   # bufferBelow study (~2.5 min)
 * deno task bench --all           # both
 * ```
 *
 * Environment: `BENCH_SECONDS` (measured seconds per run, default 5),
 * `BENCH_WARMUP` (warm-up seconds, default 1), `BENCH_CONNECTIONS` (32),
 * `BENCH_THREADS` (wrk threads, 1), `BENCH_NGINX_WORKERS` (1),
 * `BENCH_ROUNDS` (small-file rounds, 2).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { runComparison } from "./comparison.ts";
import { type Fixtures, makeFixtures } from "./fixtures.ts";
import type { Settings } from "./measure.ts";
import { environment, Report, saveResults } from "./report.ts";
import { runSmallFiles } from "./small_files.ts";
import { stopAll } from "./servers.ts";
import { cleanupWrk, wrkArgs } from "./wrk.ts";

const _USAGE = `Usage: deno task bench [--small-files | --all]

  (no flag)      Compare x-serve, nginx and a minimal Deno.serve
  --small-files  Compare serveStatic bufferBelow 0 (stream) vs read-whole
  --all          Both

Environment: BENCH_SECONDS=5 BENCH_WARMUP=1 BENCH_CONNECTIONS=32
BENCH_THREADS=1 BENCH_NGINX_WORKERS=1 BENCH_ROUNDS=2`;

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

/** Runs the selected parts; returns the exit code. */
async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      "small-files": { type: "boolean", default: false },
      all: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(_USAGE);
    return 0;
  }
  const comparison = values.all || !values["small-files"];
  const smallFiles = values.all || values["small-files"];
  const settings: Settings = {
    threads: _env("BENCH_THREADS", 1),
    connections: _env("BENCH_CONNECTIONS", 32),
    seconds: _env("BENCH_SECONDS", 5),
    warmupSeconds: _env("BENCH_WARMUP", 1, 0),
  };
  const nginxWorkers = Deno.env.get("BENCH_NGINX_WORKERS") || "1";
  if (!/^(\d+|auto)$/.test(nginxWorkers)) {
    throw new Error(`BENCH_NGINX_WORKERS=${nginxWorkers}: a number or auto`);
  }
  const rounds = _env("BENCH_ROUNDS", 2);

  const env = await environment();
  const report = new Report();
  report.heading("@x/serve benchmark", 1);
  report.text(
    [
      `- date: ${env.date}`,
      `- machine: ${env.cpus} CPU(s), ${env.cpuModel}, Linux ${env.kernel}`,
      `- load average at start: ${env.loadavg}`,
      `- deno ${env.deno}, nginx ${env.nginx}, ${env.wrk}`,
      `- load: \`wrk ${
        wrkArgs("URL", settings).join(" ")
      }\` after a ${settings.warmupSeconds} s warm-up, on 127.0.0.1`,
      `- nginx: worker_processes ${nginxWorkers}, master_process on, ` +
      `sendfile on, access_log off, keepalive_requests 1000000`,
      `- wrk and the servers share the same ${env.cpus} CPU(s) (no ` +
      `pinning): absolute numbers are lower than on separate machines; ` +
      `compare ratios. "CPU %" is the server's CPU time during the run ` +
      `(100 = one core), "req/CPU-s" = req/s per server core-second.`,
    ].join("\n"),
  );

  const fixtures = _fixtures = await makeFixtures();
  const data: Record<string, unknown> = { environment: env, settings };
  const stamp = env.date.replace(/[:.]/g, "-");
  try {
    if (comparison) {
      data.nginxWorkers = nginxWorkers;
      data.comparison = await runComparison(
        fixtures.root,
        settings,
        nginxWorkers,
        report,
      );
    }
    if (smallFiles) {
      data.smallFiles = await runSmallFiles(
        fixtures.root,
        settings,
        rounds,
        report,
      );
    }
  } finally {
    await stopAll();
    await cleanupWrk();
    await fixtures.remove().catch(() => {});
  }
  const name = `${comparison ? "bench" : "small-files"}-${stamp}`;
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
