/**
 * Starting and stopping the servers under test, each as a subprocess on a
 * free 127.0.0.1 port: @x/serve (CLI), nginx, the minimal `Deno.serve`
 * baseline and @x/serve as a library with a chosen `bufferBelow`.
 *
 * @module
 */

import { childrenOf } from "./proc.ts";

/** A server started by the benchmark. */
export interface RunningServer {
  /** Its name in the tables (`x-serve`, `nginx`, `deno-minimal`...). */
  name: string;
  /** `http://127.0.0.1:PORT`, no trailing slash. */
  origin: string;
  /** How it was started, for the report. */
  command: string;
  /** The ids of its processes (nginx: master + workers). */
  pids(): Promise<number[]>;
  /** Stops it and waits for it to exit. Safe to call twice. */
  stop(): Promise<void>;
}

/** The repository root (parent of `bench/`). */
export const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Every server started and not yet stopped, for cleanup on signals. */
const _running = new Set<RunningServer>();

/** Stops every server still running (signal handler, `finally`). */
export async function stopAll(): Promise<void> {
  await Promise.allSettled([..._running].map((s) => s.stop()));
}

/** Keeps the last `max` characters written to a stream, draining it. */
function _tail(stream: ReadableStream<Uint8Array>, max = 4096): () => string {
  let text = "";
  (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of stream) {
        text = (text + decoder.decode(chunk, { stream: true })).slice(-max);
      }
    } catch {
      // The process went away: keep what we have.
    }
  })();
  return () => text;
}

