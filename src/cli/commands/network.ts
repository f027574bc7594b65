import { Option, type Command } from "commander";

import { InvalidArgumentError } from "../../common/errors.js";
import type { CliContext } from "../context.js";
import { collect } from "../flags.js";
import { formatTable, writeJson } from "../output.js";
import { asArray, asRecord, recordField, stringField, type JsonRecord } from "../parse.js";
import { filtersParam } from "./node.js";

/** `network ls` rows: NETWORK ID, NAME, DRIVER, SCOPE, SUBNET. */
export function formatNetworkTable(networks: readonly JsonRecord[]): string {
  const rows = networks.map((network) => {
    const [config] = asArray(recordField(network, "IPAM")["Config"] ?? [], "IPAM.Config");
    const subnet = config === undefined ? "" : stringField(asRecord(config, "IPAM.Config[0]"), "Subnet");
    return [stringField(network, "Id").slice(0, 12), stringField(network, "Name"), stringField(network, "Driver"), stringField(network, "Scope"), subnet];
  });
  return formatTable(["NETWORK ID", "NAME", "DRIVER", "SCOPE", "SUBNET"], rows);
}

function labelsObject(labels: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const label of labels) {
    const at = label.indexOf("=");
    if (at === 0) throw new InvalidArgumentError(`bad label "${label}": use key=value or key`);
    if (at < 0) out[label] = "";
    else out[label.slice(0, at)] = label.slice(at + 1);
  }
  return out;
}

/** `shoal network create|ls|inspect|rm`. */
export function registerNetworkCommands(program: Command, context: CliContext): void {
  const network = program.command("network").description("Manage cluster networks");
  network
    .command("create")
    .description("Create an overlay network for services")
    .argument("<name>")
    .addOption(new Option("-d, --driver <driver>", "network driver").choices(["overlay"]).default("overlay"))
    .option("--label <key=value>", "set a label (repeatable)", collect, [])
    .action(async (name: string, options: { driver: string; label: string[] }) => {
      const created = asRecord(await context.client().json("POST", "/networks/create", { body: { Name: name, Driver: options.driver, Labels: labelsObject(options.label) } }), "network");
      context.out.write(`${stringField(created, "Id")}\n`);
    });
  network
    .command("ls")
    .description("List networks")
    .option("-q, --quiet", "only ids")
    .option("-f, --filter <key=value>", "filter: driver, id, name, scope (repeatable)", collect, [])
    .action(async (options: { quiet?: boolean; filter: string[] }) => {
      const list = asArray(await context.client().json("GET", "/networks", { query: { filters: filtersParam(options.filter) } }), "network list").map((item) => asRecord(item, "network"));
      if (options.quiet === true) context.out.write(list.map((item) => `${stringField(item, "Id")}\n`).join(""));
      else context.out.write(formatNetworkTable(list));
    });
  network
    .command("inspect")
    .description("Show networks in detail")
    .argument("<networks...>")
    .action(async (references: string[]) => {
      const found: JsonRecord[] = [];
      for (const reference of references) found.push(asRecord(await context.client().json("GET", `/networks/${encodeURIComponent(reference)}`), "network"));
      writeJson(context.out, found);
    });
  network
    .command("rm")
    .description("Remove networks no service uses")
    .argument("<networks...>")
    .action(async (references: string[]) => {
      const failures: string[] = [];
      for (const reference of references) {
        try {
          await context.client().json("DELETE", `/networks/${encodeURIComponent(reference)}`);
          context.out.write(`${reference}\n`);
        } catch (error) {
          failures.push(error instanceof Error ? error.message : String(error));
        }
      }
      if (failures.length > 0) throw new Error(failures.join("\n"));
    });
}
