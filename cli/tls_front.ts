/**
 * HTTPS without the Nagle stall: {@linkcode serveTlsFront} terminates TLS
 * on sockets that can be told `TCP_NODELAY` (`node:tls`), and hands the
 * decrypted bytes to a plain `Deno.serve` on loopback, which keeps Deno's
 * HTTP engine for HTTP/1.1 and HTTP/2 (ALPN `h2`, cleartext prior knowledge
 * inside).
 *
 * Deno 2.9's own TLS listener never sets `TCP_NODELAY`, and `Deno.TlsConn`
 * cannot be told to: every response over it waits for the client's delayed
 * ACK (~40 ms), 22 requests a second on one connection.
 *
 * @module
 */

import net from "node:net";
import tls from "node:tls";
import type { Handler } from "../server/types.ts";
import { checkCertificatePair } from "./cert_reload.ts";
import { guardAvailable, serveGuarded } from "./conn_guard.ts";
import type { GuardSettings } from "./guard_flags.ts";
import type { SharedConns } from "./shared_conns.ts";

/** Options of {@linkcode serveTlsFront}. */
export interface TlsFrontOptions {
  /** The address to listen on (the public one). */
  hostname: string;
  /** The port to listen on; `0` picks a free one. */
  port: number;
  /** The certificate chain (PEM). */
  cert: string;
  /** The private key (PEM). */
  key: string;
  /** Aborting it stops the server: open connections are cut. */
  signal: AbortSignal;
  /** Called once the public port listens. */
  onListen(addr: { hostname: string; port: number }): void;
  /**
   * The connection guard's deadlines and caps: the deadlines apply to the
   * relayed connections (and the header timeout to the TLS handshake), the
   * caps to the TLS sockets (a socket over a cap is closed).
   * @default {undefined} (no guard)
   */
  guard?: GuardSettings;
  /**
   * Listen with `SO_REUSEPORT`, beside the fronts of other isolates on the
   * same port (the CLI's `--workers`; Linux balances new connections).
   * @default {false}
   */
  reusePort?: boolean;
  /**
   * The guard's connection caps counted with the other isolates' (the
   * CLI's `--workers`, cli/shared_conns.ts) instead of by this front alone.
   * @default {undefined}
   */
  shared?: SharedConns;
}

/** A running front: like `Deno.HttpServer`, with the public address. */
export interface TlsFront {
  /** Stops accepting and finishes in-flight requests. */
  shutdown(): Promise<void>;
  /** Resolves once the server has stopped. */
  readonly finished: Promise<void>;
  /** The loopback port of the inner server (not for clients: 421). */
  readonly innerPort: number;
  /**
   * Serves new connections with this certificate and key (PEM); throws
   * when they are invalid (the old pair stays).
   */
  setCertificate(cert: string, key: string): void;
}

/**
 * Serves `handler` over HTTPS through the front. The handler sees what it
 * would under `Deno.serve({ cert, key })`: an `https:` URL and the client's
 * own address in `info.remoteAddr`. A connection to the inner loopback port
 * that did not come through the front answers 421.
 *
 * @example Serving over HTTPS
 * ```ts ignore
 * import { serveTlsFront } from "./tls_front.ts";
 *
 * const front = await serveTlsFront((req) => new Response(req.url), {
 *   hostname: "127.0.0.1",
 *   port: 8443,
 *   cert: await Deno.readTextFile("cert.pem"),
 *   key: await Deno.readTextFile("key.pem"),
 *   signal: new AbortController().signal,
 *   onListen: ({ port }) => console.log(`https://127.0.0.1:${port}/`),
 * });
 * await front.finished;
 * ```
 *
 * @param handler The fetch handler.
 * @param options Address, certificate and lifecycle.
 * @returns The running front.
 */
