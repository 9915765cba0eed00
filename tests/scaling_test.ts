// The README's "Scaling out" example, run for real: two instances behind
// nginx as a round-robin load balancer.
import assert from "node:assert/strict";
import { tempDir, testdata } from "./_helpers/fs.ts";
import { freePort, waitForListen } from "./_helpers/net.ts";
import { startCli } from "./_helpers/process.ts";

Deno.test("two instances behind an nginx load balancer answer alike (README example)", async () => {
  await using dir = await tempDir();
  const a = await startCli([testdata("www"), "--port", "0"]);
  const b = await startCli([testdata("www"), "--port", "0"]);
  const port = freePort();
  const upstream = [a, b].map((s) => `    server ${new URL(s.base).host};`)
    .join("\n");
  await Deno.writeTextFile(
    `${dir.path}/nginx.conf`,
    `daemon off;
worker_processes 1;
user root;
pid ${dir.path}/nginx.pid;
error_log ${dir.path}/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir.path}/body;
  proxy_temp_path ${dir.path}/proxy;
  fastcgi_temp_path ${dir.path}/fastcgi;
  uwsgi_temp_path ${dir.path}/uwsgi;
  scgi_temp_path ${dir.path}/scgi;
  upstream serve {
${upstream}
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://serve;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
    }
  }
}
`,
  );
  const nginx = new Deno.Command("nginx", {
    args: ["-c", `${dir.path}/nginx.conf`, "-p", dir.path],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    const ready = await waitForListen(port, 5000).then(() => true, () => false);
    assert.ok(ready, "nginx started");
    const etags = new Set<string | null>();
    for (let i = 0; i < 8; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/hello.txt`);
      assert.equal(await res.text(), "Hello, world!\n");
      etags.add(res.headers.get("etag"));
    }
    assert.equal(
      etags.size,
      1,
      "every instance gives the same validators: caches work across them",
    );
  } finally {
    nginx.kill("SIGTERM");
    await nginx.status;
    await nginx.stderr.cancel();
    await a.stop();
    await b.stop();
  }
  const served = (s: typeof a) =>
    s.lines.filter((l) => l.includes("GET /hello.txt 200")).length;
  assert.ok(
    served(a) > 0 && served(b) > 0,
    `round robin reached both (${served(a)}, ${served(b)})`,
  );
  assert.equal(served(a) + served(b), 8);
});
