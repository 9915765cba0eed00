import assert from "node:assert/strict";
import {
  _parseSendQueues,
  _queueStill,
  _QueueWatch,
  _sendQueues,
} from "../cli/send_queue.ts";

const header =
  "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
/** One `/proc/net/tcp` line: ports and send queue as the kernel prints them (hex). */
function line(local: number, remote: number, tx: number): string {
  const hex = (n: number, w: number) =>
    n.toString(16).toUpperCase().padStart(w, "0");
  return `   0: 0100007F:${hex(local, 4)} 0100007F:${hex(remote, 4)} 01 ${
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
    [["8000:40001", 0x3a0000], ["40001:8000", 0]],
  );
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

Deno.test("_queueStill() ends the wait only once the queue stood still, and not empty, for the whole timeout", () => {
  const watch: _QueueWatch = { queue: 0, still: 0 };
  assert.equal(_queueStill(watch, 9000, 1_000, 60_000), false); // first sample
  assert.equal(_queueStill(watch, 9000, 60_999, 60_000), false);
  assert.equal(_queueStill(watch, 8000, 61_000, 60_000), false); // it moved
  assert.equal(_queueStill(watch, 8000, 120_999, 60_000), false);
  assert.equal(_queueStill(watch, 8000, 121_000, 60_000), true);
  // An empty queue: the client took everything, the wait starts again.
  const empty: _QueueWatch = { queue: 0, still: 0 };
  assert.equal(_queueStill(empty, 0, 1_000, 60_000), false);
  assert.equal(_queueStill(empty, 0, 90_000, 60_000), false);
});

Deno.test("_queueStill() neither restarts nor ends the wait on a sample that misses the socket or cannot tell it apart", () => {
  const watch: _QueueWatch = { queue: 0, still: 0 };
  assert.equal(_queueStill(watch, 9000, 1_000, 60_000), false);
  assert.equal(_queueStill(watch, undefined, 20_000, 60_000), false);
  assert.equal(_queueStill(watch, NaN, 40_000, 60_000), false);
  assert.deepEqual(watch, { queue: 9000, still: 1_000 });
  assert.equal(_queueStill(watch, undefined, 61_000, 60_000), false);
  assert.equal(_queueStill(watch, 9000, 61_000, 60_000), true);
});

Deno.test({
  name:
    "_sendQueues() sees the bytes a client that reads nothing leaves in a real socket's send queue",
  ignore: Deno.build.os !== "linux",
  async fn() {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    const client = await Deno.connect({ hostname: "127.0.0.1", port });
    using server = await listener.accept();
    const clientPort = (client.localAddr as Deno.NetAddr).port;
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
    const queue = queues.get(`${port}:${clientPort}`);
    assert.ok(queue !== undefined && queue > 0 && queue < written, `${queue}`);
    assert.equal(queues.get(`${clientPort}:${port}`), 0);
    client.close();
    // The blocked write settles (with an error) once the client is gone.
    await pending.catch(() => {});
  },
});
