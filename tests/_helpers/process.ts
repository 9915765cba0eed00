// Child processes in tests (not part of the published package): the CLI
// started or run to completion, and what /proc says about processes (Linux).
import { fileURLToPath } from "node:url";
import { type PollOptions, waitFor, withTimeout } from "./poll.ts";

/** Absolute path of mod.ts. */
export const MOD: string = fileURLToPath(
  new URL("../../mod.ts", import.meta.url),
);
/** Absolute path of the repository, with a trailing slash. */
export const REPO: string = fileURLToPath(new URL("../../", import.meta.url));

/** A running server process. */
export interface ServerProcess {
  /** Its process id. */
  pid: number;
  /** `http://127.0.0.1:PORT` (no trailing slash). */
  base: string;
  /** stdout lines so far. */
  lines: string[];
  /**
   * Stops it (`signal`, SIGTERM by default; SIGINT to `deno task`'s
   * children) and waits.
   */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
  /** Everything written to stderr, once it exited. */
  stderr: Promise<string>;
}

/** Options of {@linkcode startProcess}. */
export interface StartProcessOptions {
  /** The program to run. @default {Deno.execPath()} */
  program?: string;
  /** Its working directory. @default {REPO} */
  cwd?: string;
  /** Variables added to the environment (to `NO_COLOR=1` and, without `clearEnv`, this process's). */
  env?: Record<string, string>;
  /** Start from an empty environment: exactly `env`, not even `NO_COLOR`. */
  clearEnv?: boolean;
  /** Its stdin, closed when it is stopped. @default {"null"} */
  stdin?: "null" | "piped";
  /** How long to wait for the `Listening on` line. @default {20000} */
  timeoutMs?: number;
}

/**
 * Spawns `deno ARGS` (or `options.program ARGS`) in the repository, waits
 * for `Listening on URL` on stdout and returns the base URL.
 */
export async function startProcess(
  args: string[],
  options: StartProcessOptions = {},
): Promise<ServerProcess> {
  const child = new Deno.Command(options.program ?? Deno.execPath(), {
    args,
    cwd: options.cwd ?? REPO,
    stdin: options.stdin ?? "null",
    stdout: "piped",
    stderr: "piped",
    clearEnv: options.clearEnv,
    env: options.clearEnv ? options.env : { NO_COLOR: "1", ...options.env },
  }).spawn();
  const lines: string[] = [];
  const listening = Promise.withResolvers<string>();
  const pump = (async () => {
    let buffered = "";
    let base: string | undefined;
    for await (
      const chunk of child.stdout.pipeThrough(new TextDecoderStream())
    ) {
      buffered += chunk;
      // A pseudo-terminal (`script`) ends lines with CRLF.
      const parts = buffered.split(/\r?\n/);
      buffered = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        if (base === undefined) {
          base = /^Listening on (\S+?)\/?$/.exec(line)?.[1];
          if (base !== undefined) listening.resolve(base);
        }
      }
    }
    listening.reject(new Error("stdout ended before a `Listening on` line"));
  })();
  const stderr = new Response(child.stderr).text();
  let exited = false;
  const status = child.status.finally(() => exited = true);

  async function stop(
    signal: Deno.Signal = "SIGTERM",
  ): Promise<Deno.CommandStatus> {
    if (!exited) {
      // `deno task` does not forward SIGTERM: interrupt what it runs (as
      // Ctrl-C would), then the task itself ends.
      const kids = args[0] === "task" ? children(child.pid) : [];
      for (const pid of kids) {
        try {
          Deno.kill(pid, "SIGINT");
        } catch { /* gone */ }
      }
      if (kids.length === 0) {
        try {
          child.kill(signal);
        } catch { /* gone */ }
      }
      const timer = setTimeout(() => {
        for (const pid of kids) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch { /* gone */ }
        }
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 10_000);
      await status.finally(() => clearTimeout(timer));
    }
    await pump;
    if (options.stdin === "piped") await child.stdin.close().catch(() => {});
    await stderr;
    return await status;
  }

  let base: string;
  try {
    base = await withTimeout(
      listening.promise,
      options.timeoutMs ?? 20_000,
      "no `Listening on` line in time",
    );
  } catch (error) {
    await stop();
    throw new Error(`server did not start (${error}):\n${await stderr}`);
  }
  return { pid: child.pid, base, lines, stop, stderr };
}

/**
 * Starts the CLI: `deno run --no-prompt -A mod.ts ARGS`, or `command`
 * (e.g. other permissions, or `task start`) followed by ARGS.
 */
export function startCli(
  args: string[],
  command: string[] = ["run", "--no-prompt", "-A", MOD],
  options: StartProcessOptions = {},
): Promise<ServerProcess> {
  return startProcess([...command, ...args], options);
}

/** Runs the CLI to completion (for flags that exit at once). */
export async function runCli(
  args: string[],
  permissions = ["-A"],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...permissions, MOD, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  // Deno itself warns when `deno run` loads a module with `export default
  // { fetch }` (mod.ts also serves `deno serve`); the CLI's own output follows.
  const stderr = dec.decode(out.stderr).replace(
    /^warning: Detected export default \{ fetch \}.*\n/,
    "",
  );
  return { code: out.code, stdout: dec.decode(out.stdout), stderr };
}

/** PATH and Deno's cache location only, for children that need a clean environment. */
export function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
  };
  for (const name of ["HOME", "DENO_DIR", "XDG_CACHE_HOME"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/** The direct children of a process, zombies included (Linux). */
export function children(pid: number): number[] {
  try {
    const out: number[] = [];
    for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
      const text = Deno.readTextFileSync(
        `/proc/${pid}/task/${task.name}/children`,
      );
      out.push(...text.split(" ").filter(Boolean).map(Number));
    }
    return out;
  } catch {
    return [];
  }
}

/** The command line of a process (empty once it is gone). */
export function commandLine(pid: number): string[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0")
      .filter(Boolean);
  } catch {
    return [];
  }
}

/** All descendants of a process, depth first (Linux). */
export function descendants(pid: number): number[] {
  return children(pid).flatMap((kid) => [kid, ...descendants(kid)]);
}

/**
 * Waits until every direct child of this process that is not in `before`
 * has exited and been reaped (its exit status collected): the end of the
 * processes a request started.
 */
export function waitForChildrenReaped(
  before: readonly number[],
  options: PollOptions = {},
): Promise<void> {
  const known = new Set(before);
  return waitFor(
    () => children(Deno.pid).every((pid) => known.has(pid)),
    {
      message: "the child processes started meanwhile to be reaped",
      ...options,
    },
  );
}

/** True while /proc has an entry for `pid`, a zombie included. */
export function pidExists(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
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

/** Waits until none of `pids` runs any more (a zombie counts as dead). */
export function waitForExit(
  pids: readonly number[],
  options: PollOptions = {},
): Promise<void> {
  return waitFor(async () => {
    for (const pid of pids) if (await isAlive(pid)) return false;
    return true;
  }, { message: `process ${pids.join(", ")} to exit`, ...options });
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

/** Waits for `<dir>/<tag>.pids`, written by sleep.cgi: [script pid, grandchild pid]. */
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
    { message: `${tag}.pids` },
  );
  const [a, b] = text.trim().split(" ").map(Number);
  return [a!, b!];
}

/** Live (not zombie) processes of process group `pgid` (Linux /proc). */
export async function groupMembers(pgid: number): Promise<number[]> {
  const members: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(
        " ",
      );
      if (state !== "Z" && state !== "X" && Number(pgrp) === pgid) {
        members.push(Number(entry.name));
      }
    } catch {
      // gone meanwhile
    }
  }
  return members;
}
