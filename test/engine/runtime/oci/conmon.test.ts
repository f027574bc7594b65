import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";

import { conmonArguments, conmonEnvironment, runDetachedScript, runDetachedShell } from "../../../../src/engine/runtime/oci/conmon.js";
import { createOciRuntime } from "../../../../src/engine/runtime/oci/runtime.js";

const paths = {
  bundle: "/data/c1/bundle",
  containerPidFile: "/data/c1/container.pid",
  conmonPidFile: "/data/c1/conmon.pid",
  logPath: "/data/c1/container.log",
  exitDir: "/run/exits",
  persistDir: "/data/c1/conmon",
  socketDir: "/run/sockets",
};

test("conmon gets PATH, TZ and the sync pipe, and none of the daemon's other variables", () => {
  const env = conmonEnvironment({
    PATH: "/usr/sbin:/usr/bin",
    TZ: "Europe/Paris",
    LANG: "C.UTF-8",
    LC_ALL: "C.UTF-8",
    NOTIFY_SOCKET: "/run/systemd/notify",
    NODE_OPTIONS: "--inspect",
    HOME: "/root",
  });
  assert.deepEqual(env, { PATH: "/usr/sbin:/usr/bin", TZ: "Europe/Paris", _OCI_SYNCPIPE: "3" });
  assert.deepEqual(conmonEnvironment({}), { _OCI_SYNCPIPE: "3" });
});

test("conmon runs the runtime through the run --detach adapter, skips the log fsync and keeps every path", () => {
  const runtime = createOciRuntime({ name: "runc", path: "/usr/sbin/runc", version: "1.1.5", root: "/run/runc" });
  const args = conmonArguments({ runtime, id: "c1", paths });
  const valueOf = (flag: string): string[] => args.flatMap((arg, index) => (arg === flag ? [args[index + 1] ?? ""] : []));
  assert.deepEqual(valueOf("--runtime"), [runDetachedShell]);
  assert.deepEqual(valueOf("--runtime-arg"), ["-c", runDetachedScript, "shoal-runc", "/usr/sbin/runc", "--root", "/run/runc"]);
  assert.deepEqual(valueOf("--bundle"), [paths.bundle]);
  assert.deepEqual(valueOf("--exit-dir"), [paths.exitDir]);
  assert.deepEqual(valueOf("--persist-dir"), [paths.persistDir]);
  assert.deepEqual(valueOf("--log-path"), [`k8s-file:${paths.logPath}`]);
  assert.ok(args.includes("--no-sync-log"), "the log fsync before the exit file is skipped");
  // Confinement flags stay off: pivot_root and a session keyring per container.
  assert.equal(args.includes("--no-pivot"), false);
  assert.equal(args.includes("--no-new-keyring"), false);
});

test("the adapter turns conmon's create into run --detach, once, and passes every other argument as is", () => {
  // Node stands in for the runtime and prints the arguments it got, one JSON string each.
  const printArguments = [process.execPath, "-p", "JSON.stringify(process.argv.slice(1))", "--"];
  const conmonCall = ["--root", "/run/a dir", "create", "--bundle", "/b", "--pid-file", "/p $HOME", "create"];
  const output = execFileSync(runDetachedShell, ["-c", runDetachedScript, "shoal-test", ...printArguments, ...conmonCall], { encoding: "utf8" });
  assert.deepEqual(JSON.parse(output), ["--root", "/run/a dir", "run", "--detach", "--bundle", "/b", "--pid-file", "/p $HOME", "create"]);
});
