// Ports, test servers, raw HTTP and TCP state (not part of the published
// package).
import { waitFor } from "./poll.ts";

/** A free loopback TCP port (free when this returns; bind it soon). */
export function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

/** A handler served on a free loopback port, stopped on dispose. */
export interface TestServer extends AsyncDisposable {
  /** The port it listens on. */
  port: number;
  /** `http://127.0.0.1:PORT` (no trailing slash). */
  url: string;
}

/** Serves `handler` on a free loopback port. */
export function serve(handler: Deno.ServeHandler<Deno.NetAddr>): TestServer {
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
  }, handler);
  const port = server.addr.port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

/** Runs `fn` with `handler` served on a free loopback port, then stops it. */
export async function withServer(
  handler: Deno.ServeHandler<Deno.NetAddr>,
  fn: (port: number, base: string) => Promise<void>,
): Promise<void> {
  await using server = serve(handler);
  await fn(server.port, server.url);
}

/** Waits until something accepts connections on `address` (`HOST:PORT`, `unix:PATH` or a loopback port). */
export function waitForListen(
  address: string | number,
  timeoutMs = 10_000,
): Promise<void> {
  const connect = (): Promise<Deno.Conn> =>
    typeof address === "number"
      ? Deno.connect({ hostname: "127.0.0.1", port: address })
      : address.startsWith("unix:")
      ? Deno.connect({ transport: "unix", path: address.slice(5) })
      : Deno.connect({
        hostname: address.slice(0, address.lastIndexOf(":")),
        port: Number(address.slice(address.lastIndexOf(":") + 1)),
      });
  return waitFor(async () => {
    try {
      (await connect()).close();
      return true;
    } catch {
      return false;
    }
  }, { timeoutMs, intervalMs: 25, message: `a listener on ${address}` });
}

/**
 * Sends `request` as raw bytes to a loopback port and returns everything
 * the server answers until it closes the connection.
 */
export async function rawExchange(
  port: number,
  request: string,
): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(request));
  return new TextDecoder().decode(
    await new Response(conn.readable).arrayBuffer(),
  );
}

/** A parsed raw HTTP/1.1 response. */
export interface RawResponse {
  status: number;
  headers: Headers;
  body: string;
  raw: string;
}

/**
 * Sends a request for `target` (request line + headers, with
 * `Connection: close`) and an optional body over a raw TCP socket, and
 * parses the whole response. Used where `fetch` would normalise the
 * request target.
 */
export async function rawRequest(
  port: number,
  target: string,
  options: {
    method?: string;
    headers?: Record<string, string>;
    body?: string;
  } = {},
): Promise<RawResponse> {
  const lines = [
    `${options.method ?? "GET"} ${target} HTTP/1.1`,
    "Host: 127.0.0.1",
    "Connection: close",
  ];
  for (const [k, v] of Object.entries(options.headers ?? {})) {
    lines.push(`${k}: ${v}`);
  }
  if (options.body !== undefined) {
    lines.push(
      `Content-Length: ${new TextEncoder().encode(options.body).length}`,
    );
  }
  const raw = await rawExchange(
    port,
    lines.join("\r\n") + "\r\n\r\n" + (options.body ?? ""),
  );
  const split = raw.indexOf("\r\n\r\n");
  const head = raw.slice(0, split).split("\r\n");
  const status = Number(head[0]?.split(" ")[1]);
  const headers = new Headers();
  for (const line of head.slice(1)) {
    const i = line.indexOf(":");
    headers.append(line.slice(0, i), line.slice(i + 1).trim());
  }
  let body = raw.slice(split + 4);
  if (headers.get("transfer-encoding") === "chunked") body = _unchunk(body);
  return { status, headers, body, raw };
}

function _unchunk(text: string): string {
  let out = "";
  let rest = text;
  while (rest.length) {
    const nl = rest.indexOf("\r\n");
    const size = parseInt(rest.slice(0, nl), 16);
    if (!size) break;
    out += rest.slice(nl + 2, nl + 2 + size);
    rest = rest.slice(nl + 2 + size + 2);
  }
  return out;
}

/** An IPv4 TCP socket of this machine, as /proc/net/tcp lists it (Linux). */
export interface TcpSocket {
  localPort: number;
  remotePort: number;
  /** `ESTABLISHED`, `LISTEN`, `CLOSE_WAIT`… */
  state: string;
  /** Bytes queued to send; for a LISTEN socket, its backlog. */
  txQueue: number;
  /** Bytes received, not read; for a LISTEN socket, connections not accepted. */
  rxQueue: number;
}

const _TCP_STATES: Record<string, string> = {
  "01": "ESTABLISHED",
  "02": "SYN_SENT",
  "03": "SYN_RECV",
  "04": "FIN_WAIT1",
  "05": "FIN_WAIT2",
  "06": "TIME_WAIT",
  "07": "CLOSE",
  "08": "CLOSE_WAIT",
  "09": "LAST_ACK",
  "0A": "LISTEN",
  "0B": "CLOSING",
};

/** The IPv4 TCP sockets of this machine (Linux). */
export function tcpSockets(): TcpSocket[] {
  const port = (address: string) => parseInt(address.split(":")[1]!, 16);
  return Deno.readTextFileSync("/proc/net/tcp").split("\n").slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields.length > 4)
    .map(([, local, remote, state, queues]) => {
      const [tx, rx] = queues!.split(":");
      return {
        localPort: port(local!),
        remotePort: port(remote!),
        state: _TCP_STATES[state!] ?? state!,
        txQueue: parseInt(tx!, 16),
        rxQueue: parseInt(rx!, 16),
      };
    });
}

/** Makes a self-signed certificate for localhost/127.0.0.1 in `dir` with openssl. */
export async function makeCert(
  dir: string,
): Promise<{ cert: string; key: string }> {
  const cert = `${dir}/cert.pem`;
  const key = `${dir}/key.pem`;
  const out = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      // rustls refuses a CA certificate used as the server's own.
      "-addext",
      "basicConstraints=critical,CA:FALSE",
      "-keyout",
      key,
      "-out",
      cert,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`openssl failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return { cert, key };
}
