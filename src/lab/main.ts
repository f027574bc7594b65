#!/usr/bin/env node
// `deploy/lab`: the lab CLI. Every command but `up` works on the state an earlier `up` left in
// /run/shoal-lab/NAME, so separate invocations (and tests) drive the same lab.
import { Command, InvalidArgumentError as CommanderArgumentError } from "commander";

import { errorMessage } from "../common/errors.js";
import { createLogger, type Logger } from "../common/logger.js";
import { parsePartitionGroups } from "./faults.js";
import { Lab } from "./lab.js";

const labNameDefault = "lab";

function wholeNumber(value: string): number {
  if (!/^\d+$/.test(value)) throw new CommanderArgumentError(`"${value}" is not a whole number`);
  return Number(value);
}

function decimal(value: string): number {
  const parsed = Number(value);
  if (value.trim() === "" || !Number.isFinite(parsed)) throw new CommanderArgumentError(`"${value}" is not a number`);
  return parsed;
}

function buildProgram(logger: Logger): Command {
  // --name is accepted before the subcommand (lab --name t1 status) and after it (lab up --name t1).
  const program = new Command("lab").description("A multi-host shoal lab on one machine (network namespaces on a bridge)")
    .option("--name <name>", "lab name (env SHOAL_LAB)", process.env["SHOAL_LAB"] ?? labNameDefault).enablePositionalOptions();
  let selected: string | undefined;
  program.hook("preAction", (_program, action) => {
    selected = action.opts<{ name?: string }>().name;
  });
  const name = (): string => selected ?? program.opts<{ name: string }>().name;
  const subcommand = (nameAndArgs: string): Command => program.command(nameAndArgs).option("--name <name>", "lab name");
  const open = async (): Promise<Lab> => await Lab.open(name(), { logger });
  subcommand("up").description("Create the lab and form its swarm (no-op when it already runs with this shape)")
    .option("--managers <n>", "managers (m1..mN)", wholeNumber, 3).option("--workers <n>", "workers (w1..wN)", wholeNumber, 3)
    .option("--dir <dir>", "parent of the host directories (default /var/lib/shoal-lab)")
    .action(async (options: { managers: number; workers: number; dir?: string }) => {
      const lab = await Lab.up({ name: name(), managers: options.managers, workers: options.workers, logger, ...(options.dir === undefined ? {} : { dir: options.dir }) });
      process.stdout.write(`lab ${lab.name} is up on ${lab.subnet}: ${lab.hosts.map((host) => `${host.name}=${host.address}`).join(" ")}\n`);
    });
  subcommand("status").description("Each host's address, daemon process and node state").action(async () => {
    const rows = await (await open()).status();
    process.stdout.write(`${["HOST", "ROLE", "ADDRESS", "PROCESS", "NODE", "LEADER"].join("\t")}\n`);
    for (const row of rows) process.stdout.write(`${[row.name, row.role, row.address, row.process, row.node, row.leader ? "*" : ""].join("\t")}\n`);
  });
  subcommand("exec").description("Run a command in a host's namespaces with SHOAL_HOST and DOCKER_HOST set").argument("<host>").argument("<command...>")
    .passThroughOptions()
    .action(async (host: string, command: string[]) => {
      const result = await (await open()).exec(host, command);
      process.stdout.write(result.stdout);
      process.stderr.write(result.stderr);
      process.exitCode = result.code;
    });
  for (const [verb, description] of [["kill", "kill -9 the host's shoald"], ["stop", "stop the host's shoald (SIGTERM)"], ["start", "start the host's shoald"], ["pause", "SIGSTOP the host's shoald"], ["resume", "SIGCONT the host's shoald"]] as const) {
    subcommand(verb).description(description).argument("<host>").action(async (host: string) => {
      await (await open())[verb](host);
    });
  }
  subcommand("partition").description("Cut host groups apart with nftables: lab partition m1,w1 / m2,m3,w2").argument("<groups...>")
    .option("--one-way", "only the first group's connections toward the others are cut")
    .action(async (words: string[], options: { oneWay?: boolean }) => {
      await (await open()).partition(parsePartitionGroups(words), { oneWay: options.oneWay === true });
    });
  subcommand("heal").description("Remove every partition").action(async () => {
    await (await open()).heal();
  });
  subcommand("delay").description("Delay the host's outgoing packets (tc netem); 0 removes it").argument("<host>").argument("<ms>", "milliseconds", decimal)
    .action(async (host: string, ms: number) => {
      await (await open()).delay(host, ms);
    });
  subcommand("loss").description("Drop a share of the host's outgoing packets (tc netem); 0 stops it").argument("<host>").argument("<percent>", "percent", decimal)
    .action(async (host: string, percent: number) => {
      await (await open()).loss(host, percent);
    });
  subcommand("down").description("Remove everything the lab made (safe after a crash)").action(async () => {
    await Lab.downByName(name(), { logger });
    process.stdout.write(`lab ${name()} is down\n`);
  });
  return program;
}

const logger = createLogger({ level: "info" });
try {
  await buildProgram(logger).parseAsync(process.argv);
} catch (error) {
  process.stderr.write(`lab: ${errorMessage(error)}\n`);
  process.exitCode = 1;
}
