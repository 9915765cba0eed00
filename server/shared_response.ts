/**
 * Answers made once and cloned per request. Deno (2.9) copies a bytes body
 * into every `new Response()` — an allocation and a copy per response,
 * most of the cost of answering a small file or an error page from memory,
 * and for a larger one a copy held by each response in flight — while
 * `Response.clone()` of a bytes body shares the bytes. Shared bytes must
 * not be handed to JavaScript that could change them: Deno gives the
 * shared buffer itself to `bytes()`, `arrayBuffer()` and a `body` reader.
 * A {@linkcode _sharedClone} answers those with copies, so a consumer that
 * writes into what it read changes its own bytes only; `Deno.serve` sends
 * the shared bytes as they are.
 *
 * Internal (not exported from `mod.ts`).
 *
 * @module
 */

/** Where an instance keeps the stream its `body` getter made. */
const _BODY = Symbol("x-serve copied body");

/** A response whose bytes body is shared: JavaScript reads get copies. */
class _SharedBodyResponse extends Response {
  override bytes(): Promise<Uint8Array<ArrayBuffer>> {
    return super.bytes().then((bytes) => bytes.slice());
  }

  override arrayBuffer(): Promise<ArrayBuffer> {
    return super.bytes().then((bytes) => bytes.slice().buffer);
  }

  override get body(): ReadableStream<Uint8Array<ArrayBuffer>> {
    const self = this as unknown as Record<
      symbol,
      ReadableStream<Uint8Array<ArrayBuffer>> | undefined
    >;
    // Lazy: looking at `body` (`if (res.body)`) leaves the response as it
    // is, sendable; only reading the stream reads (and copies) the bytes.
    self[_BODY] ??= new ReadableStream<Uint8Array<ArrayBuffer>>({
      pull: async (controller) => {
        controller.enqueue(await this.bytes());
        controller.close();
      },
      // Cancelled unread: used up, as any response's body (no copy made).
      cancel: () =>
        Response.prototype.bytes.call(this).then(() => {}, () => {}),
    }, { highWaterMark: 0 });
    return self[_BODY];
  }

  override clone(): Response {
    return _sharedClone(this);
  }
}

/**
 * A clone of `template` (a response made once with a bytes body, never
 * sent or read itself) that shares the bytes with `Deno.serve` and gives
 * JavaScript readers copies.
 *
 * @example One page, many responses
 * ```ts
 * import { _sharedClone } from "./shared_response.ts";
 * import assert from "node:assert/strict";
 *
 * const template = new Response(new TextEncoder().encode("hello"));
 * const first = _sharedClone(template);
 * new Uint8Array(await first.arrayBuffer()).fill(0); // its own copy
 * assert.equal(await _sharedClone(template).text(), "hello");
 * ```
 *
 * @param template The response to clone (its body is never read).
 * @returns The clone.
 */
export function _sharedClone(template: Response): Response {
  const clone = Response.prototype.clone.call(template);
  return Object.setPrototypeOf(clone, _SharedBodyResponse.prototype);
}
