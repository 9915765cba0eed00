// Run by posix_spawn_test.ts under `ulimit -n 64`: fills the descriptor table
// so that a spawn's first pipe opens and its second does not.
import { openPosixSpawn } from "../../cgi/posix_spawn.ts";

using posixSpawn = openPosixSpawn();
if (!posixSpawn) throw new Error("no FFI");
const files: Deno.FsFile[] = [];
/** Opens descriptors until the table is full; how many it opened. */
const fill = (): number => {
  const start = files.length;
  try {
    for (;;) files.push(Deno.openSync("/dev/null"));
  } catch {
    // EMFILE: the table is full
  }
  return files.length - start;
};
// A first spawn: it starts listening for SIGCHLD, for which Deno's signal
// driver opens descriptors of its own, once.
const first = posixSpawn.spawn({
  path: "/bin/true",
  argv: ["true"],
  env: {},
  stdin: false,
});
await first.stdout.cancel();
await first.stderr.cancel();
await first.status;
fill();
// Room for one pipe (two descriptors) and one descriptor more.
for (let i = 0; i < 3; i++) files.pop()!.close();
let error: Error | undefined;
try {
  posixSpawn.spawn({ path: "/bin/true", argv: ["true"], env: {}, stdin: false });
} catch (caught) {
  error = caught as Error;
}
// What the failed spawn closed again can be opened again.
const leaked = 3 - fill();
for (const file of files) file.close();
console.log(JSON.stringify({
  error: error?.name,
  message: error?.message,
  leaked,
}));
