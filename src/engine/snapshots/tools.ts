import { runCommand } from "../../common/command.js";
import { InternalError } from "../../common/errors.js";

/** Output kept from a failing tool, for the error message. */
const toolStderrBytesMax = 4096;

/**
 * Runs a host tool (mknod, mkfifo, setfattr) that does what Node cannot: there is no mknod or
 * xattr syscall binding in node:fs. Arguments go straight to execve, never through a shell.
 * Throws UnavailableError when the tool cannot start and InternalError when it fails.
 */
export async function runTool(command: string, args: readonly string[], options: { signal?: AbortSignal } = {}): Promise<void> {
  const result = await runCommand(command, args, options);
  if (result.code !== 0) {
    throw new InternalError(`${command} ${args.join(" ")} failed (exit ${result.code}): ${result.stderr.trim().slice(0, toolStderrBytesMax)}`);
  }
}
