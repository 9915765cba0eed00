/**
 * {@linkcode siteRules}: per-path rules of a site — deny and internal
 * paths, redirects, rewrites with `try-files` fallbacks, folders mounted at
 * a prefix (`alias`), basic authentication, script variables, and
 * X-Accel-Redirect / X-Sendfile answers from scripts.
 *
 * @module
 */

import { resolve } from "node:path";
import { HttpError } from "../server/errors.ts";
import { directoryRedirect } from "../server/http.ts";
import { documentRoot } from "../server/resolve.ts";
import type {
  Context,
  DocumentRoot,
  Middleware,
  Next,
} from "../server/types.ts";
import { basicAuth } from "./basic_auth.ts";
import { type AccelTarget, serveAccel } from "./accel.ts";
import { compileMatcher, type Matcher, type RuleMatch } from "./match.ts";
import {
  compileTemplate,
  type Template,
  type TemplateValues,
} from "./template.ts";

/**
 * One site rule: a matcher (exactly one of `path`, `prefix`, `regex`) and
 * what to do with the requests it matches. See {@linkcode siteRules} for
 * the order in which rules act.
 *
 * @example A DokuWiki-style rule set
 * ```ts
 * import type { SiteRule } from "@x/serve";
 *
 * const rules: SiteRule[] = [
 *   { regex: "^/(conf|bin|inc|vendor)/", deny: 404 },
 *   { prefix: "/data/", internal: true },
 *   { regex: "^/_media/(.*)", rewrite: "/lib/exe/fetch.php?media=$1" },
 *   { prefix: "/", tryFiles: ["$uri", "$uri/", "/doku.php?id=$uri&$query"] },
 * ];
 * ```
 */
export interface SiteRule extends RuleMatch {
  /**
   * Refuse the paths: `true` or `403` answers 403 Forbidden, `404` answers
   * 404 Not Found (hides that they exist).
   * @default {undefined}
   */
  deny?: boolean | 403 | 404;
  /**
   * Reachable only from inside the server: a rewrite, a script's local
   * redirect, or X-Accel-Redirect / X-Sendfile (which may name only such
   * paths); a client asking directly gets 404.
   * @default {false}
   */
  internal?: boolean;
  /**
   * Answer with a redirect to this target (placeholders as in
   * {@linkcode compileTemplate}; a target without `?` keeps the query).
   * @default {undefined}
   */
  redirect?: string;
  /**
   * The redirect's status: 301, 302, 303, 307 or 308.
   * @default {302}
   */
  status?: 301 | 302 | 303 | 307 | 308;
  /**
   * Rewrite the request to this target inside the server (method, headers
   * and body kept) and run it through every rule again.
   * @default {undefined}
   */
  rewrite?: string;
  /**
   * nginx `try_files`: every entry but the last is tried in turn — a file
   * (`"$uri"`), or a directory when it ends in `/` (`"$uri/"`) — and the
   * first that exists is what the request gets (rewritten to it when it is
   * not the request's own path); the last entry is the fallback: a rewrite
   * target (`"/index.php?$query"`) or `"=404"` (any status).
   * @default {undefined}
   */
  tryFiles?: readonly string[];
  /**
   * Serve this folder at the rule's `prefix` (nginx `alias`): static files,
   * listings and, when FastCGI is on, its scripts.
   * @default {undefined}
   */
  alias?: string;
  /**
   * Variables for the CGI environment and the FastCGI params of the
   * requests it matches (every matching rule adds its own; later win).
   * @default {undefined}
   */
  env?: Readonly<Record<string, string>>;
  /**
   * The index file of directories it matches (nginx `index`): `/dir/`
   * is rewritten to `/dir/NAME` when that file exists.
   * @default {undefined}
   */
  index?: string;
  /**
   * Require a user from this htpasswd file (bcrypt, as `htpasswd -B`
   * writes it). Scripts get `AUTH_TYPE` and `REMOTE_USER`.
   * @default {undefined}
   */
  basicAuth?: string;
  /**
   * The realm of `basicAuth`'s challenge.
   * @default {"Restricted"}
   */
  realm?: string;
}

