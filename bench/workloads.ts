/**
 * The dynamic and TLS workload groups: CGI (@x/serve `--cgi` vs lighttpd
 * `mod_cgi`), PHP (@x/serve `--fastcgi` vs nginx, both on the same php-fpm
 * pools, over TCP and a unix socket) and TLS (HTTPS with wrk and HTTP/2
 * with h2load, @x/serve `--cert --key` vs nginx `ssl http2`). CGI and PHP
 * add `x-serve guard` rows (`--connection-guard on`), PHP `x-serve tuned`
 * rows (`--fastcgi-keep-alive 4 --fastcgi-max-connections 4`), each on
 * php-fpm pools of their own.
 *
 * @module
 */

import { fileCase, type Fixtures } from "./fixtures.ts";
import { type Group, type GroupCase, startEach } from "./groups.ts";
import { H2_CLIENTS, H2_STREAMS } from "./measure.ts";
import {
  GUARD,
  GUARD_FLAGS,
  guardNote,
  type RunningServer,
  startLighttpd,
  startNginx,
  startPhpFpm,
  startSpawnDeno,
  startXServe,
} from "./servers.ts";

/** Options shared by the groups here. */
export interface WorkloadOptions {
  /** The fixtures (root and certificate). */
  fixtures: Fixtures;
  /** nginx `worker_processes`. */
  nginxWorkers: string;
  /** Rounds per case and server. */
  rounds: number;
}

/**
 * CGI: `/cgi-bin/hello` (`#!/bin/sh`, prints a text/plain "hello") at 1
 * and 8 connections, @x/serve `--cgi` vs lighttpd `mod_cgi`, the
 * `spawn-deno` ceiling (a bare spawn per request), and `x-serve guard`
 * (`--cgi --connection-guard on`).
 *
 * @param o Fixtures, rounds.
 * @returns The group.
 */
export function cgiGroup(o: WorkloadOptions): Group {
  const servers = ["x-serve", "lighttpd", "spawn-deno"];
  const cases: GroupCase[] = [1, 8].map((n) => ({
    id: `cgi-c${n}`,
    label: `CGI hello (sh), ${n} conn`,
    path: "/cgi-bin/hello",
    status: 200,
    body: "hello",
    connections: n,
    servers,
    variants: [{ name: GUARD, label: "guard" }],
  }));
  return {
    id: "cgi",
    title: "CGI",
    notes: [
      "`/cgi-bin/hello` is `#!/bin/sh` printing `Content-Type: text/plain` " +
      "and `hello`. @x/serve `--cgi` vs lighttpd `mod_cgi` (`cgi.assign = " +
      '("" => "")` under `/cgi-bin/`, `mod_alias`). `spawn-deno` is the ' +
      "bare-spawn ceiling (`bench/spawn_deno.ts`): one `Deno.serve` " +
      "isolate running the script with `Deno.Command` per request, without " +
      "a process group of its own, a CGI environment or a timeout.",
      guardNote(),
    ],
    rounds: o.rounds,
    cases,
    start: async () => ({
      servers: await startEach([
        () => startXServe(o.fixtures.root, { flags: ["--cgi"] }),
        () => startLighttpd(o.fixtures.root),
        () => startSpawnDeno(o.fixtures.root),
        () =>
          startXServe(o.fixtures.root, {
            name: GUARD,
            flags: ["--cgi", ...GUARD_FLAGS],
          }),
      ]),
    }),
  };
}

/** nginx's PHP location, passing to `pass` (`127.0.0.1:PORT`, `unix:…`). */
function _phpLocation(pass: string): string {
  return `location ~ \\.php$ {
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
      fastcgi_pass ${pass};
    }`;
}

/** The FastCGI pool flags of the `x-serve tuned` rows. */
const _TUNED_FLAGS = [
  "--fastcgi-keep-alive",
  "4",
  "--fastcgi-max-connections",
  "4",
];

/**
 * PHP: `/hello.php` (`<?php echo "hello";`) at 1 and 16 connections, over
 * TCP and over a unix socket, @x/serve `--fastcgi` vs nginx `fastcgi_pass`
 * to identical php-fpm pools (one per transport, `pm = static`, 4
 * children each), plus `x-serve guard` (`--connection-guard on`) and
 * `x-serve tuned` (`--fastcgi-keep-alive 4 --fastcgi-max-connections 4`)
 * rows: every server has an identical set of pools of its own.
 *
 * @param o Fixtures, nginx workers, rounds.
 * @returns The group.
 */
