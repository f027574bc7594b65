import { nodesText, type Filter } from "../filter.js";
import type { NodeInfo } from "../node-info.js";
import type { SchedulerTask } from "../types.js";

const architectureAliases: ReadonlyMap<string, string> = new Map([
  ["x86_64", "amd64"],
  ["x86-64", "amd64"],
  ["aarch64", "arm64"],
  ["armhf", "arm"],
  ["armv7l", "arm"],
  ["i386", "386"],
  ["i686", "386"],
]);

function normalizeArchitecture(architecture: string): string {
  const lower = architecture.toLowerCase();
  return architectureAliases.get(lower) ?? lower;
}

/** Nodes whose OS and architecture match one of the task's platforms (an empty field matches any). */
export class PlatformFilter implements Filter {
  #platforms: { os: string; architecture: string }[] = [];

  setTask(task: SchedulerTask): boolean {
    this.#platforms = task.spec.placement.platforms.map((platform) => ({
      os: platform.os.toLowerCase(),
      architecture: normalizeArchitecture(platform.architecture),
    }));
    return this.#platforms.length > 0;
  }

  check(node: NodeInfo): boolean {
    const platform = node.node.description?.platform;
    if (platform === undefined) return false;
    const os = platform.os.toLowerCase();
    const architecture = normalizeArchitecture(platform.architecture);
    return this.#platforms.some(
      (wanted) => (wanted.os === "" || wanted.os === os) && (wanted.architecture === "" || wanted.architecture === architecture),
    );
  }

  explain(nodeCount: number): string {
    return `unsupported platform on ${nodesText(nodeCount)}`;
  }
}
