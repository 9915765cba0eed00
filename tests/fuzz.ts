// `deno task fuzz`: sends seeded hostile request targets to the real CLI
// over raw TCP keep-alive connections (so nothing normalises them on the
// way), counts the answers by status, and checks that no target got a 5xx
// and that the server's open file descriptors and child processes are back
// to where they were. Exits 1 on any 5xx, unanswered request or leak.
//
//   deno task fuzz [--count N] [--seed S] [--connections C]
//
// `runFuzz()` is the same campaign as a function (tests/fuzz_test.ts runs
// a small one).
import { parseArgs } from "node:util";
import {
  type FuzzRequest,
  fuzzRequests,
  showTarget,
  targetBytes,
} from "./_helpers/fuzz.ts";
import { testdata } from "./_helpers/fs.ts";
import { waitFor } from "./_helpers/poll.ts";
import { children, isAlive, startCli } from "./_helpers/process.ts";

/** Options of {@linkcode runFuzz}. */
export interface FuzzRunOptions {
  /** Targets to send. @default {100000} */
  count?: number;
  /** The generator's seed. @default {1} */
  seed?: number;
  /** Keep-alive connections used in parallel. @default {8} */
  connections?: number;
  /** Longest wait for one response, in ms (counted as a timeout). @default {15000} */
  requestTimeoutMs?: number;
  /** How long fds and children may take to return to the baseline, in ms. @default {10000} */
  settleMs?: number;
}

/** One request that failed the run. */
export interface FuzzFailure {
  index: number;
  kind: string;
  method: string;
  /** The target, shown safely (see `showTarget`). */
  target: string;
  /** The status, or `dropped`/`timeout`. */
  outcome: string;
}

/** What a run found. */
export interface FuzzReport {
  seed: number;
  count: number;
  connections: number;
  /** Wall-clock time of the sending, in ms. */
  elapsedMs: number;
  /** Answers by status code. */
  statuses: Record<number, number>;
  /** Answers by mutation family, then status (or `dropped`/`timeout`). */
  byKind: Record<string, Record<string, number>>;
  /** 5xx answers. */
  serverErrors: number;
  /** Connections closed by the server before answering. */
  dropped: number;
  /** Requests with no answer within `requestTimeoutMs`. */
  timeouts: number;
  /** The first failures (at most 20). */
  failures: FuzzFailure[];
  /** The server's open fds after start-up and a warm-up, and after the run settled. */
  fds: { before: number; after: number };
  /** The server's child processes (zombies included), same moments. */
  children: { before: number; after: number };
  /** `error:` lines the server logged on stderr. */
  errorLogLines: number;
  /** The first of them (at most 5, cut to 300 characters). */
  errorLog: string[];
  /** Whether the server still ran at the end. */
  alive: boolean;
  /** True when nothing above is wrong. */
  ok: boolean;
}

const _FIXTURE = testdata("fuzz");

function _fdCount(pid: number): number {
  let n = 0;
  for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) n++;
  return n;
}

