// Real applications from Debian packages (WordPress on MariaDB, DokuWiki,
// gitweb) served by the site rules of tests/testdata/apps/<app>.serve.json.
// With APPS_PEER=nginx the same test bodies run against nginx with the
// configurations those files replace (<app>.nginx.conf), which proves the
// harness and the assertions independently of this server.
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { gunzipSync } from "node:zlib";
import { join } from "node:path";
import {
  APPS_DATA,
  fill,
  findFcgiwrap,
  phpCgiHead,
  PNG,
  prepareDokuWiki,
  prepareGitweb,
  prepareWordPress,
  startAppPhpFpm,
  startFcgiwrap,
  startMariaDb,
  startNginx,
} from "./_helpers/apps.ts";
import { startCli } from "./_helpers/process.ts";

const PEER = Deno.env.get("APPS_PEER") ?? "serve";

/** The server under test, serving one app. */
interface Peer extends AsyncDisposable {
  base: string;
  /** What the server logged (for failure messages). */
  log(): Promise<string>;
}

/** Starts `<app>` on the peer: our CLI with `<app>.serve.json`, or nginx. */
async function startPeer(
  app: string,
  vars: Record<string, string>,
): Promise<Peer> {
  if (PEER === "nginx") {
    const conf = await Deno.readTextFile(
      join(APPS_DATA, `${app}.nginx.conf`),
    );
    const nginx = await startNginx(conf, vars);
    return {
      base: nginx.base,
      log: () => Deno.readTextFile(nginx.errorLog).catch(() => ""),
      [Symbol.asyncDispose]: () => nginx[Symbol.asyncDispose](),
    };
  }
  const dir = await Deno.makeTempDir({ prefix: "x-serve-apps-conf-" });
  try {
    const config = join(dir, `${app}.serve.json`);
    await Deno.writeTextFile(
      config,
      fill(
        await Deno.readTextFile(join(APPS_DATA, `${app}.serve.json`)),
        vars,
      ),
    );
    const server = await startCli([
      "--config",
      config,
      "--port",
      "0",
      "--quiet",
    ]);
    return {
      base: server.base,
      log: () => Promise.resolve(server.lines.join("\n")),
      async [Symbol.asyncDispose]() {
        await server.stop();
        await Deno.remove(dir, { recursive: true });
      },
    };
  } catch (error) {
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
}

/** A response read whole, with nothing decoded or followed. */
interface Reply {
  status: number;
  headers: Headers;
  setCookies: string[];
  bytes: Uint8Array;
  text: string;
}

/**
 * One HTTP/1.1 exchange through node:http: no redirect followed, no
 * Content-Encoding undone (fetch would do both).
 */
function http(
  url: string,
  options: {
    method?: string;
    headers?: Record<string, string>;
    body?: string | Uint8Array;
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      method: options.method ?? "GET",
      headers: {
        ...(options.body !== undefined
          ? { "content-length": String(Buffer.byteLength(options.body)) }
          : {}),
        ...options.headers,
      },
      agent: false,
    }, (res) => {
      const chunks: Uint8Array[] = [];
      res.on("data", (chunk: Uint8Array) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () => {
        const headers = new Headers();
        const setCookies: string[] = [];
        for (const [name, value] of Object.entries(res.headers)) {
          for (const v of Array.isArray(value) ? value : [value ?? ""]) {
            if (name === "set-cookie") setCookies.push(v);
            else headers.append(name, v);
          }
        }
        const bytes = new Uint8Array(Buffer.concat(chunks));
        resolve({
          status: res.statusCode ?? 0,
          headers,
          setCookies,
          bytes,
          text: new TextDecoder().decode(bytes),
        });
      });
    });
    req.on("error", reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

/** Cookies by name, as a browser keeps them for one host (paths ignored). */
class CookieJar {
  #cookies = new Map<string, string>();
  /** Takes the Set-Cookie headers of a reply. */
  take(reply: Reply): string[] {
    const names: string[] = [];
    for (const line of reply.setCookies) {
      const [pair = "", ...attrs] = line.split(";");
      const i = pair.indexOf("=");
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      const expires = attrs.find((a) => /^\s*expires=/i.test(a));
      const gone = value === "" || value === "deleted" ||
        (expires !== undefined &&
          Date.parse(expires.split("=")[1]!) < Date.now());
      if (gone) this.#cookies.delete(name);
      else {
        this.#cookies.set(name, value);
        names.push(name);
      }
    }
    return names;
  }
  /** The Cookie header. */
  get header(): string {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  }
  get names(): string[] {
    return [...this.#cookies.keys()];
  }
}

/** GETs `url`, following up to `max` redirects like a browser, with cookies. */
async function follow(
  url: string,
  jar: CookieJar,
  max = 5,
): Promise<Reply & { url: string }> {
  for (let i = 0;; i++) {
    const reply = await http(url, { headers: { cookie: jar.header } });
    jar.take(reply);
    const location = reply.headers.get("location");
    if (reply.status < 300 || reply.status >= 400 || !location || i >= max) {
      return { ...reply, url };
    }
    url = new URL(location, url).href;
  }
}

function assertDenied(reply: Reply, secret: string, what: string) {
  assert.ok(
    reply.status === 403 || reply.status === 404,
    `${what}: expected 403 or 404, got ${reply.status}`,
  );
  assert.ok(!reply.text.includes(secret), `${what}: the raw file leaked`);
}

// ---------------------------------------------------------------------------

Deno.test("WordPress on MariaDB installs, renders pretty permalinks, logs in, uploads and compresses", async (t) => {
  await using db = await startMariaDb();
  await using wp = await prepareWordPress(db);
  await using fpm = await startAppPhpFpm();
  await using peer = await startPeer("wordpress", {
    ROOT: wp.root,
    FPM: fpm.address,
  });
  const base = peer.base;
  const why = async () =>
    `\n--- peer log:\n${await peer.log()}\n--- php-fpm log:\n${await Deno
      .readTextFile(fpm.errorLog).catch(() => "")}`;

  await t.step("the installer completes against the server", async () => {
    await wp.install(base);
    const count = await db.query(
      `SELECT COUNT(*) FROM ${db.database}.wp_users`,
    );
    assert.equal(count.trim(), "1");
    await wp.setPermalinks("/%postname%/");
  });

  await t.step(
    "the pretty permalink /hello-world/ renders the post",
    async () => {
      const reply = await http(`${base}/hello-world/`);
      assert.equal(reply.status, 200, `status ${reply.status}${await why()}`);
      assert.match(reply.headers.get("content-type") ?? "", /^text\/html/);
      assert.match(
        reply.text,
        /<h1 class="entry-title"><a href="[^"]*\/hello-world\/">Hello world!<\/a><\/h1>/,
      );
      assert.match(
        reply.text,
        /<title>Hello world! &#8211; x-serve WordPress<\/title>/,
      );
      // The front page lists it with the same link.
      const front = await http(`${base}/`);
      assert.equal(front.status, 200);
      assert.ok(front.text.includes(`href="${base}/hello-world/"`));
      // A page that does not exist is WordPress's 404, not the server's.
      const missing = await http(`${base}/no-such-post/`);
      assert.equal(missing.status, 404);
      assert.match(missing.text, /x-serve WordPress/);
    },
  );

  const jar = new CookieJar();
  await t.step(
    "logging in through wp-login.php sets the auth cookies and reaches wp-admin",
    async () => {
      const form = await http(`${base}/wp-login.php`);
      assert.equal(form.status, 200);
      jar.take(form);
      assert.ok(jar.names.includes("wordpress_test_cookie"));
      const login = await http(`${base}/wp-login.php`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          cookie: jar.header,
        },
        body: new URLSearchParams({
          log: wp.admin.user,
          pwd: wp.admin.password,
          "wp-submit": "Log In",
          redirect_to: `${base}/wp-admin/`,
          testcookie: "1",
        }).toString(),
      });
      assert.equal(login.status, 302, `login: ${login.status}${await why()}`);
      const set = jar.take(login);
      assert.ok(set.some((n) => /^wordpress_logged_in_[0-9a-f]{32}$/.test(n)));
      assert.ok(set.some((n) => /^wordpress_[0-9a-f]{32}$/.test(n)));
      assert.ok(login.setCookies.length >= 3, login.setCookies.join("\n"));
      const admin = await follow(
        new URL(login.headers.get("location")!, base).href,
        jar,
      );
      assert.equal(admin.status, 200);
      assert.equal(new URL(admin.url).pathname, "/wp-admin/");
      assert.match(admin.text, /<title>Dashboard &lsaquo; x-serve WordPress/);
      // Without the cookies wp-admin sends to the login page.
      const anonymous = await http(`${base}/wp-admin/`);
      assert.equal(anonymous.status, 302);
      assert.match(
        anonymous.headers.get("location") ?? "",
        /\/wp-login\.php\?/,
      );
    },
  );

  await t.step(
    "a media upload through the REST API is stored and then served statically",
    async () => {
      const nonce = await http(
        `${base}/wp-admin/admin-ajax.php?action=rest-nonce`,
        { headers: { cookie: jar.header } },
      );
      assert.equal(nonce.status, 200);
      assert.match(nonce.text, /^[0-9a-f]{10}$/);
      const upload = await http(`${base}/wp-json/wp/v2/media`, {
        method: "POST",
        headers: {
          cookie: jar.header,
          "x-wp-nonce": nonce.text,
          "content-type": "image/png",
          "content-disposition": 'attachment; filename="x-serve-upload.png"',
        },
        body: PNG,
      });
      assert.equal(upload.status, 201, `upload: ${upload.text}${await why()}`);
      const media = JSON.parse(upload.text);
      const source = new URL(media.source_url);
      assert.match(
        source.pathname,
        /^\/wp-content\/uploads\/\d{4}\/\d{2}\/x-serve-upload\.png$/,
      );
      const stored = await Deno.readFile(
        join(wp.root, decodeURIComponent(source.pathname)),
      );
      assert.deepEqual(stored, PNG);
      const served = await http(`${base}${source.pathname}`);
      assert.equal(served.status, 200);
      assert.equal(served.headers.get("content-type"), "image/png");
      assert.deepEqual(served.bytes, PNG);
      // The attachment page is a pretty permalink too.
      const page = await http(media.link);
      assert.equal(page.status, 200);
    },
  );

  await t.step("PHP dropped into uploads is denied, not run", async () => {
    await Deno.writeTextFile(
      join(wp.uploads, "evil.php"),
      "<?php echo 'ran' . 'evil'; ?>evil-source",
    );
    const reply = await http(`${base}/wp-content/uploads/evil.php`);
    assert.equal(reply.status, 403);
    assert.ok(!reply.text.includes("ranevil"));
    assert.ok(!reply.text.includes("evil-source"));
  });

  await t.step(
    "a page asked for with Accept-Encoding: gzip comes back gzip and decodes to the same HTML",
    async () => {
      const plain = await http(`${base}/hello-world/`, {
        headers: { "accept-encoding": "identity" },
      });
      assert.equal(plain.status, 200);
      assert.equal(plain.headers.get("content-encoding"), null);
      const gzipped = await http(`${base}/hello-world/`, {
        headers: { "accept-encoding": "gzip" },
      });
      assert.equal(gzipped.status, 200);
      assert.equal(gzipped.headers.get("content-encoding"), "gzip");
      assert.match(gzipped.headers.get("vary") ?? "", /accept-encoding/i);
      const html = new TextDecoder().decode(gunzipSync(gzipped.bytes));
      assert.equal(html, plain.text);
      assert.ok(gzipped.bytes.length < plain.bytes.length);
    },
  );
});

