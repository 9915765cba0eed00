// Directory listings: sorting (HTML and JSON), breadcrumbs, escaping, the
// Content-Security-Policy that allows exactly the page's inline blocks, and
// the rendered pages kept per directory state.
import assert from "node:assert/strict";
import { createHandler, documentRoot, type FileCacheOptions } from "../mod.ts";
import { renderListing } from "../static/mod.ts";
import { tempDir } from "./_helpers/fs.ts";

const DAY = 86_400_000;

/** A folder: two directories, four files of distinct sizes and times. */
async function fixture(path: string): Promise<void> {
  await Deno.mkdir(`${path}/b-dir`);
  await Deno.mkdir(`${path}/a-dir`);
  await Deno.mkdir(`${path}/a-dir/sub dir`);
  const files: Array<[string, number, number]> = [
    ["alpha.txt", 30, 2],
    ["beta.bin", 1000, 0],
    ["gamma.md", 5, 3],
    ["delta.png", 200, 1],
  ];
  const base = Date.UTC(2024, 5, 1);
  for (const [name, size, age] of files) {
    await Deno.writeFile(`${path}/${name}`, new Uint8Array(size));
    const when = new Date(base - age * DAY);
    await Deno.utime(`${path}/${name}`, when, when);
  }
  const old = new Date(base - 10 * DAY);
  await Deno.utime(`${path}/a-dir`, new Date(base), new Date(base));
  await Deno.utime(`${path}/b-dir`, old, old);
}

function json(url: string): Request {
  return new Request(url, { headers: { accept: "application/json" } });
}

async function names(res: Response): Promise<string[]> {
  return (await res.json()).map((e: { name: string }) => e.name);
}

/** The names in an HTML listing's rows, in order. */
function htmlNames(html: string): string[] {
  return [
    ...html.matchAll(
      /<tr[^>]*><td><a class="i-[a-z]+" href="[^"]*">([^<]*)<\/a>/g,
    ),
  ]
    .map((m) => m[1]!);
}

Deno.test("listing: ?sort= and ?order= order JSON and HTML, directories first", async () => {
  await using dir = await tempDir();
  await fixture(dir.path);
  const h = createHandler({
    root: dir.path,
    serveStatic: { dirListing: true },
  });
  const cases: Array<[string, string[]]> = [
    ["", ["a-dir", "b-dir", "alpha.txt", "beta.bin", "delta.png", "gamma.md"]],
    ["?sort=name&order=desc", [
      "b-dir",
      "a-dir",
      "gamma.md",
      "delta.png",
      "beta.bin",
      "alpha.txt",
    ]],
    ["?sort=size", [
      "a-dir",
      "b-dir",
      "gamma.md",
      "alpha.txt",
      "delta.png",
      "beta.bin",
    ]],
    ["?sort=size&order=desc", [
      "a-dir",
      "b-dir",
      "beta.bin",
      "delta.png",
      "alpha.txt",
      "gamma.md",
    ]],
    ["?sort=date&order=asc", [
      "b-dir",
      "a-dir",
      "gamma.md",
      "alpha.txt",
      "delta.png",
      "beta.bin",
    ]],
    ["?order=desc&sort=date", [
      "a-dir",
      "b-dir",
      "beta.bin",
      "delta.png",
      "alpha.txt",
      "gamma.md",
    ]],
    // Anything else is the default.
    ["?sort=evil&order=sideways", [
      "a-dir",
      "b-dir",
      "alpha.txt",
      "beta.bin",
      "delta.png",
      "gamma.md",
    ]],
  ];
  for (const [query, expected] of cases) {
    assert.deepEqual(
      await names(await h(json(`http://x/${query}`))),
      expected,
      query,
    );
    const html = await (await h(new Request(`http://x/${query}`))).text();
    assert.deepEqual(
      htmlNames(html),
      expected.map((n) => n.endsWith("-dir") ? `${n}/` : n),
      `HTML ${query}`,
    );
  }
});

Deno.test("listing: column headers are sort links with aria-sort on the sorted one", async () => {
  await using dir = await tempDir();
  await fixture(dir.path);
  const h = createHandler({
    root: dir.path,
    serveStatic: { dirListing: true },
  });
  const headers = async (query: string) => {
    const html = await (await h(new Request(`http://x/${query}`))).text();
    return [
      ...html.matchAll(
        /<th scope="col"[^>]*?(?: aria-sort="(\w+)")?><a href="([^"]+)">/g,
      ),
    ]
      .map((m) => [m[2], m[1] ?? null]);
  };
  assert.deepEqual(await headers(""), [
    ["?sort=name&amp;order=desc", "ascending"],
    ["?sort=size&amp;order=desc", null],
    ["?sort=date&amp;order=desc", null],
  ]);
  assert.deepEqual(await headers("?sort=size&order=desc"), [
    ["?sort=name&amp;order=asc", null],
    ["?sort=size&amp;order=asc", "descending"],
    ["?sort=date&amp;order=desc", null],
  ]);
  assert.deepEqual(await headers("?sort=date&order=asc"), [
    ["?sort=name&amp;order=asc", null],
    ["?sort=size&amp;order=desc", null],
    ["?sort=date&amp;order=desc", "ascending"],
  ]);
  const html = await (await h(new Request("http://x/"))).text();
  assert.match(html, /<table>/);
  assert.match(
    html,
    /<caption class="vh">Contents of \/, sorted by name, ascending<\/caption>/,
  );
  assert.match(html, /<label for="filter">Filter<\/label><input id="filter"/);
  assert.match(
    html,
    /id="filter-box" hidden>/,
    "the filter waits for its script",
  );
  assert.match(html, /prefers-color-scheme:dark/);
  assert.match(html, /overflow-wrap:anywhere/);
  assert.doesNotMatch(html, /word-break/);
});

