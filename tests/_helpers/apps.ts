/**
 * Real Debian-packaged applications for the application suite (not part of
 * the published package): a private MariaDB, WordPress, DokuWiki and gitweb
 * prepared in temp dirs from /usr/share (nothing under /etc or /var is
 * written), php-fpm with Debian's extensions, nginx as the reference peer
 * and fcgiwrap for nginx's CGI. Everything started is stopped, and every
 * temp dir removed, on dispose.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, waitForListen } from "./net.ts";
import { waitFor } from "./poll.ts";

/** The app fixtures: `<app>.nginx.conf` and `<app>.serve.json` (their recipes are in the README). */
export const APPS_DATA: string = fileURLToPath(
  new URL("../testdata/apps", import.meta.url),
);

/** A 4×4 red PNG (the upload fixture). */
export const PNG: Uint8Array = Uint8Array.from(
  atob(
    "iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAACXBIWXMAAA7EAAAOxAGVKw4bAAAAFElEQVQImWM8ISfHAANMDEgANwcANHYBDF4ibzcAAAAASUVORK5CYII=",
  ),
  (c) => c.charCodeAt(0),
);

async function _tempDir(prefix: string): Promise<string> {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix }));
  await Deno.chmod(dir, 0o755);
  return dir;
}

async function _run(
  program: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; stdin?: string } = {},
): Promise<string> {
  const child = new Deno.Command(program, {
    args,
    cwd: options.cwd,
    env: options.env,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  if (!out.success) {
    throw new Error(
      `${program} ${args.join(" ")} failed (${out.code}):\n${
        dec.decode(out.stderr)
      }${dec.decode(out.stdout)}`,
    );
  }
  return dec.decode(out.stdout);
}

/** Kills a child (TERM, then KILL after `graceMs`) and waits for it. */
async function _stop(child: Deno.ChildProcess, graceMs = 10_000) {
  try {
    child.kill("SIGTERM");
  } catch {
    // gone
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone
    }
  }, graceMs);
  await child.status.finally(() => clearTimeout(timer));
}

/** Fills `@NAME@` placeholders; an unknown or unfilled one throws. */
export function fill(text: string, vars: Record<string, string>): string {
  const out = text.replace(/@([A-Z_]+)@/g, (all, name: string) => {
    const value = vars[name];
    if (value === undefined) throw new Error(`no value for ${all}`);
    return value;
  });
  return out;
}

// ---------------------------------------------------------------------------
// MariaDB

/** A private MariaDB server on a unix socket. */
export interface MariaDb extends AsyncDisposable {
  /** Its temp dir (datadir, socket, logs). */
  root: string;
  /** The unix socket. */
  socket: string;
  /** The database created for the app. */
  database: string;
  /** Its user (all privileges on `database`, from localhost). */
  user: string;
  /** That user's password. */
  password: string;
  /** Runs SQL as root (unix-socket auth) and returns the tab-separated output. */
  query(sql: string): Promise<string>;
}

/**
 * Starts MariaDB: `mariadb-install-db` into a temp datadir, then `mariadbd`
 * with networking off on a socket in that dir (as root: `--user=root`),
 * waits until it answers, and creates a database and a user.
 */
