// `deno task soak`: runs the real CLI for minutes under a mixed load and
// checks that it keeps answering correctly and comes back flat.
//
//   deno task soak [--minutes N] [--seed S]
//
// The server serves a temporary root (tests/testdata/soak/www plus a 1 MiB
// and a 64 MiB file generated from the seed), a CGI directory
// (tests/testdata/soak/cgi, sh scripts) and PHP through a php-fpm pool of
// 4 that the soak starts itself, with the connection guard's deadlines
// short enough (5 s) to be hit many times a minute. Normal requests go
// through `fetch` (keep-alive GETs, ranges, conditional requests, 404s,
// HEAD, CGI, PHP, POSTs); aborted, slow and stalled clients use raw
// `Deno.connect` sockets. Every answer is checked against what that
// request should get. The same load runs 30 s as a warm-up first. At
// start, after warm-up, every minute and at the end (after the load
// stopped and a settle period) it prints the server's RSS, open fds and
// child processes; it exits 1 on any
// server-caused error, an `error:` line in the server's log, or when fds,
// children or RSS did not come back.
import { parseArgs } from "node:util";
import { testdata } from "./_helpers/fs.ts";
import { startPhpFpm } from "./_helpers/php.ts";
import { waitFor } from "./_helpers/poll.ts";
import {
  commandLine,
  descendants,
  isAlive,
  type ServerProcess,
  startCli,
} from "./_helpers/process.ts";

const _FIXTURE = testdata("soak");
/** The guard's deadlines given to the server, in seconds. */
const HEADER_TIMEOUT = 5;
const KEEPALIVE_TIMEOUT = 5;
const SEND_TIMEOUT = 5;
/** Fds the end may be above the warm-up baseline. */
const FD_SLACK = 4;
/** RSS the end may be above the warm-up baseline. */
const RSS_SLACK_KIB = 32 * 1024;
/** Longest wait for a normal request (head and body). */
const REQUEST_TIMEOUT_MS = 30_000;
/** Concurrent `fetch` workers. */
const WORKERS = 6;
/** Fixed wait after the load stopped, before the end is sampled. */
const SETTLE_MS = 10_000;
/** The mixed load run before the baseline is taken. */
const WARMUP_MS = 30_000;

const MIB = 1024 * 1024;
const _encoder = new TextEncoder();
const _decoder = new TextDecoder();

// ---------------------------------------------------------------- random

/** mulberry32: a small seeded generator of floats in [0, 1). */
function _random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `size` bytes of xorshift32 noise from `seed`. */
function _noise(size: number, seed: number): Uint8Array<ArrayBuffer> {
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = (seed ^ 0x9e3779b9) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return new Uint8Array(words.buffer, 0, size);
}

function _int(rng: () => number, min: number, max: number): number {
  return min + Math.floor(rng() * (max - min + 1));
}

function _sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function _equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ------------------------------------------------------------ the record

/** The tally of one kind of request. */
interface _Kind {
  count: number;
  ok: number;
  failed: number;
  /** Outcomes (a status, `closed`, `reset`, `timeout`…) and their count. */
  outcomes: Map<string, number>;
  /** Durations in ms. */
  ms: number[];
}

/** One server-caused error. */
interface _Failure {
  /** Seconds since the load started. */
  at: number;
  kind: string;
  what: string;
}

class _Record {
  kinds = new Map<string, _Kind>();
  failures: _Failure[] = [];
  failed = 0;
  /** Responses (status lines) received. */
  served = 0;
  #started = performance.now();

  restart(): void {
    this.#started = performance.now();
  }

