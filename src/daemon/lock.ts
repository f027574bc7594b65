import { readFile, rm, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { join } from "node:path";

import { FailedPreconditionError, systemErrorCode } from "../common/errors.js";

/** A held data-dir lock; release it once, on shutdown. */
export interface DataDirLock {
  readonly path: string;
  release(): Promise<void>;
}

/** The start time of a process in clock ticks since boot, which tells a reused pid apart. */
function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Field 22; the command name (field 2) may hold spaces, so count from its closing ")".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined; // no such process
  }
}

function parseLockText(text: string): { pid: number; start: string } | undefined {
  const match = /^(\d+) (\d+)\n?$/.exec(text);
  if (match === null) return undefined;
  return { pid: Number(match[1]), start: match[2] ?? "" };
}

/**
 * Takes `<dataDir>/shoald.lock` so that two daemons never share a data dir. The file holds
 * the owner's pid and start time; a lock whose owner is gone (a daemon killed with -9) is
 * taken over, and a live owner makes this fail with a message naming its pid.
 */
export async function acquireDataDirLock(dataDir: string): Promise<DataDirLock> {
  const path = join(dataDir, "shoald.lock");
  const ownStart = processStartTime(process.pid);
  const text = `${process.pid} ${ownStart ?? "0"}\n`;
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      await writeFile(path, text, { flag: "wx", mode: 0o600 });
      return {
        path,
        async release() {
          await rm(path, { force: true });
        },
      };
    } catch (error) {
      if (systemErrorCode(error) !== "EEXIST") throw error;
    }
    const owner = parseLockText(await readFile(path, "utf8").catch(() => ""));
    if (owner !== undefined && owner.pid !== process.pid && processStartTime(owner.pid) === owner.start) {
      throw new FailedPreconditionError(
        `data dir ${dataDir} is in use by shoald pid ${owner.pid}: stop it, or give this daemon its own --data-dir`,
      );
    }
    // The owner is gone (or the file is garbage from a crash while writing it).
    await rm(path, { force: true });
  }
  throw new FailedPreconditionError(`could not take the lock ${path}: another daemon is starting on the same data dir`);
}
