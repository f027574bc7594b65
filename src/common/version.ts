import { readFileSync } from "node:fs";

/** The Docker Engine API version whose shapes the REST API follows. */
export const dockerApiVersion = "1.47";
/** The oldest Docker Engine API version clients may negotiate down to. */
export const dockerMinApiVersion = "1.24";

function readPackageVersion(): string {
  // dist/src/common/version.js -> package.json at the repository (or install) root.
  const text = readFileSync(new URL("../../../package.json", import.meta.url), "utf8");
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed === "object" && parsed !== null && "version" in parsed) {
    const { version } = parsed;
    if (typeof version === "string") return version;
  }
  throw new Error("package.json has no version string");
}

export const shoalVersion: string = readPackageVersion();
