// Site rules (issue 11): deny/internal, redirect, rewrite, try-files, alias,
// CGI/FastCGI mounts, env, index, basic-auth, X-Accel-Redirect/X-Sendfile,
// virtual hosts — through createHandler with real files, real scripts and a
// real php-fpm.
import assert from "node:assert/strict";
import { gunzipSync } from "node:zlib";
import {
  createHandler,
  type HandlerOptions,
  type HandlerRule,
  SiteRuleError,
  virtualHosts,
} from "../mod.ts";
import { tempDir } from "./_helpers/fs.ts";
import { startPhpFpm } from "./_helpers/php.ts";

const BCRYPT_ALICE = await (async () => {
  const out = await new Deno.Command("htpasswd", {
    args: ["-nbB", "-C", "4", "alice", "wonder land"],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout).trim();
})();

/** A site: public files, a data folder, scripts, PHP. */
async function site(dir: string): Promise<void> {
  const w = (path: string, text: string, mode?: number) =>
    Deno.mkdir(`${dir}/${path.split("/").slice(0, -1).join("/")}`, {
      recursive: true,
    }).then(() => Deno.writeTextFile(`${dir}/${path}`, text, { mode }));
  await w("site/index.html", "<h1>home</h1>");
  await w("site/a.txt", "file a");
  await w("site/docs/index.html", "<h1>docs</h1>");
  await w("site/data/secret.txt", "secret data ".repeat(100));
  await w("site/private/p.txt", "private");
  await w(
    "site/front.php",
    "<?php echo 'front ', $_SERVER['REQUEST_URI'], ' ', $_SERVER['SCRIPT_NAME'], ' q=', $_SERVER['QUERY_STRING'], ' m=', $_SERVER['REQUEST_METHOD'], ' body=', file_get_contents('php://input');",
  );
  await w(
    "site/env.php",
    "<?php echo 'FOO=', $_SERVER['FOO'] ?? '-', ' USER=', $_SERVER['REMOTE_USER'] ?? '-', ' AUTH=', $_SERVER['AUTH_TYPE'] ?? '-';",
  );
  await w(
    "site/accel.php",
    "<?php header('X-Accel-Redirect: ' . $_GET['to']); header('Content-Disposition: attachment; filename=\"s.txt\"'); header('Content-Type: text/plain'); echo 'script body';",
  );
  await w(
    "site/sendfile.php",
    "<?php header('X-Sendfile: ' . $_GET['to']); header('Content-Type: text/plain'); echo 'script body';",
  );
  await w(
    "site/app/index.php",
    "<?php echo 'app ', $_SERVER['SCRIPT_NAME'], ' [', $_SERVER['PATH_INFO'] ?? '', '] ', $_SERVER['SCRIPT_FILENAME'];",
  );
  await w("pub/b.txt", "file b");
  await w("pub/sub/c.txt", "file c");
  await w("pub/x.php", "<?php echo 'aliased php ', $_SERVER['SCRIPT_NAME'];");
  await w(
    "scripts/env.sh",
    "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\necho \"SCRIPT_NAME=$SCRIPT_NAME PATH_INFO=$PATH_INFO FOO=$FOO USER=$REMOTE_USER AUTH=$AUTH_TYPE\"\n",
    0o755,
  );
  await w("users", BCRYPT_ALICE + "\n");
}

async function get(
  handler: (req: Request) => Promise<Response>,
  path: string,
  init?: RequestInit,
): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await handler(new Request(`http://localhost${path}`, init));
  return { status: res.status, headers: res.headers, text: await res.text() };
}

function withRules(
  dir: string,
  rules: HandlerRule[],
  more: Partial<HandlerOptions> = {},
) {
  const logged: string[] = [];
  const handler = createHandler({
    root: `${dir}/site`,
    rules,
    log: (level, message) => logged.push(`${level}: ${message}`),
    ...more,
  });
  return Object.assign(handler, { logged });
}