export async function serveTlsFront(
  handler: Handler,
  options: TlsFrontOptions,
): Promise<TlsFront> {
  // Inner port → the client's address, for the connections we relay.
  const peers = new Map<number, Deno.NetAddr>();
  const innerHandler = function innerHandler(
    req: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Response | Promise<Response> {
    // Relayed connections come from 127.0.0.1 (another loopback address
    // with the same port is some other local process).
    const peer = info.remoteAddr.hostname === "127.0.0.1"
      ? peers.get(info.remoteAddr.port)
      : undefined;
    if (peer === undefined) return new Response(null, { status: 421 });
    // The URL the client asked for (`https:`): an own `url` on this
    // request shadows the prototype's getter. A copy (`new Request(url,
    // req)`) cost 8 % of the CPU at one connection.
    Object.defineProperty(req, "url", {
      value: "https" + req.url.slice(req.url.indexOf(":")),
    });
    // `completed` is a getter of the prototype: spread would drop it.
    return handler(req, { remoteAddr: peer, completed: info.completed });
  };
  const listen = {
    hostname: "127.0.0.1",
    port: 0,
    signal: options.signal,
    onListen() {},
  };
  const inner = options.guard && guardAvailable()
    ? serveGuarded(innerHandler as Handler, {
      ...listen,
      ...options.guard,
      // Every relayed connection comes from loopback: the caps are the
      // front's (on the TLS sockets).
      maxConnections: Infinity,
      maxConnectionsPerClient: 0,
    })
    : Deno.serve(listen, innerHandler);
  const server = _listen(inner.addr.port, peers, options);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({
      port: options.port,
      host: options.hostname,
      reusePort: options.reusePort ?? false,
    }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address() as { address: string; port: number };
  options.onListen({ hostname: addr.address, port: addr.port });
  const closed = new Promise<void>((resolve) => server.once("close", resolve));
  options.signal.addEventListener("abort", () => server.close(), {
    once: true,
  });
  return {
    async shutdown() {
      server.close(); // no new connections; open ones end with the inner ones
      await inner.shutdown();
    },
    finished: Promise.all([inner.finished, closed]).then(() => {}),
    innerPort: inner.addr.port,
    setCertificate(cert: string, key: string) {
      checkCertificatePair(cert, key);
      server.setSecureContext({ cert, key });
    },
  };
}

/** The TLS listener: each socket relayed to the inner port. */
function _listen(
  innerPort: number,
  peers: Map<number, Deno.NetAddr>,
  options: TlsFrontOptions,
): tls.Server {
  const sockets = new Set<tls.TLSSocket>();
  const perClient = new Map<string, number>();
  const { guard, shared } = options;
  const max = guard ? (guard.maxConnections ?? 10_000) : Infinity;
  const maxPerClient = guard?.maxConnectionsPerClient ?? 0;
  // Counted with the other isolates' sockets, or by this front.
  const admit = (client: string): boolean => {
    if (shared) return !guard || shared.tryOpen(client);
    const fromClient = perClient.get(client) ?? 0;
    if (
      sockets.size >= max || (maxPerClient > 0 && fromClient >= maxPerClient)
    ) {
      return false;
    }
    perClient.set(client, fromClient + 1);
    return true;
  };
  const leave = (client: string): void => {
    if (shared) {
      if (guard) shared.close(client);
      return;
    }
    const left = (perClient.get(client) ?? 1) - 1;
    if (left > 0) perClient.set(client, left);
    else perClient.delete(client);
  };
  const server = tls.createServer({
    cert: options.cert,
    key: options.key,
    ALPNProtocols: ["h2", "http/1.1"],
    // A handshake is part of getting a request head in.
    ...(guard ? { handshakeTimeout: guard.headerTimeoutMs ?? 60_000 } : {}),
  }, (socket) => {
    const client = socket.remoteAddress ?? "";
    if (!admit(client)) {
      socket.destroy(); // over a cap: no plain-text 503 inside TLS
      return;
    }
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      leave(client);
    });
    _relay(socket, innerPort, peers);
  });
  // A failed handshake is the client's problem: it only loses its socket.
  server.on("tlsClientError", () => {});
  options.signal.addEventListener("abort", () => {
    for (const socket of sockets) socket.destroy();
  }, { once: true });
  return server;
}

/**
 * Pipes one TLS socket to a fresh inner connection and back, both as
 * `node:net` streams: `pipe()` keeps the bytes in Deno's own stream
 * buffers (measured on 1 KiB over HTTPS at 32 connections: 8.8–11.8 k
 * req/s against 5.3 k through `Deno.connect()` and web streams, and a
 * quarter of the CPU per request). The client's address is registered
 * under the inner connection's local port once it is connected, before a
 * byte is relayed.
 */
function _relay(
  socket: tls.TLSSocket,
  innerPort: number,
  peers: Map<number, Deno.NetAddr>,
): void {
  socket.setNoDelay(true);
  socket.pause();
  const up = net.connect({
    host: "127.0.0.1",
    port: innerPort,
    localAddress: "127.0.0.1",
  });
  up.setNoDelay(true);
  let local: number | undefined;
  let peer: Deno.NetAddr | undefined;
  let closed = false;
  let lingering: ReturnType<typeof setTimeout> | undefined;
  const close = () => {
    if (closed) return;
    closed = true;
    clearTimeout(lingering);
    // Only our own entry (a port reused since may hold a newer one).
    if (local !== undefined && peers.get(local) === peer) peers.delete(local);
    up.destroy();
    socket.destroy();
  };
  up.once("connect", () => {
    local = up.localPort;
    if (local === undefined || closed) return close();
    peer = {
      transport: "tcp",
      hostname: socket.remoteAddress ?? "",
      port: socket.remotePort ?? 0,
    };
    peers.set(local, peer);
    socket.pipe(up);
    up.pipe(socket);
    socket.resume();
  });
  socket.once("close", close);
  // The inner server closed (after `Connection: close`, or its shutdown):
  // pipe() has ended the TLS socket. What is still queued on it goes out
  // first ("finish"), then it is closed; a client that never takes those
  // bytes is dropped after a while.
  up.once("close", () => {
    if (closed) return;
    if (socket.writableLength === 0) return close();
    socket.end();
    socket.once("finish", close);
    lingering = setTimeout(close, _LINGER_MS);
  });
  socket.on("error", close);
  up.on("error", close);
}

/**
 * How long a TLS socket may take to send what is queued once the inner
 * server closed its side (nginx's `lingering_timeout` is 5 s, its
 * `send_timeout` 60 s).
 */
const _LINGER_MS = 30_000;
