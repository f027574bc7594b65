import { readFileSync } from "node:fs";
import { join } from "node:path";

import { packageRoot } from "./paths.js";

/** The Docker Engine API version whose shapes the REST API follows. */
export const dockerApiVersion = "1.47";
/** The oldest Docker Engine API version clients may negotiate down to. */
export const dockerMinApiVersion = "1.24";

function readPackageVersion(): string {
  const parsed: unknown = JSON.parse(readFileSync(join(packageRoot, "package.json"), "utf8"));
  if (typeof parsed === "object" && parsed !== null && "version" in parsed) {
    const { version } = parsed;
    if (typeof version === "string") return version;
  }
  throw new Error("package.json has no version string");
}

export const shoalVersion: string = readPackageVersion();