Deno.test("siteRules() denies a prefix with 403 or 404, with or without its slash and encoded", async () => {
  await using dir = await tempDir();
  await site(dir.path);
  await using h = withRules(dir.path, [
    { prefix: "/data/", deny: 404 },
    { regex: "^/private(/|$)", deny: true },
  ]);
  for (
    const path of [
      "/data/secret.txt",
      "/data",
      "/%64ata/secret.txt",
      "/a/../data/secret.txt",
    ]
  ) {
    const res = await get(h, path);
    assert.equal(res.status, 404, path);
    assert.doesNotMatch(res.text, /secret data/);
  }
  assert.equal((await get(h, "/private/p.txt")).status, 403);
  assert.equal((await get(h, "/a.txt")).text, "file a");
  assert.equal((await get(h, "/database")).status, 404); // not a match: simply missing
});

Deno.test("siteRules() keeps internal paths from clients but serves them through a rewrite", async () => {
  await using dir = await tempDir();
  await site(dir.path);
  await using h = withRules(dir.path, [
    { prefix: "/data/", internal: true },
    { regex: "^/download/(.+)$", rewrite: "/data/$1" },
  ]);
  assert.equal((await get(h, "/data/secret.txt")).status, 404);
  const res = await get(h, "/download/secret.txt");
  assert.equal(res.status, 200);
  assert.match(res.text, /^secret data/);
});

Deno.test("siteRules() redirects with captures, keeping, replacing or dropping the query", async () => {
  await using dir = await tempDir();
  await site(dir.path);
  await using h = withRules(dir.path, [
    { prefix: "/old/", redirect: "/new/$rest", status: 301 },
    { regex: "^/p/(?<id>\\d+)$", redirect: "/post?id=${id}&$query" },
    { prefix: "/gone/", redirect: "https://example.com/$rest?", status: 308 },
  ]);
  const kept = await get(h, "/old/a/b?x=1");
  assert.equal(kept.status, 301);
  assert.equal(kept.headers.get("location"), "/new/a/b?x=1");
  const replaced = await get(h, "/p/42?y=2");
  assert.equal(replaced.status, 302);
  assert.equal(replaced.headers.get("location"), "/post?id=42&y=2");
  const dropped = await get(h, "/gone/z?q=1");
  assert.equal(dropped.status, 308);
  assert.equal(dropped.headers.get("location"), "https://example.com/z");
});

Deno.test("siteRules() tries files in order, then falls back to a rewrite or a status", async () => {
  await using dir = await tempDir();
  await site(dir.path);
  await using h = withRules(dir.path, [
    { prefix: "/strict/", tryFiles: ["$uri", "=404"] },
    { prefix: "/", tryFiles: ["$uri", "$uri/", "/index.html"] },
  ]);
  assert.equal((await get(h, "/a.txt")).text, "file a");
  // A folder: the chain still redirects it to its slash, then its index.
  const folder = await get(h, "/docs");
  assert.equal(folder.status, 308);
  assert.equal(folder.headers.get("location"), "/docs/");
  assert.equal((await get(h, "/docs/")).text, "<h1>docs</h1>");
  assert.equal((await get(h, "/some/pretty/url")).text, "<h1>home</h1>");
  assert.equal((await get(h, "/strict/none")).status, 404);
});

Deno.test("siteRules() stops a rewrite loop with 500 at the chain's limit", async () => {
  await using dir = await tempDir();
  await site(dir.path);
  await using h = withRules(dir.path, [
    { regex: "^/loop/(\\d+)$", rewrite: "/loop/$1" },
  ]);
  const res = await get(h, "/loop/1");
  assert.equal(res.status, 500);
  assert.match(h.logged.join("\n"), /redirect limit/);
});

