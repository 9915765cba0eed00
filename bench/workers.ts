// `--workers` study: the CLI with --workers 1 and the default (no flag:
// auto, one per core), or any counts, on a 1 KiB file and on on-the-fly
// brotli of a 100 KiB HTML page, with wrk, and the server's RSS after
// each run. `deno run -A bench/workers.ts` (BENCH_SECONDS, default 5;
// BENCH_COUNTS, default "1,default"; e.g. "1,2,auto"). Linux only
// (/proc); needs /usr/bin/wrk. Prints a Markdown table.

import { START_V8_FLAGS } from "./servers.ts";

const SECONDS = Number(Deno.env.get("BENCH_SECONDS") ?? 5);
const COUNTS = (Deno.env.get("BENCH_COUNTS") ?? "1,default").split(",");
const MOD = new URL("../mod.ts", import.meta.url).pathname;

interface Workload {
  name: string;
  path: string;
  headers: string[];
}

const WORKLOADS: Workload[] = [
  { name: "1 KiB file", path: "/1k.txt", headers: [] },
  {
    name: "brotli 100 KiB HTML",
    path: "/page.html",
    headers: ["Accept-Encoding: br"],
  },
];

/** A 100 KiB HTML page of varied text (compressible, not trivially). */
function page(): string {
  const words = [
    "serve",
    "deno",
    "worker",
    "isolate",
    "port",
    "kernel",
    "socket",
    "brotli",
    "request",
    "latency",
    "memory",
    "static",
  ];
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  let body = "";
  for (let i = 0; body.length < 100 * 1024 - 200; i++) {
    let p = `<p id="p${i}">`;
    for (let w = 0; w < 40; w++) {
      p += words[Math.floor(next() * words.length)] +
        (next() < 0.1 ? ". " : " ");
    }
    body += p + "</p>\n";
  }
  return `<!doctype html><html><head><title>page</title></head><body>\n${body}</body></html>\n`
    .slice(0, 100 * 1024);
}

async function start(root: string, workers: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...START_V8_FLAGS,
      MOD,
      root,
      "--port",
      "0",
      "--quiet",
      "--compress",
      ...(workers === "default" ? [] : ["--workers", workers]),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/Listening on (\S+)/.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error("server exited");
    text += value;
  }
  const base = /Listening on (\S+?)\/?\s/.exec(text + " ")![1]!;
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  return { child, base };
}

function rssKiB(pid: number): { rss: number; hwm: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const get = (k: string) =>
    Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: get("VmRSS"), hwm: get("VmHWM") };
}

async function wrk(url: string, conns: number, headers: string[]) {
  const args = ["-t1", `-c${conns}`, `-d${SECONDS}s`, "--latency"];
  for (const h of headers) args.push("-H", h);
  const out = await new Deno.Command("wrk", { args: [...args, url] }).output();
  const text = new TextDecoder().decode(out.stdout);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? NaN);
  const p50 = /50%\s+(\S+)/.exec(text)?.[1] ?? "?";
  const p99 = /99%\s+(\S+)/.exec(text)?.[1] ?? "?";
  return { rps, p50, p99 };
}

const root = await Deno.makeTempDir({ prefix: "workers_bench_" });
await Deno.writeTextFile(`${root}/1k.txt`, "x".repeat(1023) + "\n");
await Deno.writeTextFile(`${root}/page.html`, page());
const rows: string[] = [];
try {
  for (const workers of COUNTS) {
    const { child, base } = await start(root, workers);
    try {
      const idle = rssKiB(child.pid).rss;
      for (const w of WORKLOADS) {
        await wrk(base + w.path, 8, w.headers); // warm-up (JIT, caches)
        const c32 = await wrk(base + w.path, 32, w.headers);
        const c1 = await wrk(base + w.path, 1, w.headers);
        const { rss, hwm } = rssKiB(child.pid);
        rows.push(
          `| ${workers} | ${w.name} | ${c32.rps.toFixed(0)} | ${c32.p99} | ${
            c1.rps.toFixed(0)
          } | ${c1.p50} | ${(idle / 1024).toFixed(0)} | ${
            (rss / 1024).toFixed(0)
          } | ${(hwm / 1024).toFixed(0)} |`,
        );
      }
    } finally {
      child.kill("SIGTERM");
      await child.status;
    }
  }
} finally {
  await Deno.remove(root, { recursive: true });
}
console.log(
  `wrk -t1, ${SECONDS} s per run, loopback, ${navigator.hardwareConcurrency} cores\n`,
);
console.log(
  "| --workers | workload | req/s (32 conn) | p99 (32) | req/s (1 conn) | p50 (1) | RSS idle MiB | RSS after MiB | peak MiB |",
);
console.log("| --: | :-- | --: | --: | --: | --: | --: | --: | --: |");
for (const row of rows) console.log(row);
