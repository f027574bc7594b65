import { randomBytes } from "node:crypto";
import { readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { FailedPreconditionError, systemErrorCode } from "../common/errors.js";

const nodeIdPattern = /^[a-z0-9]{25}$/;

/** A swarm-style node id: 25 characters of base 36 from 128 random bits. */
export function newNodeId(): string {
  const value = BigInt(`0x${randomBytes(16).toString("hex")}`);
  return value.toString(36).padStart(25, "0").slice(-25);
}

/** The node's id, made on first start and kept in the data dir for its whole life. */
export async function loadOrCreateNodeId(dataDir: string): Promise<string> {
  const path = join(dataDir, "node-id");
  const existing = await readFile(path, "utf8").catch((error: unknown) => {
    if (systemErrorCode(error) === "ENOENT") return undefined;
    throw error;
  });
  if (existing !== undefined) {
    const id = existing.trim();
    if (!nodeIdPattern.test(id)) {
      throw new FailedPreconditionError(`${path} does not hold a node id (25 characters a-z0-9): restore it or remove the data dir`);
    }
    return id;
  }
  const id = newNodeId();
  await writeFile(`${path}.tmp`, `${id}\n`, { mode: 0o600 });
  await rename(`${path}.tmp`, path);
  return id;
}
