/**
 * {@linkcode liveReload}: developer mode. Open HTML pages reload when a file
 * under the root changes (server-sent events plus a small injected script).
 *
 * @module
 */

import { relative, resolve, sep } from "node:path";
import { HttpError } from "../server/errors.ts";
import { errorMessage } from "../server/log.ts";
import { _cspHash } from "../server/page_style.ts";
import type { Context, Middleware, Next } from "../server/types.ts";

/**
 * Options of {@linkcode liveReload}.
 *
 * @example A custom endpoint, closed by a signal
 * ```ts
 * import { compose, liveReload, type LiveReloadOptions } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const stopping = new AbortController();
 * const options: LiveReloadOptions = {
 *   dir: ".",
 *   path: "/_reload",
 *   debounceMs: 250,
 *   signal: stopping.signal,
 * };
 * const handler = compose([liveReload(options), () => new Response("ok")]);
 * const res = await handler(new Request("http://localhost/_reload", { method: "HEAD" }));
 * assert.equal(res.headers.get("content-type"), "text/event-stream; charset=UTF-8");
 * stopping.abort(); // on shutdown: ends the event streams, stops watching
 * ```
 */
export interface LiveReloadOptions {
  /**
   * The folder to watch (recursively). Changes under dot-directories
   * (`.git/`) and to dotfiles or editor backups (`name~`) are ignored.
   * @default {undefined} (the document root, `ctx.root`, when the chain
   * resolves paths before this middleware; else the working directory)
   */
  dir?: string;
  /**
   * The URL path of the server-sent events endpoint pages connect to.
   * @default {"/__serve/live-reload"}
   */
  path?: string;
  /**
   * How long (ms) the file system must stay quiet before pages reload, so
   * that one save or build causes one reload.
   * @default {100}
   */
  debounceMs?: number;
  /**
   * HTML responses larger than this many bytes are sent as they are
   * (without the script).
   * @default {16777216} (16 MiB)
   */
  maxInjectSize?: number;
  /**
   * Ends every event stream and stops watching once aborted (like
   * {@linkcode LiveReloadMiddleware.close}). Event streams never end on
   * their own, so abort this when the server starts shutting down, or
   * `server.shutdown()` waits for the open pages.
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * The {@linkcode liveReload} middleware, with {@linkcode LiveReloadMiddleware.close}
 * to end its event streams and its file watcher.
 *
 * @example Closing it on shutdown
 * ```ts ignore
 * import { compose, liveReload, resolvePath, serveStatic } from "@x/serve";
 *
 * const reload = liveReload({ dir: "./site" });
 * const server = Deno.serve(compose([reload, resolvePath({ root: "./site" }), serveStatic()]));
 * Deno.addSignalListener("SIGINT", async () => {
 *   await reload.close(); // ends the event streams, so shutdown can finish
 *   await server.shutdown();
 * });
 * ```
 */
export interface LiveReloadMiddleware extends Middleware, AsyncDisposable {
  /**
   * Ends every event stream, stops the file watcher and answers later
   * event-stream requests with 503. Safe to call twice.
   */
  close(): Promise<void>;
  /** How many pages are connected right now. */
  readonly clients: number;
}

const _encoder = new TextEncoder();

/** The script injected into HTML pages (`path` is JSON-encoded). */
function _script(path: string): string {
  return `<script>/* @x/serve live reload */(()=>{` +
    `const es=new EventSource(${
      JSON.stringify(path).replace(/</g, "\\u003c")
    });` +
    `let id;` +
    `es.addEventListener("hello",(e)=>{if(id!==undefined&&id!==e.data)location.reload();id=e.data;});` +
    `es.addEventListener("reload",()=>location.reload());` +
    `addEventListener("pagehide",()=>es.close());` +
    `addEventListener("pageshow",(e)=>{if(e.persisted)location.reload();});` +
    `})();</script>`;
}

/** The last index of `</body` (any case) in `bytes`, or -1. */
function _bodyEnd(bytes: Uint8Array): number {
  // latin1 maps every byte to one char, so indexes match for any
  // ASCII-compatible charset.
  const text = new TextDecoder("latin1").decode(bytes);
  return text.toLowerCase().lastIndexOf("</body");
}

/**
 * Developer mode, like `live-server`. The middleware:
 *
 * - answers `GET {path}` (default `/__serve/live-reload`) with a
 *   server-sent events stream. While at least one page is connected, it
 *   watches the root with `Deno.watchFs` and, once changes stop for
 *   `debounceMs`, sends each page a `reload` event. The watcher starts with
 *   the first page and stops when the last one leaves (or on `close()`).
 * - adds a small `<script>` to `200` `text/html` responses to `GET` (before
 *   `</body>`, or at the end), which connects to that endpoint and reloads
 *   the page on `reload`. It also reloads once after the server restarts
 *   (`deno run --watch`). `Content-Length` is fixed up and the `ETag` made
 *   weak. `HEAD`, partial (`206`) and encoded (`Content-Encoding`) responses
 *   are left alone.
 *
 * For development only: every page on the site keeps a connection open
 * (browsers allow about six per origin over HTTP/1.1).
 *
 * @example The script goes into HTML pages
 * ```ts
 * import { compose, liveReload } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * await using reload = liveReload({ dir: "." });
 * const handler = compose([reload, () =>
 *   new Response("<body><p>hi</p></body>", {
 *     headers: { "content-type": "text/html; charset=UTF-8" },
 *   })]);
 * const res = await handler(new Request("http://localhost/"));
 * const html = await res.text();
 * assert.match(html, /<p>hi<\/p><script>.*EventSource.*<\/script><\/body>/);
 * assert.equal(res.headers.get("content-length"), String(new TextEncoder().encode(html).length));
 * ```
 *
 * @param options The folder to watch, the endpoint path, the debounce delay.
 * @returns The middleware, with `close()`.
 */
export function liveReload(
  options: LiveReloadOptions = {},
): LiveReloadMiddleware {
  const {
    dir,
    path = "/__serve/live-reload",
    debounceMs = 100,
    maxInjectSize = 16 * 1024 * 1024,
    signal,
  } = options;
  if (!path.startsWith("/")) {
    throw new TypeError(
      `Cannot use live-reload path "${path}": it must start with "/"`,
    );
  }
  const hub = _reloadHub(debounceMs);
  const inject = _injector(_encoder.encode(_script(path)), maxInjectSize);
  signal?.addEventListener("abort", () => void hub.close(), { once: true });
  if (signal?.aborted) void hub.close();

  async function liveReloadMiddleware(
    req: Request,
    ctx: Context,
    next: Next,
  ): Promise<Response> {
    if (ctx.url.pathname === path) {
      const base = dir !== undefined
        ? resolve(dir)
        : ctx.root?.path ?? resolve(".");
      return _eventStream(
        req,
        hub,
        base,
        (m) => ctx.log("error", `live reload: ${m}`),
      );
    }
    // A re-dispatched request (CGI local redirect) is injected once, by the
    // outer call.
    if (ctx.depth > 0) return await next();
    const res = await next();
    return _injectable(req, res) ? await inject(res) : res;
  }

  return Object.defineProperties(liveReloadMiddleware, {
    close: { value: hub.close },
    [Symbol.asyncDispose]: { value: hub.close },
    clients: { get: () => hub.clients.size },
  }) as LiveReloadMiddleware;
}

type _Client = ReadableStreamDefaultController<Uint8Array>;

/** The connected pages and the file watcher that tells them to reload. */
interface _Hub {
  /** Tells a reconnecting page whether the server restarted in between. */
  readonly instance: string;
  readonly clients: Set<_Client>;
  readonly closed: boolean;
  /** Starts the watcher, unless it runs already (throws when it cannot). */
  watch(base: string, log: (message: string) => void): void;
  /** Adds a page. */
  connect(client: _Client): void;
  /** Removes a page (stopping the watcher with the last one). */
  disconnect(client: _Client): void;
  /** Ends every page's stream and stops watching. */
  close(): Promise<void>;
}

function _reloadHub(debounceMs: number): _Hub {
  const clients = new Set<_Client>();
  const changed = new Set<string>();
  let watcher: Deno.FsWatcher | undefined;
  let base = ".";
  let watching: Promise<void> = Promise.resolve();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;

  function broadcast(): void {
    timer = undefined;
    const paths = [...changed].slice(0, 20);
    changed.clear();
    const event = _encoder.encode(
      `event: reload\ndata: ${JSON.stringify(paths)}\n\n`,
    );
    for (const client of clients) {
      try {
        client.enqueue(event);
      } catch {
        disconnect(client);
      }
    }
  }

  function changedFiles(files: string[]): void {
    for (const file of files) {
      changed.add("/" + relative(base, file).split(sep).join("/"));
    }
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(broadcast, debounceMs);
  }

  function stopWatching(): void {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    changed.clear();
    try {
      watcher?.close();
    } catch {
      // already closed
    }
    watcher = undefined;
  }

  function watch(dir: string, log: (message: string) => void): void {
    if (watcher) return;
    base = dir;
    const w = Deno.watchFs(base, { recursive: true });
    watcher = w;
    const done = _watch(w, base, changedFiles, log);
    watching = Promise.all([watching, done]).then(() => {});
  }

  function connect(client: _Client): void {
    clients.add(client);
  }

  function disconnect(client: _Client): void {
    if (clients.delete(client) && clients.size === 0) stopWatching();
  }

  async function close(): Promise<void> {
    closed = true;
    for (const client of clients) {
      try {
        client.close();
      } catch {
        // the page already left
      }
    }
    clients.clear();
    stopWatching();
    await watching;
  }

  return {
    instance: crypto.randomUUID(),
    clients,
    get closed() {
      return closed;
    },
    watch,
    connect,
    disconnect,
    close,
  };
}

/** Whether `file` lies under a dot-directory or is a dotfile or backup (`name~`). */
function _ignored(file: string, base: string): boolean {
  const rel = relative(base, file);
  if (rel === "" || rel === ".." || rel.startsWith(`..${sep}`)) return false;
  return rel.split(sep).some((s) => s.startsWith(".") || s.endsWith("~"));
}

/** Feeds the watcher's changes (minus ignored files) to `onChange`. */
async function _watch(
  w: Deno.FsWatcher,
  base: string,
  onChange: (files: string[]) => void,
  log: (message: string) => void,
): Promise<void> {
  try {
    for await (const event of w) {
      if (event.kind === "access") continue;
      const files = event.paths.filter((p) => !_ignored(p, base));
      if (files.length > 0) onChange(files);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.BadResource)) log(errorMessage(error));
  }
}

