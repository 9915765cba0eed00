/**
 * Test-only hooks of the `--workers` isolates, on only when the server's
 * environment has `X_SERVE_TEST_HOOKS=1` (and it may read it): every
 * response says which worker answered (`x-serve-worker: N`) and which
 * run of it (`x-serve-run`, new when a crashed worker is replaced), and
 * `GET /__x_serve_test/crash` throws an uncaught error inside the worker
 * isolate, which kills it. Never on in production: the variable is not
 * one a deployment sets. Internal to the CLI (not exported from `mod.ts`).
 *
 * @module
 */

import type { Handler } from "../server/types.ts";

/** The variable that turns the hooks on (`1`). */
export const TEST_HOOKS_ENV = "X_SERVE_TEST_HOOKS";

/** The path that crashes the worker answering it. */
export const CRASH_PATH = "/__x_serve_test/crash";

/**
 * Whether the hooks are on (`X_SERVE_TEST_HOOKS=1`, readable).
 *
 * @example Checking
 * ```ts
 * import { testHooksEnabled } from "./test_hooks.ts";
 *
 * console.log(await testHooksEnabled()); // false unless X_SERVE_TEST_HOOKS=1
 * ```
 *
 * @returns `true` when on.
 */
export async function testHooksEnabled(): Promise<boolean> {
  const env = { name: "env", variable: TEST_HOOKS_ENV } as const;
  if ((await Deno.permissions.query(env)).state !== "granted") return false;
  return Deno.env.get(TEST_HOOKS_ENV) === "1";
}

/**
 * `handler` with the hooks of worker `index`.
 *
 * @example Wrapping a handler
 * ```ts
 * import { withTestHooks } from "./test_hooks.ts";
 * import assert from "node:assert/strict";
 *
 * const handler = withTestHooks(() => Promise.resolve(new Response("ok")), 3);
 * const res = await handler(new Request("http://localhost/"));
 * assert.equal(res.headers.get("x-serve-worker"), "3");
 * await res.body?.cancel();
 * ```
 *
 * @param handler The worker's handler.
 * @param index The worker's index.
 * @returns The wrapped handler.
 */
export function withTestHooks(handler: Handler, index: number): Handler {
  const run = crypto.randomUUID();
  return async (req, info) => {
    if (new URL(req.url).pathname === CRASH_PATH) {
      // Once this answer is out: a crash cuts the worker's connections.
      const crash = () =>
        setTimeout(() => {
          throw new Error(`test hook: worker ${index} crashed on purpose`);
        }, 0);
      const completed: Promise<void> | undefined = info?.completed;
      if (completed) completed.then(crash, crash);
      else crash();
      return new Response("crashing\n", {
        status: 202,
        headers: { "x-serve-worker": String(index), "x-serve-run": run },
      });
    }
    const res = await handler(req, info);
    try {
      res.headers.set("x-serve-worker", String(index));
      res.headers.set("x-serve-run", run);
      return res;
    } catch {
      // Immutable headers (a fetched response): copy them.
      const headers = new Headers(res.headers);
      headers.set("x-serve-worker", String(index));
      headers.set("x-serve-run", run);
      return new Response(res.body, {
        status: res.status,
        statusText: res.statusText,
        headers,
      });
    }
  };
}
