// The built-in error page: the status, its reason, one plain sentence, a
// link home, the listing's look, no details; a strict policy for its one
// inline style; rendered once per status; a custom page still wins.
import assert from "node:assert/strict";
import { compose, createHandler, HttpError } from "../mod.ts";
import { renderError } from "../server/error_response.ts";
import { _PAGE_CSS } from "../server/page_style.ts";
import { tempDir } from "./_helpers/fs.ts";

const SENTENCES: Record<number, string> = {
  400: "The server could not understand this request.",
  403: "You are not allowed to see what is at this address.",
  404: "Nothing is at this address.",
  405: "This address does not accept that kind of request.",
  408: "The request took too long to arrive, so the server stopped waiting.",
  413: "The request is larger than the server accepts.",
  414: "This address is longer than the server accepts.",
  416: "The part of the file that was asked for is not in it.",
  500: "Something went wrong on the server.",
  502: "The program behind the server did not give a usable answer.",
  503: "The server cannot answer right now; try again in a moment.",
  504: "The program behind the server took too long to answer.",
};

async function sha256(text: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)),
  );
  return `'sha256-${btoa(String.fromCharCode(...digest))}'`;
}

Deno.test("error page: status, reason, one sentence and a link home", async () => {
  const reasons: Record<number, string> = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Payload Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
  };
  for (const [code, sentence] of Object.entries(SENTENCES)) {
    const status = Number(code);
    const res = renderError(status, new Request("http://x/secret/path?q=1"));
    assert.equal(res.status, status);
    const html = await res.text();
    const title = `${status} ${reasons[status]}`;
    assert.match(html, new RegExp(`<title>${title}</title>`));
    assert.match(html, new RegExp(`<h1>${title}</h1>`));
    assert.ok(html.includes(`<p>${sentence}</p>`), `${status}: ${sentence}`);
    assert.match(html, /<a href="\/">Go to the home page<\/a>/);
    assert.ok(!html.includes("secret") && !html.includes("q=1"), "no path");
    // The listing's look: its shared style sheet, light and dark.
    assert.ok(html.includes(`<style>${_PAGE_CSS}</style>`));
    assert.match(html, /prefers-color-scheme:dark/);
    assert.match(html, /<meta name="viewport"/);
  }
  // Statuses without their own sentence get a generic one.
  assert.match(
    await renderError(499, new Request("http://x/")).text(),
    /<p>The server cannot answer this request\.<\/p>/,
  );
  assert.match(
    await renderError(599, new Request("http://x/")).text(),
    /<p>Something went wrong on the server\.<\/p>/,
  );
});

Deno.test("error page: a policy allowing only its style; JSON and HEAD unchanged", async () => {
  const res = renderError(404, new Request("http://x/"), { allow: "GET" });
  const csp = res.headers.get("content-security-policy");
  const html = await res.text();
  const style = /<style>([\s\S]*?)<\/style>/.exec(html)![1]!;
  assert.equal(
    csp,
    `default-src 'none'; style-src ${await sha256(
      style,
    )}; base-uri 'none'; form-action 'none'`,
  );
  assert.doesNotMatch(html, /<script|\sstyle=|\son[a-z]+=/);
  assert.equal(res.headers.get("allow"), "GET");
  assert.equal(res.headers.get("x-content-type-options"), "nosniff");
  assert.equal(res.headers.get("vary"), "Accept");
  assert.equal(
    res.headers.get("content-length"),
    String(new TextEncoder().encode(html).byteLength),
  );

  const json = renderError(
    404,
    new Request("http://x/", { headers: { accept: "application/json" } }),
  );
  assert.deepEqual(await json.json(), { status: 404, error: "Not Found" });
  assert.equal(json.headers.get("content-security-policy"), null);

  const head = renderError(503, new Request("http://x/", { method: "HEAD" }));
  assert.equal(head.body, null);
  assert.ok(Number(head.headers.get("content-length")) > 0);

  // Rendered once per status: the same bytes every time, and a response's
  // body cannot change the next one.
  const a = new Uint8Array(
    await renderError(500, new Request("http://x/")).arrayBuffer(),
  );
  a.fill(0);
  const b = await renderError(500, new Request("http://x/")).text();
  assert.match(b, /^<!DOCTYPE html>/);
  assert.equal(b, await renderError(500, new Request("http://x/y")).text());
});

Deno.test("error page: a custom <status>.html still wins, without our policy", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(
    `${dir.path}/404.html`,
    `<h1>Lost</h1><script>console.log("own script")</script>`,
  );
  const h = createHandler({ root: dir.path });
  const res = await h(new Request("http://x/nope"));
  assert.equal(res.status, 404);
  assert.equal(res.headers.get("content-security-policy"), null);
  assert.equal(
    await res.text(),
    `<h1>Lost</h1><script>console.log("own script")</script>`,
  );
  // Without one, the built-in page.
  await Deno.remove(`${dir.path}/404.html`);
  const fresh = createHandler({ root: dir.path, cache: { validMs: 0 } });
  const builtIn = await fresh(new Request("http://x/nope"));
  assert.match(await builtIn.text(), /Nothing is at this address\./);
  assert.ok(builtIn.headers.get("content-security-policy"));
});

Deno.test("error page: what the chain throws gets its sentence, never its message", async () => {
  const handler = compose([() => {
    throw new HttpError(413, "body of 99 MiB from /upload/secret");
  }], { log: () => {} });
  const res = await handler(new Request("http://x/upload/secret"));
  assert.equal(res.status, 413);
  const html = await res.text();
  assert.match(html, /The request is larger than the server accepts\./);
  assert.doesNotMatch(html, /99 MiB|secret/);
  const boom = await compose([() => {
    throw new Error("stack at /srv/app.ts:1");
  }], { log: () => {} })(new Request("http://x/"));
  assert.equal(boom.status, 500);
  const text = await boom.text();
  assert.match(text, /Something went wrong on the server\./);
  assert.doesNotMatch(text, /stack|srv/);
});

Deno.test("renderError() sends the same page every time, each response with headers of its own", async () => {
  const req = () => new Request("http://x/missing");
  // Made once: every response holds the same bytes (not a copy each).
  const held = (res: Response) => Response.prototype.bytes.call(res);
  assert.ok(
    await held(renderError(404, req())) === await held(renderError(404, req())),
    "one copy",
  );
  const first = renderError(404, req());
  first.headers.set("x-first", "1");
  const second = renderError(404, req());
  assert.equal(second.headers.get("x-first"), null);
  assert.equal(
    [...second.headers.keys()].join(),
    "content-length,content-security-policy,content-type,vary,x-content-type-options",
  );
  const [a, b] = [await first.text(), await second.text()];
  assert.equal(a, b);
  assert.match(a, /404 Not Found/);
  const json = renderError(
    404,
    new Request("http://x/", {
      headers: { accept: "application/json" },
    }),
  );
  assert.deepEqual(await json.json(), { status: 404, error: "Not Found" });
  assert.equal(json.headers.get("vary"), "Accept");
  // With extra headers, or for HEAD, the page is made as before.
  const allow = renderError(405, req(), { allow: "GET" });
  assert.equal(allow.headers.get("allow"), "GET");
  const head = renderError(404, new Request("http://x/", { method: "HEAD" }));
  assert.equal(head.body, null);
  assert.equal(
    head.headers.get("content-length"),
    second.headers.get("content-length"),
  );
});
