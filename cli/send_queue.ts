/**
 * The send timeout's view of the kernel (Linux): how many bytes each TCP
 * socket still has to deliver (`/proc/net/tcp`), and whether a response's
 * queue has stood still for the whole timeout.
 *
 * @module
 */

/**
 * Adds the send queues found in the text of `/proc/net/tcp` (or `tcp6`) to
 * `queues`, keyed `localPort:remotePort`. A key met twice with different
 * queues (two client addresses on the same ports, or a socket that changed
 * while the kernel printed the table page by page) is `NaN`: unknown.
 */
export function _parseSendQueues(
  text: string,
  queues: Map<string, number>,
): void {
  for (const line of text.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 5) continue;
    const local = parseInt(fields[1]!.split(":").at(-1)!, 16);
    const remote = parseInt(fields[2]!.split(":").at(-1)!, 16);
    const key = `${local}:${remote}`;
    const tx = parseInt(fields[4]!.split(":")[0]!, 16);
    const seen = queues.get(key);
    queues.set(key, seen === undefined || seen === tx ? tx : NaN);
  }
}

/** Send queues of this machine's TCP sockets by `localPort:remotePort`, or `undefined` without `/proc`. */
export function _sendQueues(): Map<string, number> | undefined {
  const queues = new Map<string, number>();
  let found = false;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch {
      continue;
    }
    found = true;
    _parseSendQueues(text, queues);
  }
  return found ? queues : undefined;
}

/** What the send timeout remembers of one sampled response. */
export interface _QueueWatch {
  /** The send queue last sampled. */
  queue: number;
  /** Since when it has not moved (ms). */
  still: number;
}

/**
 * Takes one sample (`queue`: bytes the socket still has to deliver, from
 * {@linkcode _sendQueues}) and says whether the queue has stood still, and
 * not empty, for `timeoutMs`. An empty queue (the client took everything)
 * or one that moved restarts the wait. A sample that cannot tell — the
 * socket missing from the table or ambiguous (`NaN`) — neither restarts it
 * nor ends it: `/proc/net/tcp` is printed page by page while sockets come
 * and go, so one sample in a busy second can skip or repeat a line.
 */
export function _queueStill(
  watch: _QueueWatch,
  queue: number | undefined,
  now: number,
  timeoutMs: number,
): boolean {
  if (queue === undefined || Number.isNaN(queue)) return false;
  if (queue === 0 || queue !== watch.queue) {
    watch.queue = queue;
    watch.still = now;
    return false;
  }
  return now - watch.still >= timeoutMs;
}
