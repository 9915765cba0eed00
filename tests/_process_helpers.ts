// Starting the CLI (or a deno task) as a child process for end-to-end tests.
import { fileURLToPath } from "node:url";

/** Absolute path of mod.ts. */
export const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));
/** Absolute path of the repository. */
export const REPO = fileURLToPath(new URL("../", import.meta.url));

/** A running server process. */
export interface ServerProcess {
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

/** The direct children of a process (Linux). */
export function _children(pid: number): number[] {
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

/**
 * Spawns `deno ARGS` in the repository, waits for `Listening on URL` on
 * stdout (20 s at most) and returns the base URL.
 */
export async function startProcess(args: string[]): Promise<ServerProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: REPO,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const lines: string[] = [];
  let base: string | undefined;
  const pump = (async () => {
    let buffered = "";
    for await (
      const chunk of child.stdout.pipeThrough(new TextDecoderStream())
    ) {
      buffered += chunk;
      const parts = buffered.split("\n");
      buffered = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        base ??= /^Listening on (\S+?)\/?$/.exec(line)?.[1];
      }
    }
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
      const kids = args[0] === "task" ? _children(child.pid) : [];
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
    await stderr;
    return await status;
  }

  const deadline = Date.now() + 20_000;
  while (base === undefined) {
    if (exited || Date.now() > deadline) {
      await stop();
      throw new Error(`server did not start:\n${await stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { base, lines, stop, stderr };
}

/**
 * Starts the CLI: `deno run --no-prompt -A mod.ts ARGS`, or `command`
 * (e.g. other permissions, or `task start`) followed by ARGS.
 */
export function startCli(
  args: string[],
  command: string[] = ["run", "--no-prompt", "-A", MOD],
): Promise<ServerProcess> {
  return startProcess([...command, ...args]);
}

/** Runs the CLI to completion (for flags that exit at once). */
export async function runCli(args: string[], permissions = ["-A"]) {
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