/** The server-sent events endpoint. */
function _eventStream(
  req: Request,
  hub: _Hub,
  base: string,
  log: (message: string) => void,
): Response {
  if (req.method !== "GET" && req.method !== "HEAD") {
    throw new HttpError(405, `${req.method} on the live-reload endpoint`, {
      headers: { allow: "GET, HEAD" },
    });
  }
  if (hub.closed) throw new HttpError(503, "live reload is closed");
  const headers = {
    "content-type": "text/event-stream; charset=UTF-8",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
  };
  if (req.method === "HEAD") return new Response(null, { headers });
  try {
    hub.watch(base, log);
  } catch (error) {
    throw new HttpError(500, "Cannot watch the root for live reload", {
      cause: error,
    });
  }
  let self: _Client;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      self = controller;
      hub.connect(controller);
      controller.enqueue(
        _encoder.encode(
          `retry: 1000\nevent: hello\ndata: ${hub.instance}\n\n`,
        ),
      );
    },
    cancel() {
      hub.disconnect(self);
    },
  });
  return new Response(body, { headers });
}

/** A whole `200` HTML answer to GET, not partial, not encoded. */
function _injectable(req: Request, res: Response): boolean {
  return req.method === "GET" && res.status === 200 && res.body !== null &&
    !res.headers.has("content-range") &&
    (res.headers.get("content-encoding") ?? "identity") === "identity" &&
    /^text\/html\s*(?:;|$)/i.test(res.headers.get("content-type") ?? "");
}

