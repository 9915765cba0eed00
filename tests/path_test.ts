import assert from "node:assert/strict";
import { createHandler, HttpError, resolvePath } from "../mod.ts";
import type { Context } from "../server/types.ts";
import { decodePath } from "../server/resolve.ts";
import { tempDir, testdata } from "./_helpers/fs.ts";
import { rawRequest, withServer } from "./_helpers/net.ts";

// A root inside a parent that holds a secret: any escape would reach it.
async function sandbox() {
  const dir = await tempDir();
  await Deno.mkdir(`${dir.path}/root/sub`, { recursive: true });
  await Deno.writeTextFile(`${dir.path}/secret.txt`, "TOP SECRET");
  await Deno.writeTextFile(`${dir.path}/root/ok.txt`, "ok");
  await Deno.writeTextFile(
    `${dir.path}/root/sub\\name.txt`,
    "literal backslash name",
  );
  return dir;
}

Deno.test("resolvePath() never leaves the root, whatever the encoding (raw TCP)", async () => {
  await using dir = await sandbox();
  const handler = createHandler({ root: `${dir.path}/root` });
  await withServer(handler, async (port) => {
    const targets = [
      "/../secret.txt",
      "/../../../../secret.txt",
      "/sub/../../secret.txt",
      "/%2e%2e/secret.txt",
      "/%2E%2E/%2e%2e/secret.txt",
      "/.%2e/secret.txt",
      "/sub/%2e%2e/%2e%2e/secret.txt",
      "/%252e%252e/secret.txt",
      "/%2F..%2Fsecret.txt",
      "/..%2Fsecret.txt",
      "/..%2f..%2fsecret.txt",
      "/..%5Csecret.txt",
      "/..\\secret.txt",
      "/%c0%ae%c0%ae/secret.txt",
      "/%e0%80%ae%e0%80%ae/secret.txt",
      "/%c0%af../secret.txt",
      "http://127.0.0.1/../secret.txt",
      "http://127.0.0.1/%2e%2e/secret.txt",
      "//secret.txt",
      "/./../secret.txt",
    ];
    for (const target of targets) {
      const res = await rawRequest(port, target);
      assert.ok(
        !res.body.includes("TOP SECRET"),
        `${target} leaked the secret`,
      );
      assert.ok([400, 404].includes(res.status), `${target} → ${res.status}`);
    }
  });
});

Deno.test("resolvePath() answers 400 for malformed escapes, overlong UTF-8 and NUL", async () => {
  const handler = createHandler({ root: testdata("www") });
  await withServer(handler, async (port) => {
    for (
      const target of [
        "/%E0%A4%A",
        "/%zz",
        "/a%",
        "/%c0%ae%c0%ae/x",
        "/hello.txt%00.html",
        "/x%00",
      ]
    ) {
      const res = await rawRequest(port, target);
      assert.equal(res.status, 400, target);
    }
  });
});

Deno.test("resolvePath() keeps %2F inside a segment from becoming a separator", async () => {
  const handler = createHandler({ root: testdata("www") });
  await withServer(handler, async (port) => {
    assert.equal((await rawRequest(port, "/sub/nested.txt")).status, 200);
    assert.equal((await rawRequest(port, "/sub%2Fnested.txt")).status, 404);
    assert.equal((await rawRequest(port, "/sub%2fnested.txt")).status, 404);
  });
});

Deno.test("resolvePath() treats backslash as a name character, not a separator", async () => {
  await using dir = await sandbox();
  const handler = createHandler({ root: `${dir.path}/root` });
  await withServer(handler, async (port) => {
    const res = await rawRequest(port, "/sub%5Cname.txt");
    assert.equal(res.status, 200);
    assert.equal(res.body, "literal backslash name");
  });
});

Deno.test("resolvePath() resolves dot segments inside the root (raw TCP)", async () => {
  const handler = createHandler({ root: testdata("www") });
  await withServer(handler, async (port) => {
    const res = await rawRequest(port, "/sub/../hello.txt");
    assert.equal(res.status, 200);
    assert.equal(res.body, "Hello, world!\n");
    const abs = await rawRequest(port, "http://127.0.0.1/sub/./nested.txt");
    assert.equal(abs.body, "nested\n");
    const doubled = await rawRequest(port, "//sub//nested.txt");
    assert.equal(doubled.body, "nested\n");
  });
});

Deno.test("decodePath() decodes once and clamps dot segments", () => {
  assert.deepEqual(decodePath("/a/%252e%252e/b"), ["a", "%2e%2e", "b"]);
  assert.deepEqual(decodePath("/a/b/../../../c"), ["c"]);
  assert.deepEqual(decodePath("/%E4%B8%AD%E6%96%87.txt"), ["中文.txt"]);
  assert.throws(() => decodePath("/a%00"), /NUL/);
  assert.throws(() => decodePath("/a%2Fb"), /slash/);
});

Deno.test("resolvePath() rejects (never throws) for bad paths once its root is open", async () => {
  const resolve = resolvePath({
    root: testdata("www"),
    cache: { validMs: 60_000, watch: false },
  });
  try {
    const ctx = (url: string) =>
      ({
        url: new URL(url),
        segments: [],
        path: "/",
      }) as unknown as Context;
    const seen: (string | undefined)[] = [];
    const next = (c: Context) => () => {
      seen.push(c.file ? `${c.path} ${c.file.info.size}` : undefined);
      return Promise.resolve(new Response(null, { status: 204 }));
    };
    // The first request opens the root; the second is a cache hit.
    for (let i = 0; i < 2; i++) {
      const c = ctx("http://localhost/sub/../hello.txt");
      assert.equal((await resolve(new Request(c.url), c, next(c))).status, 204);
    }
    const missing = ctx("http://localhost/nope.txt");
    await resolve(new Request(missing.url), missing, next(missing));
    assert.deepEqual(seen, ["/hello.txt 14", "/hello.txt 14", undefined]);
    for (const [url, status] of [["/.env", 404], ["/a%zz", 400]] as const) {
      const c = ctx(`http://localhost${url}`);
      const out = resolve(new Request(c.url), c, next(c));
      assert.ok(out instanceof Promise, url);
      await assert.rejects(
        out,
        (e) => e instanceof HttpError && e.status === status,
      );
    }
  } finally {
    await resolve.close();
  }
});
