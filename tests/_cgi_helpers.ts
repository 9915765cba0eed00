// Helpers for the CGI test suites (not part of the published package).
import { cgi, type CgiOptions } from "../cgi/cgi.ts";
import { compose } from "../server/compose.ts";
import { resolvePath } from "../server/resolve.ts";
import type { Handler } from "../server/types.ts";
import { serveStatic } from "../static/serve_static.ts";
import { testdata } from "./_helpers.ts";

/** A handler (resolvePath → cgi → serveStatic) over tests/testdata, with its log lines. */
export interface CgiHarness {
  handler: Handler;
  logs: string[];
}

/** Builds the chain the server uses, with CGI at /cgi-bin/ (tests/testdata/cgi-bin). */
export function cgiHarness(
  options: CgiOptions = {},
  testDir = "/nonexistent",
): CgiHarness {
  const logs: string[] = [];
  const handler = compose([
    resolvePath({ root: testdata() }),
    cgi({ ...options, env: { CGI_TEST_DIR: testDir, ...options.env } }),
    serveStatic(),
  ], { log: (level, message) => logs.push(`${level} ${message}`) });
  return { handler, logs };
}

/** Parses env.cgi output (`KEY=VALUE` lines) into a map. */
export function parseEnv(text: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const line of text.split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) env.set(line.slice(0, i), line.slice(i + 1));
  }
  return env;
}

/** The state letter of a process (`R`, `S`, `Z`…), or undefined when it is gone. */
export async function processState(pid: number): Promise<string | undefined> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
  } catch {
    return undefined;
  }
}

/** True while `pid` runs (a zombie counts as dead). */
export async function isAlive(pid: number): Promise<boolean> {
  const state = await processState(pid);
  return state !== undefined && state !== "Z" && state !== "X";
}

/** Waits until `cond()` holds, polling, or throws after `ms`. */
export async function waitFor(
  cond: () => Promise<boolean>,
  ms = 5000,
  what = "condition",
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Reads `<dir>/<tag>.pids` written by sleep.cgi: [script pid, grandchild pid]. */
export async function readPids(
  dir: string,
  tag: string,
): Promise<[number, number]> {
  let text = "";
  await waitFor(
    async () => {
      try {
        text = await Deno.readTextFile(`${dir}/${tag}.pids`);
        return text.trim().split(" ").length === 2;
      } catch {
        return false;
      }
    },
    5000,
    `${tag}.pids`,
  );
  const [a, b] = text.trim().split(" ").map(Number);
  return [a!, b!];
}

/** Direct children of this process that are zombies. */
export async function zombieChildren(): Promise<number[]> {
  const zombies: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] === "Z" && Number(fields[1]) === Deno.pid) {
        zombies.push(Number(entry.name));
      }
    } catch {
      // gone meanwhile
    }
  }
  return zombies;
}

/** Waits for the log line that ends a script run, so the test's ops are settled. */
export function settle(ms = 50): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
