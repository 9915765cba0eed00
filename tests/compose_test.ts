import assert from "node:assert/strict";
import {
  compose,
  type Context,
  createHandler,
  errorPages,
  HttpError,
  type Middleware,
} from "../mod.ts";
import { tempDir, testdata } from "./_helpers/fs.ts";

Deno.test("compose() refuses a second next() call", async () => {
  const logs: string[] = [];
  const handler = compose([
    async (_req, _ctx, next) => {
      await next();
      return await next();
    },
    () => new Response("inner"),
  ], { log: (_level, message) => logs.push(message) });
  const res = await handler(new Request("http://localhost/"));
  assert.equal(res.status, 500);
  assert.ok(
    !(await res.text()).includes("next()"),
    "the message stays in the log",
  );
  assert.match(logs[0]!, /next\(\) called more than once/);
});

Deno.test("compose() gives every request a fresh context", async () => {
  const seen: Context[] = [];
  const handler = compose([(_req, ctx) => {
    const before = ctx.served;
    ctx.served = "/mutated";
    seen.push(ctx);
    return new Response(String(before));
  }]);
  const first = await (await handler(new Request("http://x/a"))).text();
  const second = await (await handler(new Request("http://x/b"))).text();
  assert.equal(first, "undefined");
  assert.equal(second, "undefined", "nothing carries over");
  assert.notEqual(seen[0], seen[1]);
  assert.equal(seen[1]!.url.pathname, "/b");
});

Deno.test("compose() answers 404 when no middleware answers", async () => {
  const handler = compose([(_req, _ctx, next) => next()]);
  const res = await handler(new Request("http://x/"));
  assert.equal(res.status, 404);
  await res.body?.cancel();
});

Deno.test("compose() caps internal re-dispatch depth", async () => {
  const loop: Middleware = (req, ctx) => ctx.dispatch(new Request(req.url));
  const logs: string[] = [];
  const handler = compose([loop], {
    maxDispatchDepth: 3,
    log: (_l, m) => logs.push(m),
  });
  const res = await handler(new Request("http://x/"));
  assert.equal(res.status, 500);
  await res.body?.cancel();
  assert.match(logs.join("\n"), /Internal redirect limit \(3\)/);
});

Deno.test("compose() passes connection info to the context", async () => {
  const info = {
    remoteAddr: { transport: "tcp", hostname: "10.1.2.3", port: 5 },
  } as Deno.ServeHandlerInfo;
  const handler = compose([
    (_req, ctx) =>
      new Response((ctx.info?.remoteAddr as Deno.NetAddr).hostname),
  ]);
  assert.equal(
    await (await handler(new Request("http://x/"), info)).text(),
    "10.1.2.3",
  );
});

Deno.test("errorPages() hides exception details and keeps serving", async () => {
  const logs: string[] = [];
  let calls = 0;
  const handler = compose([
    errorPages(),
    () => {
      calls++;
      if (calls === 1) throw new Error("secret /etc/passwd detail");
      return new Response("fine");
    },
  ], { log: (_l, m) => logs.push(m) });
  const res = await handler(new Request("http://x/"));
  assert.equal(res.status, 500);
  const body = await res.text();
  assert.match(body, /500 Internal Server Error/);
  assert.ok(
    !body.includes("secret") && !body.includes("/etc") && !body.includes("at "),
  );
  assert.match(logs[0]!, /secret \/etc\/passwd detail/);
  assert.equal(await (await handler(new Request("http://x/"))).text(), "fine");
});

Deno.test("errorPages() maps NotFound to 404 and permission errors to 403", async () => {
  const errors: Array<[Error, number]> = [
    [new Deno.errors.NotFound("x"), 404],
    [new Deno.errors.PermissionDenied("x"), 403],
    [new Deno.errors.NotCapable("x"), 403],
    [new HttpError(418), 418],
    [new TypeError("x"), 500],
  ];
  for (const [error, status] of errors) {
    const handler = compose([errorPages(), () => {
      throw error;
    }], { log: () => {} });
    const res = await handler(new Request("http://x/"));
    assert.equal(res.status, status);
    await res.body?.cancel();
  }
});

Deno.test("errorPages() answers JSON when the client asks for JSON", async () => {
  const handler = createHandler({ root: testdata("www") });
  const res = await handler(
    new Request("http://x/nope", { headers: { accept: "application/json" } }),
  );
  assert.equal(res.status, 404);
  assert.equal(
    res.headers.get("content-type"),
    "application/json; charset=UTF-8",
  );
  assert.deepEqual(await res.json(), { status: 404, error: "Not Found" });
});

Deno.test("errorPages() renders a small HTML page with status and reason only", async () => {
  const handler = createHandler({ root: testdata("www") });
  const res = await handler(new Request("http://x/missing/path.txt"));
  assert.equal(res.headers.get("content-type"), "text/html; charset=UTF-8");
  const html = await res.text();
  assert.match(html, /<h1>404 Not Found<\/h1>/);
  assert.ok(!html.includes("missing"), "the path is not echoed");
  const head = await handler(
    new Request("http://x/missing", { method: "HEAD" }),
  );
  assert.equal(head.status, 404);
  assert.equal(await head.text(), "");
});

