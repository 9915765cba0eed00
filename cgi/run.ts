/**
 * Running one CGI script: {@linkcode runScript} spawns it in its own process
 * group, pumps stdin, stdout and stderr concurrently, enforces the timeout,
 * kills the group when the client leaves or the server shuts down, ends the
 * output shortly after the script exits, and parses the output.
 *
 * @module
 */

import { HttpError } from "../server/errors.ts";
import type { LogFn } from "../server/types.ts";
import { pumpLines } from "./lines.ts";
import { type PipeReader, pipeReader } from "./pipe_reader.ts";
import type { PosixSpawn, SpawnedChild } from "./posix_spawn.ts";
import { killGroup, spawnInGroup } from "./process.ts";
import { type CgiResponse, parseCgiResponse } from "./response.ts";

/**
 * Options of {@linkcode runScript}.
 *
 * @example A short timeout and a tagged log
 * ```ts
 * import { runScript, type RunScriptOptions } from "./run.ts";
 * import assert from "node:assert/strict";
 *
 * const options: RunScriptOptions = {
 *   args: ["-c", 'printf "Status: 204\\n\\n"'],
 *   timeoutMs: 5_000,
 *   tag: "cgi /ping",
 *   log: (level, message) => console.error(level, message),
 * };
 * const run = await runScript("/bin/sh", options);
 * assert.equal(run.response.status, 204);
 * await run.response.body.cancel();
 * await run.finished;
 * ```
 */
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
   * Start through this `setsid(1)` instead of a `detached` spawn (see
   * `findSetsid()` in `cgi/process.ts`): much faster under load.
   * @default {undefined} (detached)
   */
  setsid?: string;
  /**
   * Spawn with this `posix_spawn` (see `openPosixSpawn()` in
   * `cgi/posix_spawn.ts`): one exec, faster than `setsid`.
   * @default {undefined} (`setsid`, else detached)
   */
  posixSpawn?: PosixSpawn;
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
  /**
   * Milliseconds the script's pipes get once the script process itself
   * exited: a background child still holding stdout (or stdin, stderr)
   * open past that is killed with the group, and the response ends with
   * what the script wrote (properly terminated, when the script exited
   * with 0) instead of waiting for `timeoutMs`.
   * @default {1000}
   */
  exitGraceMs?: number;
  /**
   * Kills the script's process group when it aborts, at any point: before
   * the header block (502), while the body streams (the body errors once
   * the group is dead: the response is cut off) or after it (a background
   * child still holding a pipe). Pass the server's shutdown signal. A run
   * asked for once it aborted is not started (503).
   * @default {undefined}
   */
  shutdownSignal?: AbortSignal;
}

/**
 * A script run whose header block was read.
 *
 * @example Waiting for the script to end
 * ```ts
 * import { runScript, type ScriptRun } from "./run.ts";
 * import assert from "node:assert/strict";
 *
 * const run: ScriptRun = await runScript("/bin/sh", {
 *   args: ["-c", 'printf "Content-Type: text/plain\\n\\nok"'],
 * });
 * assert.equal(await new Response(run.response.body).text(), "ok");
 * await run.finished;
 * ```
 */
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

/** What a read of stdout gives when the output is ended while still open. */
const _END: unique symbol = Symbol("end of output");

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
 * - Once the script process exited, its pipes get `exitGraceMs` more; a
 *   background child still holding one open (stdout included) is then
 *   killed with the group, and the body ends with what the script wrote
 *   (a read that then stays silent for `exitGraceMs` more ends it too, for
 *   a child that left the group), so the response and `finished` always
 *   settle shortly after the exit, not at `timeoutMs`.
 * - When `shutdownSignal` aborts, the group is killed whatever the run is
 *   doing; the body then errors (cut off) once the group is dead.
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
  const run = _settings(options);
  const child = await _spawn(program, run);
  const killer = _killer(child, run);
  const watched = _watchdog(run, killer);
  const pumps = _pumpInputs(child, run);
  let headersDone = false;
  // Once the script exited, a pipe still open past the grace: the group is
  // killed, and a silent stdout ends the output.
  const stuck = (): void => {
    void killer.kill("its pipes stayed open after it exited");
    pumps.abort();
    output.orphan();
  };
  const output = _stdout(child, run, {
    killer,
    watched,
    stderrDone: pumps.stderrDone,
    stderrEnded: pumps.stderrEnded,
    headersDone: () => headersDone,
    stuck,
  });
  const onShutdown = (): void =>
    void killer.kill("the server is shutting down");
  run.shutdownSignal?.addEventListener("abort", onShutdown, { once: true });
  const finished = _finished(child.status, output, pumps, killer, {
    exitGraceMs: run.exitGraceMs,
    stuck,
  }).finally(() =>
    run.shutdownSignal?.removeEventListener("abort", onShutdown)
  );
  const onAbort = (): void =>
    void killer.kill("client went away before the response");
  run.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const response = await parseCgiResponse(output.stream, {
      maxHeaderBytes: run.maxHeaderBytes,
      nph: run.nph,
    });
    headersDone = true;
    return { response, finished };
  } catch (error) {
    throw await _headerFailure(
      error,
      child.status,
      finished,
      killer,
      watched,
      run.tag,
    );
  } finally {
    run.signal?.removeEventListener("abort", onAbort);
  }
}

