import assert from "node:assert/strict";
import {
  _MAX_UNKNOWN_MS,
  _parseSendQueues,
  _queueStill,
  type _QueueWatch,
  _sendQueueKey,
  _sendQueues,
} from "../cli/send_queue.ts";

const header =
  "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
/** One `/proc/net/tcp` line: ports and send queue as the kernel prints them (hex). */
function line(
  local: number,
  remote: number,
  tx: number,
  { state = "01", remoteAddress = "0100007F" } = {},
): string {
  const hex = (n: number, w: number) =>
    n.toString(16).toUpperCase().padStart(w, "0");
  return `   0: 0100007F:${hex(local, 4)} ${remoteAddress}:${
    hex(remote, 4)
  } ${state} ${
    hex(tx, 8)
  }:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 20 4 30 10 -1\n`;
}

Deno.test("_parseSendQueues() keys sockets by local and remote port with their send queue", () => {
  const queues = new Map<string, number>();
  _parseSendQueues(
    header + line(8000, 40001, 0x3a0000) + line(40001, 8000, 0),
    queues,
  );
  assert.deepEqual(
    [...queues],
    [
      ["8000:40001", 0x3a0000],
      ["0100007F:40001:8000", 0x3a0000],
      ["40001:8000", 0],
      ["0100007F:8000:40001", 0],
    ],
  );
});

Deno.test("_parseSendQueues() tells two clients on the same ports apart by address, and leaves out closed sockets", () => {
  const queues = new Map<string, number>();
  _parseSendQueues(
    header + line(8000, 40001, 500) +
      line(8000, 40001, 700, { remoteAddress: "0200007F" }) +
      // A TIME_WAIT and a listener with the same ports say nothing.
      line(8000, 40002, 0, { state: "06" }) + line(8000, 40002, 900) +
      line(8000, 40003, 0, { state: "0A" }),
    queues,
  );
  assert.ok(Number.isNaN(queues.get("8000:40001")));
  assert.equal(queues.get("0100007F:40001:8000"), 500);
  assert.equal(queues.get("0200007F:40001:8000"), 700);
  assert.equal(queues.get("8000:40002"), 900);
  assert.equal(queues.get("8000:40003"), undefined);
});

Deno.test({
  name: "_sendQueueKey() writes client addresses as /proc/net/tcp and tcp6 do",
  ignore: new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1,
  fn() {
    assert.equal(
      _sendQueueKey("127.0.0.1", 40001, 8000),
      "0100007F:40001:8000",
    );
    assert.equal(
      _sendQueueKey("::1", 40001, 8000),
      "00000000000000000000000001000000:40001:8000",
    );
    assert.equal(
      _sendQueueKey("::ffff:127.0.0.1", 1, 2),
      "0000000000000000FFFF00000100007F:1:2",
    );
    assert.equal(
      _sendQueueKey("2001:db8::1%eth0", 1, 2),
      "B80D0120000000000000000001000000:1:2",
    );
    for (
      const bad of ["", "localhost", "1.2.3", "1.2.3.256", "1::2::3", "12345::"]
    ) {
      assert.equal(_sendQueueKey(bad, 1, 2), undefined, bad);
    }
  },
});

Deno.test("_parseSendQueues() keeps a line printed twice and marks two different sockets on the same ports unknown", () => {
  const queues = new Map<string, number>();
  _parseSendQueues(
    header + line(8000, 40001, 500) + line(8000, 40001, 500) +
      line(8000, 40002, 500) + line(8000, 40002, 700),
    queues,
  );
  assert.equal(queues.get("8000:40001"), 500);
  assert.ok(Number.isNaN(queues.get("8000:40002")));
});

/** Samples every second from `from` to `to` (ms); whether any said "still". */
function samples(
  watch: _QueueWatch,
  from: number,
  to: number,
  queue: (t: number) => number | undefined,
): boolean {
  let still = false;
  for (let t = from; t <= to; t += 1_000) {
    still = _queueStill(watch, queue(t), t, 60_000) || still;
  }
  return still;
}

