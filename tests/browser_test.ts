// End-to-end check in a real browser: headless Chromium (Debian package
// `chromium`) driven over the DevTools protocol against the CLI (one server
// as deployed, one with --live-reload). The listing on a desktop (1200×900)
// and a phone (390×844) window: one line per row with a long name,
// breadcrumbs, sorting, the filter, keyboard focus, no JavaScript, dark mode,
// no CSP violation; the error page and its link home; live reload.
// Screenshots land in tests/artifacts/ (git-ignored).
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

/** Runs `action` (an expression that navigates) and waits for the new page. */
async function navigating(page: Page, action: string): Promise<void> {
  const loaded = page.waitFor("Page.loadEventFired", 10_000);
  await page.evaluate(action);
  await loaded;
}

/** Presses one key (a real key event, through the browser's input). */
async function press(
  page: Page,
  key: string,
  code: string,
  keyCode: number,
  modifiers = 0,
): Promise<void> {
  for (const type of ["keyDown", "keyUp"]) {
    await page.send("Input.dispatchKeyEvent", {
      type,
      key,
      code,
      windowsVirtualKeyCode: keyCode,
      modifiers,
      ...(type === "keyDown" && key.length === 1 ? { text: key } : {}),
    });
  }
}

/** The listing's rows: each cell's text, and whether the row is shown. */
interface Row {
  cells: string[];
  shown: boolean;
  height: number;
}

function rows(page: Page): Promise<Row[]> {
  return page.evaluate<Row[]>(
    `[...document.querySelectorAll("tbody tr")].map((tr) => ({
      cells: [...tr.cells].map((td) => td.textContent.trim()),
      shown: tr.getBoundingClientRect().height > 0,
      height: tr.getBoundingClientRect().height,
    }))`,
  );
}

async function shownNames(page: Page): Promise<string[]> {
  return (await rows(page)).filter((r) => r.shown).map((r) => r.cells[0]!);
}

/** Records CSP violations in every document (a DevTools script is exempt). */
const RECORD_CSP = `window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__csp.push(e.violatedDirective + " " + e.blockedURI));`;