  elapsed(): number {
    return (performance.now() - this.#started) / 1000;
  }

  add(
    kind: string,
    outcome: string,
    ms: number,
    failure?: string,
  ): void {
    let k = this.kinds.get(kind);
    if (!k) {
      k = { count: 0, ok: 0, failed: 0, outcomes: new Map(), ms: [] };
      this.kinds.set(kind, k);
    }
    k.count++;
    k.outcomes.set(outcome, (k.outcomes.get(outcome) ?? 0) + 1);
    k.ms.push(ms);
    if (/^\d{3}$/.test(outcome)) this.served++;
    if (failure === undefined) {
      k.ok++;
      return;
    }
    k.failed++;
    this.failed++;
    if (this.failures.length < 40) {
      this.failures.push({ at: this.elapsed(), kind, what: failure });
    }
  }
}

// ------------------------------------------------------ raw connections

/** Why a raw read ended. */
type _End = "eof" | "reset";

/** A raw HTTP/1.1 client connection with a read buffer. */
class _Raw {
  conn: Deno.TcpConn;
  #buf = new Uint8Array(256 * 1024);
  #start = 0;
  #end = 0;
  /** How the connection ended, once it did. */
  ended: _End | undefined;

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  static async open(port: number): Promise<_Raw> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    return new _Raw(conn);
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* closed */ }
  }

  /** Writes all of `data`; false when the connection is gone. */
  async write(data: string | Uint8Array): Promise<boolean> {
    const bytes = typeof data === "string" ? _encoder.encode(data) : data;
    try {
      for (let sent = 0; sent < bytes.length;) {
        sent += await this.conn.write(bytes.subarray(sent));
      }
      return true;
    } catch {
      return false;
    }
  }

  /** Reads more bytes into the buffer; false once the connection ended. */
  async fill(): Promise<boolean> {
    if (this.ended) return false;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end === this.#buf.length) {
      const size = this.#end - this.#start;
      const grown = new Uint8Array(Math.max(this.#buf.length, size * 2));
      grown.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = grown;
      this.#start = 0;
      this.#end = size;
    }
    try {
      const n = await this.conn.read(this.#buf.subarray(this.#end));
      if (n === null) {
        this.ended = "eof";
        return false;
      }
      this.#end += n;
      return true;
    } catch {
      this.ended = "reset";
      return false;
    }
  }

  /** Takes up to `max` buffered bytes (reading when none are buffered). */
  async take(max: number): Promise<Uint8Array | undefined> {
    if (this.#start === this.#end && !(await this.fill())) return undefined;
    const n = Math.min(max, this.#end - this.#start);
    const out = this.#buf.subarray(this.#start, this.#start + n);
    this.#start += n;
    return out;
  }

  async #line(): Promise<string | undefined> {
    let scanned = 0;
    while (true) {
      for (let i = this.#start + scanned; i + 1 < this.#end; i++) {
        if (this.#buf[i] === 13 && this.#buf[i + 1] === 10) {
          const line = _decoder.decode(this.#buf.subarray(this.#start, i));
          this.#start = i + 2;
          return line;
        }
      }
      scanned = Math.max(0, this.#end - this.#start - 1);
      if (!(await this.fill())) return undefined;
    }
  }

  /** Reads a response head (skipping 1xx); undefined when the connection ended first. */
  async head(): Promise<{ status: number; headers: Headers } | undefined> {
    while (true) {
      const statusLine = await this.#line();
      if (statusLine === undefined) return undefined;
      const status = Number(statusLine.split(" ")[1]);
      const headers = new Headers();
      while (true) {
        const line = await this.#line();
        if (line === undefined) return undefined;
        if (line === "") break;
        const colon = line.indexOf(":");
        headers.append(line.slice(0, colon), line.slice(colon + 1).trim());
      }
      if (status >= 200) return { status, headers };
    }
  }

  /** Reads a whole body framed by Content-Length or chunked; undefined when cut. */
  async body(headers: Headers): Promise<Uint8Array | undefined> {
    const parts: Uint8Array[] = [];
    const exact = async (n: number): Promise<boolean> => {
      while (n > 0) {
        const got = await this.take(n);
        if (got === undefined) return false;
        parts.push(got.slice());
        n -= got.length;
      }
      return true;
    };
    if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) {
      while (true) {
        const size = await this.#line();
        if (size === undefined) return undefined;
        const n = parseInt(size, 16);
        if (!(await exact(n))) return undefined;
        if ((await this.#line()) === undefined) return undefined;
        if (n === 0) break;
      }
    } else if (!(await exact(Number(headers.get("content-length") ?? 0)))) {
      return undefined;
    }
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /** Discards everything until the connection ends or `ms` passed; how it ended, or `open`. */
  async drain(ms: number): Promise<{ end: _End | "open"; bytes: number }> {
    let bytes = this.#end - this.#start;
    this.#start = this.#end = 0;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.close();
    }, ms);
    while (await this.fill()) {
      bytes += this.#end - this.#start;
      this.#start = this.#end = 0;
    }
    clearTimeout(timer);
    return { end: timedOut ? "open" : this.ended!, bytes };
  }
}

// ----------------------------------------------------------- the server

/** What the server's process looks like at one moment. */
interface _Sample {
  label: string;
  /** Seconds since the load started (negative before). */
  at: number;
  rssKiB: number;
  fds: number;
  children: number[];
  served: number;
  failed: number;
}

function _rssKiB(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

function _fdCount(pid: number): number {
  try {
    let n = 0;
    for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) n++;
    return n;
  } catch {
    return NaN;
  }
}

/** The server's descendants (CGI scripts and what they started); php-fpm is the soak's own and never among them. */
function _children(pid: number): number[] {
  return descendants(pid).filter((kid) =>
    !commandLine(kid).some((arg) => arg.includes("php-fpm"))
  );
}

function _sample(
  label: string,
  pid: number,
  record: _Record,
  at: number,
): _Sample {
  return {
    label,
    at,
    rssKiB: _rssKiB(pid),
    fds: _fdCount(pid),
    children: _children(pid),
    served: record.served,
    failed: record.failed,
  };
}

function _showSample(s: _Sample): string {
  const t = `${s.at < 0 ? "-" : Math.round(s.at) + " s"}`.padStart(6);
  return `${s.label.padEnd(9)} ${t}  rss ${
    (s.rssKiB / 1024).toFixed(1).padStart(6)
  } MiB  fds ${String(s.fds).padStart(4)}  children ${
    String(s.children.length).padStart(3)
  }  served ${String(s.served).padStart(8)}  errors ${s.failed}`;
}

// ------------------------------------------------------- the fixture root

interface _Site {
  root: string;
  small: Uint8Array;
  oneMiB: Uint8Array;
  big: Uint8Array;
  /** ETags of the files, learnt in warm-up. */
  etags: Map<string, string>;
}

async function _makeRoot(seed: number): Promise<_Site> {
  const root = await Deno.realPath(
    await Deno.makeTempDir({ prefix: "x-serve-soak-" }),
  );
  await Deno.chmod(root, 0o755); // php-fpm's workers read the scripts
  for (const entry of Deno.readDirSync(`${_FIXTURE}/www`)) {
    await Deno.copyFile(
      `${_FIXTURE}/www/${entry.name}`,
      `${root}/${entry.name}`,
    );
  }
  const oneMiB = _noise(MIB, seed);
  const big = _noise(64 * MIB, seed + 1);
  await Deno.writeFile(`${root}/1m.bin`, oneMiB);
  await Deno.writeFile(`${root}/64m.bin`, big);
  return {
    root,
    small: await Deno.readFile(`${root}/small.txt`),
    oneMiB,
    big,
    etags: new Map(),
  };
}

// ------------------------------------------------------ normal requests

/** One normal request and what it must get. */
interface _Spec {
  kind: string;
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: Uint8Array<ArrayBuffer>;
  status: number;
  /** The exact body expected (compared as it streams). */
  bytes?: Uint8Array;
  /** Further checks of the response and its body; a message when wrong. */
  check?: (res: Response, body: Uint8Array) => string | undefined;
}

/** Reads a body, comparing it with `expected` as it streams (no copy of a large one is kept). */
async function _readBody(
  res: Response,
  expected: Uint8Array | undefined,
): Promise<{ body: Uint8Array; mismatch?: string }> {
  if (res.body === null) return { body: new Uint8Array() };
  if (expected === undefined || expected.length <= MIB) {
    const body = new Uint8Array(await res.arrayBuffer());
    if (expected !== undefined && !_equal(body, expected)) {
      return {
        body,
        mismatch:
          `body of ${body.length} bytes differs from the expected ${expected.length}`,
      };
    }
    return { body };
  }
  let at = 0;
  let mismatch: string | undefined;
  for await (const chunk of res.body) {
    if (mismatch === undefined) {
      if (at + chunk.length > expected.length) {
        mismatch = `body longer than the expected ${expected.length}`;
      } else {
        const want = expected.subarray(at, at + chunk.length);
        if (!_equal(chunk, want)) mismatch = `body differs at byte ~${at}`;
      }
    }
    at += chunk.length;
  }
  if (mismatch === undefined && at !== expected.length) {
    mismatch = `body of ${at} bytes, expected ${expected.length}`;
  }
  return { body: new Uint8Array(), mismatch };
}

/** Draws the next normal request. */
function _nextSpec(site: _Site, rng: () => number, n: number): _Spec {
  const files = [
    { path: "/1m.bin", bytes: site.oneMiB },
    { path: "/64m.bin", bytes: site.big },
  ];
  const file = files[rng() < 0.7 ? 0 : 1]!;
  const size = file.bytes.length;
  const etag = (path: string) => site.etags.get(path) ?? '"unknown"';
  const table: [number, () => _Spec][] = [
    [12, () => ({
      kind: "GET small",
      path: "/small.txt",
      status: 200,
      bytes: site.small,
    })],
    [3, () => ({
      kind: "GET index",
      path: "/",
      status: 200,
      check: (res) =>
        /text\/html/.test(res.headers.get("content-type") ?? "")
          ? undefined
          : `content-type ${res.headers.get("content-type")}`,
    })],
    [4, () => ({
      kind: "GET 1 MiB",
      path: "/1m.bin",
      status: 200,
      bytes: site.oneMiB,
    })],
    [0.4, () => ({
      kind: "GET 64 MiB",
      path: "/64m.bin",
      status: 200,
      bytes: site.big,
    })],
    [8, () => {
      // A single range: closed, open-ended (1 MiB file only) or suffix.
      const shape = rng();
      let spec: string, from: number, to: number;
      if (shape < 0.6) {
        from = _int(rng, 0, size - 1);
        to = Math.min(size - 1, from + _int(rng, 0, 256 * 1024));
        spec = `${from}-${to}`;
      } else if (shape < 0.8 && size === MIB) {
        from = _int(rng, 0, size - 1);
        to = size - 1;
        spec = `${from}-`;
      } else {
        const n = _int(rng, 1, 64 * 1024);
        from = size - n;
        to = size - 1;
        spec = `-${n}`;
      }
      return {
        kind: "GET range",
        path: file.path,
        headers: { range: `bytes=${spec}` },
        status: 206,
        bytes: file.bytes.subarray(from, to + 1),
        check: (res) => {
          const want = `bytes ${from}-${to}/${size}`;
          const got = res.headers.get("content-range");
          return got === want
            ? undefined
            : `content-range ${got}, want ${want}`;
        },
      };
    }],
    [1, () => ({
      kind: "GET multi-range",
      path: "/1m.bin",
      headers: { range: "bytes=0-99,1000-1999,-100" },
      status: 206,
      check: (res, body) => {
        if (
          !/^multipart\/byteranges/.test(res.headers.get("content-type") ?? "")
        ) return `content-type ${res.headers.get("content-type")}`;
        const text = new TextDecoder("latin1").decode(body);
        for (const r of ["0-99", "1000-1999", `${MIB - 100}-${MIB - 1}`]) {
          if (!text.includes(`bytes ${r}/${MIB}`)) return `no part ${r}`;
        }
        return undefined;
      },
    })],
    [1, () => ({
      kind: "GET range 416",
      path: file.path,
      headers: { range: `bytes=${size}-` },
      status: 416,
      check: (res) =>
        res.headers.get("content-range") === `bytes */${size}`
          ? undefined
          : `content-range ${res.headers.get("content-range")}`,
    })],
    [5, () => {
      const path = rng() < 0.5 ? "/small.txt" : file.path;
      return {
        kind: "GET If-None-Match",
        method: rng() < 0.8 ? "GET" : "HEAD",
        path,
        headers: { "if-none-match": etag(path) },
        status: 304,
        check: (_res, body) =>
          body.length === 0 ? undefined : `304 with ${body.length} body bytes`,
      };
    }],
    [2, () => ({
      kind: "GET stale ETag",
      path: "/small.txt",
      headers: { "if-none-match": '"0-0"' },
      status: 200,
      bytes: site.small,
    })],
    [3, () => ({
      kind: "HEAD",
      method: "HEAD",
      path: file.path,
      status: 200,
      check: (res, body) =>
        res.headers.get("content-length") === String(size) &&
          body.length === 0
          ? undefined
          : `content-length ${
            res.headers.get("content-length")
          }, ${body.length} body bytes`,
    })],
    [4, () => ({
      kind: "GET 404",
      path: rng() < 0.8 ? `/missing-${n}.txt` : `/missing-${n}.php`,
      status: 404,
    })],
    [4, () => ({
      kind: "CGI hello",
      path: "/cgi-bin/hello.sh",
      status: 200,
      bytes: _encoder.encode("hello from sh\n"),
    })],
    [1, () => ({
      kind: "CGI stream",
      path: "/cgi-bin/stream.sh",
      status: 200,
      bytes: _encoder.encode(
        [0, 1, 2, 3, 4].map((i) => `chunk ${i}\n`).join(""),
      ),
    })],
    [2, () => {
      const body = _noise(_int(rng, 1, 200_000), n);
      return {
        kind: "CGI POST",
        method: "POST",
        path: "/cgi-bin/upload.sh",
        body,
        status: 200,
        bytes: _encoder.encode(`read=${body.length}\n`),
      };
    }],
    [6, () => ({
      kind: "PHP hello",
      path: `/hello.php?i=${n}`,
      status: 200,
      bytes: _encoder.encode(`hello from php ${n}\n`),
    })],
    [2, () => {
      const body = _noise(_int(rng, 1, 200_000), n);
      return {
        kind: "PHP POST",
        method: "POST",
        path: "/upload.php",
        body,
        status: 200,
        bytes: _encoder.encode(`read=${body.length}\n`),
      };
    }],
  ];
  const total = table.reduce((sum, [w]) => sum + w, 0);
  let pick = rng() * total;
  for (const [weight, make] of table) {
    pick -= weight;
    if (pick < 0) return make();
  }
  return table[0]![1]();
}

/** Sends one normal request with `fetch` and records the outcome. */
async function _send(
  base: string,
  client: Deno.HttpClient,
  spec: _Spec,
  record: _Record,
): Promise<void> {
  const started = performance.now();
  const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
  const what = `${spec.method ?? "GET"} ${spec.path}${
    spec.headers ? " " + JSON.stringify(spec.headers) : ""
  }`;
  let outcome: string;
  let failure: string | undefined;
  try {
    const res = await fetch(base + spec.path, {
      method: spec.method ?? "GET",
      headers: spec.headers,
      body: spec.body,
      client,
      redirect: "manual",
      signal,
    });
    outcome = String(res.status);
    const { body, mismatch } = await _readBody(
      res,
      res.status === spec.status ? spec.bytes : undefined,
    );
    if (res.status !== spec.status) {
      failure = `${what}: status ${res.status}, want ${spec.status}`;
    } else if (mismatch) {
      failure = `${what}: ${mismatch}`;
    } else {
      const wrong = spec.check?.(res, body);
      if (wrong) failure = `${what}: ${wrong}`;
    }
  } catch (error) {
    outcome = signal.aborted ? "timeout" : "reset";
    failure = `${what}: ${
      signal.aborted ? `no complete answer in ${REQUEST_TIMEOUT_MS} ms` : error
    }`;
  }
  record.add(spec.kind, outcome, performance.now() - started, failure);
}

// ---------------------------------------------------- slow and aborted

interface _Lane {
  port: number;
  record: _Record;
  rng: () => number;
  site: _Site;
  stopped: () => boolean;
}

function _get(path: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
}

/** Starts a 64 MiB download, takes a few KiB and closes the socket. */
async function _abortLane(lane: _Lane): Promise<void> {
  while (!lane.stopped()) {
    const started = performance.now();
    const raw = await _Raw.open(lane.port);
    try {
      await raw.write(_get("/64m.bin"));
      const head = await raw.head();
      const ms = () => performance.now() - started;
      if (!head) {
        lane.record.add("abort 64 MiB", raw.ended!, ms(), "no response head");
        continue;
      }
      let want = _int(lane.rng, 1024, 64 * 1024);
      while (want > 0) {
        const got = await raw.take(want);
        if (!got) break;
        want -= got.length;
      }
      lane.record.add(
        "abort 64 MiB",
        String(head.status),
        ms(),
        head.status !== 200
          ? `status ${head.status}`
          : want > 0
          ? `cut (${raw.ended}) before a few KiB`
          : undefined,
      );
    } finally {
      raw.close();
    }
    await _sleep(_int(lane.rng, 50, 300));
  }
}

/**
 * A slowloris head: the request line and a header line a second that never
 * ends. The guard must close it at the header timeout.
 */
async function _slowlorisLane(lane: _Lane): Promise<void> {
  while (!lane.stopped()) {
    const started = performance.now();
    const raw = await _Raw.open(lane.port);
    try {
      let open = await raw.write(
        "GET /small.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n",
      );
      const closed = (async () => {
        const head = await raw.head(); // a complete answer would be wrong
        return head ? `status ${head.status}` : raw.ended!;
      })();
      let result: string | undefined;
      closed.then((r) => result = r);
      const limit = (HEADER_TIMEOUT + 10) * 1000;
      for (let i = 0; open && result === undefined; i++) {
        if (performance.now() - started > limit) break;
        await _sleep(1000);
        if (result === undefined) open = await raw.write(`X-Slow-${i}: x\r\n`);
      }
      if (result === undefined && open) {
        raw.close();
        await closed;
        lane.record.add(
          "slowloris",
          "open",
          performance.now() - started,
          `head unfinished for ${limit} ms and still open (header timeout ${HEADER_TIMEOUT} s)`,
        );
        continue;
      }
      const r = result ?? (await closed);
      const ms = performance.now() - started;
      const early = ms < (HEADER_TIMEOUT - 1) * 1000;
      lane.record.add(
        "slowloris",
        r.startsWith("status") ? r.slice(7) : "closed",
        ms,
        r.startsWith("status")
          ? `an unfinished head was answered (${r})`
          : early
          ? `closed after ${Math.round(ms)} ms, before the header timeout`
          : undefined,
      );
    } finally {
      raw.close();
    }
  }
}

/** One request on a kept connection, then silence: the guard must close it at the keep-alive timeout. */
async function _idleLane(lane: _Lane): Promise<void> {
  while (!lane.stopped()) {
    const raw = await _Raw.open(lane.port);
    try {
      const started = performance.now();
      await raw.write(_get("/small.txt"));
      const head = await raw.head();
      const body = head && await raw.body(head.headers);
      if (
        !head || !body || head.status !== 200 || !_equal(body, lane.site.small)
      ) {
        lane.record.add(
          "idle keep-alive",
          head ? String(head.status) : raw.ended ?? "cut",
          performance.now() - started,
          `GET /small.txt: ${head ? `status ${head.status}` : "no answer"}${
            head && !body ? ", body cut" : ""
          }`,
        );
        continue;
      }
      const idle = performance.now();
      const { end } = await raw.drain((KEEPALIVE_TIMEOUT + 10) * 1000);
      const ms = performance.now() - idle;
      lane.record.add(
        "idle keep-alive",
        end === "open" ? "open" : "closed",
        ms,
        end === "open"
          ? `idle connection still open after ${Math.round(ms)} ms`
          : ms < (KEEPALIVE_TIMEOUT - 1) * 1000
          ? `idle connection closed after ${
            Math.round(ms)
          } ms, before the keep-alive timeout`
          : undefined,
      );
    } finally {
      raw.close();
    }
  }
}

/** Asks for 64 MiB and stops reading: the guard must drop it at the send timeout. */
async function _stalledLane(lane: _Lane): Promise<void> {
  while (!lane.stopped()) {
    const raw = await _Raw.open(lane.port);
    try {
      const started = performance.now();
      await raw.write(_get("/64m.bin"));
      const head = await raw.head();
      if (!head || head.status !== 200) {
        lane.record.add(
          "stalled reader",
          head ? String(head.status) : raw.ended!,
          performance.now() - started,
          head ? `status ${head.status}` : "no response head",
        );
        continue;
      }
      // Stop reading for the send timeout and some sweeps, then see
      // whether the rest of the body still comes.
      await _sleep((SEND_TIMEOUT + 7) * 1000);
      const { end, bytes } = await raw.drain(30_000);
      const whole = bytes >= lane.site.big.length;
      lane.record.add(
        "stalled reader",
        whole ? "delivered" : "dropped",
        performance.now() - started,
        whole
          ? `a reader stalled for ${
            SEND_TIMEOUT + 7
          } s was not dropped (got all 64 MiB, ${end})`
          : undefined,
      );
    } finally {
      raw.close();
    }
    await _sleep(500);
  }
}

/**
 * Reads a 64 MiB download at 8 MiB/s with one pause of 2 s less than the
 * send timeout after 16 MiB: slow but taking bytes, never to be dropped.
 */
async function _slowReaderLane(lane: _Lane): Promise<void> {
  const rate = 8 * MIB / 1000; // bytes per ms
  while (!lane.stopped()) {
    const raw = await _Raw.open(lane.port);
    try {
      const started = performance.now();
      await raw.write(_get("/64m.bin"));
      const head = await raw.head();
      if (!head || head.status !== 200) {
        lane.record.add(
          "slow reader",
          head ? String(head.status) : raw.ended!,
          performance.now() - started,
          head ? `status ${head.status}` : "no response head",
        );
        continue;
      }
      const big = lane.site.big;
      let at = 0;
      let mismatch: string | undefined;
      let reading = performance.now();
      let paused = false;
      while (at < big.length) {
        if (!paused && at >= 16 * MIB) {
          paused = true;
          const pause = (SEND_TIMEOUT - 2) * 1000;
          await _sleep(pause);
          reading += pause;
        }
        const got = await raw.take(Math.min(256 * 1024, big.length - at));
        if (!got) break;
        if (!mismatch && !_equal(got, big.subarray(at, at + got.length))) {
          mismatch = `body differs at byte ~${at}`;
        }
        at += got.length;
        const ahead = at / rate - (performance.now() - reading);
        if (ahead > 0) await _sleep(ahead);
      }
      const ms = performance.now() - started;
      lane.record.add(
        "slow reader",
        at === big.length ? "200" : raw.ended ?? "cut",
        ms,
        at < big.length
          ? `a client reading 8 MiB/s (one ${
            SEND_TIMEOUT - 2
          } s pause) was cut (${raw.ended}) after ${
            (at / MIB).toFixed(1)
          } MiB, ${Math.round(ms)} ms`
          : mismatch,
      );
    } finally {
      raw.close();
    }
    await _sleep(500);
  }
}

/** Trickles a POST body (a byte per 70 ms, 4–8 s) to PHP or CGI: it must be answered in full. */
async function _slowUploadLane(lane: _Lane, php: boolean): Promise<void> {
  const kind = php ? "slow upload PHP" : "slow upload CGI";
  const path = php ? "/upload.php" : "/cgi-bin/upload.sh";
  while (!lane.stopped()) {
    const raw = await _Raw.open(lane.port);
    try {
      const started = performance.now();
      const length = _int(lane.rng, 60, 120);
      let open = await raw.write(
        `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
          `Content-Type: application/octet-stream\r\nContent-Length: ${length}\r\n\r\n`,
      );
      for (let i = 0; open && i < length; i++) {
        await _sleep(70);
        open = await raw.write(Uint8Array.of(0x61 + (i % 26)));
      }
      const head = await raw.head();
      const body = head && await raw.body(head.headers);
      const text = body ? _decoder.decode(body) : "";
      const want = `read=${length}\n`;
      lane.record.add(
        kind,
        head ? String(head.status) : raw.ended ?? "cut",
        performance.now() - started,
        !head
          ? `no answer (${raw.ended}; the upload ${
            open ? "was sent" : "was cut"
          })`
          : head.status !== 200
          ? `status ${head.status}`
          : text !== want
          ? `body ${JSON.stringify(text)}, want ${JSON.stringify(want)}`
          : undefined,
      );
    } finally {
      raw.close();
    }
  }
}

/** Runs `lane` until the load stops, restarting it after an exception (recorded as an error of `kind`). */
async function _supervise(
  lane: _Lane,
  kind: string,
  run: (lane: _Lane) => Promise<void>,
): Promise<void> {
  while (!lane.stopped()) {
    try {
      await run(lane);
    } catch (error) {
      lane.record.add(kind, "exception", 0, String(error));
      await _sleep(1000);
    }
  }
}

// ------------------------------------------------------------- the run

function _percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

function _table(record: _Record): string {
  const rows = [[
    "request",
    "count",
    "ok",
    "failed",
    "p50 ms",
    "p99 ms",
    "max ms",
    "outcomes",
  ]];
  const kinds = [...record.kinds.entries()].sort(([a], [b]) =>
    a.localeCompare(b)
  );
  let count = 0, ok = 0, failed = 0;
  for (const [name, k] of kinds) {
    const sorted = k.ms.slice().sort((a, b) => a - b);
    count += k.count;
    ok += k.ok;
    failed += k.failed;
    rows.push([
      name,
      String(k.count),
      String(k.ok),
      String(k.failed),
      _percentile(sorted, 0.5).toFixed(0),
      _percentile(sorted, 0.99).toFixed(0),
      (sorted.at(-1) ?? NaN).toFixed(0),
      [...k.outcomes.entries()].sort().map(([o, n]) => `${o}×${n}`).join(" "),
    ]);
  }
  rows.push([
    "total",
    String(count),
    String(ok),
    String(failed),
    "",
    "",
    "",
    "",
  ]);
  const widths = rows[0]!.map((_, i) =>
    Math.max(...rows.map((r) => r[i]!.length))
  );
  return rows.map((r, ri) =>
    r.map((cell, i) =>
      i === 0 || i === r.length - 1
        ? cell.padEnd(widths[i]!)
        : cell.padStart(widths[i]!)
    ).join("  ").trimEnd() +
    (ri === 0 ? "\n" + widths.map((w) => "-".repeat(w)).join("  ") : "")
  ).join("\n");
}

/** What a load phase needs to know about the server. */
interface _Target {
  base: string;
  port: number;
  site: _Site;
  seed: number;
}

/**
 * Runs the mixed load for `ms` (then lets each lane finish the exchange it
 * is in), recording into `record`; `onMinute(m)` after each full minute.
 */
async function _load(
  target: _Target,
  ms: number,
  record: _Record,
  phase: number,
  onMinute?: (minute: number) => void,
): Promise<void> {
  const { base, port, site } = target;
  const seed = target.seed * 1009 + phase;
  record.restart();
  const deadline = performance.now() + ms;
  const stopped = () => performance.now() >= deadline;
  const client = Deno.createHttpClient({
    // Below the server's keep-alive timeout, as a client should: a
    // request on a connection the server is just closing is then the
    // server's fault, not the race every keep-alive client must avoid.
    poolIdleTimeout: (KEEPALIVE_TIMEOUT - 3) * 1000,
  });
  const rng = _random(seed);
  let n = 0;
  const lane = (offset: number): _Lane => ({
    port,
    record,
    rng: _random(seed * 7919 + offset),
    site,
    stopped,
  });
  let ticking = true;
  const ticker = (async () => {
    for (let m = 1; onMinute && m * 60_000 < ms; m++) {
      const wait = m * 60_000 - record.elapsed() * 1000;
      if (wait > 0) await _sleep(wait);
      if (!ticking) return;
      onMinute(m);
    }
  })();
  try {
    await Promise.all([
      ...Array.from({ length: WORKERS }, async () => {
        while (!stopped()) {
          await _send(base, client, _nextSpec(site, rng, n++), record);
        }
      }),
      _supervise(lane(1), "abort 64 MiB", _abortLane),
      _supervise(lane(2), "abort 64 MiB", _abortLane),
      _supervise(lane(3), "slowloris", _slowlorisLane),
      _supervise(lane(4), "slowloris", _slowlorisLane),
      _supervise(lane(5), "idle keep-alive", _idleLane),
      _supervise(lane(6), "stalled reader", _stalledLane),
      _supervise(lane(7), "slow reader", _slowReaderLane),
      _supervise(lane(8), "slow upload PHP", (l) => _slowUploadLane(l, true)),
      _supervise(lane(9), "slow upload CGI", (l) => _slowUploadLane(l, false)),
    ]);
  } finally {
    ticking = false;
    client.close();
  }
  await ticker;
}

/** Options of {@linkcode runSoak}. */
export interface SoakOptions {
  /** How long the load runs. @default {3} */
  minutes?: number;
  /** Seeds the request mix and the generated files. @default {1} */
  seed?: number;
}

/** Runs one soak, printing as it goes; true when nothing was wrong. */
export async function runSoak(options: SoakOptions = {}): Promise<boolean> {
  const { minutes = 3, seed = 1 } = options;
  const loadMs = minutes * 60_000;
  const site = await _makeRoot(seed);
  const fpm = await startPhpFpm({ workers: 4 });
  let server: ServerProcess | undefined;
  try {
    server = await startCli([
      site.root,
      "--port",
      "0",
      "--quiet",
      "--cgi-dir",
      `/cgi-bin/=${_FIXTURE}/cgi`,
      "--fastcgi",
      fpm.address,
      "--connection-guard",
      "on",
      "--header-timeout",
      String(HEADER_TIMEOUT),
      "--keepalive-timeout",
      String(KEEPALIVE_TIMEOUT),
      "--send-timeout",
      String(SEND_TIMEOUT),
    ]);
    const pid = server.pid;
    const base = server.base;
    const port = Number(new URL(base).port);
    const record = new _Record();
    const samples: _Sample[] = [];
    const snap = (label: string, at: number) => {
      const s = _sample(label, pid, record, at);
      samples.push(s);
      console.log(_showSample(s));
      return s;
    };
    console.log(
      `soak: ${minutes} min, seed ${seed}, server pid ${pid} on ${base}, ` +
        `php-fpm (pool of 4) on ${fpm.address}, guard deadlines ` +
        `${HEADER_TIMEOUT}/${KEEPALIVE_TIMEOUT}/${SEND_TIMEOUT} s ` +
        `(header/keep-alive/send)`,
    );
    snap("start", -1);

    // The ETags the conditional requests send.
    for (const path of ["/small.txt", "/1m.bin", "/64m.bin"]) {
      const res = await fetch(base + path, { method: "HEAD" });
      await res.body?.cancel();
      site.etags.set(path, res.headers.get("etag") ?? '"none"');
    }
    const load = { base, port, site, seed };

    // Warm-up: the same mixed load for a while, so that buffers, pools
    // and heaps reach their working size; then the same settle as at the
    // end, and the baseline.
    const warm = new _Record();
    await _load(load, WARMUP_MS, warm, 0);
    await _sleep(SETTLE_MS);
    const baseline = snap("warm-up", -1);
    console.log(
      `warm-up: ${WARMUP_MS / 1000} s of the same load, ${warm.served} ` +
        `responses, ${warm.failed} server-caused errors`,
    );
    if (warm.failed > 0) {
      for (const f of warm.failures) console.log(`  ${f.kind}: ${f.what}`);
    }

    // The load, sampled every minute.
    await _load(load, loadMs, record, 1, (m) => snap(`${m} min`, m * 60));
    snap("load end", record.elapsed());

    // Settle: the guard closes what is left, then fds and children must
    // be back (polled a little longer, as fuzz does).
    await _sleep(SETTLE_MS);
    await waitFor(() =>
      _fdCount(pid) <= baseline.fds + FD_SLACK &&
      _children(pid).length <= baseline.children.length, {
      timeoutMs: 10_000,
      intervalMs: 250,
    }).catch(() => {});
    const end = snap("end", record.elapsed());
    const alive = await isAlive(pid);

    await server.stop();
    const stderr = (await server.stderr).split("\n").filter(Boolean);
    const errorLines = stderr.filter((l) => /(^|\s)error:/.test(l));

    console.log("");
    console.log(_table(record));
    console.log("");
    console.log("when       at      rss       fds  children  served    errors");
    for (const s of samples) {
      console.log(
        `${s.label.padEnd(9)} ${
          s.at < 0 ? "     -" : `${Math.round(s.at)} s`.padStart(6)
        }  ${(s.rssKiB / 1024).toFixed(1).padStart(6)} MiB  ${
          String(s.fds).padStart(4)
        }  ${String(s.children.length).padStart(8)}  ${
          String(s.served).padStart(8)
        }  ${s.failed}`,
      );
    }
    if (record.failures.length > 0) {
      console.log("");
      console.log(`first ${record.failures.length} server-caused errors:`);
      for (const f of record.failures) {
        console.log(`  ${f.at.toFixed(1).padStart(6)} s  ${f.kind}: ${f.what}`);
      }
    }
    if (stderr.length > 0) {
      console.log("");
      console.log(`server stderr: ${stderr.length} lines, first ones:`);
      for (const line of stderr.slice(0, 8)) {
        console.log(`  ${line.slice(0, 300)}`);
      }
    }
    const leftover = end.children.map((kid) =>
      `${kid} ${commandLine(kid).join(" ")}`.trim()
    );
    const checks: [string, boolean][] = [
      [`server-caused errors: ${record.failed}`, record.failed === 0],
      [`warm-up errors: ${warm.failed}`, warm.failed === 0],
      [
        `error lines in the server's log: ${errorLines.length}`,
        errorLines.length === 0,
      ],
      [
        `open fds: ${end.fds} at the end, ${baseline.fds} after warm-up (at most +${FD_SLACK})`,
        end.fds <= baseline.fds + FD_SLACK,
      ],
      [
        `child processes: ${end.children.length} at the end, ${baseline.children.length} after warm-up` +
        (leftover.length ? ` (${leftover.join("; ")})` : ""),
        end.children.length <= baseline.children.length,
      ],
      [
        `RSS: ${(end.rssKiB / 1024).toFixed(1)} MiB at the end, ${
          (baseline.rssKiB / 1024).toFixed(1)
        } MiB after warm-up (at most +${RSS_SLACK_KIB / 1024} MiB)`,
        end.rssKiB <= baseline.rssKiB + RSS_SLACK_KIB,
      ],
      [`server alive at the end: ${alive ? "yes" : "NO"}`, alive],
    ];
    console.log("");
    for (const [text, ok] of checks) {
      console.log(`${ok ? "ok  " : "FAIL"}  ${text}`);
    }
    const ok = checks.every(([, ok]) => ok);
    console.log(ok ? "ok" : "FAILED");
    return ok;
  } finally {
    await server?.stop();
    try {
      await fpm[Symbol.asyncDispose]();
    } catch { /* already stopped */ }
    await Deno.remove(site.root, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      minutes: { type: "string", default: "3" },
      seed: { type: "string", default: "1" },
    },
  });
  const minutes = Number(values.minutes);
  const seed = Number(values.seed);
  if (!(minutes > 0 && minutes <= 60)) {
    console.error("error: --minutes must be a number above 0, at most 60");
    Deno.exit(2);
  }
  if (!Number.isInteger(seed) || seed < 0) {
    console.error("error: --seed must be a whole number");
    Deno.exit(2);
  }
  Deno.exit((await runSoak({ minutes, seed })) ? 0 : 1);
}
