import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { parseContainerRecord, parseContainerState } from "../../../src/engine/runtime/codec.js";
import { K8sLogParser } from "../../../src/engine/runtime/logs.js";
import { parseConmonSync } from "../../../src/engine/runtime/oci/conmon.js";
import { parseRuntimeVersion, runtimeSecurityWarnings } from "../../../src/engine/runtime/oci/detect.js";
import { parseOciState } from "../../../src/engine/runtime/oci/runtime.js";
import { resolveArgs, resolveEnv, resolveWorkingDir, type ImageRuntimeConfig } from "../../../src/engine/runtime/spec/process.js";
import { resolveInRoot } from "../../../src/engine/runtime/spec/rootfs-file.js";
import { buildOciSpec, validateResourceLimits, type SpecInput } from "../../../src/engine/runtime/spec/spec.js";
import { readAccountFiles, resolveUser } from "../../../src/engine/runtime/spec/user.js";

const image: ImageRuntimeConfig = {
  entrypoint: ["/entry"],
  cmd: ["default-arg"],
  env: ["PATH=/image/bin", "FOO=image"],
  workingDir: "/work",
  user: "",
  stopSignal: null,
};

test("args follow Docker's entrypoint and cmd rules", () => {
  assert.deepEqual(resolveArgs(image, {}), ["/entry", "default-arg"]);
  assert.deepEqual(resolveArgs(image, { cmd: ["x"] }), ["/entry", "x"]);
  // An entrypoint override drops the image's Cmd.
  assert.deepEqual(resolveArgs(image, { entrypoint: ["/other"] }), ["/other"]);
  assert.deepEqual(resolveArgs(image, { entrypoint: ["/other"], cmd: ["y"] }), ["/other", "y"]);
  assert.throws(() => resolveArgs({ ...image, entrypoint: [], cmd: [] }, {}), { name: "InvalidArgumentError", message: /no command/ });
});

