/**
 * The open-file cache behind `DocumentRoot.find()` (nginx's
 * `open_file_cache`): what a lookup found — the stat, the real path, or
 * that nothing is there — kept for a bounded revalidation window, and
 * dropped at once when a file-system watcher reports a change under the
 * root.
 *
 * @module
 */

import { dirname, sep } from "node:path";
import type { ResolvedFile } from "./types.ts";

/**
 * Options of the open-file cache (`DocumentRootOptions.cache`).
 *
 * @example A cache revalidated every 5 s, watched, at most 1 000 entries
 * ```ts
 * import { compose, type FileCacheOptions, resolvePath } from "@x/serve";
 *
 * const cache: FileCacheOptions = { validMs: 5_000, maxEntries: 1_000 };
 * await using resolve = resolvePath({ root: ".", cache });
 * const handler = compose([resolve, () => new Response("ok")]);
 * await (await handler(new Request("http://localhost/"))).text();
 * ```
 */
export interface FileCacheOptions {
  /**
   * How long a lookup's result is trusted, in milliseconds, before the
   * file system is asked again: the bound on staleness when a change is
   * not reported by the watcher (or the watcher is off). `0` turns the
   * cache off.
   * @default {1000}
   */
  validMs?: number;
  /**
   * Most lookups kept (the least recently used go first).
   * @default {10000}
   */
  maxEntries?: number;
  /**
   * Most bytes of files' contents kept in memory, in all. Bytes are
   * admitted while they fit and go with their lookup (a change, the entry
   * cap, or the next lookup once the window has passed); a file beyond it
   * is read (up to static serving's `bufferBelow`) or streamed per request,
   * without evicting other lookups.
   * @default {16777216} (16 MiB)
   */
  maxBytes?: number;
  /**
   * Largest file whose contents are kept once read (at most `maxBytes`):
   * static serving sends a cached file up to this size from memory (read
   * once; every response shares the one copy, however slow its client)
   * while its bytes fit what is left of `maxBytes`; larger ones, and those
   * that do not fit, are streamed (or, up to `bufferBelow`, read per
   * request).
   * @default {maxBytes}
   */
  maxFileSize?: number;
  /**
   * Watch the root (`Deno.watchFs`, recursive) and drop what a change
   * touches at once: a changed, created, deleted or renamed file, and a
   * swapped symlink, are seen on the next request. Without it, changes are
   * seen within `validMs`.
   * @default {true}
   */
  watch?: boolean;
}

interface _Entry {
  readonly file: ResolvedFile | undefined;
  /** End of its window (renewed when a lookup finds the same file). */
  until: number;
  /** When the lookup was made (`Date.now()`, as file times are). */
  readonly at: number;
  /** The file's contents, once read whole. */
  bytes?: Uint8Array<ArrayBuffer>;
  /** `bytes` are a prepared response's own copy (see `share`). */
  shared?: boolean;
  /** The one read of the contents in flight (shared by concurrent requests). */
  reading?: Promise<Uint8Array<ArrayBuffer>>;
}

/**
 * Whether two stats show the same file, unchanged: type, size, device,
 * inode, mode, mtime and ctime (a write, rename or chmod moves ctime,
 * which no one can set back).
 */
function _sameStat(x: Deno.FileInfo, y: Deno.FileInfo): boolean {
  return x.isFile === y.isFile && x.isDirectory === y.isDirectory &&
    x.size === y.size && x.dev === y.dev && x.ino === y.ino &&
    x.mode === y.mode && x.mtime?.getTime() === y.mtime?.getTime() &&
    x.ctime?.getTime() === y.ctime?.getTime();
}

/**
 * Reads `file` whole, and whether it is still the file its lookup saw
 * (see `_sameStat`, after the read): bytes of a file changed since the
 * lookup are not kept under its validators.
 */
