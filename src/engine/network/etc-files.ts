import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { basename, join } from "node:path";

import type { OciMount } from "../runtime/spec/types.js";

/** Public resolvers used when the host only lists loopback ones (unreachable from a netns). */
export const fallbackNameservers: readonly string[] = ["8.8.8.8", "8.8.4.4"];
/** Largest host /etc/resolv.conf read. */
export const resolvConfBytesMax = 64 * 1024;

function isLoopbackNameserver(line: string): boolean {
  const match = /^\s*nameserver\s+(\S+)/.exec(line);
  if (match === null) return false;
  const address = match[1] ?? "";
  return address.startsWith("127.") || address === "::1";
}

/**
 * The container's resolv.conf: the host's, minus loopback resolvers when the container has
 * its own network namespace (they would point at the container itself).
 */
export function containerResolvConf(hostText: string, ownNamespace: boolean): string {
  if (!ownNamespace) return hostText;
  const lines = hostText.split("\n").filter((line) => !isLoopbackNameserver(line));
  if (!lines.some((line) => /^\s*nameserver\s/.test(line))) {
    lines.push(...fallbackNameservers.map((address) => `nameserver ${address}`));
  }
  return `${lines.filter((line) => line !== "").join("\n")}\n`;
}

export function containerHosts(hostname: string, address: string | null): string {
  const lines = [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
  ];
  if (address !== null) lines.push(`${address}\t${hostname}`);
  return `${lines.join("\n")}\n`;
}

/** Synchronous for the reason the image's passwd is (rootfs-file.ts): a small read at every start. */
function readHostResolvConf(): string {
  try {
    const text = readFileSync("/etc/resolv.conf", "utf8");
    return text.length > resolvConfBytesMax ? text.slice(0, resolvConfBytesMax) : text;
  } catch {
    // A host without resolv.conf: containers get the fallback resolvers.
    return "";
  }
}

/** The files of /etc every container gets from the engine (writeContainerEtcFiles), as paths under the rootfs. */
export const containerEtcFiles = ["etc/hosts", "etc/hostname", "etc/resolv.conf"] as const;

function bindFile(source: string, destination: string): OciMount {
  return { destination, type: "bind", source, options: ["rbind", "rprivate", "nosuid", "nodev", "noexec"] };
}

/**
 * Writes /etc/hosts, /etc/hostname and /etc/resolv.conf for one container into
 * `directory` and returns the bind mounts that place them in the container.
 */
export async function writeContainerEtcFiles(options: {
  directory: string;
  hostname: string;
  address: string | null;
  ownNetworkNamespace: boolean;
}): Promise<OciMount[]> {
  const contents: Record<(typeof containerEtcFiles)[number], string> = {
    "etc/hosts": containerHosts(options.hostname, options.address),
    "etc/hostname": `${options.hostname}\n`,
    "etc/resolv.conf": containerResolvConf(readHostResolvConf(), options.ownNetworkNamespace),
  };
  return await Promise.all(
    containerEtcFiles.map(async (file) => {
      const source = join(options.directory, basename(file));
      await writeFile(source, contents[file]);
      return bindFile(source, `/${file}`);
    }),
  );
}
