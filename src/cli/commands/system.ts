import type { Command } from "commander";

import { shoalVersion, dockerApiVersion } from "../../common/version.js";
import type { CliContext } from "../context.js";
import { formatBytes, parseOutputFormat, writeJson } from "../output.js";
import { asArray, asRecord, booleanField, numberField, recordField, stringField, type JsonRecord } from "../parse.js";

function formatVersion(server: JsonRecord): string {
  const components = asArray(server.Components ?? [], "Components").map((component) => asRecord(component, "component"));
  const engine = components.find((component) => stringField(component, "Name") === "Engine");
  const details = engine === undefined ? {} : recordField(engine, "Details");
  const lines = [
    "Client:",
    ` Version:       ${shoalVersion}`,
    ` API version:   ${dockerApiVersion}`,
    ` Node version:  ${process.version}`,
    ` OS/Arch:       ${process.platform}/${process.arch}`,
    "",
    `Server: ${stringField(recordField(server, "Platform"), "Name")}`,
    " Engine:",
    `  Version:       ${stringField(server, "Version")}`,
    `  API version:   ${stringField(server, "ApiVersion")} (minimum version ${stringField(server, "MinAPIVersion")})`,
    `  Node version:  ${stringField(details, "NodeVersion")}`,
    `  OS/Arch:       ${stringField(server, "Os")}/${stringField(server, "Arch")}`,
    `  Kernel:        ${stringField(server, "KernelVersion")}`,
  ];
  for (const component of components) {
    const name = stringField(component, "Name");
    if (name !== "Engine") lines.push(` ${name}:`, `  Version:       ${stringField(component, "Version")}`);
  }
  return lines.join("\n") + "\n";
}

function formatInfo(info: JsonRecord): string {
  const swarm = recordField(info, "Swarm");
  const runtimes = Object.keys(recordField(info, "Runtimes"));
  const warnings = asArray(info.Warnings ?? [], "Warnings").map(String);
  const lines = [
    "Server:",
    ` Containers: ${numberField(info, "Containers")}`,
    `  Running: ${numberField(info, "ContainersRunning")}`,
    `  Paused: ${numberField(info, "ContainersPaused")}`,
    `  Stopped: ${numberField(info, "ContainersStopped")}`,
    ` Images: ${numberField(info, "Images")}`,
    ` Server Version: ${stringField(info, "ServerVersion")}`,
    ` Storage Driver: ${stringField(info, "Driver")}`,
    ` Cgroup Driver: ${stringField(info, "CgroupDriver")}`,
    ` Cgroup Version: ${stringField(info, "CgroupVersion")}`,
    ` Runtimes: ${runtimes.length === 0 ? "(none found: run deploy/setup-host.sh)" : runtimes.join(" ")}`,
    ` Default Runtime: ${stringField(info, "DefaultRuntime")}`,
    ` Swarm: ${stringField(swarm, "LocalNodeState")}`,
    ...(booleanField(swarm, "ControlAvailable") ? ["  Is Manager: true"] : []),
    ` Kernel Version: ${stringField(info, "KernelVersion")}`,
    ` Operating System: ${stringField(info, "OperatingSystem")}`,
    ` Architecture: ${stringField(info, "Architecture")}`,
    ` CPUs: ${numberField(info, "NCPU")}`,
    ` Total Memory: ${formatBytes(numberField(info, "MemTotal"))}`,
    ` Name: ${stringField(info, "Name")}`,
    ` ID: ${stringField(info, "ID")}`,
    ` Data Dir: ${stringField(info, "DockerRootDir")}`,
  ];
  return lines.join("\n") + "\n" + warnings.map((warning) => `WARNING: ${warning}\n`).join("");
}

export function registerSystemCommands(program: Command, context: CliContext): void {
  program
    .command("version")
    .description("Show the shoal client and daemon versions")
    .option("-f, --format <format>", "table or json", "table")
    .action(async (options: { format: string }) => {
      const format = parseOutputFormat(options.format);
      const server = await context.client().json("GET", "/version");
      if (format === "json") writeJson(context.out, server);
      else context.out.write(formatVersion(asRecord(server, "version")));
    });
  program
    .command("info")
    .description("Show system-wide information about the daemon")
    .option("-f, --format <format>", "table or json", "table")
    .action(async (options: { format: string }) => {
      const format = parseOutputFormat(options.format);
      const info = await context.client().json("GET", "/info");
      if (format === "json") writeJson(context.out, info);
      else context.out.write(formatInfo(asRecord(info, "info")));
    });
}