Deno.test("siteRules() serves an alias folder at its prefix, with redirects and listings under the prefix", async () => {
  await using dir = await tempDir();
  await site(dir.path);
  await using h = withRules(dir.path, [
    { prefix: "/static/", alias: `${dir.path}/pub/` },
  ], { serveStatic: { dirListing: true } });
  assert.equal((await get(h, "/static/b.txt")).text, "file b");
  assert.equal((await get(h, "/static/sub/c.txt")).text, "file c");
  const bare = await get(h, "/static");
  assert.equal(bare.status, 308);
  assert.equal(bare.headers.get("location"), "/static/");
  const sub = await get(h, "/static/sub");
  assert.equal(sub.status, 308);
  assert.equal(sub.headers.get("location"), "/static/sub/");
  const listing = await get(h, "/static/sub/");
  assert.equal(listing.status, 200);
  assert.match(listing.text, /c\.txt/);
  assert.match(listing.text, /<title>Index of \/static\/sub\/<\/title>/);
  // Nothing outside the alias: the root's files are not under it.
  assert.equal((await get(h, "/static/a.txt")).status, 404);
  assert.equal((await get(h, "/static/%2e%2e/site/a.txt")).status, 404);
  assert.equal((await get(h, "/a.txt")).text, "file a");
});

Deno.test("siteRules() mounts a CGI script and a CGI folder at prefixes with SCRIPT_NAME and PATH_INFO", async () => {
  await using dir = await tempDir();
  await site(dir.path);
  await using h = withRules(dir.path, [
    {
      prefix: "/tool/",
      cgi: `${dir.path}/scripts/env.sh`,
      env: { FOO: "bar" },
    },
    { prefix: "/scripts/", cgi: `${dir.path}/scripts/` },
  ]);
  const one = await get(h, "/tool/a/b");
  assert.equal(one.status, 200, one.text);
  assert.match(one.text, /SCRIPT_NAME=\/tool PATH_INFO=\/a\/b FOO=bar/);
  assert.match(
    (await get(h, "/tool/")).text,
    /SCRIPT_NAME=\/tool PATH_INFO=\/ /,
  );
  const folder = await get(h, "/scripts/env.sh/x");
  assert.match(
    folder.text,
    /SCRIPT_NAME=\/scripts\/env\.sh PATH_INFO=\/x FOO= /,
  );
});

Deno.test("siteRules() with php-fpm: rewrites keep method, body and REQUEST_URI; env and basic-auth reach PHP; mounts and aliases run PHP", async (t) => {
  await using dir = await tempDir();
  await site(dir.path);
  await using fpm = await startPhpFpm({ unix: true, workers: 2 });
  await using h = withRules(dir.path, [
    { prefix: "/private/", basicAuth: `${dir.path}/users`, realm: "Team" },
    { prefix: "/app/", fastcgi: `${dir.path}/site/app/index.php` },
    { prefix: "/pub/", alias: `${dir.path}/pub/` },
    {
      prefix: "/",
      tryFiles: ["$uri", "$uri/", "/front.php?$query"],
      env: { FOO: "bar" },
    },
  ], { fastcgi: { backends: [fpm.address] } });

  await t.step(
    "a POST rewritten to the front controller keeps its body and its URI",
    async () => {
      const res = await get(h, "/blog/hello/?x=1", {
        method: "POST",
        body: "a=b",
      });
      assert.equal(
        res.text,
        "front /blog/hello/?x=1 /front.php q=x=1 m=POST body=a=b",
      );
    },
  );
  await t.step("env reaches PHP", async () => {
    assert.match((await get(h, "/env.php")).text, /^FOO=bar USER=- AUTH=-$/);
  });
  await t.step(
    "basic-auth: 401 with a challenge, then REMOTE_USER and AUTH_TYPE",
    async () => {
      const none = await get(h, "/private/p.txt");
      assert.equal(none.status, 401);
      assert.equal(
        none.headers.get("www-authenticate"),
        'Basic realm="Team", charset="UTF-8"',
      );
      const auth = { authorization: "Basic " + btoa("alice:wonder land") };
      const bad = await get(h, "/private/p.txt", {
        headers: { authorization: "Basic " + btoa("alice:nope") },
      });
      assert.equal(bad.status, 401);
      assert.match(h.logged.join("\n"), /failed login for user "alice"/);
      assert.doesNotMatch(h.logged.join("\n"), /nope/);
      assert.equal(
        (await get(h, "/private/p.txt", { headers: auth })).text,
        "private",
      );
      await Deno.writeTextFile(
        `${dir.path}/site/private/who.php`,
        "<?php echo $_SERVER['REMOTE_USER'], ' ', $_SERVER['AUTH_TYPE'];",
      );
      assert.equal(
        (await get(h, "/private/who.php", { headers: auth })).text,
        "alice Basic",
      );
    },
  );
  await t.step("a FastCGI script mounted at a prefix", async () => {
    const res = await get(h, "/app/a/b");
    assert.equal(res.text, `app /app [/a/b] ${dir.path}/site/app/index.php`);
  });
  await t.step(
    "PHP inside an alias runs with the prefix in SCRIPT_NAME",
    async () => {
      assert.equal((await get(h, "/pub/x.php")).text, "aliased php /pub/x.php");
      assert.equal((await get(h, "/pub/b.txt")).text, "file b");
    },
  );
});

