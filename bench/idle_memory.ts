/**
 * Memory after many idle connections (issue 10's target: after 5 000 idle
 * connections close, fds back to the baseline and RSS within 32 MiB of it).
 * Starts the CLI (`--workers 1`, the guard on and off), opens 5 000 silent
 * connections, closes them, and waits until the resident size settles (V8's
 * memory reducer gives the heap back after ~30 s of quiet), three rounds.
 *
 * Usage: `deno run -A bench/idle_memory.ts [CONNECTIONS]`.
 *
 * @module
 */

import { readMemory } from "./proc.ts";
import { startXServe } from "./servers.ts";

const connections = Number(Deno.args[0] ?? 5000);
const mib = (bytes: number) => (bytes / 1048576).toFixed(1);
const fds = (pid: number) => [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rss(pid: number): Promise<number> {
  return (await readMemory(pid))?.rss ?? 0;
}

async function run(guard: "on" | "off"): Promise<void> {
  const root = await Deno.makeTempDir();
  await Deno.writeTextFile(`${root}/hello.txt`, "hello\n");
  const server = await startXServe(root, {
    flags: ["--workers=1", `--connection-guard=${guard}`],
  });
  const [pid = 0] = await server.pids();
  const port = Number(new URL(server.origin).port);
  for (let i = 0; i < 3; i++) {
    await (await fetch(`http://127.0.0.1:${port}/hello.txt`)).text();
  }
  const base = await rss(pid);
  console.log(
    `guard ${guard}: baseline fds=${fds(pid)} rss=${mib(base)} MiB`,
  );
  for (let round = 1; round <= 3; round++) {
    const conns: Deno.Conn[] = [];
    for (let i = 0; i < connections; i++) {
      conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    }
    await sleep(1000);
    const open = await rss(pid);
    const openFds = fds(pid);
    for (const c of conns) c.close();
    const start = Date.now();
    // Settled: within 32 MiB of the baseline, or a minute gone.
    while (Date.now() - start < 60_000) {
      await sleep(2000);
      if (await rss(pid) - base < 32 * 1048576) break;
    }
    const after = await rss(pid);
    console.log(
      `  round ${round}: ${connections} open: fds=${openFds} rss=${
        mib(open)
      } MiB; closed: fds=${fds(pid)} rss=${mib(after)} MiB (+${
        mib(after - base)
      }) after ${Math.round((Date.now() - start) / 1000)} s`,
    );
  }
  await server.stop();
  await Deno.remove(root, { recursive: true });
}

await run("on");
await run("off");
