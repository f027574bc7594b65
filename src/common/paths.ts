import { fileURLToPath } from "node:url";

/**
 * The folder that holds package.json and proto/, found from this module's compiled place
 * (dist/src/common/paths.js), so the daemon works from a checkout and from an install.
 */
export const packageRoot: string = fileURLToPath(new URL("../../../", import.meta.url));
