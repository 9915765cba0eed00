/**
 * Certificate reload: {@linkcode watchCertificate} re-reads `--cert` and
 * `--key` when either file changes and hands the new pair to the TLS front,
 * so a renewed certificate (certbot, ACME clients) is used for new
 * connections without a restart.
 *
 * @module
 */

import { createPrivateKey, X509Certificate } from "node:crypto";
import { errorMessage } from "../server/log.ts";

/**
 * Throws unless `cert` (PEM; its first certificate, the leaf) and `key`
 * (PEM) parse and belong together. `node:tls` in Deno 2.9 accepts any pair
 * without a word (`createSecureContext`, `setSecureContext`) and then fails
 * every handshake: this is the check it does not make.
 *
 * @example A pair that does not match
 * ```ts ignore
 * checkCertificatePair(cert, otherKey); // throws: the key does not match
 * ```
 *
 * @param cert The certificate chain (PEM).
 * @param key The private key (PEM).
 */
export function checkCertificatePair(cert: string, key: string): void {
  let matches: boolean;
  try {
    matches = new X509Certificate(cert).checkPrivateKey(createPrivateKey(key));
  } catch (error) {
    throw new Error(`not a usable certificate and key: ${errorMessage(error)}`);
  }
  if (!matches) throw new Error("the key does not match the certificate");
}

/** A running watch; `close()` stops it. */
export interface CertificateWatch {
  /** Stops watching. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Watches `certFile` and `keyFile`; once they have been quiet for
 * `debounceMs`, reads both and calls `apply`. A pair that cannot be read
 * or is refused by `apply` is reported through `report` and the old one
 * stays in use.
 *
 * @example Reloading into a TLS front
 * ```ts ignore
 * import { watchCertificate } from "./cert_reload.ts";
 *
 * const watch = watchCertificate("cert.pem", "key.pem", (cert, key) => {
 *   console.log("new certificate", cert.length, key.length);
 * }, console.error);
 * await watch.close();
 * ```
 *
 * @param certFile The certificate file (PEM).
 * @param keyFile The key file (PEM).
 * @param apply Uses the new pair (throws to refuse it).
 * @param report Receives one line per reload, or per failed one.
 * @param debounceMs Quiet time before reading (a renewal writes both files).
 * @returns The watch.
 */
export function watchCertificate(
  certFile: string,
  keyFile: string,
  apply: (cert: string, key: string) => void,
  report: (line: string) => void,
  debounceMs = 200,
): CertificateWatch {
  let watcher: Deno.FsWatcher;
  try {
    watcher = Deno.watchFs([certFile, keyFile], { recursive: false });
  } catch (error) {
    report(`certificate reload is off: ${errorMessage(error)}`);
    return { close: () => Promise.resolve() };
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const reload = async () => {
    timer = undefined;
    try {
      const cert = await Deno.readTextFile(certFile);
      const key = await Deno.readTextFile(keyFile);
      apply(cert, key);
      report(`reloaded --cert "${certFile}" and --key "${keyFile}"`);
    } catch (error) {
      report(
        `cannot reload --cert "${certFile}" / --key "${keyFile}" (keeping the old pair): ${
          errorMessage(error)
        }`,
      );
    }
  };
  const done = (async () => {
    try {
      for await (const event of watcher) {
        if (event.kind === "access") continue;
        if (timer !== undefined) clearTimeout(timer);
        timer = setTimeout(reload, debounceMs);
      }
    } catch {
      // closed
    }
  })();
  return {
    async close() {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      try {
        watcher.close();
      } catch {
        // already closed
      }
      await done;
    },
  };
}
