import assert from "node:assert/strict";
import { createHandler, type HandlerOptions } from "../mod.ts";
import { tempDir } from "./_helpers/fs.ts";

async function spaSite() {
  const dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/index.html`, "<h1>app</h1>");
  await Deno.writeTextFile(`${dir.path}/about.html`, "<h1>about</h1>");
  await Deno.mkdir(`${dir.path}/docs`);
  await Deno.writeTextFile(`${dir.path}/docs/intro.html`, "<h1>intro</h1>");
  await Deno.mkdir(`${dir.path}/assets`);
  await Deno.writeTextFile(`${dir.path}/assets/app.1234.js`, "x");
  return dir;
}

function get(options: HandlerOptions, path: string, method = "GET") {
  return createHandler(options)(new Request(`http://x${path}`, { method }));
}

Deno.test("serveStatic() with spa answers unknown extension-less paths with index.html", async () => {
  await using dir = await spaSite();
  const o = { root: dir.path, serveStatic: { spa: true } };
  for (const path of ["/users/42", "/deep/route/here", "/settings"]) {
    const res = await get(o, path);
    assert.equal(res.status, 200, path);
    assert.equal(await res.text(), "<h1>app</h1>");
  }
  const asset = await get(o, "/assets/missing.js");
  assert.equal(asset.status, 404, "missing assets stay 404");
  await asset.body?.cancel();
  const post = await get(o, "/users/42", "POST");
  assert.equal(post.status, 404);
  await post.body?.cancel();
  const off = await get({ root: dir.path }, "/users/42");
  assert.equal(off.status, 404, "off by default");
  await off.body?.cancel();
});

Deno.test("serveStatic() with cleanUrls serves about.html for /about", async () => {
  await using dir = await spaSite();
  const o = { root: dir.path, serveStatic: { cleanUrls: true } };
  assert.equal(await (await get(o, "/about")).text(), "<h1>about</h1>");
  assert.equal(await (await get(o, "/docs/intro")).text(), "<h1>intro</h1>");
  const missing = await get(o, "/nope");
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
  const slash = await get(o, "/about/");
  assert.equal(slash.status, 404, "/about/ is a folder path, not about.html");
  await slash.body?.cancel();
  const off = await get({ root: dir.path }, "/about");
  assert.equal(off.status, 404);
  await off.body?.cancel();
});

Deno.test("setHeaders() applies Cache-Control rules by glob, later rules winning", async () => {
  await using dir = await spaSite();
  const o: HandlerOptions = {
    root: dir.path,
    setHeaders: {
      rules: [
        {
          path: "/assets/**",
          headers: [["cache-control", "public, max-age=31536000, immutable"]],
        },
        { path: "*.html", headers: [["cache-control", "no-cache"]] },
        { path: "/docs/**", headers: [["x-section", "docs"]] },
      ],
    },
  };
  const asset = await get(o, "/assets/app.1234.js");
  assert.equal(
    asset.headers.get("cache-control"),
    "public, max-age=31536000, immutable",
  );
  await asset.body?.cancel();
  const html = await get(o, "/docs/intro.html");
  assert.equal(html.headers.get("cache-control"), "no-cache");
  assert.equal(html.headers.get("x-section"), "docs");
  await html.body?.cancel();
  const index = await get(o, "/");
  assert.equal(
    index.headers.get("cache-control"),
    "no-cache",
    "the index file served for / matches *.html",
  );
  await index.body?.cancel();
  const missing = await get(o, "/assets/nope.js");
  assert.equal(missing.status, 404);
  assert.equal(missing.headers.get("cache-control"), null, "rules skip errors");
  await missing.body?.cancel();
});

Deno.test("setHeaders() rules follow the file served: an SPA route under /assets/ is not cached as an asset", async () => {
  await using dir = await spaSite();
  const o: HandlerOptions = {
    root: dir.path,
    serveStatic: { spa: true },
    setHeaders: {
      rules: [
        { path: "/assets/**", headers: [["cache-control", "immutable"]] },
        { path: "*.html", headers: [["cache-control", "no-cache"]] },
      ],
    },
  };
  const route = await get(o, "/assets/some-route");
  assert.equal(await route.text(), "<h1>app</h1>");
  assert.equal(
    route.headers.get("cache-control"),
    "no-cache",
    "the rule for index.html, not /assets/**",
  );
  const redirect = await get(o, "/assets");
  assert.equal(redirect.status, 308);
  assert.equal(
    redirect.headers.get("cache-control"),
    null,
    "no rules on redirects",
  );
});
