/**
 * The dynamic and TLS workload groups: CGI (@x/serve `--cgi` vs lighttpd
 * `mod_cgi`), PHP (@x/serve `--fastcgi` vs nginx, both on the same php-fpm
 * pools, over TCP and a unix socket) and TLS (HTTPS with wrk and HTTP/2
 * with h2load, @x/serve `--cert --key` vs nginx `ssl http2`).
 *
 * @module
 */

import { fileCase, type Fixtures } from "./fixtures.ts";
import { type Group, type GroupCase, startEach } from "./groups.ts";
import { H2_CLIENTS, H2_STREAMS } from "./measure.ts";
import {
  type RunningServer,
  startLighttpd,
  startNginx,
  startPhpFpm,
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
 * and 8 connections, @x/serve `--cgi` vs lighttpd `mod_cgi`.
 *
 * @param o Fixtures, rounds.
 * @returns The group.
 */
export function cgiGroup(o: WorkloadOptions): Group {
  const servers = ["x-serve", "lighttpd"];
  const cases: GroupCase[] = [1, 8].map((n) => ({
    id: `cgi-c${n}`,
    label: `CGI hello (sh), ${n} conn`,
    path: "/cgi-bin/hello",
    status: 200,
    body: "hello",
    connections: n,
    servers,
  }));
  return {
    id: "cgi",
    title: "CGI",
    notes: [
      "`/cgi-bin/hello` is `#!/bin/sh` printing `Content-Type: text/plain` " +
      "and `hello`. @x/serve `--cgi` vs lighttpd `mod_cgi` (`cgi.assign = " +
      '("" => "")` under `/cgi-bin/`, `mod_alias`).',
    ],
    rounds: o.rounds,
    cases,
    start: async () => ({
      servers: await startEach([
        () => startXServe(o.fixtures.root, { flags: ["--cgi"] }),
        () => startLighttpd(o.fixtures.root),
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

/**
 * PHP: `/hello.php` (`<?php echo "hello";`) at 1 and 16 connections, over
 * TCP and over a unix socket, @x/serve `--fastcgi` vs nginx `fastcgi_pass`
 * to the same php-fpm pools (one per transport, `pm = static`, 4
 * children each).
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
    }))
  );
  return {
    id: "php",
    title: "PHP (FastCGI, php-fpm)",
    notes: [
      '`/hello.php` is `<?php echo "hello";`. One php-fpm ' +
      "(`php-fpm8.2 -F -y CONF -R`) with two pools, `pm = static`, " +
      "`pm.max_children = 4`: one listening on 127.0.0.1:PORT, one on a " +
      "unix socket. `x-serve tcp`/`unix` = @x/serve `--fastcgi " +
      "127.0.0.1:PORT` / `--fastcgi unix:/path`; `nginx tcp`/`unix` = nginx " +
      "`location ~ \\.php$` with `/etc/nginx/fastcgi_params`, " +
      "`SCRIPT_FILENAME $document_root$fastcgi_script_name` and " +
      "`fastcgi_pass` to the same pool (nginx defaults otherwise: no " +
      "`fastcgi_keep_conn`).",
    ],
    rounds: o.rounds,
    cases,
    start: async () => {
      const fpm = await startPhpFpm();
      const root = o.fixtures.root;
      const nginx = (name: string, pass: string) => () =>
        startNginx(root, {
          name,
          workers: o.nginxWorkers,
          server: _phpLocation(pass),
        });
      let servers: RunningServer[];
      try {
        servers = await startEach([
          () =>
            startXServe(root, {
              name: "x-serve tcp",
              flags: ["--fastcgi", fpm.tcp],
            }),
          nginx("nginx tcp", fpm.tcp),
          () =>
            startXServe(root, {
              name: "x-serve unix",
              flags: ["--fastcgi", `unix:${fpm.socket}`],
            }),
          nginx("nginx unix", `unix:${fpm.socket}`),
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
  const servers = ["x-serve", "nginx"];
  const file = fileCase(1);
  const https: GroupCase[] = [...new Set([1, connections])].map((n) => ({
    ...file,
    id: `https-c${n}`,
    label: `HTTPS 1 KiB, ${n} conn`,
    connections: n,
    servers,
  }));
  const h2: GroupCase = {
    ...file,
    id: "h2",
    label: `HTTP/2 1 KiB, ${H2_CLIENTS} conn × ${H2_STREAMS} streams`,
    tool: "h2load",
    connections: H2_CLIENTS,
    servers,
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
      ]),
    }),
  };
}
