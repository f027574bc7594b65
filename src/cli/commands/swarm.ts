import { Option, type Command } from "commander";

import { InvalidArgumentError } from "../../common/errors.js";
import type { CliContext } from "../context.js";
import { asRecord, booleanField, recordField, stringField } from "../parse.js";

const joinRoles = ["worker", "manager"] as const;
type JoinRole = (typeof joinRoles)[number];

function parseJoinRole(value: string): JoinRole {
  const role = joinRoles.find((candidate) => candidate === value);
  if (role === undefined) throw new InvalidArgumentError(`unknown role "${value}": use worker or manager`);
  return role;
}

/** Docker's join instructions for a role. */
export function joinCommandText(role: JoinRole, token: string, managerAddr: string): string {
  return `To add a ${role} to this swarm, run the following command:\n\n    shoal swarm join --token ${token} ${managerAddr}\n\n`;
}

/** The raft address of the manager the CLI talks to, for the join command it prints. */
async function localManagerAddr(context: CliContext): Promise<string> {
  const client = context.client();
  const info = asRecord(await client.json("GET", "/info"), "info");
  const nodeId = stringField(recordField(info, "Swarm"), "NodeID");
  if (nodeId === "") throw new Error("this node is not part of a swarm: run `shoal swarm init` or `shoal swarm join` first");
  const node = asRecord(await client.json("GET", `/nodes/${encodeURIComponent(nodeId)}`), "node");
  const addr = stringField(recordField(node, "ManagerStatus"), "Addr");
  if (addr === "") throw new Error(`node ${nodeId} has no manager address: run this on a manager`);
  return addr;
}

async function printJoinToken(context: CliContext, role: JoinRole, options: { rotate?: boolean; quiet?: boolean }): Promise<void> {
  const client = context.client();
  if (options.rotate === true) {
    const swarm = asRecord(await client.json("GET", "/swarm"), "swarm");
    const version = recordField(swarm, "Version")["Index"];
    const spec = recordField(swarm, "Spec");
    const query = { version: typeof version === "number" ? version : undefined, [role === "worker" ? "rotateWorkerToken" : "rotateManagerToken"]: true };
    await client.json("POST", "/swarm/update", { query, body: spec });
    if (options.quiet !== true) context.out.write(`Successfully rotated ${role} join token.\n\n`);
  }
  const swarm = asRecord(await client.json("GET", "/swarm"), "swarm");
  const token = stringField(recordField(swarm, "JoinTokens"), role === "worker" ? "Worker" : "Manager");
  if (options.quiet === true) {
    context.out.write(`${token}\n`);
    return;
  }
  context.out.write(joinCommandText(role, token, await localManagerAddr(context)));
}

interface InitOptions {
  listenAddr?: string;
  advertiseAddr?: string;
  forceNewCluster?: boolean;
  availability: string;
  taskHistoryLimit?: string;
  defaultAddrPool?: string;
}

/** The InitRequest body `swarm init` sends. */
export function swarmInitBody(options: InitOptions): Record<string, unknown> {
  const limit = options.taskHistoryLimit;
  if (limit !== undefined && !/^\d+$/u.test(limit)) throw new InvalidArgumentError(`--task-history-limit must be a whole number, not "${limit}"`);
  return {
    ListenAddr: options.listenAddr ?? "",
    AdvertiseAddr: options.advertiseAddr ?? "",
    ForceNewCluster: options.forceNewCluster === true,
    Availability: options.availability,
    Spec: limit === undefined ? {} : { Orchestration: { TaskHistoryRetentionLimit: Number(limit) } },
    ...(options.defaultAddrPool === undefined ? {} : { DefaultAddrPool: [options.defaultAddrPool] }),
  };
}

function availabilityOption(): Option {
  return new Option("--availability <state>", "availability of this node").choices(["active", "pause", "drain"]).default("active");
}

/** `shoal swarm init|join|join-token|leave`. */
export function registerSwarmCommands(program: Command, context: CliContext): void {
  const swarm = program.command("swarm").description("Manage the swarm (init, join, join-token, leave)");
  swarm
    .command("init")
    .description("Initialise a swarm with this node as its first manager")
    .option("--listen-addr <host:port>", "address for cluster traffic (default: the daemon's --listen-addr)")
    .option("--advertise-addr <host:port>", "address other nodes reach this one at")
    .option("--force-new-cluster", "start a new cluster from this manager's state")
    .option("--task-history-limit <n>", "terminal tasks kept per slot")
    .option("--default-addr-pool <cidr>", "address pool that overlay network subnets are cut from (default 10.240.0.0/12)")
    .addOption(availabilityOption())
    .action(async (options: InitOptions) => {
      const nodeId = await context.client().json("POST", "/swarm/init", { body: swarmInitBody(options) });
      context.out.write(`Swarm initialized: current node (${String(nodeId)}) is now a manager.\n\n`);
      await printJoinToken(context, "worker", {});
      context.out.write("To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the instructions.\n\n");
    });
  swarm
    .command("join")
    .description("Join a swarm as a worker or manager, depending on the token")
    .argument("<host:port>", "a manager's address")
    .requiredOption("--token <token>", "the join token (from `shoal swarm join-token`)")
    .option("--listen-addr <host:port>", "address for cluster traffic")
    .option("--advertise-addr <host:port>", "address other nodes reach this one at")
    .addOption(availabilityOption())
    .action(async (remote: string, options: { token: string; listenAddr?: string; advertiseAddr?: string; availability: string }) => {
      const body = { ListenAddr: options.listenAddr ?? "", AdvertiseAddr: options.advertiseAddr ?? "", RemoteAddrs: [remote], JoinToken: options.token, Availability: options.availability };
      await context.client().json("POST", "/swarm/join", { body });
      const info = asRecord(await context.client().json("GET", "/info"), "info");
      const manager = booleanField(recordField(info, "Swarm"), "ControlAvailable");
      context.out.write(`This node joined a swarm as a ${manager ? "manager" : "worker"}.\n`);
    });
  swarm
    .command("join-token")
    .description("Print (or rotate) the token that joins a node as a worker or manager")
    .argument("<role>", "worker or manager")
    .option("--rotate", "replace the token; the old one stops working")
    .option("-q, --quiet", "print the token only")
    .action((role: string, options: { rotate?: boolean; quiet?: boolean }) => printJoinToken(context, parseJoinRole(role), options));
  swarm
    .command("leave")
    .description("Leave the swarm")
    .option("-f, --force", "leave even as a manager (the swarm may lose its quorum)")
    .action(async (options: { force?: boolean }) => {
      await context.client().json("POST", "/swarm/leave", { query: { force: options.force === true ? 1 : undefined } });
      context.out.write("Node left the swarm.\n");
    });
}