/** One HTTP/1.1 keep-alive connection that reads responses off a buffer. */
class _Connection {
  #conn: Deno.TcpConn;
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  static async open(port: number): Promise<_Connection> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    return new _Connection(conn);
  }

  close(): void {
    try {
      this.#conn.close();
    } catch { /* closed */ }
  }

  /** Reads more bytes; false at EOF (or when the socket was closed). */
  async #fill(): Promise<boolean> {
    if (this.#start > 0 && this.#start === this.#end) {
      this.#start = this.#end = 0;
    }
    if (this.#end === this.#buf.length) {
      const size = this.#end - this.#start;
      const grown = new Uint8Array(
        size * 2 > this.#buf.length ? size * 2 : this.#buf.length,
      );
      grown.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = grown;
      this.#start = 0;
      this.#end = size;
    }
    let n: number | null;
    try {
      n = await this.#conn.read(this.#buf.subarray(this.#end));
    } catch {
      return false;
    }
    if (n === null) return false;
    this.#end += n;
    return true;
  }

  /** Reads until `\r\n` at or after the cursor; returns the line (latin1) or undefined at EOF. */
  async #line(): Promise<string | undefined> {
    let scanned = 0; // bytes after the cursor known to hold no CRLF start
    while (true) {
      for (let i = this.#start + scanned; i + 1 < this.#end; i++) {
        if (this.#buf[i] === 13 && this.#buf[i + 1] === 10) {
          let line = "";
          for (let j = this.#start; j < i; j++) {
            line += String.fromCharCode(this.#buf[j]!);
          }
          this.#start = i + 2;
          return line;
        }
      }
      scanned = Math.max(0, this.#end - this.#start - 1);
      if (!(await this.#fill())) return undefined;
    }
  }

  async #skip(bytes: number): Promise<boolean> {
    while (this.#end - this.#start < bytes) {
      bytes -= this.#end - this.#start;
      this.#start = this.#end;
      if (!(await this.#fill())) return false;
    }
    this.#start += bytes;
    return true;
  }

  /**
   * Sends one request and reads its whole response. Returns the status and
   * whether the connection stays usable, or undefined when the server
   * closed it without a complete answer.
   */
  async exchange(
    request: FuzzRequest,
  ): Promise<{ status: number; reusable: boolean } | undefined> {
    let head = `${request.method} ${request.target} HTTP/1.1\r\n` +
      "Host: 127.0.0.1\r\n";
    for (const [name, value] of request.headers) {
      head += `${name}: ${value}\r\n`;
    }
    head += "\r\n";
    try {
      const bytes = targetBytes(head);
      for (let sent = 0; sent < bytes.length;) {
        sent += await this.#conn.write(bytes.subarray(sent));
      }
    } catch {
      return undefined;
    }
    let status: number;
    const headers = new Map<string, string>();
    while (true) {
      const statusLine = await this.#line();
      if (statusLine === undefined) return undefined;
      status = Number(statusLine.split(" ")[1]);
      for (
        let line = await this.#line();
        line !== "";
        line = await this.#line()
      ) {
        if (line === undefined) return undefined;
        const colon = line.indexOf(":");
        headers.set(
          line.slice(0, colon).toLowerCase(),
          line.slice(colon + 1).trim(),
        );
      }
      if (status >= 200) break; // 1xx: another head follows
      headers.clear();
    }
    const close = /\bclose\b/i.test(headers.get("connection") ?? "");
    const bodyless = request.method === "HEAD" || status === 204 ||
      status === 304;
    if (!bodyless) {
      if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) {
        while (true) {
          const size = await this.#line();
          if (size === undefined) return undefined;
          const n = parseInt(size, 16);
          if (!(await this.#skip(n + 2))) return undefined;
          if (n === 0) break; // no trailers are sent
        }
      } else if (headers.has("content-length")) {
        if (!(await this.#skip(Number(headers.get("content-length"))))) {
          return undefined;
        }
      } else {
        while (await this.#fill()) this.#start = this.#end; // until EOF
        return { status, reusable: false };
      }
    }
    return { status, reusable: !close };
  }
}

/** Sends the requests `next()` hands out over one connection at a time. */
async function _worker(
  port: number,
  next: () => FuzzRequest | undefined,
  record: (request: FuzzRequest, outcome: number | string) => void,
  timeoutMs: number,
): Promise<void> {
  let conn: _Connection | undefined;
  try {
    for (let request = next(); request; request = next()) {
      conn ??= await _Connection.open(port);
      const current = conn;
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        current.close();
      }, timeoutMs);
      const answer = await current.exchange(request);
      clearTimeout(timer);
      if (answer === undefined) {
        record(request, timedOut ? "timeout" : "dropped");
        current.close();
        conn = undefined;
        continue;
      }
      record(request, answer.status);
      if (!answer.reusable) {
        current.close();
        conn = undefined;
      }
    }
  } finally {
    conn?.close();
  }
}

/** The server's fds and children, once they stop changing towards `limit`. */
async function _settle(
  pid: number,
  baseline: { fds: number; children: number } | undefined,
  timeoutMs: number,
): Promise<{ fds: number; children: number }> {
  const now = () => ({ fds: _fdCount(pid), children: children(pid).length });
  if (baseline === undefined) {
    // Start-up: wait until two reads 200 ms apart agree.
    let last = now();
    await waitFor(() => {
      const current = now();
      const same = current.fds === last.fds &&
        current.children === last.children;
      last = current;
      return same;
    }, { timeoutMs, intervalMs: 200, message: "the server to settle" });
    return last;
  }
  try {
    await waitFor(() => {
      const current = now();
      return current.fds <= baseline.fds &&
        current.children <= baseline.children;
    }, { timeoutMs, intervalMs: 50, message: "fds and children to return" });
  } catch {
    // reported as a leak below
  }
  return now();
}

/** Runs one fuzz campaign against a fresh CLI server and reports it. */
export async function runFuzz(
  options: FuzzRunOptions = {},
): Promise<FuzzReport> {
  const {
    count = 100_000,
    seed = 1,
    connections = 8,
    requestTimeoutMs = 15_000,
    settleMs = 10_000,
  } = options;
  const server = await startCli([
    `${_FIXTURE}/www`,
    "--port",
    "0",
    "--quiet",
    "--cgi-dir",
    `/cgi-bin/=${_FIXTURE}/cgi`,
    "--cgi-timeout",
    "10",
  ]);
  const port = Number(new URL(server.base).port);
  try {
    // Warm-up: the lazily opened parts (root, cache watcher, CGI) open now,
    // in every isolate: with --workers (one per core by default) each one
    // opens its own on its first request, and the kernel spreads fresh
    // connections over them by a hash, so a few connections may all reach
    // one (its first request during the run then shows as fds "leaked").
    // 16 rounds per core: an isolate left unwarmed is beyond likely.
    const rounds = 16 * Math.max(1, navigator.hardwareConcurrency || 1);
    const warmUp = Array.from(
      { length: rounds },
      () => ["/", "/hello.txt", "/cgi-bin/echo.sh/x", "/nope"],
    ).flat();
    for (const target of warmUp) {
      const conn = await _Connection.open(port);
      await conn.exchange({
        index: -1,
        kind: "warm-up",
        method: "GET",
        target,
        headers: [],
      });
      conn.close();
    }
    const before = await _settle(server.pid, undefined, settleMs);

    const statuses: Record<number, number> = {};
    const byKind: Record<string, Record<string, number>> = {};
    const failures: FuzzFailure[] = [];
    let serverErrors = 0;
    let dropped = 0;
    let timeouts = 0;
    const generator = fuzzRequests(seed);
    let handed = 0;
    const next = () => {
      if (handed >= count) return undefined;
      handed++;
      return generator.next().value as FuzzRequest;
    };
    const record = (request: FuzzRequest, outcome: number | string) => {
      const kind = byKind[request.kind] ??= {};
      kind[outcome] = (kind[outcome] ?? 0) + 1;
      if (typeof outcome === "number") {
        statuses[outcome] = (statuses[outcome] ?? 0) + 1;
        if (outcome < 500) return;
        serverErrors++;
      } else if (outcome === "timeout") timeouts++;
      else dropped++;
      if (failures.length < 20) {
        failures.push({
          index: request.index,
          kind: request.kind,
          method: request.method,
          target: showTarget(request.target),
          outcome: String(outcome),
        });
      }
    };
    const started = performance.now();
    await Promise.all(
      Array.from(
        { length: connections },
        () => _worker(port, next, record, requestTimeoutMs),
      ),
    );
    const elapsedMs = performance.now() - started;

    const after = await _settle(server.pid, before, settleMs);
    const alive = await isAlive(server.pid);
    await server.stop();
    const stderr = await server.stderr;
    const errors = stderr.split("\n").filter((l) => / error: /.test(l));
    const errorLogLines = errors.length;
    const ok = serverErrors === 0 && dropped === 0 && timeouts === 0 &&
      after.fds <= before.fds && after.children <= before.children &&
      errorLogLines === 0 && alive;
    return {
      seed,
      count,
      connections,
      elapsedMs,
      statuses,
      byKind,
      serverErrors,
      dropped,
      timeouts,
      failures,
      fds: { before: before.fds, after: after.fds },
      children: { before: before.children, after: after.children },
      errorLogLines,
      errorLog: errors.slice(0, 5).map((l) => l.slice(0, 300)),
      alive,
      ok,
    };
  } finally {
    await server.stop();
  }
}

/** The report as the lines `deno task fuzz` prints. */
export function formatReport(report: FuzzReport): string {
  const lines = [
    `fuzz: ${report.count} targets, seed ${report.seed}, ${report.connections} connections, ` +
    `${(report.elapsedMs / 1000).toFixed(1)} s ` +
    `(${Math.round(report.count / (report.elapsedMs / 1000))} req/s)`,
    "statuses: " + Object.entries(report.statuses)
      .sort(([a], [b]) => Number(a) - Number(b))
      .map(([status, n]) => `${status}: ${n}`).join(", "),
    ...Object.entries(report.byKind).sort(([a], [b]) => a.localeCompare(b))
      .map(([kind, counts]) =>
        `  ${kind}: ` + Object.entries(counts).map(([k, n]) => `${k}×${n}`)
          .join(" ")
      ),
    `5xx: ${report.serverErrors}, dropped: ${report.dropped}, timeouts: ${report.timeouts}, ` +
    `error log lines: ${report.errorLogLines}`,
    `open fds: ${report.fds.before} before, ${report.fds.after} after; ` +
    `children: ${report.children.before} before, ${report.children.after} after; ` +
    `server ${report.alive ? "alive" : "DEAD"} at the end`,
  ];
  for (const f of report.failures) {
    lines.push(
      `  #${f.index} ${f.kind} ${f.method} ${f.target} → ${f.outcome}`,
    );
  }
  for (const line of report.errorLog) lines.push(`  server: ${line}`);
  lines.push(report.ok ? "ok" : "FAILED");
  return lines.join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      count: { type: "string", default: "100000" },
      seed: { type: "string", default: "1" },
      connections: { type: "string", default: "8" },
    },
  });
  const numbers = {
    count: Number(values.count),
    seed: Number(values.seed),
    connections: Number(values.connections),
  };
  for (const [name, value] of Object.entries(numbers)) {
    if (!Number.isInteger(value) || value < (name === "seed" ? 0 : 1)) {
      console.error(`error: --${name} must be a whole number`);
      Deno.exit(2);
    }
  }
  const report = await runFuzz(numbers);
  console.log(formatReport(report));
  Deno.exit(report.ok ? 0 : 1);
}
