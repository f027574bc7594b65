import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { FailedPreconditionError, ResourceExhaustedError, systemErrorCode } from "../common/errors.js";
import { lastErrorLine, type CommandResult } from "../common/command.js";
import { runLabCommand } from "./command.js";
import { labSubnetOctetPreferred, labSubnetPrefix } from "./names.js";
import { labStateRoot, type LabHostState, type LabState } from "./state.js";

/** Named network namespaces live here (iproute2's convention, shared with the engine). */
export const netnsDirectory = "/run/netns";
/** The host-side name of each lab host's interface, inside its own namespace. */
export const labHostInterface = "eth0";

async function mustRun(what: string, file: string, args: readonly string[], options: { input?: string } = {}): Promise<CommandResult> {
  const result = await runLabCommand(file, args, options);
  if (result.code !== 0) throw new FailedPreconditionError(`${what} failed (${file} ${args.join(" ")}): ${lastErrorLine(result.stderr)}`);
  return result;
}

/** The claim file of a subnet octet: two labs coming up at once must not pick the same one. */
export function labSubnetClaimPath(octet: number): string {
  return join(labStateRoot, `subnet-${octet}`);
}

/**
 * Claims the octet for `name` with an exclusive create. A claim held by a lab that no longer
 * has state (crashed before writing it, or removed by hand) is taken over.
 */
async function claimSubnetOctet(name: string, octet: number, labExists: (other: string) => Promise<boolean>): Promise<boolean> {
  const path = labSubnetClaimPath(octet);
  await mkdir(labStateRoot, { recursive: true, mode: 0o700 });
  try {
    await writeFile(path, name, { flag: "wx", mode: 0o600 });
    return true;
  } catch (error) {
    if (systemErrorCode(error) !== "EEXIST") throw error;
  }
  const holder = (await readFile(path, "utf8").catch(() => "")).trim();
  if (holder === name || !(await labExists(holder))) {
    await writeFile(path, name, { mode: 0o600 });
    return true;
  }
  return false;
}

/**
 * Picks and claims the lab's 10.199.X.0/24: the octet the name hashes to, or the next one
 * free of the root namespace's addresses and routes and not claimed by another lab.
 */
export async function pickLabSubnet(name: string, labExists: (other: string) => Promise<boolean>): Promise<{ octet: number; subnet: string }> {
  const routes = await mustRun("listing routes", "ip", ["-4", "route", "show", "table", "all"]);
  const addresses = await mustRun("listing addresses", "ip", ["-4", "-o", "addr", "show"]);
  const taken = `${routes.stdout}\n${addresses.stdout}`;
  const preferred = labSubnetOctetPreferred(name);
  for (let step = 0; step < 256; step += 1) {
    const octet = (preferred + step) % 256;
    const prefix = `${labSubnetPrefix}.${octet}.`;
    if (!taken.includes(prefix) && (await claimSubnetOctet(name, octet, labExists))) return { octet, subnet: `${prefix}0/24` };
  }
  throw new ResourceExhaustedError(`every ${labSubnetPrefix}.X.0/24 subnet is in use: remove old labs with \`lab down --name NAME\``);
}

/** The bridge in the root namespace carries the .1 address so the machine itself reaches every host. */
export async function createLabBridge(state: LabState): Promise<void> {
  await mustRun("creating the lab bridge", "ip", ["link", "add", state.bridge, "type", "bridge"]);
  await mustRun("addressing the lab bridge", "ip", ["addr", "add", `${state.gateway}/24`, "dev", state.bridge]);
  await mustRun("bringing the lab bridge up", "ip", ["link", "set", state.bridge, "up"]);
}

/**
 * One host: its netns, a veth whose inner end is eth0 with the host's address, and a
 * persistent UTS namespace (bind-mounted on a file) that holds the hostname, so the name
 * survives shoald restarts and `exec` sees it even while shoald is down.
 */
export async function createLabHostNetwork(state: LabState, host: LabHostState): Promise<void> {
  await mustRun(`creating netns ${host.netns}`, "ip", ["netns", "add", host.netns]);
  await mustRun(`creating ${host.name}'s veth`, "ip", ["link", "add", host.veth, "type", "veth", "peer", "name", labHostInterface, "netns", host.netns]);
  await mustRun(`attaching ${host.name} to the bridge`, "ip", ["link", "set", host.veth, "master", state.bridge, "up"]);
  await mustRun(`addressing ${host.name}`, "ip", ["-n", host.netns, "addr", "add", `${host.address}/24`, "dev", labHostInterface]);
  await mustRun(`bringing ${host.name}'s eth0 up`, "ip", ["-n", host.netns, "link", "set", labHostInterface, "up"]);
  await mustRun(`bringing ${host.name}'s loopback up`, "ip", ["-n", host.netns, "link", "set", "lo", "up"]);
  await writeFile(host.utsFile, "", { mode: 0o600 });
  await mustRun(`setting ${host.name}'s hostname`, "unshare", [`--uts=${host.utsFile}`, "hostname", host.name]);
}

/** The nsenter arguments that put a program into a host's network and UTS namespaces. */
export function labHostNsenterArgs(host: LabHostState): string[] {
  return [`--net=${netnsDirectory}/${host.netns}`, `--uts=${host.utsFile}`, "--"];
}
