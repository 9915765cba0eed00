/**
 * Linux `/proc` readers for the benchmark: resident memory, CPU time and
 * child processes of the servers under test.
 *
 * @module
 */

/** Memory of one process from `/proc/<pid>/status`, in bytes. */
export interface Memory {
  /** Current resident set size (`VmRSS`). */
  rss: number;
  /** Peak resident set size over the process's life (`VmHWM`). */
  hwm: number;
}

/**
 * Reads `VmRSS` and `VmHWM` of `pid`; `undefined` when it has exited.
 *
 * @param pid The process id.
 * @returns Its memory, or `undefined`.
 */
export async function readMemory(pid: number): Promise<Memory | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(`/proc/${pid}/status`);
  } catch {
    return undefined;
  }
  const kib = (field: string): number => {
    const m = text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
    return m?.[1] ? Number(m[1]) * 1024 : 0;
  };
  return { rss: kib("VmRSS"), hwm: kib("VmHWM") };
}

/**
 * Sums the memory of several processes (an nginx master and its workers).
 * The summed `hwm` is an upper bound of their simultaneous peak.
 *
 * @param pids The process ids.
 * @returns The sums over the processes still alive.
 */
export async function sumMemory(pids: number[]): Promise<Memory> {
  const all = await Promise.all(pids.map(readMemory));
  return all.reduce<Memory>(
    (sum, m) => m ? { rss: sum.rss + m.rss, hwm: sum.hwm + m.hwm } : sum,
    { rss: 0, hwm: 0 },
  );
}

/** Fields of `/proc/<pid>/stat` after the `(comm)` field, split. */
async function _statFields(pid: number): Promise<string[] | undefined> {
  try {
    const text = await Deno.readTextFile(`/proc/${pid}/stat`);
    // comm may contain spaces and parentheses: split after the last ")".
    return text.slice(text.lastIndexOf(")") + 2).trim().split(" ");
  } catch {
    return undefined;
  }
}

/**
 * Total CPU time (user + system, all threads) `pid` has used, in clock
 * ticks; 0 when it has exited.
 *
 * @param pid The process id.
 * @returns utime + stime in ticks.
 */
export async function cpuTicks(pid: number): Promise<number> {
  const f = await _statFields(pid);
  // After "(comm)": state=0 ppid=1 ... utime=11 stime=12 (stat fields 14, 15).
  return f ? Number(f[11]) + Number(f[12]) : 0;
}

/**
 * Sums {@linkcode cpuTicks} over several processes.
 *
 * @param pids The process ids.
 * @returns The total ticks.
 */
export async function sumCpuTicks(pids: number[]): Promise<number> {
  const all = await Promise.all(pids.map(cpuTicks));
  return all.reduce((a, b) => a + b, 0);
}

/**
 * The direct children of `pid` (nginx workers of a master), found by
 * scanning `/proc/<n>/stat` for the parent id.
 *
 * @param pid The parent's id.
 * @returns The children's ids.
 */
export async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const f = await _statFields(Number(entry.name));
    if (f && Number(f[1]) === pid) out.push(Number(entry.name));
  }
  return out;
}

let _ticks: number | undefined;

/**
 * Clock ticks per second (`getconf CLK_TCK`, 100 on Linux in practice).
 *
 * @returns The tick rate.
 */
export async function ticksPerSecond(): Promise<number> {
  if (_ticks !== undefined) return _ticks;
  try {
    const out = await new Deno.Command("getconf", { args: ["CLK_TCK"] })
      .output();
    const n = Number(new TextDecoder().decode(out.stdout).trim());
    _ticks = Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    _ticks = 100;
  }
  return _ticks;
}

/**
 * Samples the summed `VmRSS` of `pids()` every `intervalMs` until stopped;
 * `stop()` resolves with the highest value seen (bytes).
 *
 * @param pids Returns the current process ids (workers may be respawned).
 * @param intervalMs The sampling period.
 * @returns A handle whose `stop()` gives the peak.
 */
export function sampleRss(
  pids: () => Promise<number[]>,
  intervalMs = 100,
): { stop(): Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const m = await sumMemory(await pids());
      if (m.rss > peak) peak = m.rss;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      const m = await sumMemory(await pids());
      return Math.max(peak, m.rss);
    },
  };
}