Deno.test("errorPages() uses 404.html from the root and a configured page", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/404.html`, "<h1>custom 404</h1>");
  await Deno.writeTextFile(`${dir.path}/oops.html`, "<h1>custom 405</h1>");
  const handler = createHandler({ root: dir.path });
  const res = await handler(new Request("http://x/nope"));
  assert.equal(res.status, 404);
  assert.equal(await res.text(), "<h1>custom 404</h1>");
  const configured = createHandler({
    root: dir.path,
    errorPages: { pages: { 405: `${dir.path}/oops.html` } },
  });
  const res405 = await configured(
    new Request("http://x/404.html", { method: "PUT" }),
  );
  assert.equal(res405.status, 405);
  assert.equal(res405.headers.get("allow"), "GET, HEAD, OPTIONS");
  assert.equal(await res405.text(), "<h1>custom 405</h1>");
});

Deno.test("createHandler() adds CORS and custom headers to errors and redirects", async () => {
  const handler = createHandler({
    root: testdata("www"),
    cors: true,
    setHeaders: {
      headers: [["x-frame-options", "DENY"], [
        "content-type",
        "text/x-override",
      ]],
    },
  });
  for (const path of ["/nope", "/sub", "/hello.txt"]) {
    const res = await handler(new Request(`http://x${path}`));
    assert.equal(res.headers.get("access-control-allow-origin"), "*", path);
    assert.match(res.headers.get("access-control-expose-headers")!, /ETag/);
    assert.equal(res.headers.get("x-frame-options"), "DENY", path);
    assert.equal(
      res.headers.get("content-type"),
      "text/x-override",
      "--header overrides",
    );
    await res.body?.cancel();
  }
  const preflight = await handler(
    new Request("http://x/hello.txt", {
      method: "OPTIONS",
      headers: {
        origin: "https://a",
        "access-control-request-method": "GET",
        "access-control-request-headers": "range",
      },
    }),
  );
  assert.equal(preflight.status, 204);
  assert.match(preflight.headers.get("access-control-allow-methods")!, /GET/);
  assert.equal(preflight.headers.get("access-control-allow-headers"), "range");
  assert.equal(preflight.headers.get("access-control-max-age"), "86400");
});

Deno.test("errorPages() ignores a 404.html symlinked out of the root", async () => {
  await using outside = await tempDir();
  await using dir = await tempDir();
  await Deno.writeTextFile(`${outside.path}/secret.txt`, "SECRET-OUTSIDE");
  await Deno.symlink(`${outside.path}/secret.txt`, `${dir.path}/404.html`);
  const res = await createHandler({ root: dir.path })(
    new Request("http://x/nope"),
  );
  assert.equal(res.status, 404);
  const body = await res.text();
  assert.ok(!body.includes("SECRET"), "the symlink target is not read");
  assert.match(body, /404 Not Found/);
});

Deno.test("renderError() varies by Accept for its HTML-or-JSON page", async () => {
  const res = await createHandler({ root: testdata("www") })(
    new Request("http://x/nope"),
  );
  assert.equal(res.headers.get("vary"), "Accept");
  await res.body?.cancel();
});

Deno.test("accessLog() writes one line for a request that was re-dispatched internally", async () => {
  const { accessLog } = await import("../mod.ts");
  const lines: string[] = [];
  const handler = compose([
    accessLog({ write: (l) => lines.push(l) }),
    (req, ctx) =>
      ctx.depth === 0
        ? ctx.dispatch(new Request(new URL("/target", req.url)))
        : new Response("target", { headers: { "content-length": "6" } }),
  ]);
  assert.equal(
    await (await handler(new Request("http://x/start"))).text(),
    "target",
  );
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, / GET \/start 200 6 /);
});

Deno.test("compose() shows the README's timing middleware the final 404 and 500", async () => {
  const timing: Middleware = async (_req, _ctx, next) => {
    const started = performance.now();
    const res = await next();
    res.headers.set("server-timing", `app;dur=${performance.now() - started}`);
    return res;
  };
  const handler = compose([
    timing,
    errorPages(),
    (req) => {
      if (new URL(req.url).pathname === "/boom") throw new Error("boom");
      throw new HttpError(404);
    },
  ], { log: () => {} });
  for (const [path, status] of [["/missing", 404], ["/boom", 500]] as const) {
    const res = await handler(new Request(`http://x${path}`));
    assert.equal(res.status, status, path);
    assert.match(res.headers.get("server-timing") ?? "", /^app;dur=/, path);
    await res.body?.cancel();
  }
});

Deno.test("accessLog() logs the real status of an error thrown inside errorPages()", async () => {
  const { accessLog } = await import("../mod.ts");
  const lines: string[] = [];
  const handler = compose([
    errorPages(),
    accessLog({ write: (l) => lines.push(l) }),
    () => {
      throw new HttpError(404);
    },
  ]);
  const res = await handler(new Request("http://x/nope"));
  assert.equal(res.status, 404);
  await res.body?.cancel();
  assert.match(lines[0]!, / GET \/nope 404 /);
});

Deno.test("errorPages() leaves an application's own error response alone", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/404.html`, "<h1>custom 404</h1>");
  const { resolvePath } = await import("../mod.ts");
  const handler = compose([
    errorPages(),
    resolvePath({ root: dir.path }),
    (_req, ctx) =>
      ctx.path === "/app"
        ? new Response("app says no", { status: 404 })
        : Promise.reject(new HttpError(404)),
  ]);
  const app = await handler(new Request("http://x/app"));
  assert.equal(await app.text(), "app says no");
  const ours = await handler(new Request("http://x/other"));
  assert.equal(await ours.text(), "<h1>custom 404</h1>");
});