/** The options of {@linkcode runScript} with their defaults applied. */
type _Run =
  & Required<
    Omit<
      RunScriptOptions,
      "cwd" | "signal" | "setsid" | "posixSpawn" | "shutdownSignal"
    >
  >
  & {
    cwd: string | undefined;
    signal: AbortSignal | undefined;
    setsid: string | undefined;
    posixSpawn: PosixSpawn | undefined;
    shutdownSignal: AbortSignal | undefined;
  };

function _settings(options: RunScriptOptions): _Run {
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
    setsid,
    posixSpawn,
    exitGraceMs = 1000,
    shutdownSignal,
  } = options;
  return {
    args,
    cwd,
    env,
    stdin,
    timeoutMs,
    killGraceMs,
    maxHeaderBytes,
    nph,
    signal,
    log,
    tag,
    maxStderrBytes,
    setsid,
    posixSpawn,
    exitGraceMs,
    shutdownSignal,
  };
}

/**
 * Starts the process (502 when it cannot be, or the client already left;
 * 503 once the server is shutting down).
 */
async function _spawn(program: string, run: _Run): Promise<SpawnedChild> {
  if (run.signal?.aborted || run.shutdownSignal?.aborted) {
    await run.stdin?.cancel().catch(() => {});
    throw run.shutdownSignal?.aborted
      ? new HttpError(503, `${run.tag}: the server is shutting down`)
      : new HttpError(502, `${run.tag}: client left before the script started`);
  }
  try {
    return spawnInGroup(program, {
      args: run.args,
      cwd: run.cwd,
      env: run.env,
      stdin: run.stdin !== null,
      setsid: run.setsid,
      posixSpawn: run.posixSpawn,
    });
  } catch (error) {
    await run.stdin?.cancel().catch(() => {});
    throw new HttpError(502, `${run.tag}: cannot start ${program}`, {
      cause: error,
    });
  }
}

/** Kills the script's process group, once, saying why in the log. */
interface _Killer {
  kill(why: string): Promise<void>;
  /** The kill under way, if any. */
  readonly killing: Promise<void> | undefined;
}

function _killer(child: SpawnedChild, run: _Run): _Killer {
  let killing: Promise<void> | undefined;
  return {
    kill(why) {
      if (!killing) {
        run.log("warn", `${run.tag}: ${why}: killing its process group`);
        killing = killGroup(child, run.killGraceMs).catch((error) => {
          run.log("error", `${run.tag}: cannot kill process group: ${error}`);
        });
      }
      return killing;
    },
    get killing() {
      return killing;
    },
  };
}

/** Waits on a promise at most `timeoutMs`; on timeout, kills the group. */
type _Watched = <T>(promise: Promise<T>) => Promise<T>;

function _watchdog(run: _Run, killer: _Killer): _Watched {
  const { timeoutMs, tag } = run;
  return <T>(promise: Promise<T>): Promise<T> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    return Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          killer.kill(`no output for ${timeoutMs} ms`);
          reject(
            new _ScriptTimeout(
              `${tag}: timed out after ${timeoutMs} ms of silence`,
            ),
          );
        }, timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
  };
}

/** stdin fed and stderr logged, concurrently with stdout. */
interface _Pumps {
  /** Settles once both pipes are done. */
  done: Promise<unknown>;
  /** Settles once stderr is (every line of it logged). */
  stderrDone: Promise<unknown>;
  /** Whether `stderrDone` has settled. */
  stderrEnded(): boolean;
  /** Stops both (a background child holds them open). */
  abort(): void;
}

