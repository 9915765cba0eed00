import assert from "node:assert/strict";
import { Deadlines } from "../server/deadlines.ts";

// The timer functions as loaded (countingTimers() swaps the global ones).
const { setTimeout: realSetTimeout } = globalThis;
const sleep = (ms: number) => new Promise((r) => realSetTimeout(r, ms));

/**
 * Runs `body` with the event loop held open: the deadlines' timer does not
 * keep it alive by itself (a socket or a request does, in the server).
 */
async function alive<T>(body: () => Promise<T>): Promise<T> {
  const hold = setInterval(() => {}, 1_000);
  try {
    return await body();
  } finally {
    clearInterval(hold);
  }
}

/** Counts the timers made by `setTimeout` while `body` runs. */
async function countingTimers(body: () => Promise<void>): Promise<number> {
  const original = globalThis.setTimeout;
  let made = 0;
  globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
    made++;
    return original(...args);
  }) as typeof setTimeout;
  try {
    await body();
  } finally {
    globalThis.setTimeout = original;
  }
  return made;
}

Deno.test("Deadlines runs each deadline once, when its time has come, earliest first", async () => {
  await alive(async () => {
    const deadlines = new Deadlines();
    const fired: string[] = [];
    const start = Date.now();
    const at: Record<string, number> = {};
    const late = new Promise<void>((resolve) =>
      deadlines.add(120, () => {
        fired.push("late");
        at.late = Date.now() - start;
        resolve();
      })
    );
    deadlines.add(30, () => {
      fired.push("early");
      at.early = Date.now() - start;
    });
    await late;
    await sleep(50);
    assert.deepEqual(fired, ["early", "late"]);
    assert.ok(at.early! >= 29 && at.early! < 120, `early at ${at.early} ms`);
    assert.ok(at.late! >= 119, `late at ${at.late} ms`);
    assert.equal(deadlines.size, 0);
    deadlines.close();
  });
});

Deno.test("Deadlines never runs a cleared deadline", async () => {
  await alive(async () => {
    const deadlines = new Deadlines();
    let fired = 0;
    const cleared = deadlines.add(10, () => fired++);
    deadlines.clear(cleared);
    deadlines.clear(cleared); // twice: a no-op
    await new Promise<void>((resolve) => deadlines.add(40, resolve));
    assert.equal(fired, 0);
    deadlines.close();
  });
});

Deno.test("Deadlines keeps one timer for many deadlines added and cleared (no timer per request)", async () => {
  const deadlines = new Deadlines();
  const made = await countingTimers(async () => {
    for (let i = 0; i < 1_000; i++) {
      const deadline = deadlines.add(60_000 + i, () => {
        throw new Error("never due");
      });
      deadlines.clear(deadline);
      await Promise.resolve();
    }
  });
  assert.equal(made, 1, `one timer, armed for the first deadline (${made})`);
  assert.equal(deadlines.size, 0);
  deadlines.close();
});

Deno.test("Deadlines fires an earlier deadline added after a later one on time", async () => {
  await alive(async () => {
    const deadlines = new Deadlines();
    deadlines.add(60_000, () => {
      throw new Error("not due within this test");
    });
    const start = Date.now();
    await new Promise<void>((resolve) => deadlines.add(20, resolve));
    assert.ok(
      Date.now() - start < 5_000,
      "the earlier deadline re-armed the timer",
    );
    assert.equal(deadlines.size, 1);
    deadlines.close();
  });
});

Deno.test("Deadlines fires what a callback adds, and what is due after a cleared earlier one", async () => {
  await alive(async () => {
    const deadlines = new Deadlines();
    const first = deadlines.add(10, () => {
      throw new Error("cleared");
    });
    const chained = new Promise<string>((resolve) =>
      deadlines.add(30, () => {
        deadlines.add(20, () => resolve("added from a callback"));
      })
    );
    deadlines.clear(first); // the timer armed for it finds nothing due, re-arms
    assert.equal(await chained, "added from a callback");
    deadlines.close();
  });
});

Deno.test("Deadlines.close() drops every pending deadline and later ones", async () => {
  const deadlines = new Deadlines();
  let fired = 0;
  deadlines.add(10, () => fired++);
  deadlines.close();
  deadlines.add(10, () => fired++);
  await sleep(60);
  assert.equal(fired, 0);
  assert.equal(deadlines.size, 0);
});

Deno.test("Deadlines' timer does not keep the process alive", async () => {
  const module = new URL("../server/deadlines.ts", import.meta.url).href;
  const start = Date.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { Deadlines } from "${module}";
       new Deadlines().add(60_000, () => console.log("fired"));
       console.log("done");`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "done");
  assert.ok(Date.now() - start < 30_000, "exited without waiting a minute");
});

Deno.test("Deadlines waits out a delay longer than a timer takes without spinning", async () => {
  const deadlines = new Deadlines();
  let fired = 0;
  const made = await countingTimers(async () => {
    deadlines.add(2 ** 31 + 60_000, () => fired++); // past setTimeout's limit
    await sleep(150);
  });
  assert.equal(fired, 0);
  assert.equal(made, 1, `one timer in 150 ms, not a timer per ms (${made})`);
  deadlines.close();
});

Deno.test("Deadlines treats NaN and negative delays as now, Infinity as never", async () => {
  await alive(async () => {
    const deadlines = new Deadlines();
    const fired: string[] = [];
    deadlines.add(NaN, () => fired.push("NaN"));
    deadlines.add(-5, () => fired.push("negative"));
    deadlines.add(Infinity, () => fired.push("Infinity"));
    await sleep(50);
    assert.deepEqual(fired.sort(), ["NaN", "negative"]);
    assert.equal(deadlines.size, 1, "Infinity stays pending");
    deadlines.close();
  });
});

Deno.test("Deadlines does not run a deadline that an earlier callback of the same round cleared", async () => {
  await alive(async () => {
    const deadlines = new Deadlines();
    const fired: string[] = [];
    // Both due at the same fire; the first clears the second.
    const second: { deadline?: ReturnType<Deadlines["add"]> } = {};
    deadlines.add(10, () => {
      fired.push("first");
      deadlines.clear(second.deadline!);
    });
    second.deadline = deadlines.add(10, () => fired.push("second"));
    // Both are due before the timer first fires: one round for the two.
    const until = performance.now() + 15;
    while (performance.now() < until) { /* busy: no event-loop turn */ }
    await sleep(60);
    assert.deepEqual(fired, ["first"]);
    deadlines.close();
  });
});

Deno.test("Deadlines keeps the process alive for a deadline added with ref", async () => {
  const module = new URL("../server/deadlines.ts", import.meta.url).href;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { Deadlines } from "${module}";
       const deadlines = new Deadlines();
       deadlines.add(60_000, () => {}); // unref'd: holds nothing
       deadlines.add(100, () => console.log("fired"), true);`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "fired");
});