Deno.test("siteRules() serves X-Accel-Redirect and X-Sendfile from internal locations only (ranges, 304, type, gzip)", async (t) => {
  await using dir = await tempDir();
  await site(dir.path);
  await using fpm = await startPhpFpm({ unix: true, workers: 2 });
  await using h = withRules(dir.path, [
    { prefix: "/data/", internal: true },
  ], { fastcgi: { backends: [fpm.address] }, compress: true });

  await t.step(
    "the named file replaces the script's body; the header is gone",
    async () => {
      const res = await get(h, "/accel.php?to=/data/secret.txt");
      assert.equal(res.status, 200);
      assert.match(res.text, /^secret data/);
      assert.equal(res.text.length, 1200);
      assert.equal(res.headers.get("x-accel-redirect"), null);
      assert.equal(
        res.headers.get("content-disposition"),
        'attachment; filename="s.txt"',
      );
      assert.match(res.headers.get("content-type")!, /^text\/plain/);
    },
  );
  await t.step("ranges and conditional requests", async () => {
    const part = await get(h, "/accel.php?to=/data/secret.txt", {
      headers: { range: "bytes=0-5" },
    });
    assert.equal(part.status, 206);
    assert.equal(part.text, "secret");
    const etag =
      (await h(new Request("http://localhost/accel.php?to=/data/secret.txt")))
        .headers.get("etag")!;
    const again = await get(h, "/accel.php?to=/data/secret.txt", {
      headers: { "if-none-match": etag },
    });
    assert.equal(again.status, 304);
  });
  await t.step("compressed by Accept-Encoding", async () => {
    const res = await h(
      new Request("http://localhost/accel.php?to=/data/secret.txt", {
        headers: { "accept-encoding": "gzip" },
      }),
    );
    assert.equal(res.headers.get("content-encoding"), "gzip");
    const body = gunzipSync(new Uint8Array(await res.arrayBuffer()));
    assert.match(new TextDecoder().decode(body), /^secret data/);
  });
  await t.step("X-Sendfile maps a file inside an internal folder", async () => {
    const res = await get(
      h,
      `/sendfile.php?to=${dir.path}/site/data/secret.txt`,
    );
    assert.equal(res.status, 200);
    assert.match(res.text, /^secret data/);
    assert.equal(res.headers.get("x-sendfile"), null);
  });
  await t.step(
    "outside internal locations: 502 and a log line, never the file",
    async () => {
      for (
        const path of [
          "/accel.php?to=/a.txt",
          "/accel.php?to=/data/../a.txt",
          `/sendfile.php?to=${dir.path}/site/a.txt`,
          "/sendfile.php?to=/etc/passwd",
          `/sendfile.php?to=${dir.path}/site/data/../a.txt`,
        ]
      ) {
        const res = await get(h, path);
        assert.equal(res.status, 502, path);
        assert.doesNotMatch(res.text, /file a|root:/);
      }
      assert.match(h.logged.join("\n"), /outside every internal location/);
    },
  );
  await t.step("clients cannot ask for the internal path itself", async () => {
    assert.equal((await get(h, "/data/secret.txt")).status, 404);
  });
});

Deno.test("siteRules() rewrites a directory to a rule's index file", async () => {
  await using dir = await tempDir();
  await site(dir.path);
  await Deno.writeTextFile(
    `${dir.path}/site/docs/start.html`,
    "<h1>start</h1>",
  );
  await using h = withRules(dir.path, [{
    prefix: "/docs/",
    index: "start.html",
  }]);
  assert.equal((await get(h, "/docs/")).text, "<h1>start</h1>");
});

