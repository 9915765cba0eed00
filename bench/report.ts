/**
 * Formatting: numbers, ratios and tables as aligned text (terminal) and
 * Markdown (`bench/results/`).
 *
 * @module
 */

/** A table: a header row and rows of cells, all strings. */
export interface Table {
  /** Column titles. */
  head: string[];
  /** Rows, each as long as `head`. */
  rows: string[][];
}

/** `12345.6` → `12,346`. */
export function int(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** Milliseconds with 2 decimals (`–` when unknown, e.g. h2load's p99). */
export function ms(n: number): string {
  return Number.isFinite(n) ? n.toFixed(2) : "–";
}

/** Bytes as MiB with 1 decimal. */
export function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}

/** A ratio `a / b` as `0.42×` (`–` when undefined). */
export function ratio(a: number, b: number): string {
  return b > 0 && Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : "–";
}

/**
 * Renders `t` with padded columns: the first left-aligned, the others
 * right-aligned.
 *
 * @param t The table.
 * @returns Lines of text.
 */
export function textTable(t: Table): string {
  const widths = t.head.map((h, i) =>
    Math.max(h.length, ...t.rows.map((r) => (r[i] ?? "").length))
  );
  const line = (cells: string[]) =>
    cells.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))
      .join("  ").trimEnd();
  return [
    line(t.head),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...t.rows.map(line),
  ].join("\n");
}

/**
 * Renders `t` as a Markdown table (first column left, others right).
 *
 * @param t The table.
 * @returns Markdown.
 */
export function markdownTable(t: Table): string {
  const row = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [
    row(t.head),
    row(t.head.map((_, i) => i === 0 ? ":--" : "--:")),
    ...t.rows.map(row),
  ].join("\n");
}

/** A report built as sections, printed and saved as Markdown. */
export class Report {
  #md: string[] = [];

  /** Adds a heading. */
  heading(text: string, level = 2): void {
    console.log(`\n${level <= 2 ? "==" : "--"} ${text}`);
    this.#md.push(`${"#".repeat(level)} ${text}`, "");
  }

  /** Adds a paragraph (Markdown; printed as is). */
  text(text: string): void {
    console.log(text);
    this.#md.push(text, "");
  }

  /** Adds a table. */
  table(t: Table): void {
    console.log(textTable(t));
    this.#md.push(markdownTable(t), "");
  }

  /** The whole report as Markdown. */
  markdown(): string {
    return this.#md.join("\n");
  }
}

/** Facts about the machine and tools, for the report. */
export interface Environment {
  /** ISO date of the run. */
  date: string;
  /** `nproc`. */
  cpus: number;
  /** CPU model from `/proc/cpuinfo`. */
  cpuModel: string;
  /** `uname -r`. */
  kernel: string;
  /** Deno version. */
  deno: string;
  /** `nginx -v`. */
  nginx: string;
  /** wrk version line. */
  wrk: string;
  /** `/proc/loadavg` at the start (other work on the machine skews results). */
  loadavg: string;
}

/** Runs a command and returns its stdout + stderr, trimmed. */
async function _output(cmd: string, args: string[]): Promise<string> {
  try {
    const out = await new Deno.Command(cmd, { args, stdin: "null" }).output();
    const d = new TextDecoder();
    return (d.decode(out.stdout) + d.decode(out.stderr)).trim();
  } catch {
    return "unknown";
  }
}

/**
 * Collects {@linkcode Environment}.
 *
 * @returns The facts.
 */
export async function environment(): Promise<Environment> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  return {
    date: new Date().toISOString(),
    cpus: navigator.hardwareConcurrency,
    cpuModel: cpuinfo.match(/^model name\s*:\s*(.*)$/m)?.[1] ?? "unknown",
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    nginx: (await _output("/usr/sbin/nginx", ["-v"])).replace(
      /^nginx version: /,
      "",
    ),
    loadavg: (await Deno.readTextFile("/proc/loadavg").catch(() => ""))
      .split(" ").slice(0, 3).join(" "),
    wrk: (await _output("/usr/bin/wrk", ["-v"])).split("\n")[0]?.replace(
      / Copyright.*/,
      "",
    ) ?? "unknown",
  };
}

/**
 * Writes `name.json` and `name.md` under `bench/results/`.
 *
 * @param name The file name without extension.
 * @param data The JSON document.
 * @param markdown The Markdown document.
 * @returns The two paths.
 */
export async function saveResults(
  name: string,
  data: unknown,
  markdown: string,
): Promise<string[]> {
  const dir = new URL("./results/", import.meta.url).pathname;
  await Deno.mkdir(dir, { recursive: true });
  const json = `${dir}${name}.json`;
  const md = `${dir}${name}.md`;
  await Deno.writeTextFile(json, JSON.stringify(data, null, 2) + "\n");
  await Deno.writeTextFile(md, markdown);
  return [json, md];
}
