// A minimal headless-Chromium driver over the Chrome DevTools Protocol, with
// Deno's built-in WebSocket (not part of the published package).
import { withTimeout } from "./poll.ts";
import { descendants } from "./process.ts";

/** The real binary (Debian's /usr/bin/chromium is a shell wrapper). */
const _CANDIDATES = [
  "/usr/lib/chromium/chromium",
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
];

/** Flags for a headless browser on a closed network. */
const _FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
  "--remote-debugging-port=0",
];

/** The Chromium binary: `$CHROMIUM_BIN` or the Debian paths; else throws. */
export function findChromium(): string {
  const env = Deno.env.get("CHROMIUM_BIN");
  for (const path of env ? [env] : _CANDIDATES) {
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // try the next
    }
  }
  throw new Error(
    "headless Chromium not found (looked for " +
      (env ?? _CANDIDATES.join(", ")) +
      "): install it with `apt-get install -y chromium` or set CHROMIUM_BIN",
  );
}

type _Listener = (params: Record<string, unknown>) => void;

/** One attached page (a CDP session). */
export interface Page {
  /** Sends a command to the page's session. */
  send<T = Record<string, unknown>>(
    method: string,
    params?: Record<string, unknown>,
  ): Promise<T>;
  /** Navigates and waits for the load event. */
  goto(url: string, timeout?: number): Promise<void>;
  /** Evaluates an expression in the page and returns its value. */
  evaluate<T>(expression: string): Promise<T>;
  /** Resolves with the params of the next `method` event. */
  waitFor(method: string, timeout?: number): Promise<Record<string, unknown>>;
  /** Emulates a viewport (CSS pixels). */
  viewport(width: number, height: number, mobile?: boolean): Promise<void>;
  /** Writes a PNG screenshot of the viewport to `path`. */
  screenshot(path: string): Promise<void>;
}

/** A running browser. */
export interface Browser extends AsyncDisposable {
  /** Opens a new blank tab and attaches to it. */
  newPage(): Promise<Page>;
  /** Closes the connection, kills Chromium, removes its profile. */
  close(): Promise<void>;
}

function _withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  return withTimeout(promise, ms, `timed out after ${ms} ms: ${what}`);
}

/**
 * Starts headless Chromium with a fresh profile and connects to it. Throws
 * a clear error when Chromium is not installed.
 */
