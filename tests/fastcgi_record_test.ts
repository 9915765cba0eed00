import assert from "node:assert/strict";
import {
  concatBytes,
  decodePairs,
  encodeBeginRequest,
  encodePair,
  encodeParams,
  encodeRecord,
  encodeRequest,
  HEADER_LENGTH,
  MAX_CHUNK,
  RecordReader,
  RecordType,
} from "../cgi/fastcgi/record.ts";

/** Splits encoded records back into [type, content, padding]. */
function split(
  bytes: Uint8Array,
): { type: number; content: Uint8Array; padding: number }[] {
  const out = [];
  let i = 0;
  while (i < bytes.length) {
    const length = (bytes[i + 4]! << 8) | bytes[i + 5]!;
    const padding = bytes[i + 6]!;
    out.push({
      type: bytes[i + 1]!,
      content: bytes.subarray(i + 8, i + 8 + length),
      padding,
    });
    i += HEADER_LENGTH + length + padding;
  }
  assert.equal(i, bytes.length);
  return out;
}

/** A byte source handing out `step` bytes per read. */
function source(
  bytes: Uint8Array,
  step: number,
): { read(p: Uint8Array): Promise<number | null> } {
  let offset = 0;
  return {
    read(p) {
      if (offset >= bytes.length) return Promise.resolve(null);
      const n = Math.min(step, p.length, bytes.length - offset);
      p.set(bytes.subarray(offset, offset + n));
      offset += n;
      return Promise.resolve(n);
    },
  };
}

Deno.test("encodeParams() never splits a pair and keeps records within 65535 bytes", () => {
  const params: [string, string][] = [
    ["A", "x".repeat(30_000)],
    ["B", "y".repeat(30_000)],
    ["C", "z".repeat(30_000)],
    ["N".repeat(200), "short"],
  ];
  const records = split(encodeParams(1, params));
  assert.ok(records.length >= 3);
  const last = records.at(-1)!;
  assert.equal(
    last.content.length,
    0,
    "the stream ends with an empty PARAMS record",
  );
  const decoded: [string, string][] = [];
  for (const r of records) {
    assert.equal(r.type, RecordType.PARAMS);
    assert.ok(r.content.length + r.padding <= 0xffff);
    decoded.push(...decodePairs(r.content)); // each record decodes on its own
  }
  assert.deepEqual(decoded, params);
});

Deno.test("encodeParams() writes non-ASCII names and values as UTF-8 with their byte lengths", () => {
  const params: [string, string][] = [
    ["SCRIPT_NAME", "/été/日本.php"],
    ["HTTP_X_EMOJI", "😀".repeat(50)], // 200 bytes: a 4-byte length
    ["É", ""],
    ["PLAIN", "ascii"],
  ];
  const records = split(encodeParams(1, params));
  assert.equal(records.length, 2);
  assert.deepEqual(decodePairs(records[0]!.content), params);
  assert.equal((records[0]!.content.length + records[0]!.padding) % 8, 0);
});

Deno.test("encodeParams() sends only the empty record when there are no params", () => {
  const records = split(encodeParams(1, []));
  assert.equal(records.length, 1);
  assert.equal(records[0]!.content.length, 0);
});

Deno.test("RecordReader.nextBuffered() hands out only records that arrived whole", async () => {
  const first = encodeRecord(
    RecordType.STDOUT,
    1,
    new TextEncoder().encode("abc"),
  );
  const second = encodeRecord(RecordType.STDOUT, 1, new Uint8Array(100));
  const both = concatBytes([first, second]);
  // The source delivers the first record and half of the second.
  const reader = new RecordReader(
    source(both.subarray(0, first.length + 50), 1_000),
  );
  assert.equal(reader.nextBuffered(), undefined, "nothing read yet");
  const record = await reader.next();
  assert.equal(new TextDecoder().decode(record?.content), "abc");
  assert.equal(reader.nextBuffered(), undefined, "the second is incomplete");
  const whole = new RecordReader(source(both, 1_000));
  await whole.next();
  assert.equal(
    whole.nextBuffered()?.content.length,
    100,
    "arrived with the first",
  );
  assert.equal(whole.nextBuffered(), undefined);
});

Deno.test("encodeParams() rejects a single pair larger than one record", () => {
  assert.throws(
    () => encodeParams(1, [["BIG", "v".repeat(70_000)]]),
    RangeError,
  );
});

Deno.test("encodePair() uses 4-byte lengths above 127 bytes", () => {
  const pair = encodePair("n".repeat(128), "v");
  assert.deepEqual([...pair.subarray(0, 5)], [0x80, 0, 0, 128, 1]);
  assert.deepEqual(decodePairs(pair), [["n".repeat(128), "v"]]);
  assert.throws(() => decodePairs(pair.subarray(0, 10)), SyntaxError);
});

Deno.test("encodeRecord() pads to 8 bytes but never beyond 65535", () => {
  assert.equal(encodeRecord(RecordType.STDIN, 1, new Uint8Array(5)).length, 16);
  assert.equal(
    encodeRecord(RecordType.STDIN, 1, new Uint8Array(MAX_CHUNK)).length,
    HEADER_LENGTH + MAX_CHUNK,
  );
  const full = encodeRecord(RecordType.STDIN, 1, new Uint8Array(0xffff));
  assert.equal(full[6], 0);
  assert.throws(
    () => encodeRecord(RecordType.STDIN, 1, new Uint8Array(0x10000)),
    RangeError,
  );
});

