// Shutdown of the CLI: the `stopping:` line, the grace, a second signal,
// and nothing left running afterwards (real processes, real sockets).
import assert from "node:assert/strict";
import { tempDir, testdata } from "./_helpers/fs.ts";
import { waitFor, withTimeout } from "./_helpers/poll.ts";
import {
  groupMembers,
  readPids,
  type ServerProcess,
  startCli,
} from "./_helpers/process.ts";

const BIG = 64 * 1024 * 1024;

/** A folder with a 64 MiB (sparse) `big.bin`. */
async function bigFile(): Promise<{ path: string } & AsyncDisposable> {
  const dir = await tempDir();
  using file = await Deno.create(`${dir.path}/big.bin`);
  await file.truncate(BIG);
  return dir;
}

/** A download that takes one chunk, then stops reading (connection kept). */
async function stalledDownload(
  url: string,
): Promise<ReadableStreamDefaultReader<Uint8Array>> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  assert.ok(((await reader.read()).value?.length ?? 0) > 0);
  return reader;
}

/** Reads the rest; the byte count, or -1 when the body errored (cut). */
async function drain(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): Promise<number> {
  let received = 0;
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return received;
      received += value.length;
    }
  } catch {
    return -1;
  }
}

function assertCleanExit(server: ServerProcess, stderr: string): void {
  assert.doesNotMatch(stderr, /BadResource|Uncaught/, stderr);
  assert.deepEqual(
    server.lines.filter((l) => l.startsWith("stopping:")),
    ["stopping: 1 requests in flight"],
    server.lines.join("\n"),
  );
}

Deno.test("cli on SIGTERM: a download outlasting --shutdown-grace is cut, exit 0, no BadResource", async () => {
  await using dir = await bigFile();
  const server = await startCli([
    dir.path,
    "--port",
    "0",
    "--shutdown-grace",
    "1",
  ]);
  const reader = await stalledDownload(`${server.base}/big.bin`);
  const started = Date.now();
  const status = await server.stop("SIGTERM");
  const elapsed = Date.now() - started;
  const stderr = await server.stderr;
  assert.equal(status.code, 0, stderr);
  assertCleanExit(server, stderr);
  assert.ok(elapsed >= 900, `stopped after ${elapsed} ms: before the grace`);
  assert.ok(elapsed < 8000, `stopped after ${elapsed} ms`);
  const rest = await withTimeout(drain(reader), 10_000, "the cut download");
  assert.ok(rest < BIG, "the download was cut, not completed");
  await assert.rejects(fetch(`${server.base}/big.bin`), "no longer serving");
});

Deno.test("cli on a second SIGINT stops at once, well before the grace", async () => {
  await using dir = await bigFile();
  const server = await startCli([dir.path, "--port", "0"]);
  const reader = await stalledDownload(`${server.base}/big.bin`);
  const started = Date.now();
  Deno.kill(server.pid, "SIGINT");
  await waitFor(() => server.lines.some((l) => l.startsWith("stopping:")), {
    message: "the stopping line",
  });
  const status = await server.stop("SIGINT");
  const elapsed = Date.now() - started;
  const stderr = await server.stderr;
  assert.equal(status.code, 0, stderr);
  assertCleanExit(server, stderr);
  // The grace is 10 s (the default).
  assert.ok(elapsed < 5000, `stopped after ${elapsed} ms`);
  assert.ok(await withTimeout(drain(reader), 10_000, "the cut download") < BIG);
});

Deno.test("cli past the grace kills a streaming CGI script's whole process group before it exits", async () => {
  await using root = await tempDir();
  await using pids = await tempDir();
  const server = await startCli(
    [
      root.path,
      "--port",
      "0",
      "--cgi-dir",
      `/cgi-bin/=${testdata("cgi-bin")}`,
      "--cgi-pass-env",
      "CGI_TEST_DIR",
      "--shutdown-grace",
      "0.5",
    ],
    undefined,
    { env: { CGI_TEST_DIR: pids.path } },
  );
  const res = await fetch(`${server.base}/cgi-bin/stream_bg.cgi?c1`);
  const reader = res.body!.getReader();
  assert.equal(new TextDecoder().decode((await reader.read()).value), "tick\n");
  const [script, child] = await readPids(pids.path, "c1");
  assert.ok(
    (await groupMembers(script)).includes(child),
    "the background job is in the script's group",
  );
  const status = await server.stop("SIGTERM");
  const stderr = await server.stderr;
  assert.equal(status.code, 0, stderr);
  assertCleanExit(server, stderr);
  // SIGKILL was sent before the exit; the kernel ends the processes
  // right after (the job ignores SIGTERM and would live 60 s).
  await waitFor(async () => (await groupMembers(script)).length === 0, {
    timeoutMs: 1000,
    message: `no process left in group ${script}`,
  });
  assert.match(
    stderr,
    /the server is shutting down: killing its process group/,
  );
  assert.equal(await drain(reader), -1, "the response was cut off");
});

Deno.test("cli on SIGTERM lets a CGI script finish within the grace", async () => {
  await using root = await tempDir();
  const server = await startCli([
    root.path,
    "--port",
    "0",
    "--cgi-dir",
    `/cgi-bin/=${testdata("cgi-bin")}`,
  ]);
  // Two lines, one second apart: the second comes after the signal.
  const res = await fetch(`${server.base}/cgi-bin/stream.cgi`);
  const reader = res.body!.getReader();
  assert.equal(
    new TextDecoder().decode((await reader.read()).value),
    "first\n",
  );
  const exited = server.stop("SIGTERM");
  let rest = "";
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    rest += new TextDecoder().decode(r.value);
  }
  assert.equal(rest, "second\n", "the script was not killed");
  const status = await exited;
  const stderr = await server.stderr;
  assert.equal(status.code, 0, stderr);
  assertCleanExit(server, stderr);
  assert.doesNotMatch(stderr, /killing its process group/);
});
