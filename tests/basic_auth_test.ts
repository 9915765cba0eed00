import assert from "node:assert/strict";
import bcrypt from "bcryptjs";
import { compose } from "../server/compose.ts";
import type { Handler, Middleware } from "../server/types.ts";
import { basicAuth, type BasicAuthOptions } from "../rules/basic_auth.ts";
import { tempDir } from "./_helpers/fs.ts";
import { eventually } from "./_helpers/poll.ts";

const INFO: Deno.ServeHandlerInfo = {
  remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 },
  completed: Promise.resolve(),
};

/** A bcrypt hash at a low cost (fast tests). */
function hash(password: string, cost = 4): string {
  return bcrypt.hashSync(password, cost);
}

/** `Basic base64(user:password)`, UTF-8 encoded. */
function basic(user: string, password: string): string {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}

/** Writes a file with the real `htpasswd` tool. */
async function htpasswd(args: string[]): Promise<void> {
  const out = await new Deno.Command("htpasswd", { args, stderr: "piped" })
    .output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
}

interface Site {
  handler: Handler;
  logs: string[];
  get(path: string, authorization?: string): Promise<Response>;
}

/** basicAuth() in front of a handler that answers with the script vars. */
function site(
  options: BasicAuthOptions,
  before: Middleware[] = [],
): Site {
  const logs: string[] = [];
  const handler = compose([
    ...before,
    basicAuth(options),
    (_req, ctx) => Response.json(ctx.scriptVars ?? null),
  ], { log: (level, message) => logs.push(`${level} ${message}`) });
  return {
    handler,
    logs,
    get: (path, authorization) =>
      handler(
        new Request(`http://localhost${path}`, {
          headers: authorization === undefined ? {} : { authorization },
        }),
        INFO,
      ),
  };
}

async function assertDenied(res: Response, realm = "Restricted") {
  assert.equal(res.status, 401);
  assert.equal(
    res.headers.get("www-authenticate"),
    `Basic realm="${realm}", charset="UTF-8"`,
  );
  assert.match(await res.text(), /401 Unauthorized/);
}

Deno.test("basicAuth() accepts users from a file written by the real htpasswd -B", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/users`;
  await htpasswd(["-B", "-b", "-c", file, "alice", "s3cret"]);
  await htpasswd(["-B", "-b", file, "bob", "pä:ss wörd €"]);
  const text = await Deno.readTextFile(file);
  assert.match(text, /^alice:\$2y\$05\$/m, "htpasswd -B writes $2y$");

  const { get, logs } = site({ htpasswd: file });
  const alice = await get("/", basic("alice", "s3cret"));
  assert.equal(alice.status, 200);
  assert.deepEqual(await alice.json(), {
    AUTH_TYPE: "Basic",
    REMOTE_USER: "alice",
  });
  const bob = await get("/", basic("bob", "pä:ss wörd €"));
  assert.equal(bob.status, 200);
  assert.equal((await bob.json()).REMOTE_USER, "bob");
  assert.deepEqual(logs, []);
});

Deno.test("basicAuth() accepts $2a$ and $2b$ hashes, with blank lines and comments", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/users`;
  const a = hash("apple").replace(/^\$2b\$/, "$2a$");
  const a2 = bcrypt.hashSync("apple", a.slice(0, 29));
  assert.match(a2, /^\$2a\$04\$/);
  const b = hash("banana");
  assert.match(b, /^\$2b\$04\$/);
  await Deno.writeTextFile(
    file,
    `# team\n\nann:${a2}\r\n  # indented comment\nben:${b}\n\n`,
  );
  const { get } = site({ htpasswd: file });
  assert.equal((await get("/", basic("ann", "apple"))).status, 200);
  assert.equal((await get("/", basic("ben", "banana"))).status, 200);
  await assertDenied(await get("/", basic("ann", "banana")));
});

Deno.test("basicAuth() rejects a wrong password with 401 and a WWW-Authenticate challenge", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/users`;
  await Deno.writeTextFile(file, `bob:${hash("right")}\n`);
  const { get, logs } = site({ htpasswd: file, realm: "Admin" });
  const res = await get("/admin/", basic("bob", "wrong-pass"));
  await assertDenied(res, "Admin");
  assert.equal(res.headers.get("cache-control"), null);
  assert.deepEqual(logs, [
    'warn basic-auth: failed login for user "bob" from 127.0.0.1 on /admin/ (realm "Admin")',
  ]);
});

Deno.test("basicAuth() rejects an unknown user like a wrong password", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/users`;
  await Deno.writeTextFile(file, `bob:${hash("right")}\n`);
  const { get, logs } = site({ htpasswd: file });
  await assertDenied(await get("/x", basic("mallory", "right")));
  assert.deepEqual(logs, [
    'warn basic-auth: failed login for user "mallory" from 127.0.0.1 on /x (realm "Restricted")',
  ]);
});

