import assert from "node:assert/strict";
import {
  cgi,
  compose,
  createHandler,
  documentRoot,
  resolvePath,
  serveStatic,
} from "../mod.ts";
import { fastcgi } from "../cgi/fastcgi/mod.ts";
import { statusOf } from "../server/errors.ts";
import {
  MAX_PATH_BYTES,
  MAX_SEGMENT_BYTES,
  MAX_TARGET_BYTES,
} from "../server/resolve.ts";
import { fuzzRequests } from "./_helpers/fuzz.ts";
import { tempDir, testdata } from "./_helpers/fs.ts";
import { rawRequest, withServer } from "./_helpers/net.ts";
import { REPO } from "./_helpers/process.ts";
import { formatReport, runFuzz } from "./fuzz.ts";

const WWW = testdata("fuzz", "www");
const CGI = testdata("fuzz", "cgi");

function site() {
  return createHandler({ root: WWW, cgi: { dirs: { "/cgi-bin/": CGI } } });
}

async function statusAndText(
  handler: (req: Request) => Promise<Response>,
  path: string,
): Promise<[number, string]> {
  const res = await handler(new Request(`http://localhost${path}`));
  return [res.status, await res.text()];
}

/** Segments below `root` that make a path of exactly `bytes` bytes (ASCII). */
function pathOfLength(root: string, bytes: number): string[] {
  const segments: string[] = [];
  let length = root.length;
  while (bytes - length > 1 + 200 + 1 + 1) {
    segments.push("d".repeat(200));
    length += 201;
  }
  segments.push("f".repeat(bytes - length - 1));
  return segments;
}

Deno.test("server answers no 5xx to 3 000 seeded hostile targets and leaks no fds or children", async () => {
  const report = await runFuzz({ count: 3000, seed: 1 });
  const summary = formatReport(report);
  assert.equal(report.serverErrors, 0, summary);
  assert.equal(report.dropped, 0, summary);
  assert.equal(report.timeouts, 0, summary);
  assert.equal(report.errorLogLines, 0, summary);
  assert.ok(report.fds.after <= report.fds.before, summary);
  assert.ok(report.children.after <= report.children.before, summary);
  assert.ok(report.alive, summary);
  for (const status of [200, 400, 404, 414]) {
    assert.ok(report.statuses[status], `no ${status} in the run:\n${summary}`);
  }
  assert.ok(report.byKind.cgi?.["200"], `no CGI script ran:\n${summary}`);
  assert.ok(report.ok, summary);
});

Deno.test("fuzzRequests() gives the same targets for the same seed and others for another", () => {
  const take = (seed: number) => {
    const out: string[] = [];
    for (const request of fuzzRequests(seed)) {
      out.push(`${request.method} ${request.target}`);
      if (out.length === 200) break;
    }
    return out;
  };
  assert.deepEqual(take(42), take(42));
  assert.notDeepEqual(take(42), take(43));
});

Deno.test("a segment over 255 bytes answers 404 and a 255-byte name is served", async () => {
  await using dir = await tempDir();
  const ascii = "a".repeat(MAX_SEGMENT_BYTES);
  const accented = "é".repeat(127) + "a"; // 255 bytes in UTF-8
  await Deno.writeTextFile(`${dir.path}/${ascii}`, "ascii");
  await Deno.writeTextFile(`${dir.path}/${accented}`, "accented");
  const handler = createHandler({ root: dir.path });
  assert.deepEqual(await statusAndText(handler, `/${ascii}`), [200, "ascii"]);
  assert.deepEqual(
    await statusAndText(handler, `/${encodeURIComponent(accented)}`),
    [200, "accented"],
  );
  for (
    const name of [
      "a".repeat(256),
      "é".repeat(128), // 256 bytes in 128 characters
      "😀".repeat(64),
      ascii + "/x",
      `${ascii}.br`,
    ]
  ) {
    const res = await handler(
      new Request(
        `http://localhost/${name.split("/").map(encodeURIComponent).join("/")}`,
        { headers: { "accept-encoding": "br, gzip" } },
      ),
    );
    assert.equal(res.status, 404, `${name.length} characters`);
    await res.body?.cancel();
  }
});

