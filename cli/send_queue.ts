/**
 * The send timeout's view of the kernel (Linux): how many bytes each TCP
 * socket still has to deliver (`/proc/net/tcp`), and whether a response's
 * queue has stood still for the whole timeout.
 *
 * @module
 */

/**
 * Adds the send queues found in the text of `/proc/net/tcp` (or `tcp6`) to
 * `queues`, each socket twice: keyed by `localPort:remotePort`, and by
 * {@linkcode _sendQueueKey} (the remote address too). Sockets waiting out a
 * close (`TIME_WAIT`, `CLOSE`) and listeners are left out. A key met twice
 * with different queues (two client addresses on the same ports, or a
 * socket that changed while the kernel printed the table page by page) is
 * `NaN`: unknown.
 */
export function _parseSendQueues(
  text: string,
  queues: Map<string, number>,
): void {
  const put = (key: string, tx: number): void => {
    const seen = queues.get(key);
    queues.set(key, seen === undefined || seen === tx ? tx : NaN);
  };
  for (const line of text.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 5 || _CLOSED.has(fields[3]!)) continue;
    const [, localPort = ""] = fields[1]!.split(":");
    const [remoteHex = "", remotePort = ""] = fields[2]!.split(":");
    const local = parseInt(localPort, 16);
    const remote = parseInt(remotePort, 16);
    const tx = parseInt(fields[4]!.split(":")[0]!, 16);
    put(`${local}:${remote}`, tx);
    put(`${remoteHex}:${remote}:${local}`, tx);
  }
}

/** States with nothing left to send to a client: TIME_WAIT, CLOSE, LISTEN. */
const _CLOSED = new Set(["06", "07", "0A"]);

/**
 * The key of a connection from `client` (Deno's `remoteAddr.hostname`) and
 * `clientPort` to `serverPort` in {@linkcode _parseSendQueues}'s map, or
 * `undefined` when the address cannot be written as `/proc` does. The
 * kernel prints an address as 32-bit words in this machine's byte order:
 * `127.0.0.1` is `0100007F` on little-endian machines.
 */
export function _sendQueueKey(
  client: string,
  clientPort: number,
  serverPort: number,
): string | undefined {
  const bytes = _addressBytes(client);
  if (bytes === undefined) return undefined;
  let hex = "";
  for (let word = 0; word < bytes.length; word += 4) {
    const order = _LITTLE_ENDIAN ? [3, 2, 1, 0] : [0, 1, 2, 3];
    for (const i of order) {
      hex += bytes[word + i]!.toString(16).padStart(2, "0").toUpperCase();
    }
  }
  return `${hex}:${clientPort}:${serverPort}`;
}

const _LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The 4 or 16 bytes of an IPv4 or IPv6 address (a zone is ignored). */
function _addressBytes(address: string): number[] | undefined {
  const v4 = (text: string): number[] | undefined => {
    const parts = text.split(".");
    if (parts.length !== 4) return undefined;
    const bytes = parts.map(Number);
    return bytes.every((b, i) => /^\d{1,3}$/.test(parts[i]!) && b <= 255)
      ? bytes
      : undefined;
  };
  if (!address.includes(":")) return v4(address);
  let text = address.replace(/%.*$/, "");
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".", lastColon)) {
    const four = v4(text.slice(lastColon + 1));
    if (four === undefined) return undefined;
    tail = four;
    text = text.slice(0, lastColon + 1) + "0:0";
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (part: string) => part === "" ? [] : part.split(":");
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [
    ...head,
    ...Array(halves.length === 2 ? missing : 0).fill("0"),
    ...rest,
  ];
  const bytes: number[] = [];
  for (const group of all) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return undefined;
    const n = parseInt(group, 16);
    bytes.push(n >> 8, n & 0xff);
  }
  if (tail.length) bytes.splice(12, 4, ...tail);
  return bytes;
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
  /** When a sample last told its queue (ms; 0: never). */
  seen?: number;
}

/**
 * Longest stretch of samples that cannot tell a response's queue (missing
 * or ambiguous) that the wait runs through; after a longer one the queue
 * may have moved and come back, and the wait starts again.
 */
export const _MAX_UNKNOWN_MS = 5_000;

/**
 * Takes one sample (`queue`: bytes the socket still has to deliver, from
 * {@linkcode _sendQueues}) and says whether the queue has stood still, and
 * not empty, for `timeoutMs`. An empty queue (the client took everything)
 * or one that moved restarts the wait. A sample that cannot tell — the
 * socket missing from the table or ambiguous (`NaN`) — neither restarts it
 * nor ends it: `/proc/net/tcp` is printed page by page while sockets come
 * and go, so one sample in a busy second can skip or repeat a line. After
 * more than {@linkcode _MAX_UNKNOWN_MS} of such samples the next one that
 * tells restarts the wait.
 */
export function _queueStill(
  watch: _QueueWatch,
  queue: number | undefined,
  now: number,
  timeoutMs: number,
): boolean {
  if (queue === undefined || Number.isNaN(queue)) return false;
  const gap = watch.seen !== undefined && watch.seen > 0 &&
    now - watch.seen > _MAX_UNKNOWN_MS;
  watch.seen = now;
  if (queue === 0 || queue !== watch.queue || gap) {
    watch.queue = queue;
    watch.still = now;
    return false;
  }
  return now - watch.still >= timeoutMs;
}