Deno.test("_queueStill() ends the wait only once the queue stood still, and not empty, for the whole timeout", () => {
  const watch: _QueueWatch = { queue: 0, still: 0 };
  assert.equal(samples(watch, 1_000, 60_000, () => 9000), false); // 59 s
  assert.equal(_queueStill(watch, 8000, 61_000, 60_000), false); // it moved
  assert.equal(samples(watch, 62_000, 120_000, () => 8000), false);
  assert.equal(_queueStill(watch, 8000, 121_000, 60_000), true);
  // An empty queue: the client took everything, the wait starts again.
  const empty: _QueueWatch = { queue: 0, still: 0 };
  assert.equal(samples(empty, 1_000, 90_000, () => 0), false);
});

Deno.test("_queueStill() neither restarts nor ends the wait on a sample that misses the socket or cannot tell it apart", () => {
  const watch: _QueueWatch = { queue: 0, still: 0 };
  assert.equal(_queueStill(watch, 9000, 1_000, 60_000), false);
  // Every other sample cannot tell: the wait runs on to its end.
  const unknown = (t: number) => (t % 4_000 === 0 ? undefined : NaN);
  const queue = (t: number) => (t % 2_000 === 0 ? unknown(t) : 9000);
  assert.equal(samples(watch, 2_000, 60_000, queue), false);
  assert.equal(watch.still, 1_000);
  assert.equal(_queueStill(watch, undefined, 61_000, 60_000), false);
  assert.equal(_queueStill(watch, 9000, 61_000, 60_000), true);
});

Deno.test("_queueStill() starts the wait again after a long stretch of samples that cannot tell", () => {
  // The queue may have moved and come back meanwhile.
  const watch: _QueueWatch = { queue: 0, still: 0 };
  const after = 1_000 + _MAX_UNKNOWN_MS + 1_000;
  const known = (t: number) => t === 1_000 || t === after;
  assert.equal(
    samples(watch, 1_000, after, (t) => known(t) ? 9000 : NaN),
    false,
  );
  assert.equal(watch.still, after);
  assert.equal(
    samples(watch, after + 1_000, after + 59_000, () => 9000),
    false,
  );
  assert.equal(_queueStill(watch, 9000, after + 60_000, 60_000), true);
});

/** Whether this machine has an IPv6 loopback. */
function _hasIpv6(): boolean {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

for (
  const [listen, connect] of [["127.0.0.1", "127.0.0.1"], ["::", "::1"], [
    "::",
    "127.0.0.1",
  ]]
) {
  Deno.test({
    name:
      `_sendQueues() sees the bytes a client that reads nothing leaves in a real socket's send queue (${connect} to ${listen})`,
    ignore: Deno.build.os !== "linux" || (listen === "::" && !_hasIpv6()),
    async fn() {
      using listener = Deno.listen({ hostname: listen, port: 0 });
      const port = (listener.addr as Deno.NetAddr).port;
      const client = await Deno.connect({ hostname: connect, port });
      using server = await listener.accept();
      const remote = server.remoteAddr as Deno.NetAddr;
      // Write until the kernel takes no more (the client never reads).
      const chunk = new Uint8Array(65536);
      let written = 0;
      let pending: Promise<number>;
      for (;;) {
        pending = server.write(chunk);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const n = await Promise.race([
          pending,
          new Promise<null>((r) => timer = setTimeout(() => r(null), 200)),
        ]);
        clearTimeout(timer);
        if (n === null) break;
        written += n;
      }
      const queues = _sendQueues();
      assert.ok(queues);
      const queue = queues.get(`${port}:${remote.port}`);
      assert.ok(
        queue !== undefined && queue > 0 && queue < written,
        `${queue}`,
      );
      assert.equal(queues.get(`${remote.port}:${port}`), 0);
      // The same socket by its client's address, as Deno reports it
      // (`::ffff:127.0.0.1` for IPv4 on a dual-stack listener).
      const key = _sendQueueKey(remote.hostname, remote.port, port);
      assert.ok(key !== undefined, remote.hostname);
      assert.equal(queues.get(key), queue);
      client.close();
      // The blocked write settles (with an error) once the client is gone.
      await pending.catch(() => {});
    },
  });
}
