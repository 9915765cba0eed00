// Spawning the CLI in tests: run to completion, or start and stop a server.
import { fileURLToPath } from "node:url";

/** Absolute path of mod.ts. */
export const mod: string = fileURLToPath(new URL("../mod.ts", import.meta.url));
/** The repository root (where deno.json is). */
export const repo: string = fileURLToPath(new URL("../", import.meta.url));

/** Runs the CLI to completion (for flags that exit at once). */
export async function runCli(args: string[], permissions = ["-A"]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...permissions, mod, ...args],
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

/** A running CLI server: its base URL, collected stdout, and a stop. */
export interface Running {
  child: Deno.ChildProcess;
  base: string;
  lines: string[];
  stderr: Promise<string>;
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

export async function startCli(
  args: string[],
  command: string[] = ["run", "--no-prompt", "-A", mod],
): Promise<Running> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...command, ...args],
    stdout: "piped",
    stderr: "piped",
    cwd: repo,
    env: { NO_COLOR: "1" },
  }).spawn();
  const lines: string[] = [];
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  let base: string | undefined;
  const pump = (async () => {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += value;
      const parts = buffered.split("\n");
      buffered = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        base ??= /^Listening on (\S+?)\/?$/.exec(line)?.[1];
      }
    }
  })();
  const stderr = new Response(child.stderr).text();
  const deadline = Date.now() + 20_000;
  while (base === undefined) {
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`server did not start: ${await stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    base,
    lines,
    stderr,
    async stop(signal: Deno.Signal = "SIGTERM") {
      child.kill(signal);
      const status = await child.status;
      await pump;
      await stderr;
      return status;
    },
  };
}