export async function startMariaDb(): Promise<MariaDb> {
  const root = await _tempDir("x-serve-mariadb-");
  const datadir = join(root, "data");
  const socket = join(root, "mysql.sock");
  const small = [
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=8M",
  ];
  let child: Deno.ChildProcess | undefined;
  try {
    await _run("mariadb-install-db", [
      "--no-defaults",
      `--datadir=${datadir}`,
      "--user=root",
      "--skip-test-db",
      "--auth-root-authentication-method=socket",
      ...small,
    ]);
    child = new Deno.Command("mariadbd", {
      args: [
        "--no-defaults",
        `--datadir=${datadir}`,
        `--socket=${socket}`,
        `--pid-file=${join(root, "mariadbd.pid")}`,
        `--log-error=${join(root, "error.log")}`,
        "--skip-networking",
        "--skip-log-bin",
        "--user=root",
        ...small,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const query = (sql: string) =>
      _run("mariadb", [
        "--no-defaults",
        `--socket=${socket}`,
        "--user=root",
        "--batch",
        "--skip-column-names",
      ], { stdin: sql });
    const exited = child.status.then(() => true);
    await waitFor(async () => {
      if (await Promise.race([exited, Promise.resolve(false)])) {
        const log = await Deno.readTextFile(join(root, "error.log"))
          .catch(() => "");
        throw new Error(`mariadbd exited:\n${log}`);
      }
      try {
        await query("SELECT 1");
        return true;
      } catch {
        return false;
      }
    }, { timeoutMs: 30_000, intervalMs: 100, message: "mariadbd" });
    const database = "app";
    const user = "app";
    const password = "app-secret-pw";
    await query(
      `CREATE DATABASE ${database} CHARACTER SET utf8mb4;
       CREATE USER '${user}'@'localhost' IDENTIFIED BY '${password}';
       GRANT ALL ON ${database}.* TO '${user}'@'localhost';`,
    );
    const running = child;
    return {
      root,
      socket,
      database,
      user,
      password,
      query,
      async [Symbol.asyncDispose]() {
        await _stop(running, 20_000);
        await Deno.remove(root, { recursive: true });
      },
    };
  } catch (error) {
    if (child) await _stop(child);
    await Deno.remove(root, { recursive: true }).catch(() => {});
    throw error;
  }
}

// ---------------------------------------------------------------------------
// php-fpm

/** A running php-fpm pool. */
export interface AppPhpFpm extends AsyncDisposable {
  /** Its temp dir. */
  root: string;
  /** `unix:/path` of its socket. */
  address: string;
  /** The pool's log (php-fpm's own log and the workers' stderr). */
  errorLog: string;
}

/**
 * php-fpm for real applications. Unlike `startPhpFpm` of `php.ts` (which
 * runs with `-n`: no php.ini, so no mysqli, xml, ctype…), this one loads
 * Debian's FPM php.ini and conf.d (the installed extensions), with a private
 * pool on a unix socket. Run as root (`-R`), like the tests.
 */
export async function startAppPhpFpm(
  options: { workers?: number } = {},
): Promise<AppPhpFpm> {
  const root = await _tempDir("x-serve-app-fpm-");
  const socket = join(root, "fpm.sock");
  const errorLog = join(root, "fpm.log");
  const conf = join(root, "php-fpm.conf");
  await Deno.writeTextFile(
    conf,
    `[global]
pid = ${join(root, "fpm.pid")}
error_log = ${errorLog}
daemonize = no

[app]
listen = ${socket}
pm = static
pm.max_children = ${options.workers ?? 6}
catch_workers_output = yes
clear_env = yes
security.limit_extensions = .php
request_terminate_timeout = 60s
php_admin_flag[log_errors] = on
php_admin_value[error_log] = ${join(root, "php.log")}
php_admin_value[display_errors] = off
php_admin_value[post_max_size] = 64M
php_admin_value[upload_max_filesize] = 64M
php_admin_value[memory_limit] = 256M
php_admin_value[sys_temp_dir] = ${root}
php_admin_value[upload_tmp_dir] = ${root}
php_admin_value[session.save_path] = ${root}
php_admin_value[sendmail_path] = /bin/true
php_admin_value[opcache.enable] = 0
`,
  );
  const child = new Deno.Command("php-fpm8.2", {
    args: ["-y", conf, "-F", ...(Deno.uid() === 0 ? ["-R"] : [])],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await waitForListen(`unix:${socket}`, 15_000);
  } catch (error) {
    await _stop(child);
    await Deno.remove(root, { recursive: true }).catch(() => {});
    throw error;
  }
  return {
    root,
    address: `unix:${socket}`,
    errorLog,
    async [Symbol.asyncDispose]() {
      await _stop(child);
      await Deno.remove(root, { recursive: true });
    },
  };
}

// ---------------------------------------------------------------------------
// WordPress

/** A WordPress site root prepared from /usr/share/wordpress. */
export interface WordPress extends AsyncDisposable {
  /** The document root. */
  root: string;
  /** Its writable uploads dir (`wp-content/uploads`). */
  uploads: string;
  /** The admin's name and password (after {@linkcode WordPress.install}). */
  admin: { user: string; password: string };
  /** The title of the blog. */
  title: string;
  /**
   * Runs the installer (`wp-admin/install.php?step=2`) against `base`
   * (`http://127.0.0.1:PORT`, which becomes the site URL).
   */
  install(base: string): Promise<void>;
  /** Sets `permalink_structure` in the database (rewrite rules regenerate). */
  setPermalinks(structure: string): Promise<void>;
}

const _WP = "/usr/share/wordpress";

const _THEME_STYLE = `/*
Theme Name: x-serve test
Description: The smallest classic theme (Debian's wordpress ships none).
Version: 1.0
*/
`;

const _THEME_FUNCTIONS = `<?php
add_action('after_setup_theme', function () {
    add_theme_support('title-tag');
});
`;

const _THEME_INDEX = `<?php ?><!DOCTYPE html>
<html <?php language_attributes(); ?>>
<head>
<meta charset="<?php bloginfo('charset'); ?>">
<?php wp_head(); ?>
</head>
<body <?php body_class(); ?>>
<header><a href="<?php echo esc_url(home_url('/')); ?>"><?php bloginfo('name'); ?></a></header>
<main>
<?php while (have_posts()) : the_post(); ?>
<article id="post-<?php the_ID(); ?>">
<h1 class="entry-title"><a href="<?php the_permalink(); ?>"><?php the_title(); ?></a></h1>
<div class="entry-content"><?php the_content(); ?></div>
</article>
<?php endwhile; ?>
</main>
<?php wp_footer(); ?>
</body>
</html>
`;

const _NO_MAIL = `<?php
// Tests send no mail.
add_filter('pre_wp_mail', '__return_false');
`;

function _salt(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Prepares a WordPress site root in a temp dir for `db`:
 *
 * - the top-level `*.php` and `wp-admin/` are copied, since PHP resolves
 *   `__DIR__` through symlinks: a symlinked `wp-load.php` would define
 *   ABSPATH as /usr/share/wordpress/ and load Debian's wp-config.php, which
 *   reads /etc/wordpress/config-HOST.php;
 * - `wp-includes/` and `wp-content/plugins/` are symlinks into
 *   /usr/share/wordpress (the server must follow symlinks);
 * - our own `wp-config.php` (the private DB socket, direct FS, no cron, no
 *   external HTTP), a writable `wp-content/uploads/`, a minimal classic
 *   theme (Debian ships none) and a must-use plugin that sends no mail.
 */
export async function prepareWordPress(db: MariaDb): Promise<WordPress> {
  const root = await _tempDir("x-serve-wp-");
  try {
    for await (const entry of Deno.readDir(_WP)) {
      const from = join(_WP, entry.name);
      const to = join(root, entry.name);
      if (entry.name === "wp-config.php" || entry.name === "wp-content") {
        continue;
      }
      if (entry.name.endsWith(".php")) await Deno.copyFile(from, to);
      else if (entry.name === "wp-admin") {
        await _run("cp", ["-a", from, to]);
      } else if (!entry.name.startsWith(".")) await Deno.symlink(from, to);
    }
    const content = join(root, "wp-content");
    const uploads = join(content, "uploads");
    const theme = join(content, "themes", "x-serve");
    await Deno.mkdir(uploads, { recursive: true });
    await Deno.mkdir(theme, { recursive: true });
    await Deno.mkdir(join(content, "mu-plugins"));
    await Deno.symlink(`${_WP}/wp-content/plugins`, join(content, "plugins"));
    await Deno.writeTextFile(join(theme, "style.css"), _THEME_STYLE);
    await Deno.writeTextFile(join(theme, "functions.php"), _THEME_FUNCTIONS);
    await Deno.writeTextFile(join(theme, "index.php"), _THEME_INDEX);
    await Deno.writeTextFile(
      join(content, "mu-plugins", "no-mail.php"),
      _NO_MAIL,
    );
    const keys = [
      "AUTH_KEY",
      "SECURE_AUTH_KEY",
      "LOGGED_IN_KEY",
      "NONCE_KEY",
      "AUTH_SALT",
      "SECURE_AUTH_SALT",
      "LOGGED_IN_SALT",
      "NONCE_SALT",
    ].map((k) => `define('${k}', '${_salt()}');`).join("\n");
    await Deno.writeTextFile(
      join(root, "wp-config.php"),
      `<?php
// Written by tests/_helpers/apps.ts (instead of Debian's /etc/wordpress lookup).
define('DB_NAME', '${db.database}');
define('DB_USER', '${db.user}');
define('DB_PASSWORD', '${db.password}');
define('DB_HOST', 'localhost:${db.socket}');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
${keys}
$table_prefix = 'wp_';
define('WP_CONTENT_DIR', '${content}');
define('WP_DEFAULT_THEME', 'x-serve');
define('FS_METHOD', 'direct');
define('DISABLE_WP_CRON', true);
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_AUTO_UPDATE_CORE', false);
define('WP_DEBUG', false);
if (!defined('ABSPATH')) {
    define('ABSPATH', __DIR__ . '/');
}
require_once ABSPATH . 'wp-settings.php';
`,
    );
  } catch (error) {
    await Deno.remove(root, { recursive: true }).catch(() => {});
    throw error;
  }
  const admin = { user: "admin", password: "Xs-test-Passw0rd-42!" };
  const title = "x-serve WordPress";
  return {
    root,
    uploads: join(root, "wp-content", "uploads"),
    admin,
    title,
    async install(base: string) {
      const body = new URLSearchParams({
        weblog_title: title,
        user_name: admin.user,
        admin_password: admin.password,
        admin_password2: admin.password,
        admin_email: "admin@example.test",
        blog_public: "0",
        language: "",
        Submit: "Install WordPress",
      });
      const res = await fetch(`${base}/wp-admin/install.php?step=2`, {
        method: "POST",
        body,
        redirect: "manual",
      });
      const html = await res.text();
      if (res.status !== 200 || !/<h1>Success!<\/h1>/.test(html)) {
        throw new Error(
          `WordPress install failed (${res.status}): ${html.slice(0, 2000)}`,
        );
      }
    },
    async setPermalinks(structure: string) {
      await db.query(
        `UPDATE ${db.database}.wp_options SET option_value = '${structure}'
           WHERE option_name = 'permalink_structure';
         DELETE FROM ${db.database}.wp_options WHERE option_name = 'rewrite_rules';`,
      );
    },
    async [Symbol.asyncDispose]() {
      await Deno.remove(root, { recursive: true });
    },
  };
}

// ---------------------------------------------------------------------------
// DokuWiki

/** A DokuWiki site root with its data and conf inside it. */
export interface DokuWiki extends AsyncDisposable {
  /** The document root (DOKU_INC). */
  root: string;
  /** `root/data` (`$conf['savedir']`): clients must be denied it. */
  data: string;
  /** `root/conf` (DOKU_CONF). */
  conf: string;
  /** Page id and a text only that page contains. */
  page: { id: string; marker: string };
  /** Media id (`wiki:x-serve.svg`), its file and its bytes. */
  media: { id: string; file: string; bytes: Uint8Array };
  /** The path DokuWiki sends as `X-Accel-Redirect` for the media file. */
  accelPath: string;
}

const _DW = "/usr/share/dokuwiki";

const _SVG = `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">
  <title>x-serve media fixture</title>
  <rect x="4" y="4" width="56" height="56" rx="8" fill="#2a7ae2"/>
  <circle cx="32" cy="32" r="14" fill="#fff"/>
</svg>
`;

/** Symlinks every entry of `from` into the real dir `to` but `skip`. */
async function _linkEntries(from: string, to: string, skip: Set<string>) {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (skip.has(entry.name)) continue;
    await Deno.symlink(join(from, entry.name), join(to, entry.name));
  }
}

/**
 * Prepares DokuWiki in a temp site root in the upstream layout (conf/ and
 * data/ inside the root, so that they are paths clients must be denied),
 * from Debian's /usr/share/dokuwiki. PHP resolves `__FILE__` through
 * symlinks, and Debian's inc/preload.php pins the config to /etc/dokuwiki,
 * so the entry points that define DOKU_INC (`doku.php`, `lib/exe/*.php`) and
 * `inc/init.php` (which loads preload.php next to itself) are copies; the
 * rest (`inc/*`, `lib/{tpl,plugins,images,…}`, `vendor/`, `bin/`) are
 * symlinks and no preload.php is used. `conf/` holds copies of Debian's
 * defaults plus `local.php` (`savedir` = root/data, `userewrite = 1`,
 * `xsendfile = 3`), an ACL that lets anyone read, and no users.
 */
export async function prepareDokuWiki(): Promise<DokuWiki> {
  const root = await _tempDir("x-serve-dokuwiki-");
  try {
    for (const name of ["doku.php", "index.php", "feed.php", "install.php"]) {
      await Deno.copyFile(join(_DW, name), join(root, name));
    }
    for (const name of ["bin", "vendor", "VERSION"]) {
      await Deno.symlink(join(_DW, name), join(root, name));
    }
    await _linkEntries(
      join(_DW, "inc"),
      join(root, "inc"),
      new Set(["init.php", "preload.php"]),
    );
    await Deno.copyFile(join(_DW, "inc/init.php"), join(root, "inc/init.php"));
    await _linkEntries(join(_DW, "lib"), join(root, "lib"), new Set(["exe"]));
    await Deno.mkdir(join(root, "lib/exe"));
    for await (const entry of Deno.readDir(join(_DW, "lib/exe"))) {
      await Deno.copyFile(
        join(_DW, "lib/exe", entry.name),
        join(root, "lib/exe", entry.name),
      );
    }

    const conf = join(root, "conf");
    await Deno.mkdir(conf);
    for await (const entry of Deno.readDir("/etc/dokuwiki")) {
      // Debian's defaults (dokuwiki.php, mime.conf…), not its local.php,
      // web server snippets or the symlinks into /var/lib/dokuwiki.
      if (!entry.isFile || entry.name.startsWith(".")) continue;
      if (
        /^(local\.php|apache\.conf|lighttpd\.conf|htaccess)$/.test(entry.name)
      ) {
        continue;
      }
      await Deno.copyFile(
        join("/etc/dokuwiki", entry.name),
        join(conf, entry.name),
      );
    }
    await Deno.writeTextFile(
      join(conf, "local.php"),
      `<?php
// Written by tests/_helpers/apps.ts.
$conf['title'] = 'x-serve DokuWiki';
$conf['savedir'] = '${root}/data';
$conf['useacl'] = 1;
$conf['authtype'] = 'authplain';
$conf['superuser'] = '@admin';
$conf['userewrite'] = 1;
$conf['xsendfile'] = 3;
$conf['updatecheck'] = 0;
$conf['license'] = 'cc-by-sa';
`,
    );
    await Deno.writeTextFile(
      join(conf, "acl.auth.php"),
      "# acl.auth.php\n# <?php exit()?>\n*\t@ALL\t1\n*\t@user\t8\n",
    );
    await Deno.writeTextFile(
      join(conf, "users.auth.php"),
      "# users.auth.php\n# <?php exit()?>\n",
    );

    const data = join(root, "data");
    for (
      const dir of [
        "pages/wiki",
        "attic",
        "media/wiki",
        "media_attic",
        "media_meta",
        "meta",
        "cache",
        "index",
        "locks",
        "tmp",
        "log",
      ]
    ) {
      await Deno.mkdir(join(data, dir), { recursive: true });
    }
    const marker = "x-serve-dokuwiki-start-marker";
    await Deno.writeTextFile(
      join(data, "pages/start.txt"),
      `====== Welcome to x-serve ======\n\nThis is the start page: ${marker}.\n\n{{wiki:x-serve.svg}}\n`,
    );
    const file = join(data, "media/wiki/x-serve.svg");
    const bytes = new TextEncoder().encode(_SVG);
    await Deno.writeFile(file, bytes);
    return {
      root,
      data,
      conf,
      page: { id: "start", marker },
      media: { id: "wiki:x-serve.svg", file, bytes },
      // DOKU_REL + the file's path relative to DOKU_INC (httputils.php).
      accelPath: "/data/media/wiki/x-serve.svg",
      async [Symbol.asyncDispose]() {
        await Deno.remove(root, { recursive: true });
      },
    };
  } catch (error) {
    await Deno.remove(root, { recursive: true }).catch(() => {});
    throw error;
  }
}

/**
 * Runs a DokuWiki script once through php-cgi (no web server) and returns
 * its response head: what DokuWiki itself sends, e.g. `X-Accel-Redirect`.
 */
export async function phpCgiHead(
  script: string,
  uri: string,
  root: string,
): Promise<Headers> {
  const [path, query = ""] = uri.split("?");
  const out = await new Deno.Command("php-cgi", {
    args: ["-d", "display_errors=stderr"],
    clearEnv: true,
    env: {
      PATH: "/usr/bin:/bin",
      GATEWAY_INTERFACE: "CGI/1.1",
      REDIRECT_STATUS: "200",
      REQUEST_METHOD: "GET",
      SCRIPT_FILENAME: script,
      SCRIPT_NAME: script.slice(root.length),
      DOCUMENT_ROOT: root,
      REQUEST_URI: uri,
      QUERY_STRING: query,
      DOCUMENT_URI: path!,
      SERVER_NAME: "127.0.0.1",
      SERVER_PORT: "80",
      HTTP_HOST: "127.0.0.1",
      SERVER_PROTOCOL: "HTTP/1.1",
      REMOTE_ADDR: "127.0.0.1",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const head = text.split(/\r?\n\r?\n/)[0] ?? "";
  const headers = new Headers();
  for (const line of head.split(/\r?\n/)) {
    const i = line.indexOf(":");
    if (i > 0) headers.append(line.slice(0, i), line.slice(i + 1).trim());
  }
  return headers;
}

// ---------------------------------------------------------------------------
// gitweb

/** gitweb's config and a project root with one bare repository. */
export interface Gitweb extends AsyncDisposable {
  /** The temp dir (an empty `www/` document root, `git/`, `gitweb.conf`). */
  root: string;
  /** An empty document root for the server (gitweb lives under /gitweb/). */
  www: string;
  /** The temp `gitweb.conf` (pass it as GITWEB_CONFIG). */
  config: string;
  /** `$projectroot`. */
  projectRoot: string;
  /** The repository's name (`repo.git`) and its description. */
  project: { name: string; description: string };
  /** The one commit: subject and full hash. */
  commit: { subject: string; hash: string };
  /** The CGI script (Debian's). */
  script: string;
  /** Debian's static files folder. */
  staticDir: string;
}

/**
 * Prepares gitweb in Debian's layout (/usr/share/gitweb/gitweb.cgi and
 * static/): a temp `gitweb.conf` (`$projectroot` = a temp dir holding
 * `repo.git`, a bare repository with one commit; absolute /gitweb/static/
 * URLs, as gitweb's docs advise when PATH_INFO is used).
 */
export async function prepareGitweb(): Promise<Gitweb> {
  const root = await _tempDir("x-serve-gitweb-");
  try {
    const www = join(root, "www");
    const projectRoot = join(root, "git");
    const work = join(root, "work");
    await Deno.mkdir(www);
    await Deno.mkdir(projectRoot);
    await Deno.mkdir(work);
    const env = {
      PATH: "/usr/bin:/bin",
      HOME: root,
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_AUTHOR_NAME: "X Serve",
      GIT_AUTHOR_EMAIL: "x-serve@example.test",
      GIT_COMMITTER_NAME: "X Serve",
      GIT_COMMITTER_EMAIL: "x-serve@example.test",
      GIT_AUTHOR_DATE: "2024-01-02T03:04:05Z",
      GIT_COMMITTER_DATE: "2024-01-02T03:04:05Z",
    };
    const subject = "Add the x-serve gitweb fixture";
    await _run("git", ["init", "-q", "-b", "main"], { cwd: work, env });
    await Deno.writeTextFile(join(work, "README"), "x-serve gitweb fixture\n");
    await _run("git", ["add", "README"], { cwd: work, env });
    await _run("git", ["commit", "-q", "-m", subject], { cwd: work, env });
    const hash = (await _run("git", ["rev-parse", "HEAD"], { cwd: work, env }))
      .trim();
    const name = "repo.git";
    await _run("git", [
      "clone",
      "-q",
      "--bare",
      work,
      join(projectRoot, name),
    ], { env });
    await Deno.remove(work, { recursive: true });
    const description = "x-serve test repository";
    await Deno.writeTextFile(
      join(projectRoot, name, "description"),
      `${description}\n`,
    );
    const config = join(root, "gitweb.conf");
    await Deno.writeTextFile(
      config,
      `# Written by tests/_helpers/apps.ts (instead of /etc/gitweb.conf).
$projectroot = "${projectRoot}";
$git_temp = "${root}";
$site_name = "x-serve gitweb";
@stylesheets = ("/gitweb/static/gitweb.css");
$javascript = "/gitweb/static/gitweb.js";
$logo = "/gitweb/static/git-logo.png";
$favicon = "/gitweb/static/git-favicon.png";
@diff_opts = ();
1;
`,
    );
    return {
      root,
      www,
      config,
      projectRoot,
      project: { name, description },
      commit: { subject, hash },
      script: "/usr/share/gitweb/gitweb.cgi",
      staticDir: "/usr/share/gitweb/static",
      async [Symbol.asyncDispose]() {
        await Deno.remove(root, { recursive: true });
      },
    };
  } catch (error) {
    await Deno.remove(root, { recursive: true }).catch(() => {});
    throw error;
  }
}

// ---------------------------------------------------------------------------
// fcgiwrap and nginx

/** The fcgiwrap binary: `$FCGIWRAP`, else `fcgiwrap` on PATH, else undefined. */
export function findFcgiwrap(): string | undefined {
  const named = Deno.env.get("FCGIWRAP");
  if (named) return named;
  const dirs = (Deno.env.get("PATH") ?? "").split(":").filter(Boolean);
  for (const dir of [...dirs, "/usr/sbin"]) {
    try {
      const path = join(dir, "fcgiwrap");
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // not there
    }
  }
  return undefined;
}

/** A running fcgiwrap (CGI behind FastCGI, for nginx). */
export interface Fcgiwrap extends AsyncDisposable {
  /** Its temp dir. */
  root: string;
  /** `unix:/path` of its socket. */
  address: string;
}

/** Starts fcgiwrap (`binary`, see {@linkcode findFcgiwrap}) on a unix socket. */
export async function startFcgiwrap(binary: string): Promise<Fcgiwrap> {
  const root = await _tempDir("x-serve-fcgiwrap-");
  const socket = join(root, "fcgiwrap.sock");
  const env: Record<string, string> = { PATH: "/usr/bin:/bin" };
  const ld = Deno.env.get("LD_LIBRARY_PATH");
  if (ld) env.LD_LIBRARY_PATH = ld;
  // One process, no prefork: it forks one child per request, reaped by it.
  const child = new Deno.Command(binary, {
    args: ["-f", "-s", `unix:${socket}`],
    clearEnv: true,
    env,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await waitForListen(`unix:${socket}`, 10_000);
  } catch (error) {
    await _stop(child);
    await Deno.remove(root, { recursive: true }).catch(() => {});
    throw error;
  }
  return {
    root,
    address: `unix:${socket}`,
    async [Symbol.asyncDispose]() {
      await _stop(child);
      await Deno.remove(root, { recursive: true });
    },
  };
}

/** A running nginx. */
export interface Nginx extends AsyncDisposable {
  /** Its prefix (temp dir: config, logs, temp paths). */
  root: string;
  /** The port it listens on. */
  port: number;
  /** `http://127.0.0.1:PORT`. */
  base: string;
  /** Its error log. */
  errorLog: string;
}

/**
 * Starts nginx in the foreground (`daemon off; master_process off;` are
 * expected in `conf`) with a temp prefix. `conf` may use `@PORT@` (a free
 * port) and `@PREFIX@` (the temp prefix) besides `vars`.
 */
export async function startNginx(
  conf: string,
  vars: Record<string, string> = {},
): Promise<Nginx> {
  const root = await _tempDir("x-serve-nginx-");
  const port = freePort();
  const errorLog = join(root, "error.log");
  const file = join(root, "nginx.conf");
  let child: Deno.ChildProcess | undefined;
  try {
    await Deno.writeTextFile(
      file,
      fill(conf, { ...vars, PORT: String(port), PREFIX: root }),
    );
    child = new Deno.Command("nginx", {
      args: ["-p", `${root}/`, "-c", file, "-e", errorLog],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    const exited = child.status.then(() => true);
    await waitFor(async () => {
      if (await Promise.race([exited, Promise.resolve(false)])) {
        const log = await Deno.readTextFile(errorLog).catch(() => "");
        throw new Error(`nginx exited:\n${await stderr}\n${log}`);
      }
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        return true;
      } catch {
        return false;
      }
    }, { timeoutMs: 10_000, intervalMs: 25, message: "nginx" });
    const running = child;
    return {
      root,
      port,
      base: `http://127.0.0.1:${port}`,
      errorLog,
      async [Symbol.asyncDispose]() {
        await _stop(running);
        await stderr;
        await Deno.remove(root, { recursive: true });
      },
    };
  } catch (error) {
    if (child) await _stop(child);
    await Deno.remove(root, { recursive: true }).catch(() => {});
    throw error;
  }
}
