/**
 * Finding the script for a request: {@linkcode locateScript} splits the
 * decoded path below a CGI directory into the script (`SCRIPT_NAME`) and
 * the extra path (`PATH_INFO`), and decides how the script is run.
 *
 * @module
 */

import { basename, extname } from "node:path";
import { HttpError } from "../server/errors.ts";
import type { DocumentRoot } from "../server/types.ts";

/**
 * Options of {@linkcode locateScript}.
 *
 * @example Running Ruby scripts through ruby -w
 * ```ts
 * import type { LocateScriptOptions } from "./locate.ts";
 *
 * const options: LocateScriptOptions = { interpreters: { ".rb": ["ruby", "-w"] } };
 * ```
 */
export interface LocateScriptOptions {
  /**
   * File extension (with the dot, lower case) → interpreter command
   * (program and leading arguments). The script path is appended.
   * @default {{}}
   */
  interpreters?: Record<string, string | readonly string[]>;
}

/**
 * A script found under a CGI directory, and how to run it.
 *
 * @example Reading where a script was found
 * ```ts
 * import { documentRoot } from "../server/resolve.ts";
 * import { type LocatedScript, locateScript } from "./locate.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.realPath(await Deno.makeTempDir());
 * await Deno.writeTextFile(`${dir}/nph-raw.sh`, "#!/bin/sh\n", { mode: 0o755 });
 * const script: LocatedScript = await locateScript(documentRoot(dir), [], ["nph-raw.sh"], false);
 * assert.equal(script.program, script.filename);
 * assert.equal(script.nph, true);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export interface LocatedScript {
  /** The real path of the script (inside the real CGI directory). */
  filename: string;
  /** The decoded URL path naming the script (`SCRIPT_NAME`). */
  scriptName: string;
  /** The decoded extra path (`PATH_INFO`): `""` or starting with `/`. */
  pathInfo: string;
  /** The program to start: the script itself or its interpreter. */
  program: string;
  /** The program's arguments (the script path for an interpreter, else none). */
  args: string[];
  /** True for `nph-` scripts, which write their own status line. */
  nph: boolean;
}

async function _startsWithShebang(path: string): Promise<boolean> {
  using file = await Deno.open(path, { read: true });
  const head = new Uint8Array(2);
  const n = await file.read(head);
  return n === 2 && head[0] === 0x23 && head[1] === 0x21; // "#!"
}

/** How to run the regular file `filename`: itself, or through its interpreter. */
async function _command(
  filename: string,
  info: Deno.FileInfo,
  interpreters: Record<string, string | readonly string[]>,
): Promise<{ program: string; args: string[] }> {
  const interpreter = interpreters[extname(filename).toLowerCase()];
  const executable = ((info.mode ?? 0) & 0o111) !== 0;
  if (
    executable &&
    (interpreter === undefined || await _startsWithShebang(filename))
  ) {
    return { program: filename, args: [] };
  }
  if (interpreter === undefined) {
    throw new HttpError(
      403,
      "CGI script is neither executable nor mapped to an interpreter",
    );
  }
  const [command, ...leading] = typeof interpreter === "string"
    ? [interpreter]
    : interpreter;
  if (!command) throw new HttpError(403, "Empty interpreter command");
  return { program: command, args: [...leading, filename] };
}

/**
 * Finds the script named by `rest` (the decoded, normalised path segments
 * below the CGI directory) and decides how it runs.
 *
 * The path is split at the **first** segment that is a regular file; the
 * segments after it become `PATH_INFO` (so `/x.jpg/y.php` runs `x.jpg`'s
 * rule, never `.php`'s interpreter). Every lookup goes through `dir`
 * (see `documentRoot()`), whose policy decides dotfiles and symlinks: the
 * CGI gateway makes it with `followSymlinks: false`, so the script's real
 * path stays inside the real CGI directory (symlinks out of it → 404). The
 * script runs directly when it is executable and either has no interpreter
 * mapping or starts with `#!`; otherwise through the interpreter mapped to
 * its extension; otherwise 403 (its source is never served).
 *
 * Throws a 404 {@linkcode HttpError} when nothing is found and 403 for a
 * directory, a non-regular file or a script that cannot run.
 *
 * @example Locating a script with extra path
 * ```ts
 * import { documentRoot } from "../server/resolve.ts";
 * import { locateScript } from "./locate.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.realPath(await Deno.makeTempDir());
 * await Deno.writeTextFile(`${dir}/hello.py`, "print('Content-Type: text/plain\\n')");
 * const script = await locateScript(documentRoot(dir), ["cgi-bin"], ["hello.py", "a", "b"], false, {
 *   interpreters: { ".py": "python3" },
 * });
 * assert.equal(script.scriptName, "/cgi-bin/hello.py");
 * assert.equal(script.pathInfo, "/a/b");
 * assert.equal(script.program, "python3");
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param dir The CGI directory and its lookup policy.
 * @param prefix The decoded URL segments the directory is mounted at.
 * @param rest The decoded segments below it.
 * @param trailingSlash Whether the request path ended with `/`.
 * @param options The interpreter map.
 * @returns The script and how to run it.
 */
export async function locateScript(
  dir: DocumentRoot,
  prefix: readonly string[],
  rest: readonly string[],
  trailingSlash: boolean,
  options: LocateScriptOptions = {},
): Promise<LocatedScript> {
  const { interpreters = {} } = options;
  for (let i = 1; i <= rest.length; i++) {
    const found = await dir.find(rest.slice(0, i));
    if (!found) throw new HttpError(404, "No such CGI script");
    if (found.info.isDirectory) continue;
    if (!found.info.isFile) {
      throw new HttpError(403, "CGI path is not a regular file");
    }
    const filename = found.realPath;
    const extra = rest.slice(i);
    const pathInfo = (extra.length ? "/" + extra.join("/") : "") +
      (trailingSlash ? "/" : "");
    return {
      filename,
      scriptName: "/" + [...prefix, ...rest.slice(0, i)].join("/"),
      pathInfo,
      ...await _command(filename, found.info, interpreters),
      nph: basename(filename).startsWith("nph-"),
    };
  }
  throw new HttpError(403, "CGI directory requested");
}
