import { Option, type Command } from "commander";

import { InvalidArgumentError } from "../../common/errors.js";
import { DaemonResponseError } from "../client.js";
import type { CliContext } from "../context.js";
import { collect } from "../flags.js";
import { formatBytes, formatTable, writeJson } from "../output.js";
import { asArray, asRecord, booleanField, numberField, recordField, stringField, type JsonRecord } from "../parse.js";

/** `--filter key=value` flags as Docker's filters object ({"key":{"value":true}}). */
export function filtersObject(filters: readonly string[]): Record<string, Record<string, boolean>> {
  const out: Record<string, Record<string, boolean>> = {};
  for (const filter of filters) {
    const at = filter.indexOf("=");
    if (at <= 0) throw new InvalidArgumentError(`bad filter "${filter}": use --filter key=value`);
    (out[filter.slice(0, at)] ??= {})[filter.slice(at + 1)] = true;
  }
  return out;
}

/** `--filter key=value` flags as Docker's `filters` query parameter; undefined when there are none. */
export function filtersParam(filters: readonly string[]): string | undefined {
  return filters.length === 0 ? undefined : JSON.stringify(filtersObject(filters));
}

function capitalize(text: string): string {
  return text === "" ? text : text.charAt(0).toUpperCase() + text.slice(1);
}

/** Docker's MANAGER STATUS column: Leader, Reachable, Unreachable, or empty for workers. */
export function managerStatusText(node: JsonRecord): string {
  if (node["ManagerStatus"] === undefined || node["ManagerStatus"] === null) return "";
  const status = recordField(node, "ManagerStatus");
  return booleanField(status, "Leader") ? "Leader" : capitalize(stringField(status, "Reachability"));
}

/** `node ls` rows: ID (with " *" for the node the CLI talks to), HOSTNAME, STATUS, AVAILABILITY, MANAGER STATUS, ENGINE VERSION. */
export function formatNodeTable(nodes: readonly JsonRecord[], selfId: string): string {
  const rows = nodes.map((node) => {
    const id = stringField(node, "ID");
    const description = recordField(node, "Description");
    return [
      id === selfId ? `${id} *` : id,
      stringField(description, "Hostname"),
      capitalize(stringField(recordField(node, "Status"), "State")),
      capitalize(stringField(recordField(node, "Spec"), "Availability")),
      managerStatusText(node),
      stringField(recordField(description, "Engine"), "EngineVersion"),
    ];
  });
  return formatTable(["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS", "ENGINE VERSION"], rows);
}

function labelLines(labels: JsonRecord): string[] {
  const entries = Object.entries(labels);
  return entries.length === 0 ? [] : ["Labels:", ...entries.map(([key, value]) => ` - ${key}=${String(value)}`)];
}

/** `node inspect --pretty`. */
export function formatNodePretty(node: JsonRecord): string {
  const spec = recordField(node, "Spec");
  const status = recordField(node, "Status");
  const description = recordField(node, "Description");
  const platform = recordField(description, "Platform");
  const resources = recordField(description, "Resources");
  const manager = managerStatusText(node);
  const lines = [
    `ID:\t\t\t${stringField(node, "ID")}`,
    ...(stringField(spec, "Name") === "" ? [] : [`Name:\t\t\t${stringField(spec, "Name")}`]),
    ...labelLines(recordField(spec, "Labels")),
    `Hostname:\t\t${stringField(description, "Hostname")}`,
    `Joined at:\t\t${stringField(node, "CreatedAt")}`,
    "Status:",
    ` State:\t\t\t${capitalize(stringField(status, "State"))}`,
    ` Availability:\t\t${capitalize(stringField(spec, "Availability"))}`,
    ` Address:\t\t${stringField(status, "Addr")}`,
    ...(manager === "" ? [] : ["Manager Status:", ` Address:\t\t${stringField(recordField(node, "ManagerStatus"), "Addr")}`, ` Raft Status:\t\t${manager === "Leader" ? "Reachable" : manager}`, ` Leader:\t\t${manager === "Leader" ? "Yes" : "No"}`]),
    "Platform:",
    ` Operating System:\t${stringField(platform, "OS")}`,
    ` Architecture:\t\t${stringField(platform, "Architecture")}`,
    "Resources:",
    ` CPUs:\t\t\t${numberField(resources, "NanoCPUs") / 1e9}`,
    ` Memory:\t\t${formatBytes(numberField(resources, "MemoryBytes"))}`,
    `Engine Version:\t\t${stringField(recordField(description, "Engine"), "EngineVersion")}`,
  ];
  return lines.join("\n") + "\n";
}

export interface NodeUpdateOptions {
  availability?: string;
  role?: string;
  labelAdd: string[];
  labelRm: string[];
}

/** The node Spec `node update` sends: the current spec with the flags applied. */
export function updatedNodeSpec(current: JsonRecord, options: NodeUpdateOptions): Record<string, unknown> {
  const labels: Record<string, string> = {};
  for (const [key, value] of Object.entries(recordField(current, "Labels"))) labels[key] = String(value);
  for (const label of options.labelAdd) {
    const at = label.indexOf("=");
    if (at === 0) throw new InvalidArgumentError(`bad label "${label}": use key=value or key`);
    if (at < 0) labels[label] = "";
    else labels[label.slice(0, at)] = label.slice(at + 1);
  }
  for (const key of options.labelRm) {
    if (!(key in labels)) throw new InvalidArgumentError(`key ${key} doesn't exist in node's labels`);
    delete labels[key];
  }
  return {
    ...current,
    Labels: labels,
    ...(options.availability === undefined ? {} : { Availability: options.availability }),
    ...(options.role === undefined ? {} : { Role: options.role }),
  };
}

