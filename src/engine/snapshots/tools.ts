import { spawn } from "node:child_process";

import { InternalError, UnavailableError } from "../../common/errors.js";

/** Output kept from a failing tool, for the error message. */
const toolStderrBytesMax = 4096;

/**
 * Runs a host tool (mknod, mkfifo, setfattr) that does what Node cannot: there is no mknod or
 * xattr syscall binding in node:fs. Arguments go straight to execve, never through a shell.
 */
export function runTool(command: string, args: readonly string[], options: { signal?: AbortSignal } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ["ignore", "ignore", "pipe"],
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (text: string) => {
      if (stderr.length < toolStderrBytesMax) stderr += text.slice(0, toolStderrBytesMax - stderr.length);
    });
    child.once("error", (error) => {
      reject(new UnavailableError(`cannot run ${command}: ${error.message} (is it installed?)`, { cause: error }));
    });
    child.once("close", (code, signal) => {
      if (code === 0) resolve();
      else reject(new InternalError(`${command} ${args.join(" ")} failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`));
    });
  });
}
