/**
 * The connection guard's deadlines against the CLI with its defaults (issue
 * 10's targets: 1 000 slowloris connections all closed within 65 s while
 * normal GETs stay under 1 s; idle and silent connections closed; stalled
 * readers dropped within 65 s; fds back to the baseline).
 *
 * Starts the CLI on `0.0.0.0` (so `--connection-guard auto` turns the guard
 * on, as for any exposed server) with no other flag, then opens at once:
 * - slowloris: a request line, then one header byte every 5 s;
 * - silent: connected, nothing sent;
 * - idle: one request answered, then nothing (the keep-alive timeout, 75 s);
 * - stalled: `GET` of a 64 MiB file, nothing read (the send timeout).
 *
 * Meanwhile it sends a normal GET on a fresh connection every 250 ms. Prints
 * when each kind was closed, the GET latencies and the server's open fds
 * before, during and after; exits 1 when a target is missed.
 *
 * Usage: `deno run -A bench/deadlines.ts [SLOWLORIS] [OTHERS]` (1 000 and 50).
 *
 * @module
 */

import { startXServe } from "./servers.ts";

const slowloris = Number(Deno.args[0] ?? 1000);
const others = Number(Deno.args[1] ?? 50);
const bigSize = 64 * 1048576;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const encoder = new TextEncoder();

/** Open fds of a process and of its children (`--workers`). */
function fds(pid: number): number {
  let n = 0;
  const pids = [pid];
  try {
    const kids = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`)
      .trim().split(/\s+/).filter(Boolean).map(Number);
    pids.push(...kids);
  } catch { /* not Linux */ }
  for (const p of pids) {
    try {
      n += [...Deno.readDirSync(`/proc/${p}/fd`)].length;
    } catch { /* gone */ }
  }
  return n;
}

const root = await Deno.makeTempDir();
await Deno.writeTextFile(`${root}/hello.txt`, "hello\n");
{
  using file = await Deno.open(`${root}/big.bin`, {
    write: true,
    create: true,
  });
  await file.truncate(bigSize);
}
const server = await startXServe(root, { flags: ["--host=0.0.0.0"] });
const [pid = 0] = await server.pids();
const port = Number(new URL(server.origin).port);
const url = `${server.origin}/hello.txt`;
await (await fetch(url)).text();
const baseFds = fds(pid);

const start = Date.now();
const all: Deno.Conn[] = [];
const closed: Record<string, number[]> = {
  slowloris: [],
  silent: [],
  idle: [],
};

/** Opens a connection, sends `head`, and notes when the server closes it. */
async function open(kind: string, head: string): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  all.push(conn);
  if (head) await conn.write(encoder.encode(head));
  if (kind in closed) {
    (async () => {
      const buf = new Uint8Array(4096);
      try {
        while (await conn.read(buf) !== null) { /* a response, then EOF */ }
      } catch { /* reset */ }
      closed[kind]!.push(Date.now() - start);
    })();
  }
  return conn;
}

const slow: Deno.Conn[] = [];
for (let i = 0; i < slowloris; i++) {
  slow.push(
    await open("slowloris", "GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-a: "),
  );
}
for (let i = 0; i < others; i++) await open("silent", "");
for (let i = 0; i < others; i++) {
  await open("idle", "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
}
const stalled: Deno.Conn[] = [];
for (let i = 0; i < others; i++) {
  stalled.push(
    await open("stalled", "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"),
  );
}
const openedMs = Date.now() - start;
await sleep(1000);
const openFds = fds(pid);

let trickling = true;
const trickle = (async () => {
  while (trickling) {
    await sleep(5000);
    for (const conn of slow) conn.write(encoder.encode("a")).catch(() => {});
  }
})();

// A stalled reader was dropped if draining it, 66 s after it asked, ends
// before the whole file has come.
let stalledCheckMs = 0;
async function checkStalled(): Promise<number[]> {
  stalledCheckMs = Date.now() - start;
  return await Promise.all(stalled.map(async (conn) => {
    const buf = new Uint8Array(65536);
    let n = 0;
    try {
      for (;;) {
        const got = await Promise.race([conn.read(buf), sleep(5000)]);
        if (typeof got !== "number") break;
        n += got;
      }
    } catch { /* reset: dropped */ }
    return n;
  }));
}
let stalledCheck: Promise<number[]> | undefined;

const latencies: number[] = [];
let failures = 0;
const done = () =>
  closed.slowloris!.length === slowloris &&
  closed.silent!.length === others && closed.idle!.length === others;
while (!done() && Date.now() - start < 100_000) {
  const t = performance.now();
  try {
    const res = await fetch(url, {
      headers: { connection: "close" },
      signal: AbortSignal.timeout(5000),
    });
    if (res.status !== 200 || await res.text() !== "hello\n") failures++;
  } catch {
    failures++;
  }
  latencies.push(performance.now() - t);
  if (!stalledCheck && Date.now() - start >= 66_000) {
    stalledCheck = checkStalled();
  }
  await sleep(250);
}
stalledCheck ??= checkStalled();
trickling = false;
await trickle;

const stalledBytes = await stalledCheck;
const dropped = stalledBytes.filter((n) => n < bigSize).length;

for (const conn of all) {
  try {
    conn.close();
  } catch { /* closed */ }
}
await sleep(2000);
const endFds = fds(pid);
await server.stop();
await Deno.remove(root, { recursive: true });

const s = (ms: number | undefined) =>
  ms === undefined ? "-" : (ms / 1000).toFixed(1) + " s";
const targets: [string, number, number][] = [
  ["slowloris", slowloris, 65_000],
  ["silent", others, 65_000],
  ["idle", others, 80_000],
];
let ok = true;
console.log(
  `${slowloris} slowloris, ${others} silent, ${others} idle and ${others} ` +
    `stalled connections opened in ${s(openedMs)}`,
);
for (const [kind, count, limit] of targets) {
  const times = closed[kind]!.sort((a, b) => a - b);
  const met = times.length === count && (times.at(-1) ?? Infinity) <= limit;
  ok &&= met;
  console.log(
    `  ${kind}: ${times.length} of ${count} closed by the server (first ${
      s(times[0])
    }, last ${s(times.at(-1))}; target ≤ ${s(limit)}) ${met ? "ok" : "MISSED"}`,
  );
}
const stalledMet = dropped === others && stalledCheckMs <= 67_000;
ok &&= stalledMet;
console.log(
  `  stalled: ${dropped} of ${others} dropped (checked at ${
    s(stalledCheckMs)
  }; bytes received ${Math.min(...stalledBytes)}–${
    Math.max(...stalledBytes)
  } of ${bigSize}) ${stalledMet ? "ok" : "MISSED"}`,
);
latencies.sort((a, b) => a - b);
const q = (p: number) => latencies[Math.floor(p * (latencies.length - 1))] ?? 0;
const getsMet = failures === 0 && (latencies.at(-1) ?? Infinity) < 1000;
ok &&= getsMet;
console.log(
  `  normal GETs meanwhile: ${latencies.length}, failed ${failures}, p50 ${
    q(0.5).toFixed(1)
  } ms, p99 ${q(0.99).toFixed(1)} ms, max ${
    (latencies.at(-1) ?? 0).toFixed(1)
  } ms (target < 1 s) ${getsMet ? "ok" : "MISSED"}`,
);
const fdsMet = endFds <= baseFds + 4;
ok &&= fdsMet;
console.log(
  `  server fds: ${baseFds} → ${openFds} → ${endFds} ${
    fdsMet ? "ok" : "MISSED"
  }`,
);
console.log(ok ? "ok" : "FAILED");
Deno.exit(ok ? 0 : 1);
