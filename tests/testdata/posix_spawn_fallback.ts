// Run by posix_spawn_test.ts under narrow permissions: which spawn route
// spawnInGroup() takes, and whether the script still leads its own group.
import { openPosixSpawn } from "../../cgi/posix_spawn.ts";
import { findSetsid, spawnInGroup } from "../../cgi/process.ts";

using posixSpawn = openPosixSpawn();
const setsid = findSetsid();
const child = spawnInGroup("/bin/sh", {
  args: ["-c", "cut -d' ' -f5 /proc/$$/stat"],
  setsid,
  posixSpawn,
});
await child.stderr.cancel();
const pgid = (await new Response(child.stdout).text()).trim();
await child.status;
let scoped = "ran";
try {
  const other = spawnInGroup("/bin/true", { setsid, posixSpawn });
  await other.stdout.cancel();
  await other.stderr.cancel();
  await other.status;
} catch (error) {
  scoped = (error as Error).name;
}
// Deno refuses LD_* variables unless --allow-run is unscoped: so must we.
let preload = "ran";
try {
  const other = spawnInGroup("/bin/sh", {
    args: ["-c", "true"],
    env: { LD_LIBRARY_PATH: "/tmp" },
    setsid,
    posixSpawn,
  });
  await other.stdout.cancel();
  await other.stderr.cancel();
  await other.status;
} catch (error) {
  preload = (error as Error).name;
}
console.log(JSON.stringify({
  spawner: posixSpawn !== undefined,
  route: child instanceof Deno.ChildProcess ? "Deno.Command" : "posix_spawn",
  group: pgid === String(child.pid) ? "own" : `shared ${pgid}`,
  scoped,
  preload,
}));
