/**
 * The look the server's own pages share (directory listings and error
 * pages): one small inline style sheet, light and dark, and the
 * Content-Security-Policy pieces that allow exactly the inline blocks a page
 * carries (by their SHA-256), so the pages work under a strict policy and
 * nothing else (an injected script, an external resource) could run.
 *
 * @module
 */

/** The shared style: colors (light and dark), the column, headings, links, focus. */
export const _PAGE_CSS: string = [
  ":root{color-scheme:light dark;--fg:#1f2328;--muted:#59636e;--bg:#fff;" +
  "--line:#d1d9e0;--hover:#f6f8fa;--link:#0969da;--focus:#0969da}",
  "@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;" +
  "--bg:#0d1117;--line:#30363d;--hover:#151b23;--link:#4493f8;--focus:#4493f8}}",
  "*{box-sizing:border-box}",
  "body{margin:0;background:var(--bg);color:var(--fg);" +
  'font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}',
  "main{max-width:64rem;margin:0 auto;padding:1.5rem 1rem 3rem}",
  "h1{font-size:1.25rem;font-weight:600;line-height:1.4;margin:0 0 .75rem;" +
  "overflow-wrap:anywhere}",
  "a{color:var(--link);text-decoration:none}a:hover{text-decoration:underline}",
  ":focus-visible{outline:2px solid var(--focus);outline-offset:2px;border-radius:3px}",
  ".muted{color:var(--muted)}",
  ".err h1{padding-bottom:.6rem;border-bottom:1px solid var(--line)}",
  ".err p{margin:.5rem 0}",
  "@media (max-width:40rem){main{padding:1rem .75rem 2rem}}",
].join("\n");

const _ENTITIES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Escapes text for HTML content and (quoted) attribute values. */
export function _escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => _ENTITIES[c]!);
}

/** `'sha256-…'`: a CSP source allowing exactly the inline block `text`. */
export async function _cspHash(text: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(text),
  );
  let binary = "";
  for (const byte of new Uint8Array(digest)) {
    binary += String.fromCharCode(byte);
  }
  return `'sha256-${btoa(binary)}'`;
}

/** The CSP source of {@linkcode _PAGE_CSS}. */
export const _PAGE_CSS_HASH: string = await _cspHash(_PAGE_CSS);

/**
 * A strict Content-Security-Policy for one of the server's pages: nothing
 * but the given inline styles and scripts (by hash), and `data:` images
 * when `images` (icons drawn by the style sheet).
 */
export function _pageCsp(
  styles: readonly string[],
  scripts: readonly string[] = [],
  images = false,
): string {
  return [
    "default-src 'none'",
    `style-src ${styles.join(" ")}`,
    ...(scripts.length ? [`script-src ${scripts.join(" ")}`] : []),
    ...(images ? ["img-src data:"] : []),
    "base-uri 'none'",
    "form-action 'none'",
  ].join("; ");
}
