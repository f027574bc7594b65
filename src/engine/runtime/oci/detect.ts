import { randomBytes } from "node:crypto";
import { access, constants, mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

import type { Logger } from "../../../common/logger.js";
import { UnavailableError, throwIfAborted } from "../../../common/errors.js";
import { lastErrorLine, runCommand } from "../../../common/command.js";
import { removeCgroupDirectories } from "./cgroups.js";
import { createOciRuntime, type OciRuntime, type OciRuntimeName } from "./runtime.js";

const searchDirectories = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

export async function findExecutable(name: string): Promise<string | null> {
  for (const directory of searchDirectories) {
    const candidate = join(directory, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory: try the next one.
    }
  }
  return null;
}

/** "runc version 1.1.5+ds1" -> "1.1.5+ds1". */
export function parseRuntimeVersion(output: string): string | null {
  const match = /^(?:runc|crun) version (\S+)/m.exec(output);
  return match?.[1] ?? null;
}

interface KnownFix {
  runtime: OciRuntimeName;
  fixedIn: [number, number, number];
  advisory: string;
}

/** Container-escape fixes whose absence is worth a warning at start. */
const knownFixes: readonly KnownFix[] = [
  { runtime: "runc", fixedIn: [1, 0, 0], advisory: "CVE-2021-30465 (symlink-exchange mount escape)" },
  { runtime: "runc", fixedIn: [1, 1, 12], advisory: 'CVE-2024-21626 ("Leaky Vessels" fd leak escape)' },
  { runtime: "runc", fixedIn: [1, 1, 14], advisory: "CVE-2024-45310 (host file creation through racing mounts)" },
  { runtime: "crun", fixedIn: [1, 4, 4], advisory: "CVE-2022-27650 (inheritable capabilities)" },
];

function versionTuple(version: string): [number, number, number] | null {
  const match = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(version);
  if (match === null) return null;
  return [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)];
}

function isOlder(version: [number, number, number], than: [number, number, number]): boolean {
  for (let index = 0; index < 3; index += 1) {
    const left = version[index] ?? 0;
    const right = than[index] ?? 0;
    if (left !== right) return left < right;
  }
  return false;
}

/**
 * Warnings for a runtime version that predates known escape fixes. Distributions backport
 * fixes without changing the upstream version, so the wording says "may".
 */
export function runtimeSecurityWarnings(name: OciRuntimeName, version: string): string[] {
  const tuple = versionTuple(version);
  if (tuple === null) return [`cannot parse ${name} version "${version}": escape fixes not checked`];
  return knownFixes
    .filter((fix) => fix.runtime === name && isOlder(tuple, fix.fixedIn))
    .map(
      (fix) =>
        `${name} ${version} is older than ${fix.fixedIn.join(".")} and may be vulnerable to ${fix.advisory}; ` +
        `your distribution may have backported the fix (check its advisory), otherwise upgrade ${name}`,
    );
}

async function probeRuntime(path: string, runtimeRoot: string, probeDirectory: string): Promise<string | null> {
  const id = `shoal-probe-${randomBytes(6).toString("hex")}`;
  const bundle = join(probeDirectory, id);
  const cgroupParent = `/${id}`;
  await mkdir(join(bundle, "rootfs", "proc"), { recursive: true });
  // /proc/self/exe passes the runtime's executable check at create; the probe never starts.
  // The rootfs comes as a mount on /, as containers' do (SpecInput.rootfsMounts): a
  // runtime that cannot mount there is no use.
  const spec = {
    ociVersion: "1.0.2",
    process: { terminal: false, user: { uid: 0, gid: 0 }, args: ["/proc/self/exe"], cwd: "/", env: [] },
    root: { path: "rootfs", readonly: true },
    mounts: [
      { destination: "/", type: "bind", source: join(bundle, "rootfs"), options: ["rbind"] },
      { destination: "/proc", type: "proc", source: "proc" },
    ],
    linux: { namespaces: [{ type: "mount" }, { type: "pid" }], cgroupsPath: `${cgroupParent}/probe` },
  };
  await writeFile(join(bundle, "config.json"), JSON.stringify(spec));
  try {
    const created = await runCommand(path, ["--root", runtimeRoot, "create", "--bundle", bundle, id], {
      resolveOnSuccessfulExit: true,
    });
    if (created.code !== 0) return lastErrorLine(created.stderr);
    const deleted = await runCommand(path, ["--root", runtimeRoot, "delete", "--force", id]);
    if (deleted.code !== 0) return `delete failed: ${lastErrorLine(deleted.stderr)}`;
    return null;
  } finally {
    await removeCgroupDirectories(cgroupParent);
    await rm(bundle, { recursive: true, force: true });
  }
}

export interface RuntimeDetection {
  runtime: OciRuntime;
  warnings: string[];
}

/**
 * Picks the OCI runtime to use: the requested one, or with "auto" crun then runc, keeping
 * the first that really creates a container here (crun 1.8 refuses hybrid cgroup hosts,
 * which only a trial run reveals). Throws UnavailableError listing why each one failed.
 */
export async function detectOciRuntime(options: {
  preference: "auto" | OciRuntimeName;
  runtimeRootBase: string;
  probeDirectory: string;
  logger: Logger;
  signal?: AbortSignal;
}): Promise<RuntimeDetection> {
  const candidates: OciRuntimeName[] = options.preference === "auto" ? ["crun", "runc"] : [options.preference];
  const failures: string[] = [];
  for (const name of candidates) {
    throwIfAborted(options.signal);
    const path = await findExecutable(name);
    if (path === null) {
      failures.push(`${name}: not installed`);
      continue;
    }
    const versionOutput = await runCommand(path, ["--version"]);
    const version = parseRuntimeVersion(versionOutput.stdout) ?? "unknown";
    const root = join(options.runtimeRootBase, name);
    await mkdir(root, { recursive: true, mode: 0o700 });
    const problem = await probeRuntime(path, root, options.probeDirectory);
    if (problem !== null) {
      options.logger.info({ runtime: name, version, problem }, "OCI runtime does not work on this host");
      failures.push(`${name} ${version}: ${problem}`);
      continue;
    }
    return { runtime: createOciRuntime({ name, path, version, root }), warnings: runtimeSecurityWarnings(name, version) };
  }
  throw new UnavailableError(`no working OCI runtime: ${failures.join("; ")}; install runc`);
}