export function phpGroup(o: WorkloadOptions): Group {
  const cases: GroupCase[] = ["tcp", "unix"].flatMap((t) =>
    [1, 16].map((n) => ({
      id: `php-${t}-c${n}`,
      label: `PHP hello over ${
        t === "tcp" ? "TCP" : "a unix socket"
      }, ${n} conn`,
      path: "/hello.php",
      status: 200,
      body: "hello",
      connections: n,
      servers: [`x-serve ${t}`, `nginx ${t}`],
      variants: [
        { name: `${GUARD} ${t}`, label: "guard" },
        { name: `x-serve tuned ${t}`, label: "tuned" },
      ],
    }))
  );
  return {
    id: "php",
    title: "PHP (FastCGI, php-fpm)",
    notes: [
      '`/hello.php` is `<?php echo "hello";`. One php-fpm ' +
      "(`php-fpm8.2 -F -y CONF -R`) with identical pools, `pm = static`, " +
      "`pm.max_children = 4`, in four sets of two (one listening on " +
      "127.0.0.1:PORT, one on a unix socket). `x-serve tcp`/`unix` = " +
      "@x/serve `--fastcgi 127.0.0.1:PORT` / `--fastcgi unix:/path`; " +
      "`nginx tcp`/`unix` = nginx `location ~ \\.php$` with " +
      "`/etc/nginx/fastcgi_params`, " +
      "`SCRIPT_FILENAME $document_root$fastcgi_script_name` and " +
      "`fastcgi_pass` to an identical pool of its own (nginx " +
      "defaults otherwise: no `fastcgi_keep_conn`).",
      guardNote({
        guard: `\`${GUARD} tcp\`/\`unix\``,
        x: "`x-serve tcp`/`unix`",
        ratio: `\`${GUARD} tcp / x-serve tcp\` (and unix)`,
      }),
      `\`x-serve tuned tcp\`/\`unix\` = \`x-serve tcp\`/\`unix\` with ` +
      `\`${_TUNED_FLAGS.join(" ")}\` (as many kept connections and no more ` +
      "connections than the pool has workers); the summary shows " +
      "`tuned / x`. Every server (x-serve, nginx, guard, tuned) uses a separate, identical " +
      "set of pools: @x/serve keeps its idle FastCGI connections open for " +
      "10 s after a run (2 by default, 4 tuned), each pinning a php-fpm " +
      "worker, so on a shared pool of 4 the next server would find few or " +
      "no free workers (the tuned one pins all 4) and starve.",
    ],
    rounds: o.rounds,
    cases,
    start: async () => {
      const fpm = await startPhpFpm(["", "nginx", "guard", "tuned"]);
      const root = o.fixtures.root;
      const nginx = (name: string, pass: string) => () =>
        startNginx(root, {
          name,
          workers: o.nginxWorkers,
          server: _phpLocation(pass),
        });
      const x =
        (name: string, pass: string, flags: readonly string[] = []) => () =>
          startXServe(root, { name, flags: ["--fastcgi", pass, ...flags] });
      const peer = fpm.sets.nginx!;
      const guard = fpm.sets.guard!;
      const tuned = fpm.sets.tuned!;
      let servers: RunningServer[];
      try {
        servers = await startEach([
          x("x-serve tcp", fpm.tcp),
          nginx("nginx tcp", peer.tcp),
          x(`${GUARD} tcp`, guard.tcp, GUARD_FLAGS),
          x("x-serve tuned tcp", tuned.tcp, _TUNED_FLAGS),
          x("x-serve unix", `unix:${fpm.socket}`),
          nginx("nginx unix", `unix:${peer.socket}`),
          x(`${GUARD} unix`, `unix:${guard.socket}`, GUARD_FLAGS),
          x("x-serve tuned unix", `unix:${tuned.socket}`, _TUNED_FLAGS),
        ]);
      } catch (error) {
        await fpm.server.stop();
        throw error;
      }
      return { servers, backends: [fpm.server] };
    },
  };
}

/**
 * TLS: the 1 KiB file over HTTPS (wrk) at 1 and 32 connections, and over
 * HTTP/2 (`h2load -c 8 -m 10`), @x/serve `--cert --key` vs nginx `listen
 * … ssl http2`, the same self-signed certificate.
 *
 * @param o Fixtures, nginx workers, rounds.
 * @param connections The settings' connections (the second HTTPS case).
 * @returns The group.
 */
export function tlsGroup(o: WorkloadOptions, connections: number): Group {
  const servers = ["x-serve", "nginx", GUARD];
  const variants = [{ name: GUARD, label: "guard" }];
  const file = fileCase(1);
  const https: GroupCase[] = [...new Set([1, connections])].map((n) => ({
    ...file,
    id: `https-c${n}`,
    label: `HTTPS 1 KiB, ${n} conn`,
    connections: n,
    servers,
    variants,
  }));
  const h2: GroupCase = {
    ...file,
    id: "h2",
    label: `HTTP/2 1 KiB, ${H2_CLIENTS} conn × ${H2_STREAMS} streams`,
    tool: "h2load",
    connections: H2_CLIENTS,
    servers,
    variants,
  };
  return {
    id: "tls",
    title: "TLS (HTTPS, HTTP/2)",
    notes: [
      "The 1 KiB file over HTTPS (wrk, HTTP/1.1) and HTTP/2 (`h2load -n N " +
      `-c ${H2_CLIENTS} -m ${H2_STREAMS}\`, N sized from the warm-up to ` +
      "last about BENCH_SECONDS; h2load reports no percentiles, so its " +
      "latency is the mean). @x/serve `--cert --key` vs nginx `listen … " +
      "ssl http2`, the same self-signed RSA-2048 certificate (openssl).",
      guardNote({
        guard: `\`${GUARD}\``,
        x: "`x-serve`",
        ratio: `\`${GUARD} / x-serve\``,
      }) + " Over HTTPS the guard's deadlines apply to the TLS front's " +
      "relayed connections, its caps to the TLS sockets.",
    ],
    rounds: o.rounds,
    cases: [...https, h2],
    start: async () => ({
      servers: await startEach([
        () => startXServe(o.fixtures.root, { tls: o.fixtures.tls }),
        () =>
          startNginx(o.fixtures.root, {
            workers: o.nginxWorkers,
            tls: o.fixtures.tls,
          }),
        () =>
          startXServe(o.fixtures.root, {
            name: GUARD,
            tls: o.fixtures.tls,
            flags: [...GUARD_FLAGS],
          }),
      ]),
    }),
  };
}