Deno.test("basicAuth() spends bcrypt time on an unknown user too", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/users`;
  await Deno.writeTextFile(file, `bob:${hash("right", 9)}\n`);
  const { get } = site({ htpasswd: file });
  const time = async (user: string) => {
    const start = performance.now();
    await (await get("/", basic(user, "wrong"))).body?.cancel();
    return performance.now() - start;
  };
  await time("bob"); // warm up
  const known = await time("bob");
  const unknown = await time("nobody");
  // Same cost, same work: an unknown user is not answered at once.
  assert.ok(
    unknown > known / 3,
    `unknown user took ${unknown} ms, known ${known} ms`,
  );
});

Deno.test("basicAuth() treats malformed Authorization headers as no credentials", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/users`;
  await Deno.writeTextFile(file, `bob:${hash("pw")}\n`);
  const { get, logs } = site({ htpasswd: file });
  const invalidUtf8 = `Basic ${btoa("bob:\xff\xfe")}`;
  for (
    const header of [
      "",
      "Basic",
      "Basic ",
      `Basic ${btoa("bobpw")}`, // no colon
      "Basic !!!not-base64!!!",
      "Basic YWJjZA=x",
      "Basic Y", // impossible length
      `Bearer ${btoa("bob:pw")}`,
      `Digest ${btoa("bob:pw")}`,
      `Basic ${btoa("bob:pw")}, Basic ${btoa("bob:pw")}`,
      invalidUtf8,
    ]
  ) {
    const res = await get("/", header);
    assert.equal(res.status, 401, `for ${JSON.stringify(header)}`);
    assert.match(res.headers.get("www-authenticate")!, /^Basic realm=/);
    await res.body?.cancel();
  }
  await assertDenied(await get("/"));
  assert.deepEqual(logs, [], "no credentials is not a failed attempt");
  // The scheme name is case-insensitive.
  assert.equal((await get("/", `bAsIc ${btoa("bob:pw")}`)).status, 200);
});

Deno.test("basicAuth() accepts a password containing ':' and non-ASCII UTF-8", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/users`;
  const password = "a:b::c ü 日本 🔑";
  await Deno.writeTextFile(file, `zoë:${hash(password)}\n`);
  const { get } = site({ htpasswd: file });
  const res = await get("/", basic("zoë", password));
  assert.equal(res.status, 200);
  assert.equal((await res.json()).REMOTE_USER, "zoë");
  await assertDenied(await get("/", basic("zoë", "a:b::c u 日本 🔑")));
  await assertDenied(await get("/", basic("zoë", "a")));
});

Deno.test("basicAuth() refuses non-bcrypt hashes, naming the file and line", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/users`;
  await htpasswd(["-B", "-b", "-c", file, "alice", "pw"]);
  for (const flag of ["-m", "-s", "-d", "-p"]) { // MD5 $apr1$, {SHA}, crypt, plain
    const other = `${dir.path}/other${flag}`;
    await Deno.copyFile(file, other);
    await Deno.writeTextFile(other, "# comment\n", { append: true });
    await htpasswd([flag, "-b", other, "bob", "pw"]);
    assert.throws(
      () => basicAuth({ htpasswd: other }),
      {
        name: "Error",
        message:
          `htpasswd ${other} line 3: unsupported hash for "bob" (only bcrypt, as htpasswd -B writes)`,
      },
      flag,
    );
  }
  await Deno.writeTextFile(file, "carol:$2y$05$tooshort\n");
  assert.throws(() => basicAuth({ htpasswd: file }), {
    message:
      `htpasswd ${file} line 1: malformed bcrypt hash for "carol" (only bcrypt, as htpasswd -B writes)`,
  });
  await Deno.writeTextFile(file, "\njust-a-name\n");
  assert.throws(() => basicAuth({ htpasswd: file }), {
    message: `htpasswd ${file} line 2: not "user:hash"`,
  });
});

Deno.test("basicAuth() throws when the file is missing, naming it", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/missing`;
  assert.throws(
    () => basicAuth({ htpasswd: file }),
    (error: Error) => error.message.startsWith(`Cannot read htpasswd ${file}:`),
  );
  assert.throws(() => basicAuth({ htpasswd: "" }), TypeError);
});

Deno.test("basicAuth() logs one line per failed attempt, never the password", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/users`;
  await Deno.writeTextFile(file, `bob:${hash("right")}\n`);
  const { get, logs } = site({ htpasswd: file });
  await (await get("/a", basic("bob", "hunter2-secret"))).body?.cancel();
  await (await get("/b", basic("nobody", "hunter2-secret"))).body?.cancel();
  await (await get("/c")).body?.cancel();
  await (await get("/d", basic("bob", "right"))).body?.cancel();
  assert.equal(logs.length, 2);
  assert.match(logs[0]!, /user "bob" .* on \/a /);
  assert.match(logs[1]!, /user "nobody" .* on \/b /);
  for (const line of logs) assert.ok(!line.includes("hunter2"), line);
});

