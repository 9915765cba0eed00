import assert from "node:assert/strict";
import { createHandler } from "../mod.ts";
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
