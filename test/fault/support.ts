// Shared by the fault tests: one lab per test file, in a temporary directory.
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { createLogger } from "../../src/common/logger.js";
import { Lab } from "../../src/lab/index.js";

export const faultLogger = createLogger({ level: "warn", pretty: false });

export const labSkipReason: string | false = process.getuid?.() !== 0 ? "needs root (network namespaces, nftables, mounts, cgroups)" : false;

export interface TestLab {
  readonly lab: Lab;
  close(): Promise<void>;
}

/** Brings a lab up in a temporary directory; close() removes both. */
export async function startTestLab(name: string, shape: { managers: number; workers: number }): Promise<TestLab> {
  const dir = await mkdtemp(join(tmpdir(), "shoal-fault-"));
  try {
    const lab = await Lab.up({ name, ...shape, dir, logger: faultLogger });
    return {
      lab,
      async close() {
        // SHOAL_LAB_KEEP_LOGS=DIR keeps every host's shoald log (DIR/LAB-HOST.log) for a post-mortem.
        const keep = process.env["SHOAL_LAB_KEEP_LOGS"];
        if (keep !== undefined && keep !== "") {
          await mkdir(keep, { recursive: true });
          for (const host of lab.hosts) await copyFile(host.logFile, join(keep, `${name}-${host.name}.log`)).catch(() => undefined);
        }
        await Lab.downByName(name, { logger: faultLogger });
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await Lab.downByName(name, { logger: faultLogger }).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