Deno.test("listing: breadcrumbs link every segment, relative, and keep the sort", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/a b/c&d`, { recursive: true });
  const h = createHandler({
    root: dir.path,
    serveStatic: { dirListing: true },
  });
  const crumbs = async (url: string) => {
    const html = await (await h(new Request(url))).text();
    const h1 = /<h1>(.*?)<\/h1>/.exec(html)![1]!;
    return [
      ...h1.matchAll(/<a href="([^"]*)"( aria-current="page")?>([^<]*)<\/a>/g),
    ]
      .map((m) => [m[3], m[1], Boolean(m[2])]);
  };
  assert.deepEqual(await crumbs("http://x/a%20b/c%26d/"), [
    ["/", "../../", false],
    ["a b/", "../", false],
    ["c&amp;d/", "./", true],
  ]);
  assert.deepEqual(await crumbs("http://x/"), [["/", "./", true]]);
  assert.deepEqual(await crumbs("http://x/a%20b/?sort=date&order=desc"), [
    ["/", "../?sort=date&amp;order=desc", false],
    ["a b/", "./?sort=date&amp;order=desc", true],
  ]);
  const sorted =
    await (await h(new Request("http://x/a%20b/?sort=size&order=asc"))).text();
  assert.match(
    sorted,
    /<a class="i-up" href="\.\.\/\?sort=size&amp;order=asc">\.\.\/<\/a>/,
  );
  assert.match(
    sorted,
    /href="\.\/c%26d\/\?sort=size&amp;order=asc">c&amp;d\/<\/a>/,
  );
  assert.match(
    await (await h(new Request("http://x/a%20b/"))).text(),
    /href="\.\/c%26d\/">/,
  );
});

Deno.test("listing: hostile names are escaped in text and percent-encoded in links", async () => {
  await using dir = await tempDir();
  const hostile = [
    `<script>alert("x")<\\script>.js`,
    `it's "quoted" & <b>bold<b>.txt`,
    `%2e%2e?#.txt`,
  ];
  for (const name of hostile) {
    await Deno.writeTextFile(`${dir.path}/${name}`, "x");
  }
  await Deno.mkdir(`${dir.path}/"><svg onload=alert(1)>`);
  const h = createHandler({
    root: dir.path,
    serveStatic: { dirListing: true },
  });
  const html = await (await h(new Request("http://x/"))).text();
  const body = html.slice(html.indexOf("<main>"), html.indexOf("<script>("));
  assert.doesNotMatch(body, /<script|<svg|<b>|onload=alert\(1\)>/);
  assert.match(
    body,
    /&lt;script&gt;alert\(&quot;x&quot;\)&lt;\\script&gt;\.js<\/a>/,
  );
  assert.match(
    body,
    /href="\.\/%3Cscript%3Ealert\(%22x%22\)%3C%5Cscript%3E\.js"/,
  );
  assert.match(
    body,
    /it&#39;s &quot;quoted&quot; &amp; &lt;b&gt;bold&lt;b&gt;\.txt/,
  );
  assert.match(
    body,
    /href="\.\/it&#39;s%20%22quoted%22%20%26%20%3Cb%3Ebold%3Cb%3E\.txt"/,
  );
  assert.match(body, /href="\.\/%252e%252e%3F%23\.txt"/);
  assert.match(body, /href="\.\/%22%3E%3Csvg%20onload%3Dalert\(1\)%3E\/"/);
  // Every attribute value is quoted and holds no raw quote or angle bracket.
  for (const [, value] of body.matchAll(/="([^"]*)"/g)) {
    assert.doesNotMatch(value!, /[<>]/, value);
  }
  // JSON carries the names as they are.
  const listed = await names(await h(json("http://x/")));
  for (const name of hostile) assert.ok(listed.includes(name), name);
});

/** The SHA-256 of `text` as a CSP source. */
async function sha256(text: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)),
  );
  return `'sha256-${btoa(String.fromCharCode(...digest))}'`;
}

