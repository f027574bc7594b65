import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Whether the openssl CLI can be run here; tests that use it skip with this reason when not. */
export const opensslMissing: string | false = spawnSync("openssl", ["version"]).status === 0 ? false : "the openssl CLI is not installed";

/** Runs openssl with the given PEM files written to a temporary directory; returns stdout or throws with stderr. */
export function openssl(args: (files: Record<string, string>) => string[], pems: Record<string, string>): string {
  const directory = mkdtempSync(join(tmpdir(), "shoal-ca-openssl-"));
  try {
    const files: Record<string, string> = {};
    for (const [name, pem] of Object.entries(pems)) {
      files[name] = join(directory, `${name}.pem`);
      writeFileSync(files[name], pem);
    }
    const result = spawnSync("openssl", args(files), { encoding: "utf8" });
    if (result.status !== 0) throw new Error(`openssl ${args(files).join(" ")} failed: ${result.stderr}${result.stdout}`);
    return result.stdout;
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/** A clock fixed at `nowMs`; CA code only reads now(). */
export function fixedClock(nowMs: number): { now(): number; sleep(): Promise<void>; setTimer(): () => void } {
  return {
    now: () => nowMs,
    sleep: () => Promise.reject(new Error("the fixed clock does not sleep")),
    setTimer: () => {
      throw new Error("the fixed clock has no timers");
    },
  };
}