Deno.test("basicAuth() escapes control characters and quotes in a logged user name", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/users`;
  await Deno.writeTextFile(file, `bob:${hash("right")}\n`);
  const { get, logs } = site({ htpasswd: file });
  const user = 'evil\r\nwarn forged "line"\x1b[31m\\';
  await (await get("/", basic(user, "x"))).body?.cancel();
  assert.equal(logs.length, 1);
  assert.equal(
    logs[0],
    'warn basic-auth: failed login for user "evil\\u000d\\u000awarn forged \\"line\\"\\u001b[31m\\\\" from 127.0.0.1 on / (realm "Restricted")',
  );
});

Deno.test("basicAuth() picks up a changed file, and a removed user stops working even if cached", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/users`;
  await Deno.writeTextFile(
    file,
    `alice:${hash("a-pass")}\ncarol:${hash("old")}\n`,
  );
  const { get, logs } = site({ htpasswd: file, recheckMs: 50 });
  // Twice: the second one is served from the cache.
  assert.equal((await get("/", basic("alice", "a-pass"))).status, 200);
  assert.equal((await get("/", basic("alice", "a-pass"))).status, 200);
  assert.equal((await get("/", basic("carol", "old"))).status, 200);
  await assertDenied(await get("/", basic("dave", "d-pass")));

  await Deno.writeTextFile(
    file,
    `carol:${hash("new")}\ndave:${hash("d-pass")}\n`,
  );
  await eventually(async () => {
    const res = await get("/", basic("dave", "d-pass"));
    await res.body?.cancel();
    assert.equal(res.status, 200);
  });
  await assertDenied(await get("/", basic("alice", "a-pass")));
  await assertDenied(await get("/", basic("carol", "old")));
  assert.equal((await get("/", basic("carol", "new"))).status, 200);
  assert.equal(logs.filter((l) => l.includes("keeping")).length, 0);
});

Deno.test("basicAuth() keeps the previous users when a re-read fails, with one warning", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/users`;
  await Deno.writeTextFile(file, `alice:${hash("a-pass")}\n`);
  const { get, logs } = site({ htpasswd: file, recheckMs: 20 });
  await Deno.writeTextFile(file, `alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n`);
  // Requests trigger the checks.
  await eventually(async () => {
    await (await get("/")).body?.cancel();
    assert.equal(logs.length, 1);
  });
  // A few more requests past the interval: the same problem is not repeated.
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    const res = await get("/", basic("alice", "a-pass"));
    assert.equal(res.status, 200);
    await res.body?.cancel();
  }
  assert.equal(logs.length, 1, logs.join("\n"));
  assert.equal(
    logs[0],
    `warn basic-auth: keeping the previous users: htpasswd ${file} line 1: unsupported hash for "alice" (only bcrypt, as htpasswd -B writes)`,
  );
  await Deno.remove(file);
  await eventually(async () => {
    await (await get("/")).body?.cancel();
    assert.equal(logs.length, 2);
  });
  assert.match(logs[1]!, /^warn basic-auth: keeping the previous users: /);
  assert.equal((await get("/", basic("alice", "a-pass"))).status, 200);
});

Deno.test("basicAuth() sets AUTH_TYPE and REMOTE_USER and keeps existing scriptVars", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/users`;
  await Deno.writeTextFile(file, `alice:${hash("pw")}\n`);
  const { get } = site({ htpasswd: file }, [(_req, ctx, next) => {
    ctx.scriptVars = { APP_ENV: "prod", REMOTE_USER: "spoofed" };
    return next();
  }]);
  const res = await get("/", basic("alice", "pw"));
  assert.deepEqual(await res.json(), {
    APP_ENV: "prod",
    AUTH_TYPE: "Basic",
    REMOTE_USER: "alice",
  });
});

Deno.test("basicAuth() escapes quotes and backslashes in the realm", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/users`;
  await Deno.writeTextFile(file, `alice:${hash("pw")}\n`);
  const { get } = site({ htpasswd: file, realm: 'My "big" \\ realm' });
  const res = await get("/");
  assert.equal(
    res.headers.get("www-authenticate"),
    'Basic realm="My \\"big\\" \\\\ realm", charset="UTF-8"',
  );
  await res.body?.cancel();
  assert.throws(
    () => basicAuth({ htpasswd: file, realm: "two\r\nlines" }),
    TypeError,
  );
});

Deno.test("basicAuth() caches a good login so repeat requests skip bcrypt", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/users`;
  await Deno.writeTextFile(file, `alice:${hash("pw", 10)}\n`);
  const { get } = site({ htpasswd: file });
  const time = async () => {
    const start = performance.now();
    const res = await get("/", basic("alice", "pw"));
    assert.equal(res.status, 200);
    await res.body?.cancel();
    return performance.now() - start;
  };
  const first = await time();
  const second = await time();
  assert.ok(second < first / 4, `first ${first} ms, second ${second} ms`);

  const { get: uncached } = site({ htpasswd: file, cacheSize: 0 });
  await (await uncached("/", basic("alice", "pw"))).body?.cancel();
  const start = performance.now();
  await (await uncached("/", basic("alice", "pw"))).body?.cancel();
  assert.ok(performance.now() - start > second, "cacheSize 0 disables it");
});
