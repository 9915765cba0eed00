import assert from "node:assert/strict";
import { startMemoryTrim } from "../cli/memory_trim.ts";
import { testdata } from "./_helpers/fs.ts";
import { waitFor } from "./_helpers/poll.ts";
import { commandLine, descendants, MOD, startCli } from "./_helpers/process.ts";

const _PEAK = testdata("memory_trim", "peak.ts");

/** Runs the fixture under `permissions`; its JSON line. */
async function _peak(
  ...permissions: string[]
): Promise<{ running: boolean; freed: number; end: number }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--v8-flags=--expose-gc",
      ...permissions,
      _PEAK,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

Deno.test("startMemoryTrim() trims while freed memory is held, at once when more was freed, not when nothing moved, less often when trims give nothing back, never for memory in use", async () => {
  // MiB, read in call order at each look: the free bytes; when there are
  // enough, the resident size; after a trim, the resident size and the free
  // bytes again.
  const reads = [
    [5], // less free than `minFree`: no
    [18, 100, 80, 18], // trimmed (the first look), to 80
    [18.5, 80.5], // nothing moved: no
    [18, 95, 81, 18], // the same free, 14 more resident: its pages came back
    [3], // memory in use, however much: no
    [30, 130, 129.5, 30], // 12 more freed: trimmed at once; gave nothing back
    [30, 140], // moved, but one look is skipped
    [30, 150, 149.6, 30], // trimmed; nothing back again: two looks skipped
    [30, 160], // skipped
    [45, 170, 100, 45], // 15 more freed: trimmed at once, skips or not
    [45, 100], // nothing moved
  ].flat().map((mib) => mib * 1048576);
  const trimmedAt: number[][] = [];
  let free = 0;
  let size = 0;
  let past = 0; // reads past the script: the same figure again
  const next = (previous: number) => {
    const value = reads.shift();
    if (value === undefined) past++;
    return value ?? previous;
  };
  const running = startMemoryTrim({
    everyMs: 1,
    minFree: 10 * 1048576,
    residentSize: () => size = next(size),
    allocator: {
      freeBytes: () => free = next(free),
      trim: () => void trimmedAt.push([free / 1048576, size / 1048576]),
    },
  });
  assert.ok(running);
  // Its timer does not keep the process alive: this one does.
  while (reads.length > 0) {
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  running.stop();
  const stoppedAt = past;
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(past, stoppedAt, "no look after stop()");
  assert.deepEqual(trimmedAt, [
    [18, 100],
    [18, 95],
    [30, 130],
    [30, 150],
    [45, 170],
  ]);
});

Deno.test("startMemoryTrim() stops, and says why once, when a look fails", async () => {
  const errors: unknown[] = [];
  let looks = 0;
  const running = startMemoryTrim({
    everyMs: 1,
    allocator: {
      freeBytes: () => {
        looks++;
        throw new Error("no allocator");
      },
      trim: () => {},
    },
    onError: (error) => errors.push(error),
  });
  for (let i = 0; i < 10; i++) {
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  running?.stop();
  assert.equal(looks, 1);
  assert.equal(errors.length, 1);
  assert.match(String(errors[0]), /no allocator/);
});

/** The fixtures' peak and trim are glibc's (Linux). */
const _GLIBC = Deno.build.os === "linux";

Deno.test({
  name:
    "startMemoryTrim() gives a freed, fragmented peak back to the system where FFI is granted",
  ignore: !_GLIBC,
}, async () => {
  const { running, freed, end } = await _peak("--allow-ffi");
  assert.ok(running);
  // ~130 MiB of small buffers, one in 64 kept: glibc keeps the rest mapped
  // until malloc_trim() hands the free pages back.
  assert.ok(end < freed - 60, `after the free ${freed} MiB, at the end ${end}`);
});

const _LIBC = `/lib/${Deno.build.arch}-linux-gnu/libc.so.6`;

Deno.test({
  name: "startMemoryTrim() runs with FFI granted only on the C library's path",
  // Debian's and Ubuntu's path (one of those it tries).
  ignore: (() => {
    try {
      return !Deno.statSync(_LIBC).isFile;
    } catch {
      return true;
    }
  })(),
  async fn() {
    const { running, freed, end } = await _peak(`--allow-ffi=${_LIBC}`);
    assert.ok(running);
    assert.ok(
      end < freed - 60,
      `after the free ${freed} MiB, at the end ${end}`,
    );
  },
});

Deno.test({
  name:
    "startMemoryTrim() stays off, without prompting, where FFI is not granted",
  ignore: !_GLIBC,
}, async () => {
  const { running, freed, end } = await _peak();
  assert.equal(running, false);
  // Nothing gave the pages back: the fixture's peak is a real one.
  assert.ok(end > freed - 30, `after the free ${freed} MiB, at the end ${end}`);
});

Deno.test({
  name:
    "cli banner says 'memory trim' where FFI on the C library is granted, and not where it is denied",
  ignore: !_GLIBC,
}, async () => {
  for (const ffi of [[], ["--deny-ffi"]]) {
    const server = await startCli(
      [testdata("www"), "--port", "0", "--workers", "1"],
      ["run", "--no-prompt", "-A", ...ffi, MOD],
    );
    await waitFor(() => server.lines.some((l) => l.includes("Permissions:")), {
      message: "the whole banner",
    });
    assert.equal((await server.stop()).code, 0);
    const features = server.lines.find((l) => l.includes("Features:")) ?? "";
    assert.equal(/memory trim/.test(features), ffi.length === 0, features);
  }
});

Deno.test({
  name:
    "deno task start grants the C library's path: its banner says 'memory trim'",
  ignore: !_GLIBC,
}, async () => {
  const server = await startCli(
    [testdata("www"), "--port", "0", "--workers", "1"],
    ["task", "--quiet", "start"],
  );
  await waitFor(() => server.lines.some((l) => l.includes("Permissions:")), {
    message: "the whole banner",
  });
  assert.equal((await server.stop()).code, 0);
  const features = server.lines.find((l) => l.includes("Features:")) ?? "";
  assert.match(features, /memory trim/);
});

Deno.test("deno task start runs the server with V8's young generation bounded and its heap frugal (--max-semi-space-size=1,--optimize-for-size)", async () => {
  const server = await startCli(
    [testdata("www"), "--port", "0", "--workers", "1"],
    ["task", "--quiet", "start"],
  );
  // `deno task` runs the server as a child process (or becomes it). Reading
  // /proc does not throw, so the server is stopped before any assertion.
  const lines = [server.pid, ...descendants(server.pid)].map(commandLine);
  assert.equal((await server.stop()).code, 0);
  const serving = lines.find((args) => args.includes("run"));
  assert.ok(serving, JSON.stringify(lines));
  assert.ok(
    serving.includes("--v8-flags=--max-semi-space-size=1,--optimize-for-size"),
    serving.join(" "),
  );
  // The flag comes before the module: Deno reads it, not the CLI.
  assert.ok(
    serving.indexOf("--v8-flags=--max-semi-space-size=1,--optimize-for-size") <
      serving.findIndex((arg) => arg.endsWith("mod.ts")),
    serving.join(" "),
  );
});
