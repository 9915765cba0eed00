/**
 * {@linkcode basicAuth}: HTTP Basic authentication (RFC 7617) against an
 * htpasswd file of bcrypt hashes, as `htpasswd -B` (Apache) and
 * `caddy hash-password` write them. The file is read when the middleware is
 * created and again whenever it changes; good logins are cached so a signed-in
 * browser does not pay for bcrypt on every request.
 *
 * @module
 */

import bcrypt from "bcryptjs";
import { HttpError } from "../server/errors.ts";
import { errorMessage } from "../server/log.ts";
import type { Context, LogFn, Middleware } from "../server/types.ts";

/**
 * Options of {@linkcode basicAuth}.
 *
 * @example Protecting a handler with a users file
 * ```ts
 * import { basicAuth, type BasicAuthOptions } from "./basic_auth.ts";
 * import { compose } from "../server/compose.ts";
 * import bcrypt from "bcryptjs";
 * import assert from "node:assert/strict";
 *
 * const htpasswd = Deno.makeTempFileSync();
 * Deno.writeTextFileSync(htpasswd, `alice:${bcrypt.hashSync("s3cret", 4)}\n`);
 * const options: BasicAuthOptions = { htpasswd, realm: "Admin area" };
 * const handler = compose([basicAuth(options), () => new Response("welcome")]);
 *
 * const res = await handler(new Request("http://localhost/admin/"));
 * assert.equal(res.status, 401);
 * assert.equal(
 *   res.headers.get("www-authenticate"),
 *   'Basic realm="Admin area", charset="UTF-8"',
 * );
 * await res.body?.cancel();
 * Deno.removeSync(htpasswd);
 * ```
 */
export interface BasicAuthOptions {
  /**
   * Path of the htpasswd file: `user:hash` lines, bcrypt hashes only
   * (`$2y$`, `$2a$`, `$2b$`); blank lines and `#` comments are allowed. It is
   * read when the middleware is created (an error there throws) and re-read
   * when its modification time, size or inode changes; a broken re-read keeps
   * the previous users and logs a warning.
   */
  htpasswd: string;
  /**
   * The realm the browser shows in its sign-in prompt (printable ASCII).
   * @default {"Restricted"}
   */
  realm?: string;
  /**
   * How many successful verifications are remembered (least recently used
   * are dropped first), so repeat requests skip bcrypt. `0` disables the
   * cache. Entries are keyed by the stored hash too: a changed or removed
   * user stops matching at once.
   * @default {1000}
   */
  cacheSize?: number;
  /**
   * How often, at most, the file's status is checked for changes (in
   * milliseconds). A check runs in the background of the request that
   * triggers it, which waits for it at most a fraction of a second.
   * @default {1000}
   */
  recheckMs?: number;
}

/** The users of one read of the file. */
interface _Users {
  /** User name → bcrypt hash. */
  readonly hashes: Map<string, string>;
  /** A well-formed hash no password is known for, at the file's usual cost. */
  readonly dummy: string;
}

/** What the last successful read of the file saw. */
interface _Loaded {
  readonly users: _Users;
  /** The file's text, to tell a touch from a change. */
  readonly text: string;
  /** The stat stamp taken before reading it (`undefined`: no mtime). */
  readonly stamp: string | undefined;
}

const _BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;
/** A syntactically valid bcrypt salt and digest; the cost is put in front. */
const _DUMMY_TAIL = "N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";
/** The longest a request waits for a file check before using the old users. */
const _CHECK_WAIT_MS = 200;
const _decoder = new TextDecoder("utf-8", { fatal: true });
const _encoder = new TextEncoder();

/**
 * Requires HTTP Basic credentials that match a user of an htpasswd file.
 *
 * A request with a valid `Authorization: Basic …` header goes on down the
 * chain with `ctx.scriptVars.AUTH_TYPE = "Basic"` and
 * `ctx.scriptVars.REMOTE_USER` set (for CGI and FastCGI scripts); any other
 * is answered 401 with a `WWW-Authenticate` challenge (through the chain's
 * error path, so `errorPages()` can show a custom `401.html`). Wrong
 * credentials log one warning with the user name, client address and path,
 * never the password; a request without credentials (a browser's first) logs
 * nothing.
 *
 * An unknown user costs a bcrypt comparison too, so response times do not
 * tell which users exist. The comparison runs asynchronously (bcryptjs,
 * in slices), and good logins are cached by a SHA-256 of the user, the
 * password and the stored hash.
 *
 * @example Signing in
 * ```ts
 * import { basicAuth } from "./basic_auth.ts";
 * import { compose } from "../server/compose.ts";
 * import bcrypt from "bcryptjs";
 * import assert from "node:assert/strict";
 *
 * const htpasswd = Deno.makeTempFileSync();
 * Deno.writeTextFileSync(
 *   htpasswd,
 *   `# users\nalice:${bcrypt.hashSync("s3cret", 4)}\n`,
 * );
 * const handler = compose([
 *   basicAuth({ htpasswd }),
 *   (_req, ctx) => new Response(ctx.scriptVars?.REMOTE_USER),
 * ]);
 *
 * const authorization = `Basic ${btoa("alice:s3cret")}`;
 * const ok = await handler(
 *   new Request("http://localhost/", { headers: { authorization } }),
 * );
 * assert.equal(await ok.text(), "alice");
 *
 * const denied = await handler(new Request("http://localhost/"));
 * assert.equal(denied.status, 401);
 * assert.match(denied.headers.get("www-authenticate")!, /^Basic realm="Restricted"/);
 * await denied.body?.cancel();
 * Deno.removeSync(htpasswd);
 * ```
 *
 * @param options The htpasswd file, the realm, the cache and recheck limits.
 * @returns The middleware.
 * @throws {Error} When the file cannot be read or has a line that is not
 *   `user:bcrypt-hash` (the message names the file and line).
 * @throws {TypeError} When an option is not valid.
 */