/**
 * Options of {@linkcode siteRules}.
 *
 * @example Rules with a mounted folder
 * ```ts
 * import { siteRules, type SiteRulesOptions } from "@x/serve";
 *
 * const options: SiteRulesOptions = {
 *   rules: [
 *     { prefix: "/static/", alias: "/usr/share/gitweb/static/" },
 *     { prefix: "/private/", deny: 404 },
 *   ],
 * };
 * const middleware = siteRules(options);
 * ```
 */
export interface SiteRulesOptions {
  /**
   * The rules, in the order they are written.
   * @default {[]}
   */
  rules?: readonly SiteRule[];
  /**
   * URL prefixes of other mounts (CGI or FastCGI scripts and folders
   * handled further down the chain): an `alias` yields to a longer one.
   * @default {[]}
   */
  mounts?: readonly string[];
  /**
   * What serves an `alias` folder, with `ctx.root`, `ctx.base`,
   * `ctx.segments`, `ctx.path` and `ctx.file` set to it (the default
   * chain passes FastCGI, then static files).
   * @default {undefined} (404 for alias paths)
   */
  serveAlias?: Middleware;
}

/** A rule compiled once. */
interface _Rule {
  index: number;
  match: Matcher;
  source: SiteRule;
  access?: number; // 403/404 (deny) or 0 (internal)
  redirect?: Template;
  /** The redirect goes to another site (its target names a scheme). */
  external?: boolean;
  rewrite?: Template;
  tryFiles?: {
    tries: Template[];
    directory: boolean[];
    last: Template | number;
  };
  auth?: Middleware;
  alias?: string;
}

const _REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** A rule that cannot be compiled: the message names the rule and key. */
export class SiteRuleError extends Error {
  /**
   * Creates the error.
   *
   * @param message `rules[3].rewrite: unknown placeholder $urx`.
   */
  constructor(message: string) {
    super(message);
    this.name = "SiteRuleError";
  }
}

function _compile(rule: SiteRule, index: number): _Rule {
  const at = (key: string) => `rules[${index}]${key ? "." + key : ""}`;
  const fail = (key: string, why: string): never => {
    throw new SiteRuleError(`${at(key)}: ${why}`);
  };
  let match: Matcher;
  try {
    match = compileMatcher(rule);
  } catch (error) {
    return fail("", (error as Error).message);
  }
  const template = (key: string, text: unknown): Template => {
    if (typeof text !== "string" || text === "") {
      return fail(key, "must be a non-empty string");
    }
    try {
      return compileTemplate(text, match.groups);
    } catch (error) {
      return fail(key, (error as Error).message);
    }
  };
  const out: _Rule = { index, match, source: rule };
  if (rule.deny !== undefined && rule.deny !== false) {
    if (rule.deny !== true && rule.deny !== 403 && rule.deny !== 404) {
      fail("deny", "must be true, 403 or 404");
    }
    out.access = rule.deny === 404 ? 404 : 403;
  }
  if (rule.internal) {
    if (out.access !== undefined) fail("internal", 'conflicts with "deny"');
    out.access = 0;
  }
  if (rule.redirect !== undefined) {
    out.redirect = template("redirect", rule.redirect);
    out.external = /^[a-z][a-z0-9+.-]*:\/\//i.test(rule.redirect);
    if (rule.status !== undefined && !_REDIRECT_STATUSES.has(rule.status)) {
      fail("status", "must be 301, 302, 303, 307 or 308");
    }
  } else if (rule.status !== undefined) {
    fail("status", 'needs "redirect"');
  }
  const path = (key: string, text: unknown): Template => {
    if (typeof text === "string" && !/^[/$]/.test(text)) {
      fail(key, 'must be a path inside the site (start with "/" or $uri)');
    }
    return template(key, text);
  };
  if (rule.rewrite !== undefined) out.rewrite = path("rewrite", rule.rewrite);
  if (rule.tryFiles !== undefined) {
    if (out.rewrite) fail("tryFiles", 'conflicts with "rewrite"');
    const list = rule.tryFiles;
    if (!Array.isArray(list) || list.length < 2) {
      fail("tryFiles", "needs at least two entries (tries, then a fallback)");
    }
    const tries = list.slice(0, -1).map((t, i) => path(`tryFiles[${i}]`, t));
    const directory = list.slice(0, -1).map((t: string) => t.endsWith("/"));
    const fallback = list.at(-1) as string;
    const status = /^=(\d{3})$/.exec(fallback ?? "");
    const code = status ? Number(status[1]) : 0;
    if (status && (code < 400 || code > 599)) {
      fail(`tryFiles[${list.length - 1}]`, "a status must be 400-599");
    }
    out.tryFiles = {
      tries,
      directory,
      last: status ? code : path(`tryFiles[${list.length - 1}]`, fallback),
    };
  }
  if (rule.alias !== undefined) {
    if (match.prefix === undefined) fail("alias", 'needs "prefix"');
    if (!match.prefix!.endsWith("/")) {
      fail("alias", `its "prefix" must end with "/" ("${match.prefix}/")`);
    }
    if (typeof rule.alias !== "string" || rule.alias === "") {
      fail("alias", "must be a folder path");
    }
    out.alias = resolve(rule.alias);
  }
  if (rule.env !== undefined) {
    if (typeof rule.env !== "object" || rule.env === null) {
      fail("env", "must be an object of names to strings");
    }
    for (const [name, value] of Object.entries(rule.env)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        fail(`env.${name}`, "is not a variable name");
      }
      if (typeof value !== "string" || /[\0\r\n]/.test(value)) {
        fail(`env.${name}`, "must be a one-line string");
      }
    }
  }
  if (rule.index !== undefined) {
    if (typeof rule.index !== "string" || !/^[^/\\]+$/.test(rule.index)) {
      fail("index", "must be a file name");
    }
  }
  if (rule.basicAuth !== undefined) {
    try {
      out.auth = basicAuth({
        htpasswd: rule.basicAuth,
        ...(rule.realm !== undefined ? { realm: rule.realm } : {}),
      });
    } catch (error) {
      fail("basicAuth", (error as Error).message);
    }
  } else if (rule.realm !== undefined) {
    fail("realm", 'needs "basicAuth"');
  }
  return out;
}

