// Hostile request targets from a seed (not part of the published package):
// the same seed always gives the same sequence, so any target a fuzz run
// reports can be generated again. Targets are "byte strings": every char
// is one byte (0-255) of the request line, so raw UTF-8 and invalid bytes
// can be sent exactly; `targetBytes()` turns one into what goes on the wire.

/** One generated request. */
export interface FuzzRequest {
  /** Its position in the sequence (0-based). */
  index: number;
  /** The mutation family that made it (`long-segment`, `cgi`, …). */
  kind: string;
  /** `GET` or `HEAD`. */
  method: "GET" | "HEAD";
  /** The request target as bytes (one char per byte, 0-255). */
  target: string;
  /** Extra request headers (`Host` is added by the sender). */
  headers: [string, string][];
}

/** Options of {@linkcode fuzzRequests}. */
export interface FuzzOptions {
  /** URL prefix of the CGI directory. @default {"/cgi-bin/"} */
  cgiPrefix?: string;
  /** Script names in the CGI directory. @default {["echo.sh"]} */
  cgiScripts?: readonly string[];
  /** URL paths that exist under the root. */
  paths?: readonly string[];
  /** Longest target generated, in bytes (keep it below the HTTP layer's own limit). @default {60000} */
  maxTargetBytes?: number;
}

/** The paths of tests/testdata/fuzz/www. */
export const FUZZ_PATHS: readonly string[] = [
  "/",
  "/hello.txt",
  "/index.html",
  "/data.json",
  "/404.html",
  "/sub/",
  "/sub/page.txt",
  "/.env",
  "/loop",
  "/out/echo.sh",
];

/** A small, fast, seedable generator (mulberry32). */
class _Random {
  #state: number;

  constructor(seed: number) {
    this.#state = (seed >>> 0) ^ 0x9e3779b9;
  }

  /** A float in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
}

const _HEX = "0123456789ABCDEF";

/** `%XX` of one byte, in upper or lower case. */
function _pct(byte: number, lower = false): string {
  const s = "%" + _HEX[byte >> 4] + _HEX[byte & 15];
  return lower ? s.toLowerCase() : s;
}

const _ENCODER = new TextEncoder();
const _UTF8 = new Map<string, string>();

/** The UTF-8 bytes of `text` as a byte string (short texts are memoised). */
function _utf8(text: string): string {
  const known = _UTF8.get(text);
  if (known !== undefined) return known;
  let out = "";
  for (const byte of _ENCODER.encode(text)) out += String.fromCharCode(byte);
  if (text.length <= 4) _UTF8.set(text, out);
  return out;
}

/** Percent-encodes every byte of a byte string. */
function _encodeAll(bytes: string, lower: boolean): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) {
    out += _pct(bytes.charCodeAt(i), lower);
  }
  return out;
}

/** Characters whose UTF-8 forms are 1 to 4 bytes, and tricky code points. */
const _CHARS = [
  "a",
  "Z",
  "0",
  "-",
  "_",
  "~",
  "é",
  "ß",
  "中",
  "文",
  "😀",
  "𝔘",
  "\u200b", // zero-width space
  "\u202e", // right-to-left override
  "\ufeff", // BOM
  "\uff0f", // fullwidth solidus
  "\u2215", // division slash
  "\u2024", // one dot leader
  "\uff0e", // fullwidth full stop
  "e\u0301", // decomposed é
];

interface _Piece {
  /** The UTF-8 bytes, as a byte string. */
  raw: string;
  /** The same, percent-encoded unless unreserved. */
  encoded: string;
}

function _piece(c: string): _Piece {
  const raw = _utf8(c);
  return {
    raw,
    encoded: /^[A-Za-z0-9._~-]$/.test(c) ? c : _encodeAll(raw, false),
  };
}

const _PIECES = _CHARS.map(_piece);
const _ASCII_PIECES = ["a", "b", "x", "-", "."].map(_piece);

/** Byte sequences that must never decode to a usable name. */
const _BAD_ESCAPES = [
  "%00",
  "%2f",
  "%2F",
  "%5c",
  "%5C",
  "%25",
  "%252e%252e",
  "%c0%ae",
  "%C0%AF",
  "%c0%80",
  "%e0%80%ae",
  "%f0%80%80%ae",
  "%f8%80%80%80%ae",
  "%ff",
  "%FE",
  "%80",
  "%bf",
  "%e4%b8",
  "%e4",
  "%ed%a0%80", // an encoded surrogate
  "%ed%bf%bf",
  "%f4%90%80%80", // above U+10FFFF
  "%",
  "%4",
  "%zz",
  "%%",
  "%u002e",
  "%0a",
  "%0d%0a",
  "%09",
  "%20",
  "%7f",
];

const _DOTS = [
  ".",
  "..",
  "...",
  "%2e",
  "%2E",
  "%2e%2e",
  ".%2e",
  "%2e.",
  "%2E%2e",
  "..;",
  ".;",
  "..\\",
  "..%5c",
  "..%2f",
  "%2e%2e%2f",
  ".\\.",
  "..%00",
];

