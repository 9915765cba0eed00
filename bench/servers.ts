/**
 * Starting and stopping the servers under test, each as a subprocess on a
 * free 127.0.0.1 port: @x/serve (CLI), nginx, lighttpd, php-fpm (a backend,
 * not measured itself), the `Deno.serve` baselines and @x/serve as a
 * library with a chosen `bufferBelow`.
 *
 * @module
 */

import denoConfig from "../deno.json" with { type: "json" };
import { guardAvailable } from "../cli/conn_guard.ts";
import { childrenOf } from "./proc.ts";

/** A server started by the benchmark. */
export interface RunningServer {
  /** Its name in the tables (`x-serve`, `nginx`, `deno-minimal`...). */
  name: string;
  /** `http://127.0.0.1:PORT` (or `https://`), no trailing slash. */
  origin: string;
  /** The PEM certificate to trust for an `https` origin (self-signed). */
  caCert?: string;
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
 * Spawns a program that prints `Listening on http://127.0.0.1:PORT/` (or
 * `0.0.0.0`) on stdout once ready (the @x/serve CLI and the Deno scripts
 * here).
 */
async function _spawnListening(
  name: string,
  args: string[],
  caCert?: string,
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
    ...(caCert ? { caCert } : {}),
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
      // On 0.0.0.0 (every address) it is reached on 127.0.0.1 too.
      const match = out.match(
        /Listening on (https?:\/\/)(?:127\.0\.0\.1|0\.0\.0\.0)(:\d+)\//,
      );
      if (match?.[1] && match[2]) {
        server.origin = `${match[1]}127.0.0.1${match[2]}`;
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

/** Options of {@linkcode startXServe}. */
export interface XServeOptions {
  /** Its name in the tables (default `x-serve`). */
  name?: string;
  /** More CLI flags (`--cgi`, `--fastcgi ADDR`...). */
  flags?: string[];
  /** TLS: certificate and key files, and the certificate's PEM text. */
  tls?: Tls;
}

/** A certificate for the TLS servers (see `fixtures.ts`). */
export interface Tls {
  /** The certificate file (PEM). */
  certFile: string;
  /** The private key file (PEM). */
  keyFile: string;
  /** The certificate, PEM text (trusted by the checks). */
  certPem: string;
}

/**
 * The `--v8-flags=…` of `deno task start` (a bounded young generation, a frugal heap): the
 * benchmark runs the CLI with the V8 settings users get from the task.
 */
export const START_V8_FLAGS: readonly string[] = denoConfig.tasks.start
  .split(/\s+/).filter((arg) => arg.startsWith("--v8-flags="));

/**
 * Starts the @x/serve CLI: `deno run -A V8FLAGS mod.ts ROOT --port 0
 * --quiet [FLAGS]` (`V8FLAGS`: {@linkcode START_V8_FLAGS}), in the
 * repository so `deno.json`'s import map applies.
 *
 * @param root The folder to serve.
 * @param options Name, extra flags, TLS.
 * @returns The running server.
 */
export function startXServe(
  root: string,
  options: XServeOptions = {},
): Promise<RunningServer> {
  const tls = options.tls
    ? ["--cert", options.tls.certFile, "--key", options.tls.keyFile]
    : [];
  return _spawnListening(options.name ?? "x-serve", [
    "run",
    "-A",
    ...START_V8_FLAGS,
    `${REPO}/mod.ts`,
    root,
    "--port",
    "0",
    "--quiet",
    ...tls,
    ...(options.flags ?? []),
  ], options.tls?.certPem);
}

/** The name of the guarded @x/serve rows (`x-serve guard`, `… tcp`). */
export const GUARD = "x-serve guard";

/**
 * The flags of the `x-serve guard` rows: the connection guard on with its
 * default deadlines and caps (`auto`, the default, leaves it off on
 * 127.0.0.1, where the benchmark listens).
 */
export const GUARD_FLAGS: readonly string[] = ["--connection-guard", "on"];

/** How {@linkcode guardNote} names the rows (Markdown). */
export interface GuardNoteNames {
  /** The guarded rows (default `` `x-serve guard` ``). */
  guard?: string;
  /** The default rows they are compared with (default `` `x-serve` ``). */
  x?: string;
  /** The ratio row of the case tables (default `` `x-serve guard / x-serve` ``). */
  ratio?: string;
}

/**
 * The note that explains the `x-serve guard` rows (Markdown), with a
 * warning when this Deno cannot run the guard (the CLI then serves
 * unguarded, so the row would only repeat `x-serve`).
 *
 * @param names How to name the rows.
 * @returns The paragraph.
 */
export function guardNote(names: GuardNoteNames = {}): string {
  const guard = names.guard ?? `\`${GUARD}\``;
  const x = names.x ?? "`x-serve`";
  const ratio = names.ratio ?? `\`${GUARD} / x-serve\``;
  const text = `${guard} = the same CLI with ` +
    `\`${GUARD_FLAGS.join(" ")}\` (its default deadlines and caps); ` +
    `${x} runs with the guard off, as \`--connection-guard auto\` ` +
    `leaves it on 127.0.0.1. It is an extra row, not the peer: the case ` +
    `tables add ${ratio} and the summary \`guard / x\` (req/s; below 1× ` +
    `is the guard's cost).`;
  return guardAvailable() ? text : text +
    " **Warning: this Deno lacks the internal `serveHttpOnConnection` the " +
    "guard needs, so the CLI served without it and the row only repeats " +
    `${x}.**`;
}

/** Runs `deno run -A bench/FILE ROOT` (a ceiling or baseline server). */
function _benchScript(
  name: string,
  file: string,
  root: string,
): Promise<RunningServer> {
  return _spawnListening(name, ["run", "-A", `${REPO}/bench/${file}`, root]);
}

/**
 * Starts the in-memory `Deno.serve` ceiling (`bench/memory_deno.ts`): every
 * file of `root` read into memory at start.
 *
 * @param root The folder to serve.
 * @returns The running server.
 */
export function startMemoryDeno(root: string): Promise<RunningServer> {
  return _benchScript("memory-deno", "memory_deno.ts", root);
}

/**
 * Starts the CGI ceiling (`bench/spawn_deno.ts`): a bare `Deno.serve`
 * running `root/cgi-bin/hello` with `Deno.Command` per request, without
 * a process group of its own.
 *
 * @param root The folder whose `cgi-bin/hello` it runs.
 * @returns The running server.
 */
export function startSpawnDeno(root: string): Promise<RunningServer> {
  return _benchScript("spawn-deno", "spawn_deno.ts", root);
}

/**
 * Starts the minimal `Deno.serve` baseline (`bench/minimal_deno.ts`).
 *
 * @param root The folder to serve.
 * @returns The running server.
 */
export function startDenoMinimal(root: string): Promise<RunningServer> {
  return _benchScript("deno-minimal", "minimal_deno.ts", root);
}

/**
 * Starts @x/serve as a library (`bench/lib_server.ts`) with `bufferBelow`
 * (`undefined`: the library default), or with the open-file cache on and
 * the default `bufferBelow` (`"cached"`).
 *
 * @param name Its name in the tables.
 * @param root The folder to serve.
 * @param bufferBelow The `serveStatic` option, or `"cached"`.
 * @returns The running server.
 */
export function startLibServer(
  name: string,
  root: string,
  bufferBelow: number | "cached" | undefined,
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
/** Path of the lighttpd binary. */
export const LIGHTTPD = "/usr/sbin/lighttpd";
/** Path of the php-fpm binary. */
export const PHP_FPM = "/usr/sbin/php-fpm8.2";

/** Options of {@linkcode _spawnDaemon}. */
interface _DaemonOptions {
  /** Its name in the tables. */
  name: string;
  /** The program. */
  cmd: string;
  /** Its arguments. */
  args: string[];
  /** Its temp dir (configs, logs, sockets), removed on stop. */
  dir: string;
  /** Its error log, shown when it does not start. */
  errorLog: string;
  /** The origin served (`""` for a backend such as php-fpm). */
  origin: string;
  /** Resolves once it is ready; throws if `alive()` turns false. */
  ready(alive: () => boolean, pid: number): Promise<void>;
  /** Count child processes (nginx workers) in `pids()`. */
  withChildren: boolean;
  /** The certificate of an `https` origin. */
  caCert?: string;
}

/** Spawns a foreground daemon (nginx, lighttpd, php-fpm) and waits for it. */
async function _spawnDaemon(o: _DaemonOptions): Promise<RunningServer> {
  const child = new Deno.Command(o.cmd, {
    args: o.args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = _tail(child.stderr);
  _tail(child.stdout);
  let alive = true;
  child.status.then(() => alive = false);
  const server: RunningServer = {
    name: o.name,
    origin: o.origin,
    ...(o.caCert ? { caCert: o.caCert } : {}),
    command: `${o.cmd} ${o.args.join(" ")}`,
    pids: async () =>
      o.withChildren
        ? [child.pid, ...(await childrenOf(child.pid))]
        : [child.pid],
    stop: async () => {
      if (!_running.delete(server)) return;
      // SIGTERM: fast shutdown (nginx workers, php-fpm children with it).
      await _kill(child);
      await Deno.remove(o.dir, { recursive: true }).catch(() => {});
    },
  };
  _running.add(server);
  try {
    await o.ready(() => alive, child.pid);
  } catch (error) {
    const log = await Deno.readTextFile(o.errorLog).catch(() => "");
    await server.stop();
    throw new Error(
      `${o.name} did not start (${(error as Error).message}).\n` +
        `stderr: ${stderr()}\nerror log: ${log}`,
    );
  }
  return server;
}

/** Options of {@linkcode startNginx}. */
export interface NginxOptions {
  /** Its name in the tables (default `nginx`). */
  name?: string;
  /** `worker_processes` (a number or `"auto"`). */
  workers: string;
  /** Extra `http {}` directives (e.g. `open_file_cache`). */
  http?: string;
  /** Extra `server {}` directives (e.g. a PHP `location`). */
  server?: string;
  /** Listen with `ssl http2` and this certificate. */
  tls?: Tls;
}

/**
 * Starts nginx in the foreground (`daemon off`) with its own config in a
 * temp dir: `master_process on`, `worker_processes` as given, `access_log
 * off`, `sendfile on`, `keepalive_requests` raised so wrk's keep-alive
 * connections are not recycled every 1000 requests, `root` = `root`, plus
 * the extra directives of `options`.
 *
 * @param root The folder to serve.
 * @param options Workers, name, extra directives, TLS.
 * @returns The running server (pids: master + workers).
 */
export async function startNginx(
  root: string,
  options: NginxOptions,
): Promise<RunningServer> {
  const dir = await Deno.makeTempDir({ prefix: "x-serve-bench-nginx-" });
  const port = _freePort();
  const asRoot = Deno.uid() === 0;
  const tls = options.tls;
  const listen = tls
    ? `listen 127.0.0.1:${port} ssl http2;
    ssl_certificate ${tls.certFile};
    ssl_certificate_key ${tls.keyFile};`
    : `listen 127.0.0.1:${port};`;
  const conf = `# Generated by bench/servers.ts
daemon off;
master_process on;
worker_processes ${options.workers};
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
  ${options.http ?? ""}

  server {
    ${listen}
    root ${root};
    index index.html;
    ${options.server ?? ""}
  }
}
`;
  await Deno.writeTextFile(`${dir}/nginx.conf`, conf);
  const args = ["-p", dir, "-e", `${dir}/error.log`, "-c", `${dir}/nginx.conf`];
  return await _spawnDaemon({
    name: options.name ?? "nginx",
    cmd: NGINX,
    args,
    dir,
    errorLog: `${dir}/error.log`,
    origin: `${tls ? "https" : "http"}://127.0.0.1:${port}`,
    ...(tls ? { caCert: tls.certPem } : {}),
    withChildren: true,
    ready: async (alive, pid) => {
      await _waitForPort(port, alive);
      // Workers start right after the master binds: wait until they exist.
      for (let i = 0; i < 100 && (await childrenOf(pid)).length === 0; i++) {
        await _sleep(20);
      }
    },
  });
}

/**
 * Starts lighttpd in the foreground (`-D`) with `mod_cgi` running every
 * file under `ROOT/cgi-bin/` (`cgi.assign = ("" => "")`), `mod_alias` for
 * `/cgi-bin/`, and `server.max-keep-alive-requests` raised as for nginx.
 *
 * @param root The folder served (with `cgi-bin/`).
 * @returns The running server.
 */
export async function startLighttpd(root: string): Promise<RunningServer> {
  const dir = await Deno.makeTempDir({ prefix: "x-serve-bench-lighttpd-" });
  const port = _freePort();
  const conf = `# Generated by bench/servers.ts
server.document-root = "${root}"
server.port = ${port}
server.bind = "127.0.0.1"
server.errorlog = "${dir}/error.log"
server.max-keep-alive-requests = 1000000
server.modules = ("mod_alias", "mod_cgi")
alias.url = ("/cgi-bin/" => "${root}/cgi-bin/")
$HTTP["url"] =~ "^/cgi-bin/" {
  cgi.assign = ("" => "")
}
`;
  await Deno.writeTextFile(`${dir}/lighttpd.conf`, conf);
  return _spawnDaemon({
    name: "lighttpd",
    cmd: LIGHTTPD,
    args: ["-D", "-f", `${dir}/lighttpd.conf`],
    dir,
    errorLog: `${dir}/error.log`,
    origin: `http://127.0.0.1:${port}`,
    withChildren: false,
    ready: (alive) => _waitForPort(port, alive),
  });
}

/** The two pools of one set: one on TCP, one on a unix socket. */
export interface PhpFpmPools {
  /** The TCP pool, `127.0.0.1:PORT`. */
  tcp: string;
  /** The unix-socket pool's socket path. */
  socket: string;
}

/** A running php-fpm and the addresses of its pools. */
export interface PhpFpm extends PhpFpmPools {
  /** The process (a backend: `origin` is empty, it is not measured). */
  server: RunningServer;
  /**
   * Every set of pools by name (`""`: the first set, also `tcp` and
   * `socket` above).
   */
  sets: Record<string, PhpFpmPools>;
}

/**
 * Starts php-fpm in the foreground (`-F -y CONF`, `-R` as root) with one
 * set of two identical pools per name in `sets`, `pm = static` and 4
 * children each: one on a TCP port, one on a unix socket. Every pool is
 * configured the same; separate sets keep clients that hold workers with
 * kept connections (@x/serve's `--fastcgi-keep-alive`) from starving the
 * others.
 *
 * @param sets The names of the sets (default one, `""`); the first is
 *   also returned as `tcp` and `socket`.
 * @returns The process and the addresses.
 */
export async function startPhpFpm(sets: string[] = [""]): Promise<PhpFpm> {
  if (sets.length === 0) throw new Error("startPhpFpm: no pool set");
  const dir = await Deno.makeTempDir({ prefix: "x-serve-bench-fpm-" });
  const pools: Record<string, PhpFpmPools & { port: number }> = {};
  for (const name of sets) {
    const port = _freePort();
    const suffix = name ? `-${name}` : "";
    pools[name] = {
      port,
      tcp: `127.0.0.1:${port}`,
      socket: `${dir}/php-fpm${suffix}.sock`,
    };
  }
  const pool = (name: string, listen: string) => `
[${name}]
listen = ${listen}
pm = static
pm.max_children = 4
`;
  const conf = `; Generated by bench/servers.ts
[global]
daemonize = no
pid = ${dir}/php-fpm.pid
error_log = ${dir}/error.log
${
    Object.entries(pools).map(([name, p]) => {
      const prefix = name ? `bench-${name}` : "bench";
      return pool(`${prefix}-tcp`, p.tcp) + pool(`${prefix}-unix`, p.socket);
    }).join("")
  }`;
  await Deno.writeTextFile(`${dir}/php-fpm.conf`, conf);
  const args = ["-F", "-y", `${dir}/php-fpm.conf`];
  if (Deno.uid() === 0) args.push("-R");
  const server = await _spawnDaemon({
    name: "php-fpm",
    cmd: PHP_FPM,
    args,
    dir,
    errorLog: `${dir}/error.log`,
    origin: "",
    withChildren: true,
    ready: async (alive) => {
      for (const p of Object.values(pools)) {
        await _waitForPort(p.port, alive);
        const deadline = Date.now() + 10_000;
        while (!(await Deno.stat(p.socket).catch(() => undefined))) {
          if (!alive()) throw new Error("exited");
          if (Date.now() > deadline) throw new Error(`no ${p.socket}`);
          await _sleep(50);
        }
      }
    },
  });
  const out: Record<string, PhpFpmPools> = {};
  for (const [name, p] of Object.entries(pools)) {
    out[name] = { tcp: p.tcp, socket: p.socket };
  }
  return { server, ...out[sets[0]!]!, sets: out };
}