/** The values templates are filled from, for one rule's match. */
function _values(
  ctx: Context,
  match: NonNullable<ReturnType<Matcher>>,
): TemplateValues {
  return {
    uri: ctx.path,
    query: ctx.url.search.slice(1),
    requestUri: ctx.requestUrl.pathname + ctx.requestUrl.search,
    host: ctx.url.hostname,
    scheme: ctx.url.protocol.slice(0, -1),
    rest: match.rest,
    captures: match.captures,
    named: match.named,
  };
}

/**
 * A filled target as a URL: a target without `?` keeps the request's
 * query, one ending in `?` drops it.
 */
function _targetUrl(target: string, ctx: Context, external = false): URL {
  let url: URL;
  if (target.startsWith("/")) {
    // A path ("$uri/" of "/" is "//", not a host): one slash a step.
    const query = target.indexOf("?");
    const path = query === -1 ? target : target.slice(0, query);
    target = path.replace(/\/{2,}/g, "/") +
      (query === -1 ? "" : target.slice(query));
  }
  try {
    url = new URL(target, ctx.url);
  } catch {
    throw new HttpError(500, `Rule target is not a URL: ${target}`);
  }
  // Filled values are escaped (rules/template.ts); this holds whatever
  // they held: a target in the site stays in it.
  if (!external && url.origin !== ctx.url.origin) {
    throw new HttpError(400, `Rule target left the site: ${target}`);
  }
  if (!target.includes("?")) url.search = ctx.url.search;
  else if (url.search === "") url.search = ""; // "…?" drops it, "?" too
  return url;
}

