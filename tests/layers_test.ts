import assert from "node:assert/strict";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("../", import.meta.url));

/** Each layer and the layers it may import (besides itself). */
const ALLOWED: Record<string, readonly string[]> = {
  server: [],
  static: ["server"],
  cgi: ["server"],
  middleware: ["server"],
  rules: ["server"],
  handler: ["server", "static", "cgi", "middleware", "rules"],
  cli: ["server", "static", "cgi", "middleware", "rules", "handler"],
};

function layerOf(file: string): string {
  return relative(REPO, file).split("/")[0]!;
}

async function libraryFiles(): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string): Promise<void> {
    for await (const e of Deno.readDir(dir)) {
      const path = join(dir, e.name);
      if (e.isDirectory) await walk(path);
      else if (e.name.endsWith(".ts")) out.push(path);
    }
  }
  for (const layer of Object.keys(ALLOWED)) await walk(join(REPO, layer));
  return out;
}

/** Relative imports in code (not in doc comments). */
function imports(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "");
  return [...code.matchAll(/(?:from|import\()\s*"(\.{1,2}\/[^"]+)"/g)].map((
    m,
  ) => m[1]!);
}

Deno.test("layers import only the layers below them", async () => {
  const wrong: string[] = [];
  for (const file of await libraryFiles()) {
    const from = layerOf(file);
    for (const spec of imports(await Deno.readTextFile(file))) {
      if (spec.endsWith(".json")) continue; // deno.json (the version)
      const target = layerOf(join(dirname(file), spec));
      if (target !== from && !ALLOWED[from]!.includes(target)) {
        wrong.push(`${relative(REPO, file)} imports ${spec} (${target})`);
      }
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("cgi/ never imports cgi/fastcgi/ (FastCGI builds on CGI)", async () => {
  const wrong: string[] = [];
  for (const file of await libraryFiles()) {
    const rel = relative(REPO, file);
    if (!rel.startsWith("cgi/") || rel.startsWith("cgi/fastcgi/")) continue;
    if (rel === "cgi/mod.ts") continue;
    for (const spec of imports(await Deno.readTextFile(file))) {
      if (
        relative(REPO, join(dirname(file), spec)).startsWith("cgi/fastcgi/")
      ) {
        wrong.push(`${rel} imports ${spec}`);
      }
    }
  }
  assert.deepEqual(wrong, []);
});
