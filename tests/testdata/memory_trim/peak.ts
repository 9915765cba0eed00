// Run by tests/memory_trim_test.ts: lets startMemoryTrim() run (or not)
// while a fragmented peak of small allocations is made and freed, and prints
// one JSON line: whether it is running, and the resident size (MiB) just
// after the free and at the end.
import { startMemoryTrim } from "../../../cli/memory_trim.ts";

const rss = () => Deno.memoryUsage().rss / 1048576;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const trim = startMemoryTrim({ everyMs: 200, minFree: 1048576 });
let buffers = [];
for (let i = 0; i < 100_000; i++) buffers.push(new ArrayBuffer(1000));
// One buffer in 64 stays: the pages between them are free, but the heap's
// top is not, so free() cannot give them back by itself.
const kept = buffers.filter((_, i) => i % 64 === 0);
buffers = [];
for (let i = 0; i < 5; i++) globalThis.gc();
const freed = rss();
await sleep(600);
trim?.stop();
console.log(JSON.stringify({ running: trim !== undefined, freed, end: rss(), kept: kept.length }));
