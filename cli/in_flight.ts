/**
 * The requests of one server, for its shutdown: {@linkcode inFlight}
 * counts them and can cut their streamed bodies once the grace is over.
 * Internal to the CLI (not exported from `mod.ts`).
 *
 * @module
 */

import { bodyKind } from "../server/body_kind.ts";
import type { Handler } from "../server/types.ts";

/**
 * Streamed bodies announced at most this long are handed to Deno as they
 * are (a file's stream keeps Deno's own copy loop): they fit in the socket
 * buffers, so shutdown has nothing of theirs to cancel.
 */
const _CUT_ABOVE = 64 * 1024;

/**
 * Once the grace is over, how long the server waits for the killed
 * scripts, the cancelled bodies and FastCGI to be done with; then the
 * process exits anyway (e.g. a request still waiting on an external
 * FastCGI backend).
 */
export const FORCE_WAIT_MS = 5000;

/** The requests of one server: counted, and their bodies cancellable. */
export interface InFlight {
  /** The app's handler, counting its requests. */
  handler: Handler;
  /** Requests not finished yet (their response not wholly sent). */
  readonly count: number;
  /**
   * Cancels the source of every open streamed body, as for a client that
   * left (a CGI script's group is killed, a FastCGI request aborted, a
   * file closed), and of each one that comes later; resolves once those
   * cancels and the handler calls under way have settled. The connections
   * themselves stay open until the process exits (Deno.serve has no way to
   * close them once `shutdown()` was called).
   */
  cut(): Promise<void>;
}

/**
 * Wraps `app`: each request is in flight until `info.completed` settles
 * (without it, as through the TLS front, until its body ended). With
 * `relay` (CGI on: a cancel kills a script, which the exit must wait for)
 * each streamed body of unknown length, and without `completed` each one
 * larger than {@linkcode _CUT_ABOVE}, is relayed through a stream whose source
 * {@linkcode InFlight.cut} can cancel; otherwise bodies go to Deno as
 * they are (a file's stream keeps Deno's own copy loop) and the process
 * exit alone cuts them. Strings and bytes are always left alone (Deno
 * sends them whole, on its fast path).
 */
export function inFlight(app: Handler, relay: boolean): InFlight {
  let count = 0;
  let cutting = false;
  const open = new Set<() => Promise<void>>();
  const calls = new Set<Promise<unknown>>();
  const cuts: Promise<void>[] = [];
  const handler: Handler = async (req, info) => {
    count++;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      count--;
    };
    // Typed as always there; a hand-made info may lack it.
    const completed: Promise<void> | undefined = info?.completed;
    completed?.then(finish, finish);
    const call = app(req, info);
    if (relay) {
      calls.add(call);
      call.catch(() => {}).finally(() => calls.delete(call));
    }
    let res: Response;
    try {
      res = await call;
    } catch (error) {
      finish();
      throw error;
    }
    const kind = bodyKind(res);
    const length = kind === "stream" || kind === undefined
      ? Number(res.headers.get("content-length") ?? Infinity)
      : 0;
    // A body of known length (a static file) keeps Deno's native copy:
    // CGI output has none (its scripts die with their group anyway).
    if (
      (completed && (!relay || Number.isFinite(length))) ||
      length <= _CUT_ABOVE || res.body === null
    ) {
      if (!completed) finish();
      return res;
    }
    const body = _cuttable(res.body, open, completed ? () => {} : finish);
    if (cutting) cuts.push(body.cut());
    return new Response(body.stream, {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
  };
  return {
    handler,
    get count() {
      return count;
    },
    async cut() {
      cutting = true;
      for (const cut of open) cuts.push(cut());
      // A script waiting for its header block answers once it was killed.
      await Promise.allSettled([...calls]);
      await Promise.all(cuts);
    },
  };
}

/** `source` relayed chunk by chunk (no read-ahead); `cut` cancels it. */
function _cuttable(
  source: ReadableStream<Uint8Array>,
  open: Set<() => Promise<void>>,
  onEnd: () => void,
): { stream: ReadableStream<Uint8Array>; cut: () => Promise<void> } {
  const reader = source.getReader();
  let ended = false;
  const end = (): boolean => {
    if (ended) return false;
    ended = true;
    open.delete(cut);
    onEnd();
    return true;
  };
  // The relay is left waiting (not errored: Deno.serve would log a stack
  // trace); the process exits right after.
  const cut = (): Promise<void> =>
    end() ? reader.cancel(_SHUTDOWN).catch(() => {}) : Promise.resolve();
  open.add(cut);
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done } = await reader.read();
        if (ended) return; // cut meanwhile
        if (!done) return controller.enqueue(value);
        end();
        controller.close();
      } catch (error) {
        if (end()) controller.error(error);
      }
    },
    cancel(reason) {
      end();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return { stream, cut };
}

/** The reason open bodies are cancelled with past the shutdown grace. */
const _SHUTDOWN = new Error("the server shut down: response cut off");
