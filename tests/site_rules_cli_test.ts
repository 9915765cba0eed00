// Site rules and virtual hosts from the command line and the config file.
import assert from "node:assert/strict";
import { tempDir } from "./_helpers/fs.ts";
import { rawExchange } from "./_helpers/net.ts";
import { waitFor } from "./_helpers/poll.ts";
import { runCli, startCli } from "./_helpers/process.ts";

async function layout(dir: string): Promise<void> {
  for (const d of ["www/data", "www/docs", "blog", "pub"]) {
    await Deno.mkdir(`${dir}/${d}`, { recursive: true });
  }
  await Deno.writeTextFile(`${dir}/www/index.html`, "<h1>www</h1>");
  await Deno.writeTextFile(`${dir}/www/data/x.txt`, "data");
  await Deno.writeTextFile(`${dir}/www/docs/index.html`, "docs");
  await Deno.writeTextFile(`${dir}/blog/index.html`, "<h1>blog</h1>");
  await Deno.writeTextFile(`${dir}/pub/p.txt`, "pub");
  const out = await new Deno.Command("htpasswd", {
    args: ["-nbB", "-C", "4", "bob", "secret"],
    stdout: "piped",
  }).output();
  await Deno.writeTextFile(
    `${dir}/users`,
    new TextDecoder().decode(out.stdout),
  );
}