Deno.test("siteRules() names the rule and the key of a mistake", () => {
  const cases: Array<[HandlerRule, RegExp]> = [
    [
      { prefix: "/", rewrite: "/$urx" },
      /^rules\[0\]\.rewrite: unknown placeholder \$urx$/,
    ],
    [
      { prefix: "/", rewrite: "/$1" },
      /^rules\[0\]\.rewrite: placeholder \$1 needs a "regex"/,
    ],
    [{ regex: "^/(a)$", redirect: "/$2" }, /only 1 group/],
    [
      { regex: "(", deny: true },
      /^rules\[0\]: "regex" is not a valid regular expression/,
    ],
    [{ path: "/x", prefix: "/y", deny: true }, /has both "path" and "prefix"/],
    [{ deny: true }, /needs one of "path", "prefix" or "regex"/],
    [{ path: "/x/**", alias: "/tmp" }, /^rules\[0\]\.alias: needs "prefix"/],
    [
      { prefix: "/al", alias: "/tmp" },
      /^rules\[0\]\.alias: its "prefix" must end with "\/"/,
    ],
    [
      { prefix: "/x/", redirect: "/y", status: 200 as 301 },
      /^rules\[0\]\.status: must be 301/,
    ],
    [
      { prefix: "/", tryFiles: ["$uri"] },
      /^rules\[0\]\.tryFiles: needs at least two/,
    ],
    [
      { prefix: "/", rewrite: "https://elsewhere/" },
      /^rules\[0\]\.rewrite: must be a path inside the site/,
    ],
    [
      { prefix: "/", basicAuth: "/nonexistent/users" },
      /^rules\[0\]\.basicAuth: .*\/nonexistent\/users/,
    ],
  ];
  for (const [rule, message] of cases) {
    assert.throws(
      () => createHandler({ root: ".", rules: [rule] }),
      (e: Error) => {
        assert.ok(e instanceof SiteRuleError, String(e));
        assert.match(e.message, message);
        return true;
      },
    );
  }
});

Deno.test("virtualHosts() picks a site by host name, wildcard or fallback, else 421", async () => {
  const text = (body: string) => () => Promise.resolve(new Response(body));
  await using strict = virtualHosts({
    sites: [
      { hosts: ["a.example"], handler: text("a") },
      { hosts: ["*.b.example"], handler: text("any b") },
      { hosts: ["x.b.example"], handler: text("x") },
    ],
  });
  const at = async (url: string) => {
    const res = await strict(new Request(url));
    return `${res.status} ${await res.text()}`;
  };
  assert.equal(await at("http://A.EXAMPLE:8080/"), "200 a");
  assert.equal(await at("http://www.b.example/"), "200 any b");
  assert.equal(await at("http://x.b.example/"), "200 x");
  assert.match(await at("http://b.example/"), /^421 /);
  await using fallback = virtualHosts({ sites: [], fallback: text("default") });
  assert.equal(
    await (await fallback(new Request("http://other/"))).text(),
    "default",
  );
});

Deno.test("siteRules() keeps filled targets inside the site: backslashes, control characters and encoded slashes never bend a path", async () => {
  await using dir = await tempDir();
  await site(dir.path);
  await using h = withRules(dir.path, [
    { prefix: "/data/", internal: true },
    { regex: "^/go/(.*)", redirect: "/$1" },
    { regex: "^/files/(.*)", rewrite: "/pub/$1" },
    { prefix: "/", tryFiles: ["$uri", "$uri/", "=404"] },
  ]);
  for (
    const path of [
      "/x%5C..%5Cdata%5Csecret.txt",
      "/files/x%5C..%5C..%5Cdata%5Csecret.txt",
      "/x/.%09./data/secret.txt",
      "/files/%2e%2e/data/secret.txt",
    ]
  ) {
    const res = await get(h, path);
    assert.notEqual(res.status, 200, path);
    assert.doesNotMatch(res.text, /secret data/, path);
  }
  // An open redirect through a backslash: the target stays a path here.
  const res = await get(h, "/go/%5Cevil.example");
  assert.equal(res.status, 302);
  assert.equal(res.headers.get("location"), "/%5Cevil.example");
});

