import type { Writable } from "node:stream";

import { Command, CommanderError } from "commander";

import { errorMessage } from "../common/errors.js";
import { shoalVersion } from "../common/version.js";
import { DaemonResponseError } from "./client.js";
import { registerContainerCommands } from "./commands/container.js";
import { registerImageCommands } from "./commands/image.js";
import { registerNetworkCommands } from "./commands/network.js";
import { registerNodeCommands } from "./commands/node.js";
import { registerServiceCommands } from "./commands/service.js";
import { registerSwarmCommands } from "./commands/swarm.js";
import { registerSystemCommands } from "./commands/system.js";
import { createCliContext } from "./context.js";

/** Command groups still to come: invoking one says plainly that it is not there yet. */
const plannedGroups = [{ name: "stack", description: "Manage stacks of services" }] as const;

export interface CliOptions {
  env: Readonly<Record<string, string | undefined>>;
  out: Writable;
  err: Writable;
}

export function buildProgram(options: CliOptions, setExitCode: (code: number) => void = () => undefined): Command {
  const program = new Command("shoal")
    .description("Drive a shoal cluster: nodes, services and containers.")
    .version(shoalVersion, "-v, --version", "print the client version")
    .option("-H, --host <host>", "daemon socket (unix:///path or tcp://host:port); env SHOAL_HOST")
    .enablePositionalOptions()
    .showHelpAfterError()
    .exitOverride();
  const context = createCliContext({
    host: () => program.opts<{ host?: string }>().host,
    env: options.env,
    out: options.out,
    err: options.err,
  });
  registerSystemCommands(program, context);
  registerContainerCommands(program, context, setExitCode);
  registerImageCommands(program, context);
  registerSwarmCommands(program, context);
  registerNodeCommands(program, context);
  registerServiceCommands(program, context);
  registerNetworkCommands(program, context);
  for (const group of plannedGroups) {
    program
      .command(group.name)
      .description(`${group.description} (not in this release yet)`)
      .action(() => {
        throw new Error(`"shoal ${group.name}" has no commands in shoal ${shoalVersion} yet`);
      });
  }
  return program;
}

/** Runs the CLI and returns the process exit code. */
export async function runCli(argv: readonly string[], options: CliOptions): Promise<number> {
  let exitCode = 0;
  const program = buildProgram(options, (code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync(argv, { from: "user" });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    const message = error instanceof DaemonResponseError ? `Error response from daemon: ${error.message}` : `Error: ${errorMessage(error)}`;
    options.err.write(`${message}\n`);
    return 1;
  }
}