Deno.test("listing: its Content-Security-Policy allows exactly its inline style and script", async () => {
  await using dir = await tempDir();
  await fixture(dir.path);
  const root = documentRoot(dir.path);
  for (const query of ["", "?sort=size&order=desc"]) {
    const res = await renderListing(new Request(`http://x/${query}`), root, []);
    const csp = res.headers.get("content-security-policy") ?? "";
    const html = await res.text();
    const directives = new Map(
      csp.split(";").map((d) => d.trim().split(/\s+/)).map((
        [name, ...values],
      ) => [name!, values]),
    );
    assert.deepEqual(directives.get("default-src"), ["'none'"]);
    assert.deepEqual(directives.get("img-src"), ["data:"]);
    assert.deepEqual(directives.get("base-uri"), ["'none'"]);
    const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) =>
      m[1]!
    );
    const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((
      m,
    ) => m[1]!);
    assert.equal(styles.length, 2);
    assert.equal(scripts.length, 1);
    assert.deepEqual(
      directives.get("style-src"),
      await Promise.all(styles.map(sha256)),
    );
    assert.deepEqual(
      directives.get("script-src"),
      await Promise.all(scripts.map(sha256)),
    );
    assert.doesNotMatch(csp, /unsafe/);
    // Nothing a policy would have to allow beyond those: no inline handlers
    // or style attributes, no external resources.
    assert.doesNotMatch(
      html,
      /\son[a-z]+=|\sstyle=|\ssrc=|<link|https?:\/\/(?!www\.w3\.org\/2000\/svg)/,
    );
  }
  const json = await renderListing(
    new Request("http://x/", { headers: { accept: "application/json" } }),
    root,
    [],
  );
  assert.equal(json.headers.get("content-security-policy"), null);
  await json.body?.cancel();
  const head = await renderListing(
    new Request("http://x/", { method: "HEAD" }),
    root,
    [],
  );
  assert.equal(head.body, null);
  assert.ok(head.headers.get("content-security-policy"));
  assert.ok(Number(head.headers.get("content-length")) > 0);
});

Deno.test("listing: every order is rendered from the one reading the cache keeps", async () => {
  await using dir = await tempDir();
  await fixture(dir.path);
  const handler = (cache: FileCacheOptions) =>
    createHandler({ root: dir.path, cache, serveStatic: { dirListing: true } });
  await using frozen = handler({ validMs: 60_000, watch: false });
  await using uncached = handler({ validMs: 0 });
  const first = await (await frozen(new Request("http://x/"))).text();
  assert.doesNotMatch(first, /late\.txt/);
  await Deno.writeTextFile(`${dir.path}/late.txt`, "late");
  // A variant not rendered before comes from the kept reading: no late.txt.
  for (
    const query of [
      "?sort=size&order=desc",
      "?sort=date",
      "?sort=name&order=desc",
    ]
  ) {
    const html = await (await frozen(new Request(`http://x/${query}`))).text();
    assert.doesNotMatch(html, /late\.txt/, query);
    assert.ok(
      !(await names(await frozen(json(`http://x/${query}`)))).includes(
        "late.txt",
      ),
    );
  }
  // The same variant twice is the same bytes.
  assert.equal(await (await frozen(new Request("http://x/"))).text(), first);
  // Without the cache, every request reads the directory.
  const fresh = await (await uncached(new Request("http://x/?sort=size")))
    .text();
  assert.match(fresh, /late\.txt/);
});

Deno.test("listing: the cap picks entries by name, the sort orders what is listed", async () => {
  await using dir = await tempDir();
  for (let i = 0; i < 8; i++) {
    await Deno.writeFile(`${dir.path}/f${i}.bin`, new Uint8Array(8 - i));
  }
  const root = documentRoot(dir.path);
  const res = await renderListing(
    json("http://x/?sort=size&order=asc"),
    root,
    [],
    {
      maxEntries: 3,
    },
  );
  assert.equal(res.headers.get("x-listing-omitted"), "5");
  assert.deepEqual(await names(res), ["f2.bin", "f1.bin", "f0.bin"]);
  const html =
    await (await renderListing(new Request("http://x/?sort=size"), root, [], {
      maxEntries: 3,
    })).text();
  assert.match(html, /5 more entries are not listed\./);
  assert.match(html, /0 directories, 3 files/);
});

Deno.test("renderListing() renders a directory once; each response is its own (headers, and bytes a reader writes into)", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/a.txt`, "a");
  await using root = documentRoot(await Deno.realPath(dir.path), {
    cache: { validMs: 60_000, watch: false },
  });
  const get = () => renderListing(new Request("http://x/"), root, []);
  // Rendered once: every response holds the same bytes (not a copy each).
  const held = (res: Response) => Response.prototype.bytes.call(res);
  assert.ok(await held(await get()) === await held(await get()), "one copy");
  const first = await get();
  first.headers.set("x-first", "1");
  new Uint8Array(await first.arrayBuffer()).fill(0);
  const second = await get();
  assert.equal(second.headers.get("x-first"), null);
  const html = await second.text();
  assert.match(html, /a\.txt/);
  assert.equal(
    second.headers.get("content-length"),
    String(new TextEncoder().encode(html).byteLength),
  );
  const head = await renderListing(
    new Request("http://x/", { method: "HEAD" }),
    root,
    [],
  );
  assert.equal(head.body, null);
  assert.equal(
    head.headers.get("content-length"),
    second.headers.get("content-length"),
  );
});