export async function launch(): Promise<Browser> {
  const binary = findChromium();
  const profile = await Deno.makeTempDir({ prefix: "x-serve-chromium-" });
  const child = new Deno.Command(binary, {
    args: [..._FLAGS, `--user-data-dir=${profile}`, "about:blank"],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const { promise: wsUrl, resolve: resolveUrl } = Promise.withResolvers<
    string
  >();
  const pump = (async () => {
    for await (
      const chunk of child.stderr.pipeThrough(new TextDecoderStream())
    ) {
      log += chunk;
      const url = /DevTools listening on (ws:\/\/\S+)/.exec(log)?.[1];
      if (url) resolveUrl(url);
    }
  })();
  let ws: WebSocket | undefined;
  let closed = false;
  const pending = new Map<
    number,
    { resolve(v: unknown): void; reject(e: Error): void; method: string }
  >();
  const listeners = new Set<
    { method: string; session: string | undefined; fn: _Listener }
  >();
  let nextId = 1;

  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    if (ws && ws.readyState === WebSocket.OPEN) {
      // Ask Chromium to quit (it then reaps its own helper processes).
      ws.send(JSON.stringify({ id: nextId++, method: "Browser.close" }));
      const done = new Promise((r) => ws!.addEventListener("close", r));
      await _withTimeout(done, 2_000, "WebSocket close").catch(() => {});
      if (ws.readyState !== WebSocket.CLOSED) ws.close();
      await _withTimeout(child.status, 3_000, "chromium exit").catch(() => {});
    }
    // Whatever is left (a hung browser, a failed start) is killed.
    for (const pid of [child.pid, ...descendants(child.pid)]) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await child.status;
    await pump.catch(() => {});
    for (const p of pending.values()) p.reject(new Error("browser closed"));
    pending.clear();
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }

  function send<T>(
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
  ): Promise<T> {
    if (!ws || closed) return Promise.reject(new Error("browser closed"));
    const id = nextId++;
    const message = { id, method, params, ...(sessionId ? { sessionId } : {}) };
    const reply = new Promise<T>((resolve, reject) => {
      pending.set(id, {
        resolve: resolve as (v: unknown) => void,
        reject,
        method,
      });
    });
    ws.send(JSON.stringify(message));
    return _withTimeout(reply, 15_000, method);
  }

  function waitFor(
    method: string,
    session: string | undefined,
    timeout: number,
  ): Promise<Record<string, unknown>> {
    let entry: (typeof listeners extends Set<infer E> ? E : never) | undefined;
    const event = new Promise<Record<string, unknown>>((resolve) => {
      entry = {
        method,
        session,
        fn: (params) => {
          listeners.delete(entry!);
          resolve(params);
        },
      };
      listeners.add(entry);
    });
    return _withTimeout(event, timeout, `waiting for ${method}`).finally(() =>
      listeners.delete(entry!)
    );
  }

  try {
    const status = child.status.then((s) => {
      throw new Error(`chromium exited (${s.code}) before DevTools:\n${log}`);
    });
    const url = await _withTimeout(
      Promise.race([wsUrl, status]),
      15_000,
      `chromium DevTools endpoint\n${log}`,
    );
    status.catch(() => {});
    ws = new WebSocket(url);
    ws.addEventListener("message", (event) => {
      const message = JSON.parse(String(event.data));
      if (message.id !== undefined) {
        const p = pending.get(message.id);
        if (!p) return;
        pending.delete(message.id);
        if (message.error) {
          p.reject(
            new Error(`${p.method}: ${JSON.stringify(message.error)}`),
          );
        } else p.resolve(message.result);
        return;
      }
      for (const l of [...listeners]) {
        if (l.method === message.method && l.session === message.sessionId) {
          l.fn(message.params ?? {});
        }
      }
    });
    await _withTimeout(
      new Promise((resolve, reject) => {
        ws!.addEventListener("open", resolve, { once: true });
        ws!.addEventListener("error", () => reject(new Error("ws error")), {
          once: true,
        });
      }),
      10_000,
      "DevTools WebSocket",
    );
  } catch (error) {
    await close();
    throw error;
  }

  async function newPage(): Promise<Page> {
    const { targetId } = await send<{ targetId: string }>(
      "Target.createTarget",
      { url: "about:blank" },
    );
    const { sessionId } = await send<{ sessionId: string }>(
      "Target.attachToTarget",
      { targetId, flatten: true },
    );
    const call = <T>(method: string, params?: Record<string, unknown>) =>
      send<T>(method, params, sessionId);
    await call("Page.enable");
    await call("Runtime.enable");
    return {
      send: call,
      waitFor: (method, timeout = 10_000) =>
        waitFor(method, sessionId, timeout),
      async goto(url, timeout = 10_000) {
        const loaded = waitFor("Page.loadEventFired", sessionId, timeout);
        const result = await call<{ errorText?: string }>("Page.navigate", {
          url,
        });
        if (result.errorText) {
          loaded.catch(() => {});
          throw new Error(`navigation to ${url} failed: ${result.errorText}`);
        }
        await loaded;
      },
      async evaluate<T>(expression: string): Promise<T> {
        const result = await call<{
          result: { value?: unknown };
          exceptionDetails?: { text: string; exception?: unknown };
        }>("Runtime.evaluate", {
          expression,
          returnByValue: true,
          awaitPromise: true,
        });
        if (result.exceptionDetails) {
          throw new Error(
            `evaluate failed: ${JSON.stringify(result.exceptionDetails)}`,
          );
        }
        return result.result.value as T;
      },
      async viewport(width, height, mobile = false) {
        await call("Emulation.setDeviceMetricsOverride", {
          width,
          height,
          deviceScaleFactor: mobile ? 2 : 1,
          mobile,
        });
      },
      async screenshot(path) {
        const { data } = await call<{ data: string }>(
          "Page.captureScreenshot",
          { format: "png" },
        );
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        await Deno.writeFile(path, bytes);
      },
    };
  }

  return { newPage, close, [Symbol.asyncDispose]: close };
}