/** Adds `script` before `</body>` of pages up to `maxInjectSize` bytes. */
function _injector(
  script: Uint8Array,
  maxInjectSize: number,
): (res: Response) => Promise<Response> {
  // The script's CSP hash, for pages that bring their own policy (listings).
  let hash: Promise<string> | undefined;
  const scriptHash = () =>
    hash ??= _cspHash(new TextDecoder().decode(script).slice(8, -9));
  return async function inject(res) {
    const length = Number(res.headers.get("content-length") ?? 0);
    if (length > maxInjectSize) return res;
    // Read at most maxInjectSize: a longer (e.g. streamed CGI) page is sent
    // on untouched instead of being buffered whole.
    const read = await _readAtMost(res.body, maxInjectSize);
    if (read.rest) return new Response(read.rest, res);
    const bytes = read.bytes;
    const at = _bodyEnd(bytes);
    const cut = at === -1 ? bytes.byteLength : at;
    const out = new Uint8Array(bytes.byteLength + script.byteLength);
    out.set(bytes.subarray(0, cut), 0);
    out.set(script, cut);
    out.set(bytes.subarray(cut), cut + script.byteLength);
    const headers = new Headers(res.headers);
    headers.set("content-length", String(out.byteLength));
    const etag = headers.get("etag");
    if (etag && !etag.startsWith("W/")) headers.set("etag", `W/${etag}`);
    const csp = headers.get("content-security-policy");
    if (csp !== null) {
      headers.set(
        "content-security-policy",
        _allowingScript(csp, await scriptHash()),
      );
    }
    return new Response(out, {
      status: res.status,
      statusText: res.statusText,
      headers,
    });
  };
}