Deno.test("RecordReader reads records arriving byte by byte and skips padding", async () => {
  const text = new TextEncoder();
  const bytes = concatBytes([
    encodeRecord(RecordType.STDERR, 1, text.encode("oops")),
    encodeRecord(
      RecordType.STDOUT,
      1,
      text.encode("Content-Type: a/b\r\n\r\nhello"),
    ),
    encodeRecord(RecordType.END_REQUEST, 1, new Uint8Array(8)),
  ]);
  const reader = new RecordReader(source(bytes, 1));
  const types = [];
  const contents = [];
  for (let r = await reader.next(); r; r = await reader.next()) {
    types.push(r.type);
    contents.push(new TextDecoder().decode(r.content));
  }
  assert.deepEqual(types, [
    RecordType.STDERR,
    RecordType.STDOUT,
    RecordType.END_REQUEST,
  ]);
  assert.equal(contents[1], "Content-Type: a/b\r\n\r\nhello");
  assert.equal(reader.received, bytes.length);
});

Deno.test("RecordReader throws on truncated or foreign-version records", async () => {
  const record = encodeRecord(RecordType.STDOUT, 1, new Uint8Array(10));
  await assert.rejects(
    new RecordReader(source(record.subarray(0, 12), 4)).next(),
    SyntaxError,
  );
  await assert.rejects(
    new RecordReader(source(record.subarray(0, 5), 4)).next(),
    SyntaxError,
  );
  const foreign = record.slice();
  foreign[0] = 2;
  await assert.rejects(
    new RecordReader(source(foreign, 64)).next(),
    SyntaxError,
  );
});

/** Asserts equal bytes (deepEqual only to show a difference: it is slow). */
function sameBytes(actual: Uint8Array, expected: Uint8Array, label: string) {
  const same = actual.length === expected.length &&
    actual.every((b, i) => b === expected[i]);
  if (!same) assert.deepEqual(actual, expected, label);
}

/** The request head record by record, the way encodeRequest() must match. */
function requestByRecords(
  id: number,
  keepConn: boolean,
  params: [string, string][],
  stdin: Uint8Array | undefined,
): Uint8Array {
  const parts = [encodeBeginRequest(id, keepConn), encodeParams(id, params)];
  if (stdin) {
    for (let at = 0; at < stdin.length; at += MAX_CHUNK) {
      parts.push(
        encodeRecord(RecordType.STDIN, id, stdin.subarray(at, at + MAX_CHUNK)),
      );
    }
    parts.push(encodeRecord(RecordType.STDIN, id, new Uint8Array()));
  }
  return concatBytes(parts);
}

Deno.test("encodeRequest() writes the same records as BEGIN_REQUEST, encodeParams() and STDIN records one by one", () => {
  let seed = 42; // seeded: the same cases on every run
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const chars = (length: number, unicode: boolean) =>
    Array.from(
      { length },
      () =>
        unicode && random() < 0.05
          ? String.fromCodePoint(0x80 + Math.floor(random() * 0x2000))
          : String.fromCharCode(32 + Math.floor(random() * 95)),
    ).join("");
  // Long values repeat a random piece (making 40 000 random chars is slow).
  const text = (length: number, unicode: boolean) =>
    length <= 400
      ? chars(length, unicode)
      : chars(100, unicode).repeat(Math.floor(length / 100)) +
        chars(length % 100, unicode);
  const sizes = [0, 1, 7, 8, 9, MAX_CHUNK - 1, MAX_CHUNK, MAX_CHUNK + 1];
  const seen = { long: false, unicode: false, records: false };
  for (let i = 0; i < 400; i++) {
    const unicode = random() < 0.3;
    const params: [string, string][] = Array.from(
      { length: Math.floor(random() * 40) },
      () => [
        text(Math.floor(random() * (random() < 0.1 ? 300 : 40)), unicode),
        text(
          Math.floor(
            random() * (random() < 0.1 ? (random() < 0.5 ? 40_000 : 400) : 60),
          ),
          unicode,
        ),
      ],
    );
    const size = random() < 0.3
      ? undefined
      : sizes[Math.floor(random() * sizes.length)]!;
    const stdin = size === undefined
      ? undefined
      : Uint8Array.from({ length: size }, (_, k) => k & 0xff);
    const keepConn = random() < 0.5;
    const id = Math.floor(random() * 65_536);
    const expected = requestByRecords(id, keepConn, params, stdin);
    const label = `case ${i}`;
    sameBytes(encodeRequest(id, keepConn, params, stdin), expected, label);
    // Any iterable of pairs, not only arrays.
    sameBytes(
      encodeRequest(id, keepConn, params.values(), stdin),
      expected,
      label,
    );
    seen.long ||= params.some(([n, v]) => n.length > 127 || v.length > 127);
    seen.unicode ||= params.some(([n, v]) => /[^ -~]/.test(n + v)); // beyond printable ASCII
    seen.records ||= split(expected).filter((r) =>
      r.type === RecordType.PARAMS
    ).length > 2;
  }
  assert.deepEqual(seen, { long: true, unicode: true, records: true });
});

Deno.test("encodeRequest() rejects a pair too long for one record, as encodeParams() does", () => {
  const params: [string, string][] = [["BIG", "x".repeat(MAX_CHUNK)]];
  assert.throws(() => encodeRequest(1, true, params, undefined), RangeError);
});
