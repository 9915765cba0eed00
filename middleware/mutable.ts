/**
 * Response header mutation that works on any response.
 *
 * @module
 */

/**
 * Returns `res` if its headers can be changed, else a copy that can (e.g. a
 * `Response.redirect()` or a `fetch()` result have immutable headers).
 */
export function _withMutableHeaders(res: Response): Response {
  try {
    res.headers.set("x-serve-probe", "1");
    res.headers.delete("x-serve-probe");
    return res;
  } catch {
    return new Response(res.body, {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
  }
}
