// Fixtures and temporary directories (not part of the published package).
import { fileURLToPath } from "node:url";

/** Absolute path of a fixture under tests/testdata/. */
export function testdata(...parts: string[]): string {
  return [fileURLToPath(new URL("../testdata/", import.meta.url)), ...parts]
    .join("/")
    .replace(/\/+/g, "/").replace(/\/$/, "");
}

/** A fresh temporary directory (its real path), removed on dispose. */
export async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.realPath(
    await Deno.makeTempDir({ prefix: "x-serve-test-" }),
  );
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}
