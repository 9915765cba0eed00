// A Worker for posix_spawn_test.ts: spawns a long script with posix_spawn
// and posts its pid (then the test terminates it while the script runs).
import { openPosixSpawn } from "../../cgi/posix_spawn.ts";

const spawner = openPosixSpawn();
if (!spawner) throw new Error("no posix_spawn in the worker");
const child = spawner.spawn({
  path: "/bin/sh",
  argv: ["sh", "-c", "sleep 30"],
  env: {},
  stdin: false,
});
child.status.catch(() => {});
self.postMessage(child.pid);