/**
 * A page's own Content-Security-Policy (e.g. a listing's) with the injected
 * script (`hash`) and its event stream (`connect-src 'self'`) allowed too;
 * each policy of a comma-joined list is widened the same way.
 */
export function _allowingScript(csp: string, hash: string): string {
  return csp.split(",").map((policy) => {
    const directives = policy.split(";").map((d) => d.trim()).filter(Boolean);
    const find = (name: string) =>
      directives.findIndex((d) => d.split(/\s+/)[0]!.toLowerCase() === name);
    const fallback = directives[find("default-src")];
    for (
      const [name, source] of [["script-src", hash], ["connect-src", "'self'"]]
    ) {
      const i = find(name!);
      // Without the directive, default-src governs (nothing, without it).
      const base = i !== -1
        ? directives[i]!
        : fallback?.replace(/^default-src/i, name!);
      if (base === undefined) continue;
      const widened = `${base.replace(/\s'none'(?=\s|$)/gi, "")} ${source}`;
      if (i !== -1) directives[i] = widened;
      else directives.push(widened);
    }
    return directives.join("; ");
  }).join(", ");
}

/**
 * Reads `body` up to `limit` bytes. Within the limit: the bytes. Beyond
 * it: `rest`, a stream replaying what was read followed by the remainder.
 */
async function _readAtMost(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
): Promise<{ bytes: Uint8Array; rest?: ReadableStream<Uint8Array> }> {
  if (body === null) return { bytes: new Uint8Array(0) };
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.byteLength;
    if (total > limit) {
      const rest = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const chunk = chunks.shift();
          if (chunk) return controller.enqueue(chunk);
          const next = await reader.read();
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        },
        cancel(reason) {
          return reader.cancel(reason);
        },
      });
      return { bytes: new Uint8Array(0), rest };
    }
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return { bytes };
}
