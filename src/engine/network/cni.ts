import { join } from "node:path";

import { FailedPreconditionError, UnavailableError } from "../../common/errors.js";
import { lastErrorLine, runCommand } from "../../common/command.js";

/** The CNI spec version shoal speaks; Debian 12's plugins (1.1.1) support it. */
export const cniVersion = "1.0.0";
/** Where Debian's containernetworking-plugins install the plugin binaries. */
export const defaultCniPluginDirectory = "/usr/lib/cni";

export interface CniIpConfig {
  /** CIDR form, e.g. "10.88.0.2/24". */
  address: string;
  gateway: string | null;
}

export interface CniResult {
  ips: CniIpConfig[];
  macAddress: string | null;
  /** The plugin's JSON result, handed back verbatim as `prevResult` on DEL. */
  raw: Record<string, unknown>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Parses a plugin's ADD result (CNI spec "Success" result). */
export function parseCniResult(text: string): CniResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UnavailableError(`a CNI plugin printed a result that is not JSON: ${text.slice(0, 200)}`, { cause: error });
  }
  if (!isRecord(parsed)) throw new UnavailableError("a CNI plugin printed a result that is not a JSON object");
  const ipsValue = parsed.ips ?? [];
  if (!Array.isArray(ipsValue)) throw new UnavailableError("a CNI plugin printed a result whose ips is not a list");
  const ips: CniIpConfig[] = ipsValue.map((item: unknown) => {
    if (!isRecord(item) || typeof item.address !== "string") {
      throw new UnavailableError("a CNI plugin printed an ip entry without an address");
    }
    return { address: item.address, gateway: typeof item.gateway === "string" ? item.gateway : null };
  });
  const interfaces: unknown[] = Array.isArray(parsed.interfaces) ? parsed.interfaces : [];
  const inSandbox = interfaces.find((item) => isRecord(item) && typeof item.sandbox === "string");
  const macAddress = isRecord(inSandbox) && typeof inSandbox.mac === "string" ? inSandbox.mac : null;
  return { ips, macAddress, raw: parsed };
}

/** The message of a CNI error result (`{"code": n, "msg": "...", "details": "..."}`), if any. */
export function parseCniError(text: string): string | null {
  try {
    const parsed: unknown = JSON.parse(text);
    if (!isRecord(parsed) || typeof parsed.msg !== "string") return null;
    return typeof parsed.details === "string" && parsed.details !== "" ? `${parsed.msg}: ${parsed.details}` : parsed.msg;
  } catch {
    return null;
  }
}

export interface CniInvocation {
  pluginDirectory: string;
  command: "ADD" | "DEL";
  containerId: string;
  netnsPath: string;
  interfaceName: string;
  /** The plugin's network configuration (with name and cniVersion), sent on stdin. */
  config: Record<string, unknown>;
  signal?: AbortSignal;
}

/**
 * Runs one CNI plugin as the spec says: parameters in CNI_* variables, the configuration
 * on stdin, the result on stdout. Returns the parsed result for ADD and null for DEL.
 * Throws FailedPreconditionError with the plugin's own message when it fails.
 */
export async function invokeCniPlugin(invocation: CniInvocation): Promise<CniResult | null> {
  const type = invocation.config.type;
  if (typeof type !== "string" || !/^[a-z0-9-]+$/.test(type)) {
    throw new FailedPreconditionError(`invalid CNI plugin type ${JSON.stringify(type)}`);
  }
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
    CNI_COMMAND: invocation.command,
    CNI_CONTAINERID: invocation.containerId,
    CNI_NETNS: invocation.netnsPath,
    CNI_IFNAME: invocation.interfaceName,
    CNI_PATH: invocation.pluginDirectory,
  };
  const result = await runCommand(join(invocation.pluginDirectory, type), [], {
    env,
    input: JSON.stringify(invocation.config),
    ...(invocation.signal === undefined ? {} : { signal: invocation.signal }),
  });
  if (result.code !== 0) {
    const reason = parseCniError(result.stdout) ?? lastErrorLine(result.stderr);
    throw new FailedPreconditionError(`CNI ${type} ${invocation.command} failed: ${reason}`);
  }
  return invocation.command === "ADD" ? parseCniResult(result.stdout) : null;
}
