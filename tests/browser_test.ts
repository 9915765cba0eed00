// End-to-end check in a real browser: headless Chromium (Debian package
// `chromium`) driven over the DevTools protocol against the CLI. Screenshots
// land in tests/artifacts/ (git-ignored).
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { type Browser, launch, type Page } from "./_helpers/cdp.ts";
import { tempDir } from "./_helpers/fs.ts";
import { waitFor } from "./_helpers/poll.ts";
import { type ServerProcess, startCli } from "./_helpers/process.ts";

const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));

/** Polls `expression` in the page until it is truthy. */
function until(
  page: Page,
  expression: string,
  timeoutMs = 10_000,
): Promise<void> {
  return waitFor(async () => {
    try {
      return Boolean(await page.evaluate<boolean>(expression));
    } catch {
      return false; // the page is between documents (reloading)
    }
  }, { timeoutMs, intervalMs: 100, message: expression });
}

Deno.test("browser: listing, error page and live reload in headless Chromium", async (t) => {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  await using dir = await tempDir();
  const root = dir.path;
  await Deno.mkdir(`${root}/docs`);
  await Deno.mkdir(`${root}/images & <media>`);
  await Deno.writeTextFile(`${root}/docs/guide.md`, "# Guide\n");
  await Deno.writeTextFile(`${root}/notes.txt`, "notes\n");
  await Deno.writeTextFile(`${root}/.env`, "SECRET=1\n");
  await Deno.writeFile(`${root}/data.bin`, new Uint8Array(123_456));
  const long =
    "a-really-long-file-name-without-any-spaces-that-would-overflow-a-phone-screen.txt";
  await Deno.writeTextFile(`${root}/${long}`, "long\n");
  await Deno.mkdir(`${root}/site`);
  await Deno.writeTextFile(
    `${root}/site/index.html`,
    `<!DOCTYPE html><html><head><title>Live</title></head>` +
      `<body><h1 id="v">version 1</h1></body></html>\n`,
  );

  let browser: Browser | undefined;
  let server: ServerProcess | undefined;
  try {
    const [b, s] = await Promise.allSettled([
      launch(),
      startCli([root, "--port", "0", "--quiet", "--live-reload"]),
    ]);
    // Keep whichever started, so `finally` stops it when the other failed.
    if (b.status === "fulfilled") browser = b.value;
    if (s.status === "fulfilled") server = s.value;
    if (b.status === "rejected") throw b.reason;
    if (s.status === "rejected") throw s.reason;
    assert(browser && server);
    const base = server.base;
    const page = await browser.newPage();
    await page.viewport(1024, 700);

    await t.step("the directory listing renders", async () => {
      await page.goto(`${base}/`);
      assert.equal(await page.evaluate("document.title"), "Index of /");
      const rows = await page.evaluate<string[][]>(
        `[...document.querySelectorAll("tbody tr")].map((tr) =>
          [...tr.cells].map((td) => td.textContent.trim()))`,
      );
      const names = rows.map((r) => r[0]);
      assert.deepEqual(names, [
        "docs/",
        "images & <media>/",
        "site/",
        long,
        "data.bin",
        "notes.txt",
      ]);
      const dataRow = rows.find((r) => r[0] === "data.bin")!;
      assert.match(dataRow[1]!, /\d/, "size column");
      const visible = await page.evaluate<boolean>(
        `[...document.querySelectorAll("tbody tr")].every((tr) =>
          tr.getBoundingClientRect().height > 0)`,
      );
      assert.ok(visible);
      await page.screenshot(`${ARTIFACTS}/listing-desktop.png`);

      // Following a link into a sub-directory works.
      await page.goto(`${base}/docs/`);
      assert.equal(await page.evaluate("document.title"), "Index of /docs/");
      assert.deepEqual(
        await page.evaluate(
          `[...document.querySelectorAll("tbody a")].map((a) => a.textContent)`,
        ),
        ["../", "guide.md"],
      );

      // A phone: no horizontal scrolling, the date column is hidden.
      await page.viewport(375, 667, true);
      await page.goto(`${base}/`);
      const layout = await page.evaluate<{
        scroll: number;
        width: number;
        dateShown: boolean;
      }>(`({
        scroll: document.documentElement.scrollWidth,
        width: document.documentElement.clientWidth,
        dateShown: getComputedStyle(document.querySelector("tbody td:nth-child(3)")).display !== "none",
      })`);
      assert.equal(layout.width, 375);
      assert.ok(
        layout.scroll <= layout.width,
        `horizontal scroll on a phone: ${layout.scroll} > ${layout.width}`,
      );
      assert.equal(layout.dateShown, false);
      await page.screenshot(`${ARTIFACTS}/listing-phone.png`);
      await page.viewport(1024, 700);
    });

    await t.step("an error page renders with its title", async () => {
      await page.goto(`${base}/no/such/page.html`);
      const info = await page.evaluate<{
        status: number;
        title: string;
        h1: string;
        text: string;
      }>(`({
        status: performance.getEntriesByType("navigation")[0].responseStatus,
        title: document.title,
        h1: document.querySelector("h1")?.textContent,
        text: document.body.textContent,
      })`);
      assert.equal(info.status, 404);
      assert.equal(info.title, "404 Not Found");
      assert.equal(info.h1, "404 Not Found");
      assert.doesNotMatch(info.text, new RegExp(root), "no server path");
      await page.screenshot(`${ARTIFACTS}/error-404.png`);

      // Dotfiles are not served.
      await page.goto(`${base}/.env`);
      assert.equal(await page.evaluate("document.title"), "404 Not Found");
    });

    await t.step(
      "live reload: the page reloads after the file changes",
      async () => {
        // The DevTools network domain reports the page's server-sent events.
        await page.send("Network.enable");
        const hello = page.waitFor("Network.eventSourceMessageReceived");
        await page.goto(`${base}/site/`);
        assert.equal(await page.evaluate("document.title"), "Live");
        assert.equal(
          await page.evaluate(`document.getElementById("v").textContent`),
          "version 1",
        );
        await page.screenshot(`${ARTIFACTS}/live-reload-before.png`);
        // Marks this document: a real reload starts a new one without it.
        await page.evaluate("window.__before = true");
        // Once the page's event stream is connected, the server watches the
        // root, so the change below cannot be missed.
        assert.equal((await hello).eventName, "hello");
        const reloaded = page.waitFor("Page.loadEventFired", 10_000);
        await Deno.writeTextFile(
          `${root}/site/index.html`,
          `<!DOCTYPE html><html><head><title>Live</title></head>` +
            `<body><h1 id="v">version 2</h1><p>changed on disk</p></body></html>\n`,
        );
        await reloaded;
        await until(page, `document.body.textContent.includes("version 2")`);
        assert.equal(await page.evaluate("window.__before"), undefined);
        assert.equal(
          await page.evaluate(`document.querySelector("p").textContent`),
          "changed on disk",
        );
        await page.screenshot(`${ARTIFACTS}/live-reload-after.png`);
      },
    );
  } finally {
    await browser?.close();
    await server?.stop();
  }
});
