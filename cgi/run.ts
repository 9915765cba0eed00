/**
 * Running one CGI script: {@linkcode runScript} spawns it in its own process
 * group, pumps stdin, stdout and stderr concurrently, enforces the timeout,
 * kills the group when the client leaves, and parses the output.
 *
 * @module
 */

import { HttpError } from "../server/errors.ts";
import type { LogFn } from "../server/types.ts";
import { pumpLines } from "./lines.ts";
import { killGroup, spawnInGroup } from "./process.ts";
import { type CgiResponse, parseCgiResponse } from "./response.ts";

/** Options of {@linkcode runScript}. */
export interface RunScriptOptions {
  /**
   * Arguments of the program (never taken from the request).
   * @default {[]}
   */
  args?: string[];
  /**
   * The working directory (RFC 3875 §7.2: the script's directory).
   * @default {undefined} (the server's)
   */
  cwd?: string;
  /**
   * The script's complete environment.
   * @default {{}}
   */
  env?: Record<string, string>;
  /**
   * The body for stdin (exactly `CONTENT_LENGTH` bytes), or `null`.
   * @default {null}
   */
  stdin?: ReadableStream<Uint8Array> | null;
  /**
   * How long (ms) any single wait may last: the script silent while the
   * server waits for its output (or for its exit after the output ended),
   * or the client not taking the bytes already read (a client that stops
   * reading without closing). Then the process group is killed; before the
   * header block that is a 504, after it the response is cut off.
   * @default {60000}
   */
  timeoutMs?: number;
  /**
   * How long (ms) a group gets between SIGTERM and SIGKILL.
   * @default {2000}
   */
  killGraceMs?: number;
  /**
   * Cap on the header block, in bytes.
   * @default {65536}
   */
  maxHeaderBytes?: number;
  /**
   * Parse the output as an `nph-` response (own status line).
   * @default {false}
   */
  nph?: boolean;
  /**
   * Aborts the script (kills its group) until the response is returned:
   * pass the request's signal so a client that leaves early stops it.
   * After that, cancelling the body does the same.
   * @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * Where stderr lines and failures go.
   * @default {() => {}}
   */
  log?: LogFn;
  /**
   * The tag for log lines (e.g. the script's URL path).
   * @default {"cgi"}
   */
  tag?: string;
  /**
   * How many bytes of stderr are logged per run; the rest is drained and
   * counted.
   * @default {65536}
   */
  maxStderrBytes?: number;
}

/** A script run whose header block was read. */
export interface ScriptRun {
  /** The parsed response; its body streams the rest of the output. */
  response: CgiResponse;
  /** Settles once the process exited and all pipes were drained. */
  finished: Promise<void>;
}

/**
 * The reason to cancel a script's body with when the body is not wanted
 * (HEAD, a local redirect): the script is then left to end on its own
 * (within the timeout) instead of being killed as for a client that left.
 *
 * @example Discarding a body
 * ```ts
 * import { DISCARD, runScript } from "./run.ts";
 *
 * const run = await runScript("/bin/sh", { args: ["-c", 'printf "Status: 204\n\nx"'] });
 * await run.response.body.cancel(DISCARD);
 * await run.finished;
 * ```
 */
export const DISCARD: unique symbol = Symbol("discard");

class _ScriptTimeout extends Error {
  override name = "ScriptTimeout";
}

/**
 * How long (ms) the server still drains stdin/stderr after the script exited
 * and its stdout ended: a background child that keeps a pipe open is then
 * killed with the group instead of holding the run (and its slot) forever.
 */
const _PIPE_GRACE_MS = 1000;

/**
 * Runs `program` as a CGI script and waits for its header block.
 *
 * - The process starts in its own process group with a cleared environment
 *   (only `env`), in `cwd`, with `args` (never from the query string).
 * - stdin gets `stdin` (then EOF), while stdout and stderr are read
 *   concurrently: a script echoing a large body cannot deadlock. stderr
 *   goes to `log`, never to the client.
 * - The body streams with backpressure: the script is only read as fast as
 *   the client takes the bytes.
 * - While the server waits on the script for more than `timeoutMs`, while
 *   the client takes no byte of the body for `timeoutMs`, or
 *   when `signal` aborts (before the response is returned) or the body is
 *   cancelled (client gone), the whole group gets SIGTERM, then SIGKILL.
 * - Once the script exited and its stdout ended, stdin and stderr get
 *   1 s more; a background child still holding them open is then killed
 *   with the group, so `finished` always settles.
 * - A script that exits non-zero (or is killed) after its header block
 *   makes the body stream error, so the response is cut off, not ended
 *   cleanly.
 *
 * Throws 504 on timeout before the header block, 502 for invalid output
 * or a script that ended before its header block, 502 when it cannot be
 * started.
 *
 * @example Running a shell script
 * ```ts
 * import { runScript } from "./run.ts";
 * import assert from "node:assert/strict";
 *
 * const run = await runScript("/bin/sh", {
 *   args: ["-c", 'printf "Content-Type: text/plain\\n\\n%s" "$GREETING"'],
 *   env: { GREETING: "hello" },
 * });
 * assert.equal(run.response.status, 200);
 * assert.equal(await new Response(run.response.body).text(), "hello");
 * await run.finished;
 * ```
 *
 * @param program The executable or interpreter.
 * @param options Arguments, environment, body, limits and logging.
 * @returns The parsed response and a promise for the end of the process.
 */