/** Read-modify-write rounds a node update may lose to the cluster's own writes before it gives up. */
export const nodeUpdateAttemptsMax = 5;

/**
 * Sets the fields `options` names on the node's spec. The cluster rewrites a node's status
 * (sessions, heartbeat failures, role changes) between our read and our write; since the
 * change only sets fields, a lost race (409) is retried on a fresh read.
 */
async function updateNode(context: CliContext, reference: string, options: NodeUpdateOptions): Promise<void> {
  const client = context.client();
  for (let attempt = 1; ; attempt += 1) {
    const node = asRecord(await client.json("GET", `/nodes/${encodeURIComponent(reference)}`), "node");
    const version = recordField(node, "Version")["Index"];
    const body = updatedNodeSpec(recordField(node, "Spec"), options);
    try {
      await client.json("POST", `/nodes/${encodeURIComponent(stringField(node, "ID"))}/update`, { query: { version: typeof version === "number" ? version : undefined }, body });
      return;
    } catch (error) {
      if (!(error instanceof DaemonResponseError && error.status === 409) || attempt >= nodeUpdateAttemptsMax) throw error;
    }
  }
}

async function eachNode(context: CliContext, references: readonly string[], act: (reference: string) => Promise<string>): Promise<void> {
  const failures: string[] = [];
  for (const reference of references) {
    try {
      context.out.write(`${await act(reference)}\n`);
    } catch (error) {
      failures.push(error instanceof Error ? error.message : String(error));
    }
  }
  if (failures.length > 0) throw new Error(failures.join("\n"));
}

async function selfNodeId(context: CliContext): Promise<string> {
  const info = asRecord(await context.client().json("GET", "/info"), "info");
  return stringField(recordField(info, "Swarm"), "NodeID");
}

/** `shoal node ls|inspect|update|promote|demote|rm`. */
export function registerNodeCommands(program: Command, context: CliContext): void {
  const node = program.command("node").description("Manage swarm nodes");
  node
    .command("ls")
    .description("List the swarm's nodes")
    .option("-q, --quiet", "only ids")
    .option("-f, --filter <key=value>", "filter: id, label, membership, name, node.label, role (repeatable)", collect, [])
    .action(async (options: { quiet?: boolean; filter: string[] }) => {
      const list = asArray(await context.client().json("GET", "/nodes", { query: { filters: filtersParam(options.filter) } }), "node list").map((item) => asRecord(item, "node"));
      if (options.quiet === true) context.out.write(list.map((item) => `${stringField(item, "ID")}\n`).join(""));
      else context.out.write(formatNodeTable(list, await selfNodeId(context)));
    });
  node
    .command("inspect")
    .description("Show nodes in detail (self = this node)")
    .argument("<nodes...>")
    .option("--pretty", "human-readable instead of JSON")
    .action(async (references: string[], options: { pretty?: boolean }) => {
      const self = references.includes("self") ? await selfNodeId(context) : "";
      const nodes: JsonRecord[] = [];
      for (const reference of references) nodes.push(asRecord(await context.client().json("GET", `/nodes/${encodeURIComponent(reference === "self" ? self : reference)}`), "node"));
      if (options.pretty === true) context.out.write(nodes.map(formatNodePretty).join("\n"));
      else writeJson(context.out, nodes);
    });
  node
    .command("update")
    .description("Change a node's availability, role or labels")
    .argument("<node>")
    .addOption(new Option("--availability <state>", "active, pause or drain").choices(["active", "pause", "drain"]))
    .addOption(new Option("--role <role>", "worker or manager").choices(["worker", "manager"]))
    .option("--label-add <key=value>", "add or change a label (repeatable)", collect, [])
    .option("--label-rm <key>", "remove a label (repeatable)", collect, [])
    .action(async (reference: string, options: NodeUpdateOptions) => {
      await updateNode(context, reference, options);
      context.out.write(`${reference}\n`);
    });
  node.command("promote").description("Make nodes managers").argument("<nodes...>")
    .action((references: string[]) => eachNode(context, references, async (reference) => {
      await updateNode(context, reference, { role: "manager", labelAdd: [], labelRm: [] });
      return `Node ${reference} promoted to a manager in the swarm.`;
    }));
  node.command("demote").description("Make managers workers").argument("<nodes...>")
    .action((references: string[]) => eachNode(context, references, async (reference) => {
      await updateNode(context, reference, { role: "worker", labelAdd: [], labelRm: [] });
      return `Manager ${reference} demoted in the swarm.`;
    }));
  node.command("rm").description("Remove nodes from the swarm").argument("<nodes...>")
    .option("-f, --force", "remove a node that is not down")
    .action((references: string[], options: { force?: boolean }) => eachNode(context, references, async (reference) => {
      await context.client().json("DELETE", `/nodes/${encodeURIComponent(reference)}`, { query: { force: options.force === true ? 1 : undefined } });
      return reference;
    }));
}
