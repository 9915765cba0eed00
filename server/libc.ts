/**
 * The C library through FFI: {@linkcode openLibc} opens glibc with a set of
 * symbols, only where FFI on it is already granted.
 *
 * FFI lets code call anything in the library, outside Deno's sandbox, so
 * this never prompts: it runs under `-A`, `--allow-ffi`, or `--allow-ffi=`
 * one of the paths below, and elsewhere (other systems, musl, no
 * permission) it gives `undefined` and the caller does without.
 *
 * @module
 */

/** Where distributions put glibc's C library. */
const _LIBC = [
  `/lib/${Deno.build.arch}-linux-gnu/libc.so.6`, // Debian, Ubuntu
  `/usr/lib/${Deno.build.arch}-linux-gnu/libc.so.6`,
  "/lib64/libc.so.6", // Fedora, RHEL, SUSE
  "/usr/lib64/libc.so.6",
  "/usr/lib/libc.so.6", // Arch
];

function _granted(path?: string): boolean {
  const descriptor: Deno.PermissionDescriptor = path === undefined
    ? { name: "ffi" }
    : { name: "ffi", path };
  return Deno.permissions.querySync(descriptor).state === "granted";
}

/**
 * glibc with `symbols`, when this is Linux and FFI on the C library is
 * granted: unscoped, `libc.so.6` as the loader finds it; scoped, the first
 * of the usual paths that is granted and has every symbol (a symbol newer
 * than the installed glibc, or musl, makes it `undefined`).
 *
 * @example Calling getpid()
 * ```ts
 * import { openLibc } from "./libc.ts";
 *
 * const libc = openLibc({ getpid: { parameters: [], result: "i32" } });
 * if (libc) {
 *   console.log(libc.symbols.getpid() === Deno.pid);
 *   libc.close();
 * }
 * ```
 *
 * @param symbols The functions to bind, as for `Deno.dlopen`.
 * @returns The open library (close it when done), or `undefined`.
 */
export function openLibc<const S extends Deno.ForeignLibraryInterface>(
  symbols: S,
): Deno.DynamicLibrary<S> | undefined {
  if (Deno.build.os !== "linux") return undefined;
  const paths = _granted() ? ["libc.so.6"] : _LIBC.filter((p) => _granted(p));
  for (const path of paths) {
    try {
      return Deno.dlopen(path, symbols);
    } catch {
      // Not there, or a symbol missing (older glibc, musl): the next one.
    }
  }
  return undefined;
}