/**
 * The site-rules middleware (after `resolvePath()`, before CGI, FastCGI
 * and static files). Rules match the decoded, normalised path; for each
 * request — and again for each rewrite — they act in this order:
 *
 * 1. **access**: the first matching rule with `deny` or `internal` decides
 *    (403/404; `internal` → 404 unless the request came from inside);
 * 2. **basicAuth**: the first matching rule with it (401 without a user);
 * 3. **redirect**: the first matching rule with it answers;
 * 4. **rewrite / tryFiles**: the first matching rule with either; a
 *    rewrite is run through the whole chain again, with the chain's loop
 *    limit (`maxDispatchDepth` of `compose()`, then 500);
 * 5. **index**: a directory (path ending in `/`) gets the `index` of the
 *    last matching rule with one, when that file exists;
 * 6. **env**: every matching rule adds its variables (later win);
 * 7. **alias**: the matching `alias` with the longest prefix serves the
 *    request (unless a longer CGI/FastCGI mount, `mounts`, takes it).
 *
 * Then the rest of the chain answers, and a script's `X-Accel-Redirect`
 * (a URL path) or `X-Sendfile` (a file path) is served by the server
 * itself — ranges, conditional requests, type, compression — when it lies
 * inside an `internal` rule's paths (for a file: the folder of an
 * `internal` `prefix` rule, its `alias` or the root below the prefix);
 * anything else → 502 and a log line. The header never reaches the
 * client.
 *
 * @example Denying a folder and rewriting clean URLs
 * ```ts
 * import { compose, resolvePath, siteRules } from "@x/serve";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * const handler = compose([
 *   resolvePath({ root }),
 *   siteRules({
 *     rules: [
 *       { prefix: "/data/", deny: 404 },
 *       { regex: "^/page/(\\w+)$", rewrite: "/show?id=$1" },
 *     ],
 *   }),
 *   (_req, ctx) => new Response(`${ctx.url.pathname}${ctx.url.search}`),
 * ]);
 * assert.equal((await handler(new Request("http://localhost/data/x"))).status, 404);
 * const res = await handler(new Request("http://localhost/page/start?x=1"));
 * assert.equal(await res.text(), "/show?id=start");
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * @param options The rules and how mounted folders are served.
 * @returns The middleware.
 * @throws {SiteRuleError} For a rule that cannot work, naming it.
 */