/** Printable ASCII a request line can carry (no space). */
const _PRINTABLE = Array.from(
  { length: 0x7e - 0x21 + 1 },
  (_, i) => String.fromCharCode(0x21 + i),
);

/**
 * The sequence of hostile requests for `seed`: long segments (around the
 * 255-byte limit, in 1- to 4-byte characters), deep and long paths (around
 * 4 096 and 8 192 bytes), every kind of percent-encoding (each byte,
 * overlong and invalid UTF-8, surrogates, `%00`, `%2F`, `%5C`, double
 * encoding, truncated escapes), backslashes, dot segments, raw Unicode and
 * raw invalid bytes, huge query strings, matrix parameters, absolute-form
 * targets, and targets under the CGI directory with long `PATH_INFO`.
 */
export function* fuzzRequests(
  seed: number,
  options: FuzzOptions = {},
): Generator<FuzzRequest> {
  const random = new _Random(seed);
  const {
    cgiPrefix = "/cgi-bin/",
    cgiScripts = ["echo.sh"],
    paths = FUZZ_PATHS,
    maxTargetBytes = 60_000,
  } = options;
  const cgi = cgiPrefix.replace(/\/$/, "");

  const known = () => random.pick(paths);
  const dir = () => known().replace(/[^/]*$/, "");

  /**
   * A segment of exactly `bytes` decoded bytes: a random unit of a few
   * characters repeated, padded with `a` (raw UTF-8 or percent-encoded).
   */
  function segment(bytes: number): string {
    const pieces = random.chance(0.5) ? _ASCII_PIECES : _PIECES;
    const wireRaw = random.chance(0.3); // raw UTF-8 on the wire
    let unit = "";
    let unitBytes = 0;
    for (let n = random.int(1, 6); n > 0; n--) {
      const piece = random.pick(pieces);
      unit += wireRaw ? piece.raw : piece.encoded;
      unitBytes += piece.raw.length;
    }
    const times = Math.floor(bytes / unitBytes);
    return unit.repeat(times) + "a".repeat(bytes - times * unitBytes);
  }

  /** A byte length near one of the limits, or anywhere. */
  function nameLength(): number {
    return random.pick([
      random.int(1, 64),
      random.int(250, 260),
      random.int(253, 256),
      random.int(200, 600),
      random.int(1000, 5000),
    ]);
  }

  function longSegment(): string {
    const where = random.int(0, 3);
    const long = segment(nameLength());
    const ext = random.pick(["", ".txt", ".html", ".br", ".gz", ".sh", "/"]);
    if (where === 0) return "/" + long + ext;
    if (where === 1) return dir() + long + ext;
    if (where === 2) return "/" + long + known();
    return "/sub/" + long + "/../page.txt";
  }

  function deep(): string {
    const goal = random.pick([
      random.int(3000, 4200),
      random.int(4000, 4100),
      random.int(8000, 8400),
      random.int(100, 20_000),
    ]);
    let out = random.chance(0.5) ? "" : "/sub";
    while (out.length < goal) {
      out += "/" + random.pick([
        "a",
        "sub",
        "..",
        ".",
        "",
        segment(random.int(1, 250)),
      ]);
    }
    return out + random.pick(["", "/", "/hello.txt"]);
  }

  function encoded(): string {
    const base = _utf8(known());
    const mode = random.int(0, 4);
    if (mode === 0) return "/" + _encodeAll(base.slice(1), random.chance(0.5));
    if (mode === 1) {
      // Random bytes, each percent-encoded.
      let out = "/";
      for (let n = random.int(1, 40); n > 0; n--) {
        out += _pct(random.int(0, 255), random.chance(0.5));
      }
      return out;
    }
    // A bad escape spliced somewhere into a known path.
    const at = random.int(1, base.length);
    let out = base.slice(0, at) + random.pick(_BAD_ESCAPES) + base.slice(at);
    if (mode === 3) out += random.pick(_BAD_ESCAPES);
    if (mode === 4) out = out.replaceAll("/", random.pick(["%2f", "%2F"]));
    return out.startsWith("/") ? out : "/" + out;
  }

  function dots(): string {
    let out = "";
    for (let n = random.int(1, 12); n > 0; n--) {
      out += random.pick(["/", "\\", "/", "%2f", "//"]) +
        random.pick([..._DOTS, "sub", "hello.txt", ".env"]);
    }
    return (out.startsWith("/") ? out : "/" + out) +
      random.pick(["", "/hello.txt", "/.env", "/etc/passwd", "/"]);
  }

  function unicode(): string {
    let out = "/";
    for (let n = random.int(1, 20); n > 0; n--) out += random.pick(_CHARS);
    const bytes = _utf8(out);
    if (!random.chance(0.3)) return bytes;
    // Raw invalid bytes on the wire: lone continuations, overlong, 0xFF.
    const bad = random.pick([
      "\x80",
      "\xc0\xae",
      "\xff",
      "\xed\xa0\x80",
      "\xe4",
    ]);
    const at = random.int(1, bytes.length);
    return bytes.slice(0, at) + bad + bytes.slice(at);
  }

  function query(): string {
    const size = random.pick([
      random.int(0, 100),
      random.int(8000, 8300),
      random.int(1000, 20_000),
      random.int(20_000, maxTargetBytes - 200),
    ]);
    let q = "";
    while (q.length < size) {
      q += random.pick([
        "a=1&",
        "a",
        "&",
        "=",
        ";",
        "%",
        "%25",
        "%00",
        "?",
        "+",
        "x".repeat(random.int(1, 500)),
      ]);
    }
    return random.pick([known(), `${cgi}/${random.pick(cgiScripts)}`]) + "?" +
      q;
  }

  function matrix(): string {
    return known().split("/").map((s, i) =>
      i > 0 && random.chance(0.5)
        ? s +
          random.pick([
            ";a=b",
            ";jsessionid=0123",
            ";",
            ";/..",
            ";%2f",
            ";" + "m".repeat(random.int(250, 300)),
          ])
        : s
    ).join("/");
  }

  function underCgi(): string {
    const script = random.pick(cgiScripts);
    const mode = random.int(0, 7);
    if (mode >= 5) {
      // The script with PATH_INFO of every length up to past the limits.
      const size = random.pick([
        random.int(1, 300),
        6000,
        random.int(4000, 4200),
        random.int(8100, 8300),
      ]);
      let info = "";
      while (info.length < size) info += "/" + segment(random.int(1, 300));
      return `${cgi}/${script}${info}`;
    }
    if (mode === 1) return `${cgi}/${segment(nameLength())}`; // no such script
    if (mode === 2) return `${cgi}${deep()}`;
    if (mode === 3) return `${cgi}/${script}${dots()}`;
    if (mode === 4) return `${cgi}${encoded()}`;
    if (random.chance(0.5)) {
      return `${cgi}/${script}?${"q".repeat(random.int(0, 9000))}`;
    }
    return random.pick([
      cgi,
      `${cgi}/`,
      `${cgi}//${script}`,
      `${cgi}/./${script}`,
      `${cgi}/${script}/`,
      `${cgi}/sub/../${script}`,
      `${cgi}/%2e%2e/${script}`,
      `${cgi}/${script}%00`,
      `${cgi}/${script};x`,
    ]);
  }

  function form(): string {
    return random.pick([
      "http://127.0.0.1" + known(),
      "http://127.0.0.1:1" + known(),
      "http://[::1]" + known(),
      "http://user:pass@127.0.0.1" + known(),
      "//" + known().slice(1),
      "///" + known().slice(1),
      "*",
      known().slice(1) || "hello.txt",
      known() + "#frag",
      known() + "?" + "#",
      "/" + "/".repeat(random.int(1, 300)) + "hello.txt",
      "\\hello.txt",
      "/\\..\\..\\hello.txt",
    ]);
  }

  function chars(): string {
    let out = "/";
    for (let n = random.int(1, 60); n > 0; n--) out += random.pick(_PRINTABLE);
    return out;
  }

  const families: [string, number, () => string][] = [
    ["known", 8, () => known() + random.pick(["", "/", "?x=1", "/."])],
    ["long-segment", 16, longSegment],
    ["deep", 10, deep],
    ["encoding", 16, encoded],
    ["dots", 10, dots],
    ["unicode", 8, unicode],
    ["query", 6, query],
    ["matrix", 5, matrix],
    ["cgi", 9, underCgi],
    ["form", 5, form],
    ["chars", 7, chars],
  ];
  const total = families.reduce((sum, [, weight]) => sum + weight, 0);

  for (let index = 0;; index++) {
    let roll = random.next() * total;
    let family = families[0]!;
    for (const entry of families) {
      family = entry;
      roll -= entry[1];
      if (roll < 0) break;
    }
    let target = family[2]();
    if (target.length > maxTargetBytes) {
      target = target.slice(0, maxTargetBytes);
    }
    const headers: [string, string][] = [];
    if (random.chance(0.3)) headers.push(["Accept-Encoding", "br, zstd, gzip"]);
    if (random.chance(0.1)) headers.push(["Accept", "application/json"]);
    if (random.chance(0.05)) headers.push(["Range", "bytes=0-1"]);
    yield {
      index,
      kind: family[0],
      method: random.chance(0.15) ? "HEAD" : "GET",
      target,
      headers,
    };
  }
}

/** The bytes of a generated target (one byte per char). */
export function targetBytes(target: string): Uint8Array {
  const bytes = new Uint8Array(target.length);
  for (let i = 0; i < target.length; i++) bytes[i] = target.charCodeAt(i);
  return bytes;
}

/** A target shown safely in a report: non-printable bytes as `\xNN`, long ones cut. */
export function showTarget(target: string, max = 200): string {
  const shown = target.slice(0, max).replace(
    /[^\x21-\x7e]/g,
    (c) => "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0"),
  );
  return target.length > max ? `${shown}… (${target.length} bytes)` : shown;
}
