/**
 * {@linkcode baseProcessEnv}: the start of every environment the server
 * gives a program it runs (CGI scripts, spawned FastCGI workers): `PATH`
 * and an explicit list of the server's own variables, nothing else.
 *
 * @module
 */

/**
 * The `PATH` of every program the server runs (CGI scripts, spawned
 * FastCGI workers) when none is given: the system's standard directories.
 *
 * @example Giving scripts the default PATH plus one directory
 * ```ts
 * import { DEFAULT_PATH } from "./base_env.ts";
 * import assert from "node:assert/strict";
 *
 * const path = `/opt/tools/bin:${DEFAULT_PATH}`;
 * assert.equal(path, "/opt/tools/bin:/usr/local/bin:/usr/bin:/bin");
 * ```
 */
export const DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin";

/**
 * Builds `{ PATH: path }` plus the server's variables named in `passEnv`
 * (those that are set). Read once, when called: the rest of the server's
 * environment (tokens, passwords…) never reaches a child, which is
 * spawned with `clearEnv`.
 *
 * @example Passing one variable on
 * ```ts
 * import { baseProcessEnv } from "./base_env.ts";
 * import assert from "node:assert/strict";
 *
 * Deno.env.set("APP_MODE", "test");
 * assert.deepEqual(baseProcessEnv("/usr/bin:/bin", ["APP_MODE", "UNSET_VAR"]), {
 *   PATH: "/usr/bin:/bin",
 *   APP_MODE: "test",
 * });
 * ```
 *
 * @param path The children's `PATH`.
 * @param passEnv Names of server variables to pass on.
 * @returns The environment to extend.
 */
export function baseProcessEnv(
  path: string,
  passEnv: readonly string[],
): Record<string, string> {
  const env: Record<string, string> = { PATH: path };
  for (const name of passEnv) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}