Deno.test("a path over 4 095 bytes on disk answers 404 and one just inside is served", async () => {
  await using dir = await tempDir();
  const inside = pathOfLength(dir.path, MAX_PATH_BYTES);
  const file = [dir.path, ...inside].join("/");
  assert.equal(new TextEncoder().encode(file).length, MAX_PATH_BYTES);
  await Deno.mkdir([dir.path, ...inside.slice(0, -1)].join("/"), {
    recursive: true,
  });
  await Deno.writeTextFile(file, "deep");
  const handler = createHandler({ root: dir.path });
  const url = "/" + inside.join("/");
  assert.deepEqual(await statusAndText(handler, url), [200, "deep"]);
  assert.equal((await statusAndText(handler, url + "f"))[0], 404);
  assert.equal((await statusAndText(handler, url + "/x"))[0], 404);
  // Short segments add up too: 3 000 of them, 6 000 bytes.
  assert.equal((await statusAndText(handler, "/a".repeat(3000)))[0], 404);
});

Deno.test("documentRoot().find() turns down over-long names without touching the file system", async () => {
  // Without --allow-read any stat fails with NotCapable: a name that comes
  // back `undefined` was never looked up.
  const script = `
    import { documentRoot } from ${
    JSON.stringify(new URL("../server/resolve.ts", import.meta.url).href)
  };
    const root = documentRoot("/srv/www");
    const out = {};
    for (const [label, segments] of [
      ["segment", ["a".repeat(256)]],
      ["utf8", ["é".repeat(128)]],
      ["path", Array(45).fill("p".repeat(100))],
      ["short", ["a"]],
    ]) {
      try {
        out[label] = String(await root.find(segments));
      } catch (error) {
        out[label] = error.name;
      }
    }
    console.log(JSON.stringify(out));
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "-"],
    cwd: REPO,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(script));
  await writer.close();
  const out = await child.output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), {
    segment: "undefined",
    utf8: "undefined",
    path: "undefined",
    short: "NotCapable", // the control: a name that fits is looked up
  });
});

Deno.test("documentRoot().find() answers undefined for symlink loops and files used as directories", async () => {
  await using root = documentRoot(await Deno.realPath(WWW));
  assert.equal(await root.find(["loop"]), undefined);
  assert.equal(await root.find(["loop", "x"]), undefined);
  assert.equal(await root.find(["hello.txt", "x"]), undefined);
  assert.equal(await root.find(["hello.txt", "a".repeat(300)]), undefined);
  assert.equal((await root.find(["hello.txt"]))?.info.size, 11);
});

Deno.test("a request target over 8 192 bytes answers 414 before any lookup, one at the limit does not", async () => {
  const handler = site();
  try {
    const path = "/" + "a".repeat(MAX_TARGET_BYTES - 1); // pathname at the limit
    assert.equal((await statusAndText(handler, path))[0], 404);
    const [status, page] = await statusAndText(handler, path + "a");
    assert.equal(status, 414);
    assert.match(page, /414/);
    assert.doesNotMatch(page, /aaaa/, "the page never echoes the path");
    const query = "q".repeat(MAX_TARGET_BYTES - "/hello.txt?".length);
    assert.deepEqual(
      await statusAndText(handler, `/hello.txt?${query}`),
      [200, "hello fuzz\n"],
    );
    assert.equal(
      (await statusAndText(handler, `/hello.txt?${query}q`))[0],
      414,
    );
    assert.equal(
      (await statusAndText(handler, `/cgi-bin/echo.sh?${query}`))[0],
      414,
      "a huge QUERY_STRING never reaches a script",
    );
  } finally {
    await handler.close();
  }
});

Deno.test("a CGI script gets 6 000 bytes of PATH_INFO, and long names below the CGI directory answer 404", async () => {
  const handler = site();
  try {
    assert.deepEqual(
      await statusAndText(handler, "/cgi-bin/echo.sh/" + "p".repeat(6000)),
      [200, "path_info=6001 query=0\n"],
    );
    assert.deepEqual(
      await statusAndText(handler, "/cgi-bin/echo.sh/" + "p".repeat(300)),
      [200, "path_info=301 query=0\n"],
    );
    assert.deepEqual(
      await statusAndText(handler, "/cgi-bin/echo.sh" + "/p".repeat(3000)),
      [200, "path_info=6000 query=0\n"],
    );
    for (
      const path of [
        "/cgi-bin/" + "s".repeat(300),
        "/cgi-bin/" + "s".repeat(300) + "/echo.sh",
        "/cgi-bin" + "/d".repeat(3000),
      ]
    ) {
      assert.equal((await statusAndText(handler, path))[0], 404, path);
    }
  } finally {
    await handler.close();
  }
});

Deno.test("long segments and long PATH_INFO behind dot segments stay 404/200 over raw TCP", async () => {
  const handler = compose([
    resolvePath({ root: WWW }),
    cgi({ dirs: { "/cgi-bin/": CGI } }),
    serveStatic(),
  ]);
  await withServer(handler, async (port) => {
    const long = "a".repeat(300);
    const cases: [string, number, string?][] = [
      [`/${long}/../hello.txt`, 200, "hello fuzz\n"],
      [`/${long}/%2e%2e/hello.txt`, 200, "hello fuzz\n"],
      [`/sub/./${long}`, 404],
      [`/${long}%2f..%2fhello.txt`, 404],
      [`/${"%C3%A9".repeat(128)}`, 404],
      [
        `/cgi-bin/x/../echo.sh/${"p".repeat(6000)}`,
        200,
        "path_info=6001 query=0\n",
      ],
      [`/cgi-bin/./${long}/../echo.sh`, 200, "path_info=0 query=0\n"],
      [`/cgi-bin/${long}`, 404],
      [`/cgi-bin/echo.sh/${"p".repeat(MAX_TARGET_BYTES)}`, 414],
    ];
    for (const [target, status, body] of cases) {
      const res = await rawRequest(port, target);
      assert.equal(res.status, status, target.slice(0, 80));
      if (body !== undefined) assert.equal(res.body, body, target.slice(0, 80));
    }
  });
});

Deno.test("FastCGI answers 404 for an over-long script name without contacting a backend", async () => {
  // Nothing listens on port 9 (discard): a forwarded request would be a 502.
  await using php = fastcgi({ backends: ["127.0.0.1:9"] });
  const handler = compose([resolvePath({ root: WWW }), php, serveStatic()]);
  for (
    const path of [
      `/${"s".repeat(300)}.php`,
      `/sub/${"s".repeat(300)}.php/info`,
      `${"/d".repeat(2500)}/index.php`,
    ]
  ) {
    assert.equal((await statusAndText(handler, path))[0], 404, path);
  }
});

Deno.test("statusOf() maps every no-such-name error to 404 and leaves EINVAL a 500", async () => {
  const tooLong = await Deno.stat("/" + "a".repeat(300)).catch((e) => e);
  assert.equal(tooLong.code, "ENAMETOOLONG");
  assert.equal(statusOf(tooLong), 404);
  assert.equal(statusOf(new Deno.errors.NotADirectory("x")), 404);
  assert.equal(statusOf(new Deno.errors.FilesystemLoop("x")), 404);
  assert.equal(
    statusOf(Object.assign(new Error("Illegal byte sequence"), {
      code: "EILSEQ",
    })),
    404,
  );
  assert.equal(
    statusOf(Object.assign(new TypeError("Invalid argument"), {
      code: "EINVAL",
    })),
    500,
  );
  assert.equal(statusOf(new Deno.errors.PermissionDenied("x")), 403);
});