export function siteRules(options: SiteRulesOptions = {}): Middleware {
  const rules = (options.rules ?? []).map(_compile);
  const access = rules.filter((r) => r.access !== undefined);
  const auths = rules.filter((r) => r.auth !== undefined);
  const redirects = rules.filter((r) => r.redirect !== undefined);
  const rewrites = rules.filter((r) => r.rewrite || r.tryFiles);
  const indexes = rules.filter((r) => r.source.index !== undefined);
  const envs = rules.filter((r) => r.source.env !== undefined);
  const aliases = rules.filter((r) => r.alias !== undefined)
    .sort((a, b) => b.match.prefix!.length - a.match.prefix!.length);
  const otherMounts = [...options.mounts ?? []];
  const internals = rules.filter((r) => r.access === 0);
  const aliasRoots = _aliasRoots();

  function first(list: readonly _Rule[], path: string) {
    for (const rule of list) {
      const match = rule.match(path);
      if (match) return { rule, match };
    }
    return undefined;
  }

  /**
   * The first rule of `list` that matches the path or a folder above it: a
   * script answers for the paths below it (`/x.php/more` runs `/x.php`), so
   * a rule that guards `*.php` must see `/x.php` there too.
   */
  function guarding(list: readonly _Rule[], ctx: Context) {
    if (list.length === 0) return undefined;
    const { segments } = ctx;
    for (const rule of list) {
      if (rule.match(ctx.path)) return { rule };
      if (rule.match.prefix !== undefined) continue; // covers what is below
      for (let n = segments.length; n > 0; n--) {
        const above = "/" + segments.slice(0, n).join("/");
        if (above !== ctx.path && rule.match(above)) return { rule };
      }
    }
    return undefined;
  }

  async function afterAuth(
    req: Request,
    ctx: Context,
    next: Next,
  ): Promise<Response> {
    const path = ctx.path;
    const redirect = first(redirects, path);
    if (redirect) {
      const target = redirect.rule.redirect!(_values(ctx, redirect.match));
      const url = _targetUrl(target, ctx, redirect.rule.external);
      await req.body?.cancel().catch(() => {});
      return new Response(null, {
        status: redirect.rule.source.status ?? 302,
        headers: {
          location: url.origin === ctx.url.origin
            ? url.pathname + url.search
            : url.href,
        },
      });
    }
    const rewrite = first(rewrites, path);
    if (rewrite) {
      const target = await _rewriteTarget(ctx, rewrite.rule, rewrite.match);
      if (typeof target === "number") {
        await req.body?.cancel().catch(() => {});
        throw new HttpError(target, `try-files: nothing for ${path}`);
      }
      if (target !== undefined) return _rewrite(req, ctx, target);
    }
    if (
      indexes.length > 0 && path.endsWith("/") && ctx.file?.info.isDirectory
    ) {
      let name: string | undefined;
      for (const rule of indexes) {
        if (rule.match(path)) name = rule.source.index;
      }
      if (name !== undefined) {
        const found = await ctx.root!.find([...ctx.segments, name]);
        if (found?.info.isFile) {
          const dir = ctx.segments.map((s) => encodeURIComponent(s) + "/");
          return _rewrite(req, ctx, `/${dir.join("")}${name}`);
        }
      }
    }
    for (const rule of envs) {
      if (rule.match(path)) {
        ctx.scriptVars = { ...ctx.scriptVars, ...rule.source.env };
      }
    }
    const res = await _mount(req, ctx, next);
    return _accel(req, ctx, res);
  }

  /** Where a rewrite or try-files sends the request (`undefined`: as is). */
  async function _rewriteTarget(
    ctx: Context,
    rule: _Rule,
    match: NonNullable<ReturnType<Matcher>>,
  ): Promise<string | number | undefined> {
    const values = _values(ctx, match);
    if (rule.rewrite) return rule.rewrite(values);
    const { tries, directory, last } = rule.tryFiles!;
    for (let i = 0; i < tries.length; i++) {
      const target = tries[i]!(values);
      const url = _targetUrl(target, ctx);
      const segments = _segments(url.pathname);
      if (segments === undefined) continue;
      const found = await _lookup(ctx, segments);
      if (!found) continue;
      if (found !== "script") {
        if (directory[i] ? !found.isDirectory : !found.isFile) continue;
        // "file.php/" is no file (ENOTDIR), as nginx's stat says.
        if (!found.isDirectory && url.pathname.endsWith("/")) continue;
      }
      // The request's own path (or its folder, which the chain redirects
      // to the trailing slash): no rewrite needed.
      const path = "/" + segments.join("/");
      const own = path === "/" + ctx.segments.join("/");
      return own && url.search === ctx.url.search ? undefined : target;
    }
    return typeof last === "number" ? last : last(values);
  }

  /**
   * What a path names for `tryFiles`: a file's info — in the alias folder
   * that serves it, else the root — or `"script"` below a CGI/FastCGI
   * mount (the script answers every path there).
   */
  async function _lookup(
    ctx: Context,
    segments: string[],
  ): Promise<Deno.FileInfo | "script" | undefined> {
    const path = "/" + segments.join("/");
    const longest = (list: readonly string[]) =>
      list.filter((m) => _under(path, m) || _under(path + "/", m))
        .reduce((a, m) => Math.max(a, m.length), -1);
    const script = longest(otherMounts);
    const alias = first(aliases, path) ?? first(aliases, path + "/");
    const aliasLength = alias ? alias.rule.match.prefix!.length : -1;
    if (script > aliasLength) return "script";
    if (alias) {
      const root = await aliasRoots(alias.rule.alias!, ctx.root!);
      const rest = alias.match.rest.split("/").filter((s) => s !== "");
      return (await root.find(rest))?.info;
    }
    // The request's own path: resolvePath() looked it up already.
    if (
      segments.length === ctx.segments.length &&
      segments.every((s, i) => s === ctx.segments[i])
    ) {
      return ctx.file?.info;
    }
    return (await ctx.root!.find(segments))?.info;
  }

  function _rewrite(req: Request, ctx: Context, target: string) {
    if (!target.startsWith("/")) {
      throw new HttpError(500, `Rewrite target is not a path: ${target}`);
    }
    const url = _targetUrl(target, ctx);
    return ctx.dispatch(new Request(url, req), { internal: true });
  }

  async function _mount(
    req: Request,
    ctx: Context,
    next: Next,
  ): Promise<Response> {
    if (aliases.length === 0) return next();
    const found = first(aliases, ctx.path);
    if (!found) return next();
    const prefix = found.rule.match.prefix!;
    if (
      otherMounts.some((m) => m.length > prefix.length && _under(ctx.path, m))
    ) {
      return next();
    }
    if (!ctx.path.startsWith(prefix)) {
      // The prefix without its slash: relative links need the folder's.
      await req.body?.cancel().catch(() => {});
      return directoryRedirect(
        prefix.split("/").filter((s) => s !== ""),
        ctx.url.search,
      );
    }
    const root = await aliasRoots(found.rule.alias!, ctx.root!);
    const rest = found.match.rest;
    const segments = rest.split("/").filter((s) => s !== "");
    ctx.root = root;
    ctx.base = prefix.replace(/\/+$/, "");
    ctx.segments = segments;
    ctx.path = "/" + rest;
    ctx.file = await root.find(segments);
    if (!options.serveAlias) throw new HttpError(404, "No alias handler");
    return options.serveAlias(req, ctx, () => {
      throw new HttpError(404, `Nothing at ${ctx.base}${ctx.path}`);
    });
  }

  function _accel(
    req: Request,
    ctx: Context,
    res: Response,
  ): Response | Promise<Response> {
    const headers = res.headers;
    if (
      !headers.has("x-accel-redirect") && !headers.has("x-sendfile") &&
      !headers.has("x-lighttpd-send-file")
    ) {
      return res;
    }
    return serveAccel(req, ctx, res, (target) => _accelAllowed(ctx, target));
  }

  /** The URL path an X-Accel-Redirect / X-Sendfile target is served at. */
  async function _accelAllowed(
    ctx: Context,
    target: AccelTarget,
  ): Promise<string | undefined> {
    if (target.kind === "uri") {
      return internals.some((r) => r.match(target.path))
        ? target.path
        : undefined;
    }
    let real: string;
    try {
      real = await Deno.realPath(target.path);
    } catch {
      return undefined;
    }
    for (const rule of internals) {
      const prefix = rule.match.prefix;
      if (prefix === undefined) continue;
      const base = rule.alias ??
        resolve(ctx.root!.path, "." + prefix);
      let dir: string;
      try {
        dir = await Deno.realPath(base);
      } catch {
        continue;
      }
      if (real.startsWith(dir + "/")) {
        const url = prefix.replace(/\/*$/, "/") + real.slice(dir.length + 1);
        if (rule.match(url)) return url;
      }
    }
    return undefined;
  }

  return async function siteRulesMiddleware(req, ctx, next) {
    const path = ctx.path;
    const decided = guarding(access, ctx);
    if (decided) {
      const status = decided.rule.access!;
      if (status !== 0 || ctx.depth === 0) {
        await req.body?.cancel().catch(() => {});
        throw new HttpError(
          status || 404,
          `${path}: ${
            status ? "denied" : "internal"
          } by rules[${decided.rule.index}]`,
        );
      }
    }
    const auth = guarding(auths, ctx);
    if (auth) {
      return auth.rule.auth!(req, ctx, () => afterAuth(req, ctx, next));
    }
    return afterAuth(req, ctx, next);
  };
}

/**
 * The decoded segments of an encoded URL path, or `undefined` when one
 * would not stay one segment (an encoded `/` or `\\`, NUL, `.`, `..`).
 */
function _segments(pathname: string): string[] | undefined {
  const out: string[] = [];
  for (const raw of pathname.split("/")) {
    if (raw === "") continue;
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    if (segment === "." || segment === ".." || /[/\\\0]/.test(segment)) {
      return undefined;
    }
    out.push(segment);
  }
  return out;
}

function _under(path: string, prefix: string): boolean {
  return path.startsWith(prefix) ||
    (prefix.endsWith("/") && path === prefix.slice(0, -1));
}

/** Each alias folder as a lookup with the site's policy (found ones cached). */
function _aliasRoots() {
  const cache = new Map<string, DocumentRoot>();
  return async function aliasRoot(
    dir: string,
    site: DocumentRoot,
  ): Promise<DocumentRoot> {
    const key = `${site.dotfiles} ${site.followSymlinks} ${dir}`;
    const cached = cache.get(key);
    if (cached) return cached;
    let real: string;
    try {
      real = await Deno.realPath(dir);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new HttpError(404, `Alias folder ${dir} does not exist`);
      }
      throw error;
    }
    const root = documentRoot(real, {
      dotfiles: site.dotfiles,
      followSymlinks: site.followSymlinks,
    });
    cache.set(key, root);
    return root;
  };
}
