// Waiting in tests (not part of the published package): poll a condition
// with a deadline, retry an assertion, or bound a promise. A test waits for
// the event it expects, never a fixed time followed by an assertion.

/** Options of {@linkcode waitFor} and {@linkcode eventually}. */
export interface PollOptions {
  /** Give up after this many milliseconds. @default {5000} */
  timeoutMs?: number;
  /** Milliseconds between two tries. @default {20} */
  intervalMs?: number;
  /** What is waited for, named in the timeout error. */
  message?: string;
}

function _pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `predicate` until it returns true. Past the deadline it throws
 * `timed out after N ms waiting for MESSAGE`.
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  options: PollOptions = {},
): Promise<void> {
  const { timeoutMs = 5000, intervalMs = 20, message = "a condition" } =
    options;
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${message}`);
    }
    await _pause(intervalMs);
  }
}

/**
 * Runs `assertion` until it stops throwing and returns its result. Past the
 * deadline it throws the assertion's last error (wrapped, as its `cause`,
 * when a `message` names what was waited for).
 */
export async function eventually<T>(
  assertion: () => T | Promise<T>,
  options: PollOptions = {},
): Promise<T> {
  const { timeoutMs = 5000, intervalMs = 20, message } = options;
  const deadline = Date.now() + timeoutMs;
  while (true) {
    try {
      return await assertion();
    } catch (error) {
      if (Date.now() >= deadline) {
        if (message === undefined) throw error;
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${message}`,
          { cause: error },
        );
      }
    }
    await _pause(intervalMs);
  }
}

/**
 * Settles like `promise`, or rejects with `new Error(message)` once
 * `timeoutMs` passed (the promise itself keeps running).
 */
export async function withTimeout<T>(
  promise: Promise<T>,
  timeoutMs: number,
  message: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