function _pumpInputs(child: SpawnedChild, run: _Run): _Pumps {
  const { stdin, log, tag, maxStderrBytes } = run;
  const abort = new AbortController();
  const stdinDone = stdin === null
    ? Promise.resolve()
    : stdin.pipeTo(child.stdin, { signal: abort.signal }).catch(() => {
      // The script exited or closed stdin without reading all of it: fine.
    });
  const stderrDone = pumpLines(
    child.stderr,
    (line) => log("warn", `${tag}: stderr: ${line}`),
    {
      maxBytes: maxStderrBytes,
      maxLineLength: maxStderrBytes,
      signal: abort.signal,
    },
  ).then((dropped) => {
    if (dropped) {
      log("warn", `${tag}: stderr: ${dropped} more bytes not logged`);
    }
  });
  let stderrEnded = false;
  const ended = () => stderrEnded = true;
  stderrDone.then(ended, ended);
  return {
    done: Promise.all([stdinDone, stderrDone]),
    stderrDone,
    stderrEnded: () => stderrEnded,
    abort: () => abort.abort(),
  };
}

/** What the stdout stream works with besides the child. */
interface _StdoutParts {
  killer: _Killer;
  watched: _Watched;
  /**
   * The end of stderr: the output ends after it or after a brief wait (a
   * background child may hold stderr), so a finished response is a
   * finished run, its last stderr line logged.
   */
  stderrDone: Promise<unknown>;
  /** Whether `stderrDone` has settled (then there is nothing to wait for). */
  stderrEnded: () => boolean;
  headersDone: () => boolean;
  /** Called when a read stays silent once the script is overdue. */
  stuck: () => void;
}

/** The script's stdout as the response stream, and its end. */
interface _Stdout {
  stream: ReadableStream<Uint8Array>;
  /** Resolves once stdout is done with. */
  ended: Promise<void>;
  /**
   * The script exited `exitGraceMs` ago and stdout is still open: a read
   * pending now, or one that then stays silent for `exitGraceMs`, is stuck.
   */
  overdue(): void;
  /**
   * The group was killed for that: a read silent for `exitGraceMs` ends
   * the output (a child that left the group still holds it).
   */
  orphan(): void;
}

/**
 * The script's stdout as the response stream: read only as fast as the
 * client takes it, each wait watched, and errored when the script fails or
 * the client stalls. The end is told (closed or errored) only once a kill
 * under way has finished, so a response ends after its group is gone.
 */
function _stdout(
  child: SpawnedChild,
  run: _Run,
  parts: _StdoutParts,
): _Stdout {
  const { killer, watched, headersDone } = parts;
  const reader = pipeReader(child.stdout);
  let end!: () => void;
  const ended = new Promise<void>((resolve) => end = resolve);
  // Armed while a chunk waits for the client to take it (no pull pending):
  // a client that stops reading must not keep the script blocked forever.
  let stallTimer: ReturnType<typeof setTimeout> | undefined;
  const stall = (controller: ReadableStreamDefaultController): void => {
    killer.kill(`the client took no bytes for ${run.timeoutMs} ms`);
    controller.error(
      new Error(`${run.tag}: client stalled (response cut off)`),
    );
    reader.cancel().catch(() => {});
    end();
  };
  const reads = _exitAwareReads(reader, run.exitGraceMs, parts.stuck);
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      clearTimeout(stallTimer);
      try {
        const result = await watched(reads.read());
        if (result !== _END && !result.done) {
          controller.enqueue(result.value);
          stallTimer = setTimeout(() => stall(controller), run.timeoutMs);
          return;
        }
        if (result === _END) reader.cancel().catch(() => {});
        await killer.killing;
        end();
        const exit = await watched(child.status);
        // Mostly over by now: a timer only when it is not.
        if (!parts.stderrEnded()) await _briefly(parts.stderrDone);
        _endWithExit(controller, exit, run, headersDone());
      } catch (error) {
        reader.cancel().catch(() => {});
        await killer.killing;
        end();
        controller.error(error);
      }
    },
    cancel(reason) {
      clearTimeout(stallTimer);
      end();
      const cancelled = reader.cancel().catch(() => {});
      // The body is discarded (HEAD, local redirect): the script may end
      // on its own. Else the client left or the output was invalid: the
      // cancel settles once the group is gone.
      if (reason === DISCARD) {
        watched(child.status).catch(() => {});
        return cancelled;
      }
      const why = reason instanceof HttpError
        ? "invalid output"
        : "client went away";
      return Promise.all([cancelled, killer.kill(why)]).then(() => {});
    },
  }, { highWaterMark: 0 });
  return { stream, ended, overdue: reads.overdue, orphan: reads.orphan };
}

