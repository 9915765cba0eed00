// Shared helpers for the test suites (not part of the published package).
import { fileURLToPath as fromFileUrl } from "node:url";

/** Absolute path of a fixture under tests/testdata/. */
export function testdata(...parts: string[]): string {
  return [fromFileUrl(new URL("./testdata/", import.meta.url)), ...parts].join(
    "/",
  )
    .replace(/\/+/g, "/").replace(/\/$/, "");
}

/** A parsed raw HTTP/1.1 response. */
export interface RawResponse {
  status: number;
  headers: Headers;
  body: string;
  raw: string;
}

/**
 * Sends `head` (request line + headers, CRLF-separated, without the final
 * blank line) and an optional body over a raw TCP socket, with
 * `Connection: close`, and parses the whole response. Used where `fetch`
 * would normalise the request target.
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
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
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
  await conn.write(
    new TextEncoder().encode(
      lines.join("\r\n") + "\r\n\r\n" + (options.body ?? ""),
    ),
  );
  const raw = new TextDecoder().decode(
    await new Response(conn.readable).arrayBuffer(),
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

/** Runs `fn` with a real server on a free loopback port, then stops it. */
export async function withServer(
  handler: Deno.ServeHandler<Deno.NetAddr>,
  fn: (port: number, base: string) => Promise<void>,
): Promise<void> {
  await using server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
  }, handler);
  const port = server.addr.port;
  await fn(port, `http://127.0.0.1:${port}`);
}

/** A fresh temporary directory, removed on dispose. */
export async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.realPath(
    await Deno.makeTempDir({ prefix: "x-serve-test-" }),
  );
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
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
