import { runCommand, type CommandOptions, type CommandResult } from "../common/command.js";

/** A helper program (ip, nft, runc) that runs longer than this is killed: lab set-up must not hang. */
export const labCommandTimeoutMsDefault = 60_000;

/**
 * Runs a helper program with the lab's default timeout. A non-zero exit is a result, not an
 * exception, because most lab steps must tolerate "already gone".
 */
export function runLabCommand(file: string, args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  return runCommand(file, args, { timeoutMs: labCommandTimeoutMsDefault, ...options });
}
