/**
 * {@linkcode bodyKind}: what a `Response` carries, told without touching
 * `res.body`. Deno's public `body` getter turns a string or bytes body into
 * a stream, which `Deno.serve` then sends chunked (no `Content-Length`,
 * off its fast path); so the kind is read from Deno's private fields,
 * found once on probe responses and trusted only if they tell every kind
 * apart. Where they are not found the answer is `undefined`.
 *
 * @module
 */

/**
 * A body's kind: `"none"`, `"stream"`, the byte size of a string or bytes
 * body, or `undefined` when not known.
 *
 * @example Telling a stream from bytes
 * ```ts
 * import { type BodyKind, bodyKind } from "./body_kind.ts";
 * const kind: BodyKind = bodyKind(new Response("ok"));
 * console.log(kind); // 2 (or undefined on a runtime without the fields)
 * ```
 */
export type BodyKind = number | "none" | "stream" | undefined;

interface _Keys {
  /** The inner response (`body.streamOrStatic`). */
  readonly inner: symbol;
  /** A string body not yet turned into an inner body (Deno 2.9+). */
  readonly lazy: symbol | undefined;
}

const _ENCODER = new TextEncoder();

/** UTF-8 length of `text` (lone surrogates as U+FFFD, as Deno sends them). */
function _utf8Length(text: string): number {
  // At most 3 bytes per UTF-16 unit; encodeInto is ~20x a JS loop.
  if (text.length > 16384) return _ENCODER.encode(text).byteLength;
  return _ENCODER.encodeInto(text, new Uint8Array(3 * text.length)).written;
}

function _kind(res: Response, keys: _Keys | undefined): BodyKind {
  if (keys === undefined) return undefined;
  const fields = res as unknown as Record<symbol, unknown>;
  if (keys.lazy !== undefined) {
    // `new Response("text")` / `Response.json()`: the string, kept aside
    // until something reads the body or the headers.
    const lazy = fields[keys.lazy];
    if (typeof lazy === "string") return _utf8Length(lazy);
  }
  const inner = fields[keys.inner] as
    | { body?: { streamOrStatic?: unknown } | null }
    | undefined;
  if (typeof inner !== "object" || inner === null) return undefined;
  if (inner.body === null) return "none";
  const held = inner.body?.streamOrStatic;
  if (held instanceof ReadableStream) return "stream";
  const value = (held as { body?: unknown } | undefined)?.body;
  if (typeof value === "string") return _utf8Length(value);
  if (value instanceof Uint8Array) return value.byteLength;
  return undefined;
}

/** Finds Deno's body keys, trusted only if they tell every kind apart. */
function _findKeys(): _Keys | undefined {
  try {
    const named = (res: Response, name: string) =>
      Object.getOwnPropertySymbols(res).find((s) => s.description === name);
    const probe = new Response(new Uint8Array(3));
    const inner = named(probe, "response");
    if (inner === undefined) return undefined;
    const keys: _Keys = { inner, lazy: named(probe, "lazy static body") };
    const right = _kind(probe, keys) === 3 &&
      _kind(new Response("é"), keys) === 2 &&
      _kind(new Response("ab", { headers: { "x-a": "1" } }), keys) === 2 &&
      _kind(Response.json(1), keys) === 1 &&
      _kind(new Response(null), keys) === "none" &&
      _kind(new Response(new ReadableStream()), keys) === "stream";
    return right ? keys : undefined;
  } catch {
    return undefined;
  }
}

/** Deno's body keys (found once per isolate, never changed), or `undefined`. */
const _KEYS: _Keys | undefined = _findKeys();

/**
 * What `res` carries, without turning a string or bytes body into a
 * stream.
 *
 * @example Kinds of bodies
 * ```ts
 * import { bodyKind } from "./body_kind.ts";
 * import assert from "node:assert/strict";
 *
 * const known = bodyKind(new Response(new Uint8Array(3)));
 * if (known !== undefined) {
 *   assert.equal(known, 3);
 *   assert.equal(bodyKind(new Response(null)), "none");
 *   assert.equal(bodyKind(new Response(new ReadableStream())), "stream");
 * }
 * ```
 *
 * @param res The response.
 * @returns The kind, or `undefined` when the runtime hides it.
 */
export function bodyKind(res: Response): BodyKind {
  return _kind(res, _KEYS);
}