/** `STATUS BODY…` for a request with this Host header (fetch sets its own). */
async function atHost(
  base: string,
  path: string,
  host: string,
): Promise<string> {
  const port = Number(new URL(base).port);
  const raw = await rawExchange(
    port,
    `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
  );
  const body = raw.slice(raw.indexOf("\r\n\r\n") + 4);
  return `${raw.split(" ")[1]} ${body.slice(0, 20)}`;
}

async function status(url: string, init?: RequestInit): Promise<string> {
  const res = await fetch(url, { redirect: "manual", ...init });
  const body = await res.text();
  return `${res.status} ${res.headers.get("location") ?? body.slice(0, 20)}`;
}

Deno.test("cli rule flags deny, rewrite, redirect, alias, try-files and basic-auth", async () => {
  await using dir = await tempDir();
  await layout(dir.path);
  const server = await startCli([
    `${dir.path}/www`,
    "--port=0",
    "--quiet",
    "--deny=/data/",
    "--redirect=^/old/(.*) /new/$1 301",
    "--rewrite=^/d/(.*) /docs/$1",
    "--alias=/pub=" + `${dir.path}/pub`,
    "--basic-auth=/docs/=" + `${dir.path}/users`,
    "--try-files=$uri $uri/ /index.html",
  ]);
  try {
    const b = server.base;
    assert.equal(await status(`${b}/data/x.txt`), "403 <!DOCTYPE html>\n<htm");
    assert.equal(await status(`${b}/old/a?x=1`), "301 /new/a?x=1");
    assert.equal(await status(`${b}/pub/p.txt`), "200 pub");
    assert.equal(await status(`${b}/pretty/url`), "200 <h1>www</h1>");
    assert.match(await status(`${b}/docs/`), /^401 /);
    const auth = { headers: { authorization: "Basic " + btoa("bob:secret") } };
    assert.equal(await status(`${b}/docs/`, auth), "200 docs");
    // The rewrite lands under /docs/: the auth rule holds there too.
    assert.match(await status(`${b}/d/`), /^401 /);
    assert.equal(await status(`${b}/d/`, auth), "200 docs");
  } finally {
    await server.stop();
  }
});

Deno.test("cli rule flags refuse bad values with one line naming the flag", async () => {
  const cases: Array<[string[], RegExp]> = [
    [
      ["--rewrite=^/x"],
      /^error: Invalid --rewrite "\^\/x": expected "REGEX TARGET"$/m,
    ],
    [
      ["--rewrite=( /y"],
      /^error: Invalid --rewrite "\( \/y": "regex" is not a valid regular expression/m,
    ],
    [
      ["--redirect=^/a /$urx"],
      /^error: Invalid --redirect "\^\/a \/\$urx": unknown placeholder \$urx$/m,
    ],
    [["--alias=pub"], /^error: Invalid --alias "pub": expected URL=DIR$/m],
    [["--deny=data"], /^error: Invalid --deny "data": expected a URL path/m],
    [
      ["--alias=/p=/nonexistent"],
      /^error: Invalid --alias "\/p=\/nonexistent": "\/nonexistent" is not a folder$/m,
    ],
    [
      ["--basic-auth=/nonexistent/users"],
      /^error: Invalid --basic-auth "\/nonexistent\/users": .*nonexistent/m,
    ],
  ];
  for (const [args, message] of cases) {
    const res = await runCli([".", ...args]);
    assert.equal(res.code, 2, args.join(" "));
    assert.match(res.stderr, message);
  }
});

Deno.test("cli --config rules errors name the file, the rule and the key", async () => {
  await using dir = await tempDir();
  await layout(dir.path);
  const file = `${dir.path}/serve.json`;
  const cases: Array<[unknown, RegExp]> = [
    [
      {
        rules: [{ prefix: "/a/", deny: true }, {
          path: "/**",
          rewrite: "/$urx",
        }],
      },
      /serve\.json: rules\[1\]\.rewrite: unknown placeholder \$urx$/m,
    ],
    [
      { rules: [{ prefix: "/", "try-files": ["$uri"] }] },
      /serve\.json: rules\[0\]\.try-files: needs at least two entries/,
    ],
    [
      { rules: [{ prefix: "/", "basic-auth": "missing-users" }] },
      /serve\.json: rules\[0\]\.basic-auth: .*missing-users/,
    ],
    [{ rules: [{ prefix: "/" }] }, /serve\.json: "rules\[0\]" does nothing/],
    [
      { rules: [{ prefix: "/", denny: true }] },
      /unknown key "rules\[0\]\.denny"/,
    ],
    [
      { rules: [{ prefix: "/p/", alias: "missing" }] },
      /serve\.json: rules\[0\]\.alias: ".*\/missing" does not exist/,
    ],
    [
      { rules: [{ prefix: "/p/", alias: "users" }] },
      /serve\.json: rules\[0\]\.alias: ".*\/users" is not a folder/,
    ],
    [
      { rules: [{ path: "/x/**", alias: "pub" }] },
      /serve\.json: rules\[0\]\.alias: needs "prefix"/,
    ],
    [
      {
        sites: [{
          host: "a.test",
          root: "blog",
          rules: [{ regex: "^/(x)", redirect: "/$2" }],
        }],
      },
      /serve\.json: sites\[0\]\.rules\[0\]\.redirect: placeholder \$2: the regex has only 1 group/,
    ],
    [
      { sites: [{ host: "a.test", root: "blog", port: 9 }] },
      /serve\.json: "sites\[0\]\.port" belongs to the server/,
    ],
    [
      { sites: [{ host: "a.test" }] },
      /serve\.json: "sites\[0\]\.root" is missing/,
    ],
    [
      { sites: [{ host: "a b", root: "blog" }] },
      /"sites\[0\]\.host" must be a host name/,
    ],
    [
      {
        sites: [{ host: "a.test", root: "blog" }, {
          host: "A.test",
          root: "blog",
        }],
      },
      /"sites\[1\]\.host": "A\.test" is given twice/,
    ],
    [{ "unknown-host": 404 }, /"unknown-host" must be "default" or 421/],
    [
      { rules: [{ prefix: "/app/", fastcgi: "www/index.html" }] },
      /"fastcgi" rule \(\/app\/\) needs --fastcgi or --fastcgi-spawn/,
    ],
  ];
  for (const [json, message] of cases) {
    await Deno.writeTextFile(file, JSON.stringify(json));
    const res = await runCli(["--config", file]);
    assert.equal(res.code, 2, JSON.stringify(json));
    assert.match(res.stderr, message, JSON.stringify(json));
    assert.equal(res.stderr.trim().split("\n").length, 2, res.stderr);
  }
});

Deno.test("cli --config sites serve each host its own root and rules; the banner lists them", async () => {
  await using dir = await tempDir();
  await layout(dir.path);
  const file = `${dir.path}/serve.json`;
  const config = {
    root: "www",
    rules: [{ prefix: "/data/", deny: 404 }],
    sites: [{
      host: ["blog.test", "*.blog.test"],
      root: "blog",
      rules: [{ prefix: "/", "try-files": ["$uri", "/index.html"] }],
    }],
  };
  await Deno.writeTextFile(file, JSON.stringify(config));
  const server = await startCli(["--config", file, "--port=0"]);
  try {
    const b = server.base;
    assert.equal(await atHost(b, "/", "blog.test"), "200 <h1>blog</h1>");
    assert.equal(
      await atHost(b, "/any/post", "www.blog.test"),
      "200 <h1>blog</h1>",
    );
    assert.equal(await atHost(b, "/", "other.test"), "200 <h1>www</h1>");
    assert.match(await atHost(b, "/data/x.txt", "other.test"), /^404 /);
    // Each site has its own rules: no deny on the blog.
    assert.match(await atHost(b, "/any/post", "other.test"), /^404 /);
    const banner = server.lines.join("\n");
    assert.match(banner, /Site: +blog\.test, \*\.blog\.test → .*\/blog/);
    assert.match(banner, /Other hosts: the default site/);
  } finally {
    await server.stop();
  }
  await Deno.writeTextFile(
    file,
    JSON.stringify({ ...config, "unknown-host": 421 }),
  );
  const strict = await startCli([
    "--config",
    file,
    "--port=0",
    "--log-format=json",
    "--workers=1",
  ]);
  try {
    assert.match(await atHost(strict.base, "/", "other.test"), /^421 /);
    assert.equal(
      await atHost(strict.base, "/", "blog.test"),
      "200 <h1>blog</h1>",
    );
    // The 421 is logged like every other answer.
    await waitFor(() =>
      strict.lines.some((l) =>
        l.startsWith("{") && JSON.parse(l).status === 421
      )
    );
  } finally {
    await strict.stop();
  }
});

Deno.test("cli --print-permissions reads alias folders, CGI mounts and htpasswd files of every site", async () => {
  await using dir = await tempDir();
  await layout(dir.path);
  const file = `${dir.path}/serve.json`;
  await Deno.writeTextFile(
    file,
    JSON.stringify({
      root: "www",
      rules: [{ prefix: "/p/", alias: "pub" }],
      sites: [{
        host: "a.test",
        root: "blog",
        rules: [{ prefix: "/", "basic-auth": "users" }],
      }],
    }),
  );
  const res = await runCli(["--config", file, "--print-permissions"]);
  assert.equal(res.code, 0, res.stderr);
  const read = /--allow-read=(\S+)/.exec(res.stdout)?.[1]?.split(",") ?? [];
  for (const path of ["www", "pub", "blog", "users"]) {
    assert.ok(read.includes(`${dir.path}/${path}`), `${path} in ${read}`);
  }
});