Deno.test("browser: listing, error page and live reload in headless Chromium", async (t) => {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  await using dir = await tempDir();
  const root = dir.path;
  await Deno.mkdir(`${root}/docs/guides`, { recursive: true });
  await Deno.mkdir(`${root}/images & <media>`);
  await Deno.writeTextFile(`${root}/docs/guide.md`, "# Guide\n");
  await Deno.writeTextFile(`${root}/docs/guides/intro.md`, "# Intro\n");
  await Deno.writeTextFile(`${root}/notes.txt`, "notes\n");
  await Deno.writeTextFile(`${root}/.env`, "SECRET=1\n");
  await Deno.writeFile(`${root}/data.bin`, new Uint8Array(123_456));
  // A hostile name: shown as text, never run.
  const hostile = `<img src=x onerror="window.pwned=1"> 'q'.txt`;
  await Deno.writeTextFile(`${root}/${hostile}`, "x".repeat(40));
  const long =
    "a-really-long-file-name-without-any-spaces-that-would-overflow-a-phone-screen.txt";
  await Deno.writeTextFile(`${root}/${long}`, "long\n");
  // Distinct times, so sorting by date has one answer: notes newest.
  const day = 86_400_000;
  const base = Date.UTC(2024, 0, 10, 12, 0);
  for (
    const [name, age] of [
      ["notes.txt", 0],
      ["data.bin", 1],
      [long, 2],
      [hostile, 3],
    ] as const
  ) {
    const when = new Date(base - age * day);
    await Deno.utime(`${root}/${name}`, when, when);
  }
  await Deno.mkdir(`${root}/site`);
  await Deno.writeTextFile(
    `${root}/site/index.html`,
    `<!DOCTYPE html><html><head><title>Live</title></head>` +
      `<body><h1 id="v">version 1</h1></body></html>\n`,
  );

  let browser: Browser | undefined;
  const servers: ServerProcess[] = [];
  try {
    const started = await Promise.allSettled([
      launch(),
      startCli([root, "--port", "0", "--quiet"]),
      startCli([root, "--port", "0", "--quiet", "--live-reload"]),
    ]);
    // Keep whatever started, so `finally` stops it when another failed.
    for (const s of started.slice(1)) {
      if (s.status === "fulfilled") servers.push(s.value as ServerProcess);
    }
    if (started[0].status === "fulfilled") browser = started[0].value;
    for (const s of started) if (s.status === "rejected") throw s.reason;
    assert(browser && servers.length === 2);
    const [plain, live] = servers as [ServerProcess, ServerProcess];
    const origin = plain.base;
    const page = await browser.newPage();
    await page.send("Page.addScriptToEvaluateOnNewDocument", {
      source: RECORD_CSP,
    });
    await page.viewport(1200, 900);

    await t.step("desktop: the listing renders, one line per row", async () => {
      await page.goto(`${origin}/`);
      assert.equal(await page.evaluate("document.title"), "Index of /");
      const all = await rows(page);
      assert.deepEqual(all.map((r) => r.cells[0]), [
        "docs/",
        "images & <media>/",
        "site/",
        hostile,
        long,
        "data.bin",
        "notes.txt",
      ]);
      assert.equal(await page.evaluate("window.pwned"), undefined);
      const dataRow = all.find((r) => r.cells[0] === "data.bin")!;
      assert.equal(dataRow.cells[1], "121 KiB");
      assert.equal(dataRow.cells[2], "2024-01-09 12:00");
      // The long name fits: no row (and no date or size) takes two lines.
      const layout = await page.evaluate<{
        lineHeight: number;
        cells: Array<{ text: string; lines: number }>;
      }>(`(() => {
        const lines = (el) => {
          const r = document.createRange();
          r.selectNodeContents(el);
          return new Set([...r.getClientRects()].map((b) => Math.round(b.top))).size;
        };
        const td = document.querySelector("tbody td");
        return {
          lineHeight: parseFloat(getComputedStyle(td).lineHeight),
          cells: [...document.querySelectorAll("tbody td")]
            .filter((td) => td.textContent.trim() !== "")
            .map((td) => ({ text: td.textContent.trim(), lines: lines(td) })),
        };
      })()`);
      const tall = layout.cells.filter((c) => c.lines !== 1);
      assert.deepEqual(tall, [], "cells on more than one line");
      const heights = all.map((r) => r.height);
      assert.ok(
        Math.max(...heights) - Math.min(...heights) < 1,
        `rows of different heights: ${heights.join(", ")}`,
      );
      assert.ok(
        Math.max(...heights) < 2 * layout.lineHeight,
        `a row taller than one line: ${heights} vs ${layout.lineHeight}`,
      );
      // Names may break anywhere, but only when they must; dates never.
      const styles = await page.evaluate<string[]>(`(() => {
        const [name, size, date] = document.querySelector("tbody tr").cells;
        const s = (el) => getComputedStyle(el);
        return [s(name).overflowWrap, s(name).wordBreak, s(size).whiteSpace, s(date).whiteSpace];
      })()`);
      assert.deepEqual(styles, ["anywhere", "normal", "nowrap", "nowrap"]);
      // A table for assistive technology: column headers, the sorted one marked.
      assert.deepEqual(
        await page.evaluate(
          `[...document.querySelectorAll("thead th")].map((th) =>
            [th.scope, th.getAttribute("aria-sort")])`,
        ),
        [["col", "ascending"], ["col", null], ["col", null]],
      );
      // A file-type cue drawn by the style sheet (no request, CSP-safe).
      const icons = await page.evaluate<string[]>(
        `[...document.querySelectorAll("tbody a")].map((a) =>
          a.className + " " + getComputedStyle(a, "::before").maskImage.slice(0, 28))`,
      );
      assert.ok(
        icons.every((i) => i.includes('url("data:image/svg+xml')),
        icons.join("\n"),
      );
      assert.deepEqual(icons.map((i) => i.split(" ")[0]), [
        "i-dir",
        "i-dir",
        "i-dir",
        "i-text",
        "i-text",
        "i-file",
        "i-text",
      ]);
      assert.deepEqual(await page.evaluate("window.__csp"), [], "CSP");
      await page.screenshot(`${ARTIFACTS}/listing-desktop.png`);
    });

    await t.step(
      "keyboard: focus is visible, the filter is labelled",
      async () => {
        await page.goto(`${origin}/`);
        await press(page, "Tab", "Tab", 9);
        const focused = await page.evaluate<[string, string, string]>(`(() => {
        const el = document.activeElement;
        const s = getComputedStyle(el);
        return [el.textContent, s.outlineStyle, s.outlineWidth];
      })()`);
        assert.equal(focused[0], "/", "the first breadcrumb gets focus first");
        assert.equal(focused[1], "solid");
        assert.notEqual(focused[2], "0px");
        assert.equal(
          await page.evaluate(
            `document.querySelector("label[for=filter]").textContent`,
          ),
          "Filter",
        );
        await page.screenshot(`${ARTIFACTS}/listing-focus.png`);
      },
    );

    await t.step("breadcrumbs navigate", async () => {
      await page.goto(`${origin}/docs/guides/`);
      assert.equal(
        await page.evaluate("document.title"),
        "Index of /docs/guides/",
      );
      const crumbs = await page.evaluate<string[][]>(
        `[...document.querySelectorAll("h1 a")].map((a) =>
          [a.textContent, a.getAttribute("href"), a.getAttribute("aria-current") ?? ""])`,
      );
      assert.deepEqual(crumbs, [
        ["/", "../../", ""],
        ["docs/", "../", ""],
        ["guides/", "./", "page"],
      ]);
      assert.equal(
        await page.evaluate(`document.querySelector("h1").textContent`),
        "Index of /docs/guides/",
      );
      await navigating(page, `document.querySelectorAll("h1 a")[1].click()`);
      assert.equal(await page.evaluate("location.pathname"), "/docs/");
      assert.deepEqual(await shownNames(page), ["../", "guides/", "guide.md"]);
      await navigating(page, `document.querySelectorAll("h1 a")[0].click()`);
      assert.equal(await page.evaluate("location.pathname"), "/");
      assert.equal(await page.evaluate("document.title"), "Index of /");
    });

    await t.step(
      "sorting by size and date reorders, in the query string",
      async () => {
        await page.goto(`${origin}/`);
        const files = async () => (await shownNames(page)).slice(3);
        await navigating(
          page,
          `document.querySelector("thead th:nth-child(2) a").click()`,
        );
        assert.equal(
          await page.evaluate("location.search"),
          "?sort=size&order=desc",
        );
        assert.deepEqual(await files(), [
          "data.bin",
          hostile,
          "notes.txt",
          long,
        ]);
        assert.deepEqual((await shownNames(page)).slice(0, 3), [
          "docs/",
          "images & <media>/",
          "site/",
        ], "directories first");
        assert.equal(
          await page.evaluate(
            `document.querySelector("thead th:nth-child(2)").getAttribute("aria-sort")`,
          ),
          "descending",
        );
        await page.screenshot(`${ARTIFACTS}/listing-sorted-size.png`);
        await navigating(
          page,
          `document.querySelector("thead th:nth-child(2) a").click()`,
        );
        assert.equal(
          await page.evaluate("location.search"),
          "?sort=size&order=asc",
        );
        assert.deepEqual(await files(), [
          long,
          "notes.txt",
          hostile,
          "data.bin",
        ]);
        await navigating(
          page,
          `document.querySelector("thead th:nth-child(3) a").click()`,
        );
        assert.equal(
          await page.evaluate("location.search"),
          "?sort=date&order=desc",
        );
        assert.deepEqual(await files(), [
          "notes.txt",
          "data.bin",
          long,
          hostile,
        ]);
        // The order is kept into a directory and back up.
        await navigating(
          page,
          `document.querySelector('tbody a[href^="./docs/"]').click()`,
        );
        assert.equal(
          await page.evaluate("location.href"),
          `${origin}/docs/?sort=date&order=desc`,
        );
        await navigating(page, `document.querySelector("h1 a").click()`);
        assert.equal(
          await page.evaluate("location.search"),
          "?sort=date&order=desc",
        );
      },
    );

    await t.step("the filter hides rows that do not match", async () => {
      await page.goto(`${origin}/`);
      assert.equal(
        await page.evaluate(`document.getElementById("filter-box").hidden`),
        false,
      );
      await press(page, "/", "Slash", 191); // focuses the filter
      assert.equal(await page.evaluate("document.activeElement.id"), "filter");
      await page.send("Input.insertText", { text: "NOTE" });
      assert.deepEqual(await shownNames(page), ["notes.txt"]);
      assert.equal(
        await page.evaluate(`document.getElementById("count").textContent`),
        "1 match",
      );
      await page.screenshot(`${ARTIFACTS}/listing-filtered.png`);
      await page.send("Input.insertText", { text: "zzz" });
      assert.deepEqual(await shownNames(page), []);
      assert.equal(
        await page.evaluate(`document.getElementById("count").textContent`),
        "No matches",
      );
      await press(page, "Escape", "Escape", 27);
      assert.equal((await shownNames(page)).length, 7, "Escape clears it");
    });

    await t.step(
      "without JavaScript: sorting works, no dead filter box",
      async () => {
        await page.send("Emulation.setScriptExecutionDisabled", {
          value: true,
        });
        try {
          await page.goto(`${origin}/?sort=size&order=asc`);
          assert.deepEqual((await shownNames(page)).slice(3), [
            long,
            "notes.txt",
            hostile,
            "data.bin",
          ]);
          const box = await page.send<{ result: { value: number } }>(
            "Runtime.evaluate",
            {
              expression:
                `document.getElementById("filter-box").getBoundingClientRect().height`,
              returnByValue: true,
            },
          );
          assert.equal(box.result.value, 0);
        } finally {
          await page.send("Emulation.setScriptExecutionDisabled", {
            value: false,
          });
        }
      },
    );

    await t.step(
      "phone: no sideways scrolling, names wrap only when needed",
      async () => {
        await page.viewport(390, 844, true);
        await page.goto(`${origin}/`);
        const layout = await page.evaluate<{
          scroll: number;
          width: number;
          dateShown: boolean;
          timeShown: boolean;
          lines: Record<string, number>;
        }>(`(() => {
        const lines = (el) => {
          const r = document.createRange();
          r.selectNodeContents(el);
          return new Set([...r.getClientRects()].map((b) => Math.round(b.top))).size;
        };
        const date = document.querySelector("tbody tr:nth-child(6) td:nth-child(3)");
        return {
          scroll: document.documentElement.scrollWidth,
          width: document.documentElement.clientWidth,
          dateShown: getComputedStyle(date).display !== "none",
          timeShown: getComputedStyle(date.querySelector(".t")).display !== "none",
          lines: Object.fromEntries([...document.querySelectorAll("tbody td")]
            .filter((td) => td.textContent.trim() !== "")
            .map((td) => [td.textContent.trim(), lines(td)])),
        };
      })()`);
        assert.equal(layout.width, 390);
        assert.ok(
          layout.scroll <= layout.width,
          `horizontal scroll on a phone: ${layout.scroll} > ${layout.width}`,
        );
        assert.equal(layout.dateShown, true, "the date stays");
        assert.equal(layout.timeShown, false, "the time of day goes");
        assert.ok(layout.lines[long]! > 1, "the long name wraps");
        for (const name of ["docs/", "site/", "data.bin", "notes.txt"]) {
          assert.equal(layout.lines[name], 1, `${name} is not broken`);
        }
        for (const [text, n] of Object.entries(layout.lines)) {
          if (/^\d{4}-\d\d-\d\d$|^\d/.test(text)) {
            assert.equal(n, 1, `${text} wraps`);
          }
        }
        await page.screenshot(`${ARTIFACTS}/listing-phone.png`);
        await page.goto(`${origin}/no/such/page.html`);
        await page.screenshot(`${ARTIFACTS}/error-404-phone.png`);
        await page.viewport(1200, 900);
      },
    );

    await t.step("dark mode", async () => {
      await page.send("Emulation.setEmulatedMedia", {
        features: [{ name: "prefers-color-scheme", value: "dark" }],
      });
      try {
        await page.goto(`${origin}/docs/`);
        assert.equal(
          await page.evaluate(
            "getComputedStyle(document.body).backgroundColor",
          ),
          "rgb(13, 17, 23)",
        );
        await page.screenshot(`${ARTIFACTS}/listing-dark.png`);
        await page.goto(`${origin}/nothing-here`);
        await page.screenshot(`${ARTIFACTS}/error-404-dark.png`);
      } finally {
        await page.send("Emulation.setEmulatedMedia", { features: [] });
      }
    });

    await t.step(
      "an error page: status, what it means, a link home",
      async () => {
        await page.goto(`${origin}/no/such/page.html`);
        const info = await page.evaluate<{
          status: number;
          title: string;
          h1: string;
          text: string;
          home: string | null;
          csp: string[];
        }>(`({
        status: performance.getEntriesByType("navigation")[0].responseStatus,
        title: document.title,
        h1: document.querySelector("h1")?.textContent,
        text: document.body.textContent,
        home: document.querySelector("a")?.getAttribute("href"),
        csp: window.__csp,
      })`);
        assert.equal(info.status, 404);
        assert.equal(info.title, "404 Not Found");
        assert.equal(info.h1, "404 Not Found");
        assert.match(info.text, /Nothing is at this address\./);
        assert.equal(info.home, "/");
        assert.deepEqual(info.csp, []);
        assert.doesNotMatch(info.text, new RegExp(root), "no server path");
        assert.doesNotMatch(
          info.text,
          /no\/such|page\.html/,
          "no request path",
        );
        // The same look as the listing: the same column and heading.
        const box = await page.evaluate<[number, string]>(
          `[document.querySelector("h1").getBoundingClientRect().left,
          getComputedStyle(document.querySelector("h1")).fontSize]`,
        );
        await page.screenshot(`${ARTIFACTS}/error-404.png`);
        await navigating(page, `document.querySelector("a").click()`);
        assert.equal(await page.evaluate("document.title"), "Index of /");
        assert.deepEqual(
          await page.evaluate<[number, string]>(
            `[document.querySelector("h1").getBoundingClientRect().left,
            getComputedStyle(document.querySelector("h1")).fontSize]`,
          ),
          box,
        );

        // Dotfiles are not served.
        await page.goto(`${origin}/.env`);
        assert.equal(await page.evaluate("document.title"), "404 Not Found");
      },
    );

    await t.step(
      "live reload: the page reloads after the file changes",
      async () => {
        // The DevTools network domain reports the page's server-sent events.
        await page.send("Network.enable");
        const hello = page.waitFor("Network.eventSourceMessageReceived");
        await page.goto(`${live.base}/site/`);
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
    await Promise.all(servers.map((s) => s.stop()));
  }
});