// ---------------------------------------------------------------------------

Deno.test("DokuWiki asks for its media with X-Accel-Redirect to the data/ path under the site root", async () => {
  await using wiki = await prepareDokuWiki();
  const head = await phpCgiHead(
    join(wiki.root, "lib/exe/fetch.php"),
    `/lib/exe/fetch.php?media=${wiki.media.id}`,
    wiki.root,
  );
  assert.equal(head.get("x-accel-redirect"), wiki.accelPath);
});

Deno.test("DokuWiki renders nice URLs, hides data/ and conf/ and sends media through X-Accel-Redirect", async (t) => {
  await using wiki = await prepareDokuWiki();
  await using fpm = await startAppPhpFpm({ workers: 4 });
  await using peer = await startPeer("dokuwiki", {
    ROOT: wiki.root,
    FPM: fpm.address,
  });
  const base = peer.base;
  const why = async () =>
    `\n--- peer log:\n${await peer.log()}\n--- php-fpm log:\n${await Deno
      .readTextFile(fpm.errorLog).catch(() => "")}`;

  await t.step("/start (userewrite = 1) renders the start page", async () => {
    const reply = await http(`${base}/start`);
    assert.equal(reply.status, 200, `status ${reply.status}${await why()}`);
    assert.match(reply.headers.get("content-type") ?? "", /^text\/html/);
    assert.ok(reply.text.includes(wiki.page.marker), reply.text.slice(0, 500));
    assert.match(reply.text, /<h1[^>]*>Welcome to x-serve<\/h1>/);
    // Its links use nice URLs too: the image goes through /_media/ (or
    // /_detail/ for the link around it).
    assert.match(reply.text, /src="\/_media\/wiki:x-serve\.svg/);
    // The front page is the start page.
    const front = await http(`${base}/`);
    assert.equal(front.status, 200);
    assert.ok(front.text.includes(wiki.page.marker));
    // A page that does not exist yet is DokuWiki's own page offering it.
    const missing = await http(`${base}/no-such-page`);
    assert.match(missing.text, /This topic does not exist yet/);
  });

  await t.step("data/ and conf/ are denied, never the raw file", async () => {
    assertDenied(
      await http(`${base}/data/pages/start.txt`),
      wiki.page.marker,
      "/data/pages/start.txt",
    );
    assertDenied(
      await http(`${base}/data/media/wiki/x-serve.svg`),
      "x-serve media fixture",
      "/data/media/wiki/x-serve.svg",
    );
    assertDenied(
      await http(`${base}/conf/local.php`),
      "xsendfile",
      "/conf/local.php",
    );
    assertDenied(
      await http(`${base}/conf/acl.auth.php`),
      "@ALL",
      "/conf/acl.auth.php",
    );
    assertDenied(
      await http(`${base}/inc/init.php`),
      "DOKU_INC",
      "/inc/init.php",
    );
    assertDenied(
      await http(`${base}/install.php`),
      "installer",
      "/install.php",
    );
  });

  await t.step(
    "a media file arrives with its bytes and no X-Accel-Redirect header",
    async () => {
      for (
        const path of [
          "/_media/wiki:x-serve.svg", // the nice URL DokuWiki links to
          `/lib/exe/fetch.php?media=${wiki.media.id}`,
        ]
      ) {
        const reply = await http(`${base}${path}`);
        assert.equal(
          reply.status,
          200,
          `${path}: ${reply.status}${await why()}`,
        );
        assert.equal(reply.headers.get("x-accel-redirect"), null);
        assert.equal(reply.headers.get("x-sendfile"), null);
        assert.match(
          reply.headers.get("content-type") ?? "",
          /^image\/svg\+xml/,
        );
        assert.deepEqual(reply.bytes, wiki.media.bytes);
      }
    },
  );

  await t.step("the media file answers a Range request with 206", async () => {
    const reply = await http(`${base}/_media/wiki:x-serve.svg`, {
      headers: { range: "bytes=0-9" },
    });
    assert.equal(reply.status, 206);
    assert.equal(
      reply.headers.get("content-range"),
      `bytes 0-9/${wiki.media.bytes.length}`,
    );
    assert.deepEqual(reply.bytes, wiki.media.bytes.slice(0, 10));
    assert.equal(reply.headers.get("x-accel-redirect"), null);
  });
});

// ---------------------------------------------------------------------------

const fcgiwrap = findFcgiwrap();

Deno.test({
  name:
    "gitweb lists the project, serves its static files and shows the commit",
  // nginx runs CGI only through fcgiwrap (`FCGIWRAP=/path` or on PATH).
  ignore: PEER === "nginx" && fcgiwrap === undefined,
  async fn(t) {
    await using gitweb = await prepareGitweb();
    await using wrap = PEER === "nginx"
      ? await startFcgiwrap(fcgiwrap!)
      : undefined;
    await using peer = await startPeer("gitweb", {
      ROOT: gitweb.www,
      GITWEB_CONFIG: gitweb.config,
      FCGIWRAP: wrap?.address ?? "",
    });
    const base = peer.base;
    const jar = new CookieJar();
    let list!: Reply & { url: string };

    await t.step(
      "the project list at /gitweb/ lists the repository",
      async () => {
        list = await follow(`${base}/gitweb/`, jar);
        assert.equal(list.status, 200, `${list.status}: ${await peer.log()}`);
        assert.match(list.headers.get("content-type") ?? "", /^text\/html/);
        assert.ok(list.text.includes(gitweb.project.name));
        assert.ok(list.text.includes(gitweb.project.description));
      },
    );

    await t.step(
      "the stylesheet the page links to is Debian's static/gitweb.css",
      async () => {
        const href = /<link rel="stylesheet" type="text\/css" href="([^"]+)"/
          .exec(list.text)?.[1];
        assert.equal(href, "/gitweb/static/gitweb.css");
        const expected = await Deno.readFile(`${gitweb.staticDir}/gitweb.css`);
        const css = await http(new URL(href!, list.url).href);
        assert.equal(css.status, 200);
        assert.match(css.headers.get("content-type") ?? "", /^text\/css/);
        assert.deepEqual(css.bytes, expected);
        const logo = await http(`${base}/gitweb/static/git-logo.png`);
        assert.equal(logo.status, 200);
        assert.deepEqual(
          logo.bytes,
          await Deno.readFile(`${gitweb.staticDir}/git-logo.png`),
        );
      },
    );

    await t.step(
      "the project's link from the list leads to its summary with the commit",
      async () => {
        const href = new RegExp(
          `href="([^"]*p=${
            gitweb.project.name.replace(".", "\\.")
          };a=summary)"`,
        ).exec(list.text)?.[1];
        assert.ok(href, "a summary link");
        const summary = await follow(
          new URL(href.replaceAll("&amp;", "&"), list.url).href,
          jar,
        );
        assert.equal(summary.status, 200, `${summary.url}: ${summary.status}`);
        assert.ok(summary.text.includes(gitweb.commit.subject));
        assert.ok(summary.text.includes(gitweb.commit.hash));
      },
    );

    await t.step(
      "the PATH_INFO form /gitweb/repo.git shows the same summary",
      async () => {
        const reply = await http(`${base}/gitweb/${gitweb.project.name}`);
        assert.equal(reply.status, 200);
        assert.ok(reply.text.includes(gitweb.commit.subject));
        const commit = await http(
          `${base}/gitweb/?p=${gitweb.project.name};a=commit;h=${gitweb.commit.hash}`,
        );
        assert.equal(commit.status, 200);
        assert.ok(commit.text.includes(gitweb.commit.subject));
        assert.ok(commit.text.includes("README"));
      },
    );
  },
});