async function _readUnchanged(
  file: ResolvedFile,
): Promise<{ bytes: Uint8Array<ArrayBuffer>; unchanged: boolean }> {
  const bytes = await Deno.readFile(file.realPath);
  let unchanged = bytes.byteLength === file.info.size;
  if (unchanged) {
    try {
      unchanged = _sameStat(await Deno.stat(file.realPath), file.info);
    } catch {
      unchanged = false;
    }
  }
  return { bytes, unchanged };
}

/**
 * File times this old at the lookup are settled: a later change cannot
 * leave them as they were, even on a file system that stores them in
 * steps of one or two seconds.
 */
const _SETTLED_MS = 2_000;

/**
 * Whether a new lookup of an entry's path found what the entry's lookup
 * did, so that the entry (its bytes, what was made from it) may be
 * renewed: the same miss, or the same file by real path and stat (see
 * `_sameStat`) — and only when its times had settled at the entry's
 * lookup: a change in the same clock step as a lookup could otherwise
 * keep old bytes for ever (as racy git).
 */
function _same(entry: _Entry, b: ResolvedFile | undefined): boolean {
  const a = entry.file;
  if (a === undefined || b === undefined) return a === b;
  const settled = entry.at - _SETTLED_MS;
  const mtime = a.info.mtime?.getTime();
  const ctime = a.info.ctime?.getTime();
  return mtime !== undefined && mtime <= settled &&
    (ctime === undefined || ctime <= settled) &&
    a.realPath === b.realPath && _sameStat(a.info, b.info);
}

/** Above this many paths in one batch of events, everything is dropped. */
const _BULK = 64;

/** Most values derived from directories (rendered listings) kept. */
const _MAX_DERIVED = 256;

interface _Derived {
  readonly dir: string;
  readonly until: number;
  readonly value: Promise<unknown>;
}

/** A bounded, watched cache of lookups under one root. */
export class _FileCache implements AsyncDisposable {
  readonly #root: string;
  readonly #validMs: number;
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #maxFileSize: number;
  readonly #watch: boolean;
  readonly #entries = new Map<string, _Entry>();
  readonly #derived = new Map<string, _Derived>();
  #bytes = 0;
  /** Bytes of first reads in flight that will be kept (admitted already). */
  #reserved = 0;
  #changes = 0;
  #watcher: Deno.FsWatcher | undefined;
  #watching: Promise<void> = Promise.resolve();
  #closed = false;

