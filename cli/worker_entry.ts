/**
 * The module each `--workers` Worker runs (`new Worker(…)` from
 * cli/workers.ts): cli/worker_run.ts on its global scope. Internal to the
 * CLI (not exported from `mod.ts`).
 *
 * @module
 */

import { attachWorker, type WorkerPort } from "./worker_run.ts";

attachWorker(globalThis as unknown as WorkerPort);
