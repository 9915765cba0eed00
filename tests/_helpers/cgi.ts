// The CGI gateway as the server composes it, for the CGI suites (not part
// of the published package).
import {
  cgi,
  type CgiOptions,
  compose,
  type Handler,
  resolvePath,
  serveStatic,
} from "../../mod.ts";
import { testdata } from "./fs.ts";

/** A handler (resolvePath → cgi → serveStatic) over tests/testdata, with its log lines. */
export interface CgiHarness {
  handler: Handler;
  logs: string[];
}

/** Builds the chain the server uses, with CGI at /cgi-bin/ (tests/testdata/cgi-bin). */
export function cgiHarness(
  options: CgiOptions = {},
  testDir = "/nonexistent",
): CgiHarness {
  const logs: string[] = [];
  const handler = compose([
    resolvePath({ root: testdata() }),
    cgi({ ...options, env: { CGI_TEST_DIR: testDir, ...options.env } }),
    serveStatic(),
  ], { log: (level, message) => logs.push(`${level} ${message}`) });
  return { handler, logs };
}

/** Parses env.cgi output (`KEY=VALUE` lines) into a map. */
export function parseEnv(text: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const line of text.split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) env.set(line.slice(0, i), line.slice(i + 1));
  }
  return env;
}