test("env: user values override the image's by key; PATH, HOSTNAME and HOME get defaults", () => {
  const env = resolveEnv({ image: image.env, overrides: ["FOO=user", "BAR=1"], hostname: "h1", home: "/root" });
  assert.deepEqual(env, ["PATH=/image/bin", "FOO=user", "BAR=1", "HOSTNAME=h1", "HOME=/root"]);
  const bare = resolveEnv({ image: [], overrides: [], hostname: "h", home: "/" });
  assert.ok(bare.includes("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
  assert.throws(() => resolveEnv({ image: [], overrides: ["NOEQUALS"], hostname: "h", home: "/" }), { name: "InvalidArgumentError" });
  assert.equal(resolveWorkingDir(image, {}), "/work");
  assert.equal(resolveWorkingDir({ ...image, workingDir: "" }, {}), "/");
  assert.throws(() => resolveWorkingDir(image, { workingDir: "relative" }), { name: "InvalidArgumentError" });
});

test("users resolve from the image's passwd and group, never from the host's", async (t) => {
  const root = await mkdtemp(join(tmpdir(), "shoal-user-"));
  t.after(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(root, "etc"));
  await writeFile(join(root, "etc", "passwd"), "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n");
  await writeFile(join(root, "etc", "group"), "root:x:0:\napp:x:1001:\nwheel:x:10:app,other\n");
  assert.deepEqual(resolveUser(readAccountFiles(root), ""), { user: { uid: 0, gid: 0 }, home: "/root" });
  assert.deepEqual(resolveUser(readAccountFiles(root), "app"), { user: { uid: 1000, gid: 1001, additionalGids: [10] }, home: "/home/app" });
  assert.deepEqual(resolveUser(readAccountFiles(root), "1000").user.uid, 1000);
  assert.deepEqual(resolveUser(readAccountFiles(root), "app:wheel").user, { uid: 1000, gid: 10 });
  assert.deepEqual(resolveUser(readAccountFiles(root), "4242:4343").user, { uid: 4242, gid: 4343 });
  assert.throws(() => resolveUser(readAccountFiles(root), "nobody"), { name: "InvalidArgumentError", message: /unable to find user "nobody"/ });
  assert.throws(() => resolveUser(readAccountFiles(root), "app:nogroup"), { name: "InvalidArgumentError", message: /unable to find group/ });
  assert.throws(() => resolveUser(readAccountFiles(root), "a:b:c"), { name: "InvalidArgumentError" });

  // A hostile image whose passwd points out of its root reads inside the root instead.
  const hostile = await mkdtemp(join(tmpdir(), "shoal-user-hostile-"));
  t.after(() => rm(hostile, { recursive: true, force: true }));
  await mkdir(join(hostile, "etc"));
  await symlink("/../../../../etc/passwd", join(hostile, "etc", "passwd"));
  // The link resolves to <root>/etc/passwd, i.e. itself: a loop, not the host file.
  assert.throws(() => resolveUser(readAccountFiles(hostile), "root"), { name: "InvalidArgumentError", message: /too many symbolic links/ });
  assert.throws(() => resolveInRoot(hostile, "/etc/passwd"), { name: "InvalidArgumentError" });
  await rm(join(hostile, "etc", "passwd"));
  await symlink("../../../../../../etc/hostname", join(hostile, "etc", "passwd"));
  // ".." stops at the root: /etc/hostname of the image, absent here, so numeric users only.
  assert.deepEqual(resolveUser(readAccountFiles(hostile), "0").user, { uid: 0, gid: 0 });
  assert.throws(() => resolveUser(readAccountFiles(hostile), "daemon"), { name: "InvalidArgumentError" });
});

function specInput(overrides: Partial<SpecInput> = {}): SpecInput {
  return {
    hostname: "h",
    rootfsPath: "/b/rootfs",
    rootfsMounts: [],
    readonlyRootfs: false,
    args: ["/bin/true"],
    env: ["PATH=/bin"],
    cwd: "/",
    user: { uid: 0, gid: 0 },
    networkNamespace: { kind: "path", path: "/run/netns/x" },
    extraMounts: [],
    resources: {},
    cgroupsPath: "/shoal-d/c",
    ...overrides,
  };
}

test("the OCI spec confines like Docker: namespaces, caps, masked paths, seccomp, cgroup limits", () => {
  const spec = buildOciSpec(specInput({ resources: { memoryBytes: 64 * 1024 * 1024, cpus: 1.5, cpuShares: 512, pidsLimit: 100, nofile: 1024 } }));
  assert.deepEqual(
    spec.linux.namespaces.map((namespace) => namespace.type),
    ["pid", "ipc", "uts", "mount", "network", "cgroup"],
  );
  assert.equal(spec.linux.namespaces.find((namespace) => namespace.type === "network")?.path, "/run/netns/x");
  assert.equal(spec.linux.cgroupsPath, "/shoal-d/c");
  assert.deepEqual(spec.linux.resources.memory, { limit: 64 * 1024 * 1024, swap: 64 * 1024 * 1024 });
  assert.deepEqual(spec.linux.resources.cpu, { shares: 512, quota: 150_000, period: 100_000 });
  assert.deepEqual(spec.linux.resources.pids, { limit: 100 });
  assert.deepEqual(spec.process.rlimits, [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }]);
  assert.ok(spec.process.capabilities.bounding.includes("CAP_NET_BIND_SERVICE"));
  assert.equal(spec.process.capabilities.bounding.includes("CAP_SYS_ADMIN"), false);
  assert.ok(spec.linux.maskedPaths.includes("/proc/kcore"));
  assert.ok(spec.linux.readonlyPaths.includes("/proc/sys"));
  assert.deepEqual(
    spec.mounts.map((mount) => mount.destination),
    ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"],
  );
  const seccomp = spec.linux.seccomp;
  assert.equal(seccomp?.defaultAction, "SCMP_ACT_ERRNO");
  const allowed = new Set(seccomp?.syscalls.filter((rule) => rule.action === "SCMP_ACT_ALLOW" && rule.args === undefined).flatMap((rule) => rule.names));
  for (const name of ["read", "execve", "openat", "futex"]) assert.ok(allowed.has(name), `${name} allowed`);
  for (const name of ["mount", "unshare", "setns", "kexec_load", "init_module", "bpf", "open_by_handle_at", "ptrace"]) {
    assert.equal(allowed.has(name), false, `${name} denied`);
  }
  const clone = seccomp?.syscalls.find((rule) => rule.names.includes("clone"));
  assert.equal(clone?.args?.[0]?.op, "SCMP_CMP_MASKED_EQ", "clone only without namespace flags");
  assert.equal(buildOciSpec(specInput({ networkNamespace: { kind: "host" } })).linux.namespaces.some((item) => item.type === "network"), false);
});

test("resource limits are validated before anything is created", () => {
  assert.throws(() => validateResourceLimits({ memoryBytes: 1024 }), { name: "InvalidArgumentError", message: /minimum/ });
  assert.throws(() => validateResourceLimits({ cpus: 0.001 }), { name: "InvalidArgumentError" });
  assert.throws(() => validateResourceLimits({ pidsLimit: 0 }), { name: "InvalidArgumentError" });
  assert.throws(() => validateResourceLimits({ cpuShares: 1 }), { name: "InvalidArgumentError" });
  validateResourceLimits({ memoryBytes: 6 * 1024 * 1024, cpus: 0.01, pidsLimit: 1 });
});

test("runtime versions are parsed and old ones warned about with 'may'", () => {
  assert.equal(parseRuntimeVersion("runc version 1.1.5+ds1\ncommit: x\n"), "1.1.5+ds1");
  assert.equal(parseRuntimeVersion("crun version 1.8.1\n"), "1.8.1");
  const warnings = runtimeSecurityWarnings("runc", "1.1.5+ds1");
  assert.ok(warnings.some((warning) => warning.includes("CVE-2024-21626") && warning.includes("may")));
  assert.deepEqual(runtimeSecurityWarnings("runc", "1.2.3"), []);
  assert.deepEqual(runtimeSecurityWarnings("crun", "1.8.1"), []);
});

test("conmon's sync message and runc's state are parsed, not trusted", () => {
  assert.deepEqual(parseConmonSync('{"data": 4242}\n'), { pid: 4242 });
  assert.deepEqual(parseConmonSync('{"data": -1, "message": "exec failed"}\n'), { error: "exec failed" });
  assert.ok("error" in parseConmonSync("garbage"));
  assert.deepEqual(parseOciState('{"status":"running","pid":12,"id":"x"}'), { status: "running", pid: 12 });
  assert.throws(() => parseOciState('{"status":"weird","pid":12}'), { name: "UnavailableError" });
});

test("k8s-file lines: partial pieces join per stream, bad lines are skipped", () => {
  const parser = new K8sLogParser();
  assert.equal(parser.parseLine("2026-01-01T00:00:00.000000001Z stdout P hel"), null);
  const other = parser.parseLine("2026-01-01T00:00:00.000000002Z stderr F oops");
  assert.equal(other?.text, "oops\n");
  assert.equal(other?.stream, "stderr");
  const joined = parser.parseLine("2026-01-01T00:00:00.000000003Z stdout F lo world");
  assert.equal(joined?.text, "hello world\n");
  assert.equal(joined?.stream, "stdout");
  assert.equal(joined?.timeMs, Date.parse("2026-01-01T00:00:00.000Z"));
  assert.equal(parser.parseLine("not a log line"), null);
  assert.equal(parser.parseLine("2026-01-01T00:00:00Z stdout P tail"), null);
  assert.deepEqual(parser.flush().map((entry) => entry.text), ["tail"]);
});

test("persisted container files are checked field by field", () => {
  const state = {
    status: "running",
    pid: 5,
    startedAt: "t",
    finishedAt: null,
    exitCode: null,
    oomKilled: false,
    error: "",
    restartCount: 0,
    network: null,
  };
  assert.deepEqual(parseContainerState(JSON.stringify(state)), state);
  assert.throws(() => parseContainerState(JSON.stringify({ ...state, status: "zombie" })), { name: "InternalError" });
  assert.throws(() => parseContainerState(JSON.stringify({ ...state, pid: "5" })), { name: "InternalError" });
  assert.throws(() => parseContainerRecord("{}"), { name: "InternalError" });
});
