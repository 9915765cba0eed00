/**
 * {@linkcode FastCgiConnection}: one socket to a FastCGI responder, with
 * timed record reads, full writes, and an idle watch that notices when the
 * responder closes a kept connection.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { Deadlines } from "../../server/deadlines.ts";
import { FastCgiError } from "./errors.ts";
import { type FastCgiRecord, RecordReader } from "./record.ts";

/**
 * A connection to a FastCGI responder. It carries one request at a time
 * (php-fpm does not multiplex).
 *
 * @example Wrapping a socket
 * ```ts ignore
 * import { FastCgiConnection } from "./connection.ts";
 * const conn = new FastCgiConnection(await Deno.connect({ port: 9000 }));
 * conn.close();
 * ```
 */
export class FastCgiConnection {
  readonly #conn: Deno.Conn;
  readonly #reader: RecordReader;
  readonly #deadlines: Deadlines;
  readonly #ownDeadlines: boolean;
  #pending: Promise<FastCgiRecord | null> | undefined;
  #pendingSettled = false;
  #watching = false;
  #closed = false;
  #onClose: (() => void)[] = [];
  #sent = 0;
  /** Requests completed on this connection (a connection is reused when > 0). */
  completed = 0;

  /**
   * @param conn The connected socket.
   * @param deadlines Where read timeouts are kept (a client's, shared by
   *   its connections); by default the connection's own.
   */
  constructor(conn: Deno.Conn, deadlines?: Deadlines) {
    this.#conn = conn;
    this.#reader = new RecordReader(conn);
    this.#ownDeadlines = deadlines === undefined;
    this.#deadlines = deadlines ?? new Deadlines();
  }

  /** True once {@linkcode FastCgiConnection.close} ran or the peer went away. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes received so far. */
  get received(): number {
    return this.#reader.received;
  }

  /** Bytes written so far. */
  get sent(): number {
    return this.#sent;
  }

  /** Registers a callback run once when the connection closes. */
  onClose(callback: () => void): void {
    if (this.#closed) callback();
    else this.#onClose.push(callback);
  }

  /** Closes the socket (idempotent); pending reads reject. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ownDeadlines) this.#deadlines.close();
    try {
      this.#conn.close();
    } catch {
      // already closed by the runtime
    }
    for (const callback of this.#onClose.splice(0)) callback();
  }

  /**
   * Starts watching an idle connection: any byte or end of stream from the
   * responder while idle closes it (a kept connection that the responder
   * dropped is noticed at once instead of failing the next request).
   */
  watch(): void {
    if (this.#closed) return;
    this.#watching = true;
    if (this.#pending) return;
    const pending = this.#track(this.#reader.next());
    pending.then(
      () => {
        if (this.#watching) this.close();
      },
      () => {
        if (this.#watching) this.close();
      },
    );
  }

  /** Stops the idle watch; the watch's read is handed to the next {@linkcode FastCgiConnection.read}. */
  unwatch(): void {
    this.#watching = false;
  }

  /**
   * Checks, before a request is written, that the responder has not closed
   * this kept connection: starts (or reuses) the idle read and lets the
   * event loop turn once. True when the connection is closed or the
   * responder sent something (an end of stream, most likely) while idle;
   * then nothing of a new request must be written to it.
   *
   * @returns Whether the connection is dead.
   */
  async probe(): Promise<boolean> {
    if (this.#closed) return true;
    // A watched connection's read has been pending since it went idle: the
    // event loop has polled it on every turn since, so it has settled if
    // anything (a FIN) arrived — no need to wait a turn here.
    if (this.#pending) return this.#pendingSettled;
    this.#track(this.#reader.next());
    await new Promise((resolve) => setImmediate(resolve));
    return this.#pendingSettled || this.#closed;
  }

  /** Makes `read` the pending read and notes when it settles. */
  #track(
    read: Promise<FastCgiRecord | null>,
  ): Promise<FastCgiRecord | null> {
    this.#pending = read;
    this.#pendingSettled = false;
    const settle = (): void => {
      if (this.#pending === read) this.#pendingSettled = true;
    };
    read.then(settle, settle);
    return read;
  }

  /**
   * Writes all of `bytes`.
   *
   * @param bytes What to send.
   */
  async write(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) {
      const n = await this.#conn.write(bytes.subarray(offset));
      offset += n;
      this.#sent += n;
    }
  }

  /**
   * The next record if it has already arrived whole (no waiting), else
   * `undefined`. Throws a `SyntaxError` on a malformed record header.
   *
   * @returns The record or `undefined`.
   */
  readBuffered(): FastCgiRecord | undefined {
    if (this.#pending || this.#closed) return undefined;
    return this.#reader.nextBuffered();
  }

  /**
   * Reads the next record, or `null` at end of stream. After `timeoutMs`
   * the connection is closed and a 504 {@linkcode FastCgiError} is thrown.
   *
   * @param timeoutMs Milliseconds to wait (0 = forever).
   * @returns The record or `null`.
   */
  async read(timeoutMs: number): Promise<FastCgiRecord | null> {
    if (!this.#pending) {
      // Records often arrive several to a packet: no timer for those.
      const buffered = this.#reader.nextBuffered();
      if (buffered) return buffered;
    }
    const next = this.#pending ?? this.#reader.next();
    this.#pending = undefined;
    if (timeoutMs <= 0) return await next;
    const deadlines = this.#deadlines;
    return await new Promise((resolve, reject) => {
      const deadline = deadlines.add(timeoutMs, () => {
        reject(
          new FastCgiError(
            504,
            `No data from the FastCGI responder for ${timeoutMs} ms`,
          ),
        );
        this.close(); // `next` rejects too: settled already
      });
      next.then((record) => {
        deadlines.clear(deadline);
        resolve(record);
      }, (error) => {
        deadlines.clear(deadline);
        reject(error);
      });
    });
  }
}
