// A raw HTTP/1.1 client for tests that must see the wire (not part of the
// published package): the framing the server chose, how many body bytes
// came, and whether the connection was closed or kept, which fetch hides.

/** One response as it came over a {@linkcode WireConn}. */
export interface WireResponse {
  status: number;
  /** The header block, names lower-cased, values as sent. */
  headers: Headers;
  /** The raw header block (without the blank line). */
  head: string;
  /** The body bytes read (de-chunked when chunked). */
  body: Uint8Array;
  /** `content-length` (the body was read up to it), `chunked` or `close`. */
  framing: "content-length" | "chunked" | "close" | "none";
  /** The framing's end was reached (all bytes, or the last chunk). */
  complete: boolean;
  /** The connection ended while (or instead of) reading the body. */
  closed: boolean;
  /** Milliseconds from the request's write to the end of the body. */
  ms: number;
}

const _CRLF2 = new TextEncoder().encode("\r\n\r\n");

function _indexOf(haystack: Uint8Array, needle: Uint8Array, from = 0): number {
  outer: for (let i = from; i <= haystack.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}

function _concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Thrown when the server sends nothing for the time allowed. */
export class WireTimeout extends Error {
  override name = "WireTimeout";
}

/**
 * A keep-alive TCP connection to a loopback port: requests written raw,
 * responses read by their framing, and the connection's end observed.
 */
export class WireConn implements Disposable {
  readonly #conn: Deno.Conn;
  #buffered: Uint8Array = new Uint8Array(0);
  #pending: Promise<Uint8Array | null> | undefined;
  #eof = false;

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Connects to `127.0.0.1:port`. */
  static async open(port: number): Promise<WireConn> {
    return new WireConn(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Reads more bytes within `timeoutMs`; `false` at the end of the connection. */
  async #fill(timeoutMs: number): Promise<boolean> {
    if (this.#eof) return false;
    this.#pending ??= (async () => {
      const buf = new Uint8Array(65536);
      try {
        const n = await this.#conn.read(buf);
        return n === null ? null : buf.slice(0, n);
      } catch {
        return null; // reset: the connection ended too
      }
    })();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const result = await Promise.race([
      this.#pending,
      new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
    if (result === "timeout") {
      throw new WireTimeout(`no bytes and no close for ${timeoutMs} ms`);
    }
    this.#pending = undefined;
    if (result === null) {
      this.#eof = true;
      return false;
    }
    this.#buffered = _concat(this.#buffered, result);
    return true;
  }

  /** Takes up to `n` buffered bytes. */
  #take(n: number): Uint8Array {
    const out = this.#buffered.slice(0, n);
    this.#buffered = this.#buffered.slice(out.length);
    return out;
  }

  /**
   * Sends a request (`GET /x` becomes `GET /x HTTP/1.1` with a Host
   * header; `extra` adds header lines) and reads its response: the body by
   * its framing (none for HEAD, 204 and 304). A read that stays silent for
   * `timeoutMs` throws {@linkcode WireTimeout} (a hang).
   */
  async request(
    method: string,
    target: string,
    options: { extra?: string[]; timeoutMs?: number } = {},
  ): Promise<WireResponse> {
    const { extra = [], timeoutMs = 5000 } = options;
    const start = performance.now();
    const text = [`${method} ${target} HTTP/1.1`, "Host: 127.0.0.1", ...extra]
      .join("\r\n") + "\r\n\r\n";
    await this.#conn.write(new TextEncoder().encode(text));
    let end: number;
    while ((end = _indexOf(this.#buffered, _CRLF2)) === -1) {
      if (!await this.#fill(timeoutMs)) {
        throw new Error("connection closed before a response head");
      }
    }
    const head = new TextDecoder().decode(this.#take(end));
    this.#take(4);
    const [statusLine = "", ...lines] = head.split("\r\n");
    const status = Number(statusLine.split(" ")[1]);
    const headers = new Headers();
    for (const line of lines) {
      const colon = line.indexOf(":");
      headers.append(line.slice(0, colon), line.slice(colon + 1).trim());
    }
    const response = { status, headers, head, closed: false };
    if (method === "HEAD" || status === 204 || status === 304) {
      return {
        ...response,
        body: new Uint8Array(0),
        framing: "none",
        complete: true,
        ms: performance.now() - start,
      };
    }
    const length = headers.get("content-length");
    if (headers.get("transfer-encoding") === "chunked") {
      return {
        ...await this.#chunked(timeoutMs, start),
        status,
        headers,
        head,
      };
    }
    if (length !== null) {
      const want = Number(length);
      let closed = false;
      while (this.#buffered.length < want) {
        if (!await this.#fill(timeoutMs)) {
          closed = true;
          break;
        }
      }
      return {
        ...response,
        body: this.#take(want),
        framing: "content-length",
        complete: !closed,
        closed,
        ms: performance.now() - start,
      };
    }
    while (await this.#fill(timeoutMs));
    return {
      ...response,
      body: this.#take(this.#buffered.length),
      framing: "close",
      complete: true,
      closed: true,
      ms: performance.now() - start,
    };
  }

  async #chunked(
    timeoutMs: number,
    start: number,
  ): Promise<Omit<WireResponse, "status" | "headers" | "head">> {
    let body: Uint8Array = new Uint8Array(0);
    const crlf = new TextEncoder().encode("\r\n");
    const done = (complete: boolean) => ({
      body,
      framing: "chunked" as const,
      complete,
      closed: !complete,
      ms: performance.now() - start,
    });
    while (true) {
      let nl: number;
      while ((nl = _indexOf(this.#buffered, crlf)) === -1) {
        if (!await this.#fill(timeoutMs)) return done(false);
      }
      const size = parseInt(new TextDecoder().decode(this.#take(nl)), 16);
      this.#take(2);
      while (this.#buffered.length < size + 2) {
        if (!await this.#fill(timeoutMs)) return done(false);
      }
      body = _concat(body, this.#take(size));
      this.#take(2);
      if (size === 0) return done(true);
    }
  }

  /**
   * Whether the server closes the connection within `ms` (bytes arriving
   * instead throw: nothing may follow a complete response).
   */
  async closesWithin(ms: number): Promise<boolean> {
    if (this.#buffered.length) {
      throw new Error(`${this.#buffered.length} unexpected bytes buffered`);
    }
    try {
      if (await this.#fill(ms)) {
        throw new Error(`unexpected bytes: ${this.#buffered.length}`);
      }
      return true;
    } catch (error) {
      if (error instanceof WireTimeout) return false;
      throw error;
    }
  }

  /** The bytes read past the last response (should be none). */
  get leftover(): number {
    return this.#buffered.length;
  }

  [Symbol.dispose](): void {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}