export function basicAuth(options: BasicAuthOptions): Middleware {
  const {
    htpasswd: path,
    realm = "Restricted",
    cacheSize = 1000,
    recheckMs = 1000,
  } = options;
  if (typeof path !== "string" || path === "") {
    throw new TypeError("Cannot create basicAuth(): htpasswd path is empty");
  }
  if (!/^[\x20-\x7e\t]*$/.test(realm)) {
    throw new TypeError(
      `Cannot create basicAuth(): realm ${
        JSON.stringify(realm)
      } is not printable ASCII`,
    );
  }
  if (!(Number.isInteger(cacheSize) && cacheSize >= 0)) {
    throw new TypeError(
      `Cannot create basicAuth(): cacheSize "${cacheSize}" is not a whole number >= 0`,
    );
  }
  if (!(recheckMs >= 0 && Number.isFinite(recheckMs))) {
    throw new TypeError(
      `Cannot create basicAuth(): recheckMs "${recheckMs}" is not a number >= 0`,
    );
  }

  const challenge = `Basic realm="${
    realm.replace(/["\\]/g, "\\$&")
  }", charset="UTF-8"`;
  const realmForLog = _printable(realm);
  // Keys are not guessable from a dump of memory without this per-instance
  // secret (they would be a SHA-256 of the password otherwise).
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const cache = new Map<string, true>();

  let loaded = _loadSync(path);
  let checkedAt = performance.now();
  let checking: Promise<void> | undefined;
  let checkStarted = 0;
  let lastWarning = "";

  async function refresh(log: LogFn): Promise<void> {
    try {
      const stamp = _stamp(await Deno.stat(path));
      if (stamp !== undefined && stamp === loaded.stamp) return;
      const text = await _readText(path);
      if (text !== loaded.text) {
        loaded = { users: _parse(text, path), text, stamp };
        cache.clear();
      } else {
        loaded = { ...loaded, stamp };
      }
      lastWarning = "";
    } catch (error) {
      // Once per distinct problem, not once per second while it lasts.
      const warning = `basic-auth: keeping the previous users: ${
        errorMessage(error)
      }`;
      if (warning !== lastWarning) {
        lastWarning = warning;
        log("warn", warning);
      }
    }
  }

  async function currentUsers(ctx: Context): Promise<_Users> {
    const now = performance.now();
    if (checking === undefined && now - checkedAt >= recheckMs) {
      checkedAt = now;
      checkStarted = now;
      checking = refresh(ctx.log).finally(() => {
        checking = undefined;
      });
    }
    if (checking !== undefined) {
      const left = _CHECK_WAIT_MS - (now - checkStarted);
      if (left > 0) await _within(checking, left);
    }
    return loaded.users;
  }

  async function verify(
    users: _Users,
    user: string,
    password: string,
  ): Promise<boolean> {
    const hash = users.hashes.get(user);
    const key = await _cacheKey(secret, user, password, hash ?? users.dummy);
    if (hash === undefined) {
      // The same work as for a real user, so timing does not tell.
      await bcrypt.compare(password, users.dummy).catch(() => false);
      return false;
    }
    if (cache.delete(key)) {
      cache.set(key, true);
      return true;
    }
    if (!await bcrypt.compare(password, hash)) return false;
    if (cacheSize > 0) {
      cache.set(key, true);
      if (cache.size > cacheSize) {
        cache.delete(cache.keys().next().value!);
      }
    }
    return true;
  }

  return async (req, ctx, next) => {
    const users = await currentUsers(ctx);
    const credentials = _credentials(req.headers.get("authorization"));
    if (
      credentials !== undefined &&
      await verify(users, credentials.user, credentials.password)
    ) {
      ctx.scriptVars = {
        ...ctx.scriptVars,
        AUTH_TYPE: "Basic",
        REMOTE_USER: credentials.user,
      };
      return next();
    }
    if (credentials !== undefined) {
      ctx.log(
        "warn",
        `basic-auth: failed login for user "${
          _printable(credentials.user)
        }" from ${
          _client(ctx)
        } on ${ctx.url.pathname} (realm "${realmForLog}")`,
      );
    }
    throw new HttpError(401, "basic-auth: no valid credentials", {
      headers: { "www-authenticate": challenge },
    });
  };
}