/** stdout reads that know about the script's exit (see {@linkcode _Stdout}). */
interface _ExitAwareReads {
  read(): Promise<ReadableStreamReadResult<Uint8Array> | typeof _END>;
  overdue(): void;
  orphan(): void;
}

function _exitAwareReads(
  reader: PipeReader,
  graceMs: number,
  stuck: () => void,
): _ExitAwareReads {
  let state: "running" | "overdue" | "orphaned" = "running";
  // The read under way: (re)starts its silence timer.
  let arm: (() => void) | undefined;
  return {
    read() {
      return new Promise((resolve, reject) => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const settle = (): void => {
          clearTimeout(timer);
          arm = undefined;
        };
        arm = () => {
          clearTimeout(timer);
          timer = setTimeout(() => {
            if (state === "orphaned") resolve(_END);
            else stuck();
          }, graceMs);
        };
        reader.read().then((result) => {
          settle();
          resolve(result);
        }, (error) => {
          settle();
          reject(error);
        });
        if (state !== "running") arm();
      });
    },
    overdue() {
      if (state !== "running") return;
      state = "overdue";
      // A read waiting now has had the whole grace already.
      if (arm) stuck();
    },
    orphan() {
      if (state === "orphaned") return;
      state = "orphaned";
      arm?.();
    },
  };
}

/**
 * How long a finished response waits for the end of stderr (its last lines
 * logged before the response ends). Brief: a background child may hold
 * stderr until the exit grace kills it, and the response must not wait
 * for that.
 */
const _STDERR_WAIT_MS = 50;

/** Settles when `done` does, or after {@linkcode _STDERR_WAIT_MS}. */
function _briefly(done: Promise<unknown>): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const waited = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, _STDERR_WAIT_MS);
  });
  return Promise.race([done.catch(() => {}), waited]).finally(() =>
    clearTimeout(timer)
  );
}

/** Closes the output once the script exited cleanly, else errors it. */
function _endWithExit(
  controller: ReadableStreamDefaultController,
  exit: Deno.CommandStatus,
  run: _Run,
  headersDone: boolean,
): void {
  if (exit.success) {
    controller.close();
    return;
  }
  const how = exit.signal
    ? `killed by ${exit.signal}`
    : `exited with code ${exit.code}`;
  run.log("error", `${run.tag}: ${how}`);
  controller.error(
    new Error(`${run.tag}: ${how}${headersDone ? " (response cut off)" : ""}`),
  );
}

/**
 * Settles once the process exited and every pipe was drained. Once the
 * script exited, its pipes get `exitGraceMs`: a background child still
 * holding stdin or stderr then dies with the group (`stuck`), and a stdout
 * still open is marked overdue (stuck as soon as a read waits on it; a
 * client merely slow to take what is buffered is left alone).
 */
function _finished(
  status: Promise<Deno.CommandStatus>,
  output: _Stdout,
  pumps: _Pumps,
  killer: _Killer,
  exit: { exitGraceMs: number; stuck: () => void },
): Promise<void> {
  let pumpsDone = false;
  pumps.done.then(() => pumpsDone = true, () => pumpsDone = true);
  const drained = Promise.all([output.ended, pumps.done]);
  const afterExit = status.then(async () => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = await Promise.race([
      drained.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), exit.exitGraceMs);
      }),
    ]);
    clearTimeout(timer);
    if (late) {
      if (pumpsDone) output.overdue();
      else exit.stuck();
    }
    await drained;
  });
  return Promise.allSettled([status, afterExit]).then(async () => {
    await killer.killing;
  });
}

/**
 * The error for a script that gave no valid header block (504 for a
 * timeout, else 502 or the parser's status), once the script is gone.
 */
async function _headerFailure(
  error: unknown,
  status: Promise<Deno.CommandStatus>,
  finished: Promise<void>,
  killer: _Killer,
  watched: _Watched,
  tag: string,
): Promise<HttpError> {
  if (error instanceof _ScriptTimeout) {
    await finished;
    return new HttpError(504, error.message, { cause: error });
  }
  if (!killer.killing && !(error instanceof HttpError)) {
    killer.kill("failed before its header block");
  }
  await watched(status).catch(() => {});
  await finished;
  if (error instanceof HttpError) {
    return new HttpError(error.status, `${tag}: ${error.message}`, {
      headers: error.headers,
    });
  }
  return new HttpError(502, `${tag}: no valid header block`, { cause: error });
}