export async function runScript(
  program: string,
  options: RunScriptOptions = {},
): Promise<ScriptRun> {
  const {
    args = [],
    cwd,
    env = {},
    stdin = null,
    timeoutMs = 60_000,
    killGraceMs = 2000,
    maxHeaderBytes = 65536,
    nph = false,
    signal,
    log = () => {},
    tag = "cgi",
    maxStderrBytes = 65536,
  } = options;

  if (signal?.aborted) {
    await stdin?.cancel().catch(() => {});
    throw new HttpError(502, `${tag}: client left before the script started`);
  }
  let child: Deno.ChildProcess;
  try {
    child = spawnInGroup(program, { args, cwd, env, stdin: stdin !== null });
  } catch (error) {
    await stdin?.cancel().catch(() => {});
    throw new HttpError(502, `${tag}: cannot start ${program}`, {
      cause: error,
    });
  }

  let killing: Promise<void> | undefined;
  const kill = (why: string): Promise<void> => {
    if (!killing) {
      log("warn", `${tag}: ${why}: killing its process group`);
      killing = killGroup(child, killGraceMs).catch((error) => {
        log("error", `${tag}: cannot kill process group: ${error}`);
      });
    }
    return killing;
  };

  const stdinAbort = new AbortController();
  const stderrAbort = new AbortController();
  const stdinDone = stdin === null
    ? Promise.resolve()
    : stdin.pipeTo(child.stdin, { signal: stdinAbort.signal }).catch(() => {
      // The script exited or closed stdin without reading all of it: fine.
    });
  const stderrDone = pumpLines(
    child.stderr,
    (line) => log("warn", `${tag}: stderr: ${line}`),
    {
      maxBytes: maxStderrBytes,
      maxLineLength: maxStderrBytes,
      signal: stderrAbort.signal,
    },
  ).then((dropped) => {
    if (dropped) {
      log("warn", `${tag}: stderr: ${dropped} more bytes not logged`);
    }
  });
  const status = child.status;
  let stdoutEnded!: () => void;
  const stdoutDone = new Promise<void>((resolve) => stdoutEnded = resolve);

  // Waits on `promise`, at most timeoutMs; on timeout, kills the group.
  const watched = <T>(promise: Promise<T>): Promise<T> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    return Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          kill(`no output for ${timeoutMs} ms`);
          reject(
            new _ScriptTimeout(
              `${tag}: timed out after ${timeoutMs} ms of silence`,
            ),
          );
        }, timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
  };

  const reader = child.stdout.getReader();
  let headersDone = false;
  // Armed while a chunk waits for the client to take it (no pull pending):
  // a client that stops reading must not keep the script blocked forever.
  let stallTimer: ReturnType<typeof setTimeout> | undefined;
  const output = new ReadableStream<Uint8Array>({
    async pull(controller) {
      clearTimeout(stallTimer);
      try {
        const { value, done } = await watched(reader.read());
        if (!done) {
          controller.enqueue(value);
          stallTimer = setTimeout(() => {
            kill(`the client took no bytes for ${timeoutMs} ms`);
            controller.error(
              new Error(`${tag}: client stalled (response cut off)`),
            );
            reader.cancel().catch(() => {});
            stdoutEnded();
          }, timeoutMs);
          return;
        }
        stdoutEnded();
        const exit = await watched(status);
        if (exit.success) {
          controller.close();
        } else {
          const how = exit.signal
            ? `killed by ${exit.signal}`
            : `exited with code ${exit.code}`;
          log("error", `${tag}: ${how}`);
          controller.error(
            new Error(
              `${tag}: ${how}${headersDone ? " (response cut off)" : ""}`,
            ),
          );
        }
      } catch (error) {
        reader.cancel().catch(() => {});
        stdoutEnded();
        controller.error(error);
      }
    },
    cancel(reason) {
      clearTimeout(stallTimer);
      stdoutEnded();
      // The client left, the output was invalid, or the body is discarded
      // (HEAD, local redirect): then the script may end on its own.
      if (reason === DISCARD) watched(status).catch(() => {});
      else {kill(
          reason instanceof HttpError ? "invalid output" : "client went away",
        );}
      return reader.cancel().catch(() => {});
    },
  }, { highWaterMark: 0 });

  const onAbort = (): void => void kill("client went away before the response");
  signal?.addEventListener("abort", onAbort, { once: true });

  // Once the script exited and its stdout ended, a background child that
  // keeps stdin or stderr open gets a short grace, then dies with the group.
  const pipesDone = Promise.all([status, stdoutDone]).then(async () => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = await Promise.race([
      Promise.all([stdinDone, stderrDone]).then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), _PIPE_GRACE_MS);
      }),
    ]);
    clearTimeout(timer);
    if (late) {
      kill("its pipes stayed open after it exited");
      stdinAbort.abort();
      stderrAbort.abort();
      await Promise.all([stdinDone, stderrDone]);
    }
  });

  const finished = Promise.allSettled([status, pipesDone]).then(
    async () => {
      await killing;
    },
  );

  try {
    const response = await parseCgiResponse(output, { maxHeaderBytes, nph });
    headersDone = true;
    return { response, finished };
  } catch (error) {
    if (error instanceof _ScriptTimeout) {
      await finished;
      throw new HttpError(504, error.message, { cause: error });
    }
    if (!killing && !(error instanceof HttpError)) {
      kill("failed before its header block");
    }
    await watched(status).catch(() => {});
    await finished;
    if (error instanceof HttpError) {
      throw new HttpError(error.status, `${tag}: ${error.message}`, {
        headers: error.headers,
      });
    }
    throw new HttpError(502, `${tag}: no valid header block`, { cause: error });
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}