  /**
   * @param root The real path of the root.
   * @param options Window, size and watcher.
   */
  constructor(root: string, options: FileCacheOptions = {}) {
    this.#root = root;
    this.#validMs = options.validMs ?? 1000;
    this.#maxEntries = options.maxEntries ?? 10_000;
    this.#maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
    this.#maxFileSize = Math.min(
      options.maxFileSize ?? this.#maxBytes,
      this.#maxBytes,
    );
    this.#watch = options.watch ?? true;
  }

  /**
   * How many times the watcher reported a change (or everything was
   * dropped): a lookup begun before it may have seen the old state.
   */
  get changes(): number {
    return this.#changes;
  }

  /** Whether lookups are cached at all. */
  get enabled(): boolean {
    return this.#validMs > 0 && !this.#closed;
  }

  /**
   * The cached lookup of `path`: `undefined` when not cached (or too old),
   * else `{ file }` (where `file` may be `undefined`: nothing there).
   */
  get(path: string): { file: ResolvedFile | undefined } | undefined {
    const entry = this.#entries.get(path);
    // Past its window it stays until the next lookup renews or replaces it.
    if (entry === undefined || entry.until <= performance.now()) {
      return undefined;
    }
    this.#drop(path);
    this.#keep(path, entry); // most recently used last
    return entry;
  }

  /**
   * Whether {@linkcode _FileCache.read} answers `file` from memory (after
   * its first read): this cache holds its lookup, it fits `maxFileSize`,
   * and its bytes are kept, being read, or fit what is left of `maxBytes`.
   */
  keeps(file: ResolvedFile): boolean {
    if (!this.enabled || file.info.size > this.#maxFileSize) return false;
    const entry = this.#entries.get(file.path);
    if (entry?.file !== file) return false;
    return entry.bytes !== undefined || entry.reading !== undefined ||
      this.#room(file.info.size);
  }

  /**
   * Keeps `own` instead of `kept` when `kept` is what this cache keeps for
   * `file`, as read (`own` is an equal copy the caller made of them): one
   * copy in memory. True when `own` is kept now; false when another
   * caller's copy is kept already (it stays: a second answer made from
   * the same file does without).
   */
  share(
    file: ResolvedFile,
    kept: Uint8Array<ArrayBuffer>,
    own: Uint8Array<ArrayBuffer>,
  ): boolean {
    const entry = this.#entries.get(file.path);
    if (entry?.file !== file || entry.bytes === undefined) return false;
    if (entry.bytes === own) return true;
    if (
      entry.shared || entry.bytes !== kept ||
      own.byteLength !== kept.byteLength
    ) {
      return false;
    }
    entry.bytes = own;
    entry.shared = true;
    return true;
  }

  /**
   * The contents of `file` (a lookup this cache returned), read whole by
   * its real path. Kept while its entry lives when they fit `maxFileSize`
   * and what is left of `maxBytes`: bytes are admitted, never make room by
   * evicting other lookups, so a working set larger than `maxBytes` keeps
   * what fits and reads (or streams) the rest. Concurrent first reads of
   * one lookup share one read.
   */
  read(file: ResolvedFile): Promise<Uint8Array<ArrayBuffer>> {
    const entry = this.#entries.get(file.path);
    if (entry?.file !== file) return Deno.readFile(file.realPath);
    if (entry.bytes) return Promise.resolve(entry.bytes);
    if (entry.reading) return entry.reading;
    if (file.info.size > this.#maxFileSize || !this.#room(file.info.size)) {
      return Deno.readFile(file.realPath);
    }
    const size = file.info.size;
    this.#reserved += size;
    const reading = _readUnchanged(file).then(({ bytes, unchanged }) => {
      this.#reserved -= size;
      if (
        unchanged && this.#entries.get(file.path) === entry &&
        entry.bytes === undefined &&
        this.#bytes + this.#reserved + size <= this.#maxBytes
      ) {
        entry.bytes = bytes;
        this.#bytes += size;
      }
      return bytes;
    }, (error) => {
      this.#reserved -= size;
      throw error;
    }).finally(() => {
      if (entry.reading === reading) entry.reading = undefined;
    });
    entry.reading = reading;
    return reading;
  }

  /**
   * Whether `size` more bytes fit in `maxBytes`; if not, entries past
   * their window at the least recently used end are dropped first (their
   * bytes were asked for by no one since).
   */
  #room(size: number): boolean {
    const fits = () => this.#bytes + this.#reserved + size <= this.#maxBytes;
    if (fits()) return true;
    const now = performance.now();
    for (const [path, entry] of this.#entries) {
      if (entry.until > now) break;
      this.#drop(path);
    }
    return fits();
  }

  /**
   * Remembers what a lookup of `path` found, and returns the lookup to
   * use: when an entry past its window found the same file (or the same
   * miss; see `_same`), that entry is renewed and its lookup returned —
   * with its kept bytes and whatever was made from it — so a hot file is
   * stat'ed once per window, not read again. A file reached through a
   * symlink is not kept: Deno's watcher does not report a symlink being
   * created, so a swapped link would only be seen after `validMs`.
   */
  set(
    path: string,
    file: ResolvedFile | undefined,
  ): ResolvedFile | undefined {
    if (!this.enabled) return file;
    if (file !== undefined && file.realPath !== file.path) {
      this.#drop(path); // what an older lookup kept goes (it is not renewed)
      return file;
    }
    this.#startWatching();
    const until = performance.now() + this.#validMs;
    const old = this.#entries.get(path);
    this.#drop(path);
    if (old !== undefined && _same(old, file)) {
      old.until = until;
      this.#keep(path, old);
      return old.file;
    }
    this.#keep(path, { file, until, at: Date.now() });
    this.#evict();
    return file;
  }

  /**
   * A value computed from the directory `dir` (e.g. its rendered listing),
   * kept until something directly in it, or it, changes (or `validMs`
   * passes). Without the cache enabled, `make()` runs every time.
   */
  remember<T>(dir: string, key: string, make: () => Promise<T>): Promise<T> {
    if (!this.enabled) return make();
    this.#startWatching();
    const id = `${dir}\0${key}`;
    const found = this.#derived.get(id);
    this.#derived.delete(id);
    if (found !== undefined && found.until > performance.now()) {
      this.#derived.set(id, found);
      return found.value as Promise<T>;
    }
    const value = make();
    const entry = { dir, until: performance.now() + this.#validMs, value };
    this.#derived.set(id, entry);
    // A failed computation is not kept.
    value.catch(() => {
      if (this.#derived.get(id) === entry) this.#derived.delete(id);
    });
    if (this.#derived.size > _MAX_DERIVED) {
      this.#derived.delete(this.#derived.keys().next().value!);
    }
    return value;
  }

  #keep(path: string, entry: _Entry): void {
    this.#entries.set(path, entry);
    this.#bytes += entry.bytes?.byteLength ?? 0;
  }

  #drop(path: string): void {
    const entry = this.#entries.get(path);
    if (entry === undefined) return;
    this.#entries.delete(path);
    this.#bytes -= entry.bytes?.byteLength ?? 0;
  }

  /**
   * Drops the least recently used entries while there are more than
   * `maxEntries` (bytes never exceed `maxBytes`: they are admitted).
   */
  #evict(): void {
    while (this.#entries.size > this.#maxEntries) {
      this.#drop(this.#entries.keys().next().value!);
    }
  }

  #clear(): void {
    this.#changes++;
    this.#entries.clear();
    this.#derived.clear();
    this.#bytes = 0;
  }

  /** Stops watching and forgets everything. Safe to call twice. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#clear();
    try {
      this.#watcher?.close();
    } catch {
      // already closed
    }
    this.#watcher = undefined;
    await this.#watching;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #startWatching(): void {
    if (!this.#watch || this.#watcher || this.#closed) return;
    try {
      this.#watcher = Deno.watchFs(this.#root, { recursive: true });
    } catch {
      // No watcher here (platform or permission): the window alone bounds
      // staleness.
      return;
    }
    this.#watching = this.#drain(this.#watcher);
  }

  async #drain(watcher: Deno.FsWatcher): Promise<void> {
    try {
      for await (const event of watcher) {
        if (event.kind === "access") continue;
        this.#invalidate(event.paths);
      }
    } catch {
      // Closed, or the watcher failed: forget everything, stop trusting.
      this.#clear();
    }
  }

  /**
   * Drops every entry a change at `paths` can affect: the path itself,
   * everything below it (a renamed or deleted directory), entries whose
   * real path lies there (reached through a symlink), and every negative
   * entry (something may now exist where nothing was).
   */
  #invalidate(paths: readonly string[]): void {
    this.#changes++;
    if (paths.length > _BULK) return this.#clear();
    const prefixes = paths.map((p) => p.endsWith(sep) ? p : p + sep);
    const touched = (p: string) =>
      paths.includes(p) || prefixes.some((prefix) => p.startsWith(prefix));
    for (const [key, entry] of this.#entries) {
      if (
        entry.file === undefined || touched(key) ||
        touched(entry.file.realPath)
      ) {
        this.#drop(key);
      }
    }
    const parents = paths.map((p) => dirname(p));
    for (const [id, derived] of this.#derived) {
      if (parents.includes(derived.dir) || touched(derived.dir)) {
        this.#derived.delete(id);
      }
    }
  }
}