Deno.test("siteRules() escapes decoded values put into a query: one value stays one value", async () => {
  await using dir = await tempDir();
  await site(dir.path);
  await using h = withRules(dir.path, [
    { regex: "^/q/(.*)$", redirect: "/show?a=$1&$query" },
  ]);
  const res = await get(h, "/q/x%26y%3Dz%23w%20v?k=v");
  assert.equal(res.headers.get("location"), "/show?a=x%26y=z%23w%20v&k=v");
});

Deno.test("siteRules() denies a script reached with extra path after it (PATH_INFO), as the script itself", async () => {
  await using dir = await tempDir();
  await site(dir.path);
  await Deno.mkdir(`${dir.path}/site/uploads`);
  await Deno.writeTextFile(
    `${dir.path}/site/uploads/evil.php`,
    "<?php echo 'RAN';",
  );
  await using fpm = await startPhpFpm({ unix: true, workers: 1 });
  await using h = withRules(dir.path, [
    { path: "/uploads/**/*.php", deny: true },
    { regex: "\\.secret$", deny: 404 },
    { prefix: "/", tryFiles: ["$uri", "$uri/", "/front.php?$query"] },
  ], { fastcgi: { backends: [fpm.address] } });
  for (
    const path of [
      "/uploads/evil.php",
      "/uploads/evil.php/",
      "/uploads/evil.php/x/y",
    ]
  ) {
    const res = await get(h, path);
    assert.equal(res.status, 403, path);
    assert.doesNotMatch(res.text, /RAN/);
  }
  await Deno.writeTextFile(`${dir.path}/site/a.secret`, "hidden");
  assert.equal((await get(h, "/a.secret/more")).status, 404);
  // try-files: "file.php/" is not a file (nginx's stat: ENOTDIR).
  const slash = await get(h, "/env.php/");
  assert.match(slash.text, /^front \/env\.php\//);
});

Deno.test("siteRules() refuses unsafe X-Accel-Redirect paths and never runs the file it sends", async () => {
  await using dir = await tempDir();
  await site(dir.path);
  await Deno.writeTextFile(
    `${dir.path}/site/data/up.php`,
    "<?php echo 'EXECUTED';",
  );
  await using fpm = await startPhpFpm({ unix: true, workers: 2 });
  await using h = withRules(dir.path, [{ prefix: "/data/", internal: true }], {
    fastcgi: { backends: [fpm.address] },
  });
  for (
    const to of [
      "/data/..%2Fenv.php",
      "/data/%2E%2E/env.php",
      "/data/..%5Cenv.php",
      "/data/x%00",
    ]
  ) {
    const res = await get(h, `/accel.php?to=${encodeURIComponent(to)}`);
    assert.equal(res.status, 502, to);
    assert.doesNotMatch(res.text, /FOO=/);
  }
  const sent = await get(h, "/accel.php?to=/data/up.php");
  assert.equal(sent.status, 200);
  assert.equal(sent.text, "<?php echo 'EXECUTED';");
  const file = await get(h, `/sendfile.php?to=${dir.path}/site/data/up.php`);
  assert.equal(file.text, "<?php echo 'EXECUTED';");
});

Deno.test("compose() answers 400 for a Host that is not a name or an address", async () => {
  await using dir = await tempDir();
  await site(dir.path);
  await using h = withRules(dir.path, []);
  for (
    const host of [
      "a.test\\@b.test",
      "b.test/x",
      "a%2etest",
      "a b",
      "a.test:80:80",
    ]
  ) {
    const res = await get(h, "/a.txt", { headers: { host } });
    assert.equal(res.status, 400, host);
  }
  for (
    const host of [
      "localhost",
      "localhost:8000",
      "127.0.0.1:1",
      "[::1]:80",
      "a.test.",
    ]
  ) {
    assert.equal(
      (await get(h, "/a.txt", { headers: { host } })).status,
      200,
      host,
    );
  }
});