/** Reads and parses the file at creation, with errors that name it. */
function _loadSync(path: string): _Loaded {
  let stamp: string | undefined;
  let text: string;
  try {
    // Stat first: a change while reading shows up at the next check.
    stamp = _stamp(Deno.statSync(path));
    text = Deno.readTextFileSync(path);
  } catch (error) {
    throw new Error(
      `Cannot read htpasswd ${path}: ${errorMessage(error)}`,
      { cause: error },
    );
  }
  return { users: _parse(text, path), text, stamp };
}

async function _readText(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new Error(`Cannot read htpasswd ${path}: ${errorMessage(error)}`, {
      cause: error,
    });
  }
}

/**
 * Parses htpasswd text: `user:hash` per line (fields after a second `:` are
 * ignored, as Apache does), blank lines and `#` comments skipped, the first
 * line of a user wins.
 *
 * @param text The file's content.
 * @param path The file's path, for error messages.
 * @returns The users.
 * @throws {Error} On a line that is not a user with a bcrypt hash.
 */
function _parse(text: string, path: string): _Users {
  const hashes = new Map<string, string>();
  const costs = new Map<string, number>();
  const lines = text.replace(/^\uFEFF/, "").split("\n");
  for (const [index, raw] of lines.entries()) {
    const line = raw.replace(/[ \t\r]+$/, "");
    if (line.trim() === "" || line.trimStart().startsWith("#")) continue;
    const where = `htpasswd ${path} line ${index + 1}`;
    const colon = line.indexOf(":");
    if (colon <= 0) {
      throw new Error(`${where}: not "user:hash"`);
    }
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1).split(":", 1)[0]!;
    // deno-lint-ignore no-control-regex
    if (/[\x00-\x1f\x7f]/.test(user)) {
      throw new Error(
        `${where}: user name "${_printable(user)}" has control characters`,
      );
    }
    const match = _BCRYPT.exec(hash);
    if (match === null) {
      const what = hash.startsWith("$2") ? "malformed bcrypt" : "unsupported";
      throw new Error(
        `${where}: ${what} hash for "${
          _printable(user)
        }" (only bcrypt, as htpasswd -B writes)`,
      );
    }
    const cost = match[1]!;
    if (Number(cost) < 4 || Number(cost) > 31) {
      throw new Error(
        `${where}: bcrypt cost ${cost} for "${_printable(user)}" is not 04-31`,
      );
    }
    if (hashes.has(user)) continue;
    hashes.set(user, hash);
    costs.set(cost, (costs.get(cost) ?? 0) + 1);
  }
  // The most common cost (the higher on a tie), so an unknown user takes as
  // long as a typical known one.
  let dummyCost = "10";
  let most = 0;
  for (const [cost, count] of costs) {
    if (count > most || (count === most && cost > dummyCost)) {
      dummyCost = cost;
      most = count;
    }
  }
  return { hashes, dummy: `$2b$${dummyCost}$${_DUMMY_TAIL}` };
}

/** What tells a changed file: mtime, size, inode and device. */
function _stamp(info: Deno.FileInfo): string | undefined {
  if (info.mtime === null) return undefined;
  return `${info.mtime.getTime()}:${info.size}:${info.ino}:${info.dev}`;
}

/**
 * Decodes `Authorization: Basic base64(user:password)` (UTF-8).
 *
 * @param header The header's value.
 * @returns The user and password, or `undefined` when missing or malformed.
 */
function _credentials(
  header: string | null,
): { user: string; password: string } | undefined {
  if (header === null) return undefined;
  const match = /^basic +([A-Za-z0-9+/]+=*) *$/i.exec(header);
  if (match === null) return undefined;
  let decoded: string;
  try {
    const binary = atob(match[1]!);
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    decoded = _decoder.decode(bytes);
  } catch {
    return undefined;
  }
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

async function _cacheKey(
  secret: Uint8Array,
  user: string,
  password: string,
  hash: string,
): Promise<string> {
  const text = _encoder.encode(`${user}\0${password}\0${hash}`);
  const data = new Uint8Array(secret.length + text.length);
  data.set(secret);
  data.set(text, secret.length);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Waits for a promise, but no longer than `ms`. */
async function _within(promise: Promise<void>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      promise,
      new Promise<void>((resolve) => timer = setTimeout(resolve, ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function _client(ctx: Context): string {
  const addr = ctx.info?.remoteAddr;
  return addr && "hostname" in addr ? addr.hostname : "-";
}

/**
 * A string made safe for a log line: control characters, quotes and
 * backslashes escaped, at most 100 characters.
 *
 * @param text Untrusted text.
 * @returns The printable form.
 */
function _printable(text: string): string {
  const chars = text.length > 100 ? Array.from(text) : [];
  const cut = chars.length > 100 ? `${chars.slice(0, 100).join("")}…` : text;
  return cut.replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x1f\x7f-\x9f\u2028\u2029"\\]/g,
    (c) =>
      c === '"' || c === "\\"
        ? `\\${c}`
        : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