/** Waits for `ms` milliseconds. */
function _sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Kills `child` (SIGTERM, then SIGKILL after 3 s) and waits for it. */
async function _kill(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch {
    // Already exited.
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
  }, 3000);
  try {
    await child.status;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Spawns a program that prints `Listening on http://127.0.0.1:PORT/` on
 * stdout once ready (the @x/serve CLI and the Deno scripts here).
 */
async function _spawnListening(
  name: string,
  args: string[],
): Promise<RunningServer> {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: REPO,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = _tail(child.stderr);
  const server: RunningServer = {
    name,
    origin: "",
    command: `deno ${args.join(" ")}`,
    pids: () => Promise.resolve([child.pid]),
    stop: async () => {
      if (!_running.delete(server)) return;
      await _kill(child);
    },
  };
  _running.add(server);

  const reader = child.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  let out = "";
  const deadline = Date.now() + 30_000;
  try {
    while (true) {
      const match = out.match(/Listening on (http:\/\/127\.0\.0\.1:\d+)\//);
      if (match?.[1]) {
        server.origin = match[1];
        break;
      }
      const timeout = deadline - Date.now();
      if (timeout <= 0) throw new Error("timed out");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const chunk = await Promise.race([
        reader.read(),
        new Promise<{ done: true; value: undefined }>((resolve) => {
          timer = setTimeout(
            () => resolve({ done: true, value: undefined }),
            timeout,
          );
        }),
      ]).finally(() => clearTimeout(timer));
      if (chunk.done) throw new Error("exited or timed out");
      out += chunk.value;
    }
  } catch (error) {
    await server.stop();
    throw new Error(
      `${name} did not start (${(error as Error).message}).\n` +
        `stdout: ${out}\nstderr: ${stderr()}`,
    );
  }
  // Keep draining stdout so the server never blocks on a full pipe.
  (async () => {
    try {
      while (!(await reader.read()).done) { /* discard */ }
    } catch {
      // Exited.
    }
  })();
  return server;
}

/**
 * Starts the @x/serve CLI: `deno run -A mod.ts ROOT --port 0 --quiet`, in
 * the repository so `deno.json`'s import map applies.
 *
 * @param root The folder to serve.
 * @returns The running server.
 */
export function startXServe(root: string): Promise<RunningServer> {
  return _spawnListening("x-serve", [
    "run",
    "-A",
    `${REPO}/mod.ts`,
    root,
    "--port",
    "0",
    "--quiet",
  ]);
}

/**
 * Starts the minimal `Deno.serve` baseline (`bench/minimal_deno.ts`).
 *
 * @param root The folder to serve.
 * @returns The running server.
 */
export function startDenoMinimal(root: string): Promise<RunningServer> {
  return _spawnListening("deno-minimal", [
    "run",
    "-A",
    `${REPO}/bench/minimal_deno.ts`,
    root,
  ]);
}

/**
 * Starts @x/serve as a library (`bench/lib_server.ts`) with `bufferBelow`
 * (`undefined`: the library default).
 *
 * @param name Its name in the tables.
 * @param root The folder to serve.
 * @param bufferBelow The `serveStatic` option.
 * @returns The running server.
 */
export function startLibServer(
  name: string,
  root: string,
  bufferBelow: number | undefined,
): Promise<RunningServer> {
  const args = ["run", "-A", `${REPO}/bench/lib_server.ts`, root];
  if (bufferBelow !== undefined) args.push(String(bufferBelow));
  return _spawnListening(name, args);
}

/** A free TCP port on 127.0.0.1 (bound, read, released). */
function _freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Resolves once `origin` accepts TCP connections (or throws after 10 s). */
async function _waitForPort(port: number, isAlive: () => boolean) {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (!isAlive()) throw new Error("exited");
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch {
      await _sleep(50);
    }
  }
  throw new Error("timed out");
}

/** Path of the nginx binary. */
export const NGINX = "/usr/sbin/nginx";

/**
 * Starts nginx in the foreground (`daemon off`) with its own config in a
 * temp dir: `master_process on`, `worker_processes` as given, `access_log
 * off`, `sendfile on`, `keepalive_requests` raised so wrk's keep-alive
 * connections are not recycled every 1000 requests, `root` = `root`.
 *
 * @param root The folder to serve.
 * @param workers `worker_processes` (a number or `"auto"`).
 * @returns The running server (pids: master + workers).
 */
export async function startNginx(
  root: string,
  workers: string,
): Promise<RunningServer> {
  const dir = await Deno.makeTempDir({ prefix: "x-serve-bench-nginx-" });
  const port = _freePort();
  const asRoot = Deno.uid() === 0;
  const conf = `# Generated by bench/servers.ts
daemon off;
master_process on;
worker_processes ${workers};
${asRoot ? "user root;" : ""}
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;

events {
  worker_connections 1024;
}

http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  types {
    text/html html;
    text/plain txt;
  }
  default_type application/octet-stream;

  server {
    listen 127.0.0.1:${port};
    root ${root};
    index index.html;
  }
}
`;
  await Deno.writeTextFile(`${dir}/nginx.conf`, conf);
  const args = ["-p", dir, "-e", `${dir}/error.log`, "-c", `${dir}/nginx.conf`];
  const child = new Deno.Command(NGINX, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = _tail(child.stderr);
  _tail(child.stdout);
  let alive = true;
  child.status.then(() => alive = false);
  const server: RunningServer = {
    name: "nginx",
    origin: `http://127.0.0.1:${port}`,
    command: `${NGINX} ${args.join(" ")}`,
    pids: async () => [child.pid, ...(await childrenOf(child.pid))],
    stop: async () => {
      if (!_running.delete(server)) return;
      // SIGTERM on the master: fast shutdown, workers exit with it.
      await _kill(child);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  _running.add(server);
  try {
    await _waitForPort(port, () => alive);
    // Workers start right after the master binds: wait until they exist.
    for (
      let i = 0;
      i < 100 && (await childrenOf(child.pid)).length === 0;
      i++
    ) {
      await _sleep(20);
    }
  } catch (error) {
    const log = await Deno.readTextFile(`${dir}/error.log`).catch(() => "");
    await server.stop();
    throw new Error(
      `nginx did not start (${(error as Error).message}).\n` +
        `stderr: ${stderr()}\nerror.log: ${log}`,
    );
  }
  return server;
}
