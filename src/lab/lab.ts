import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";

import type { ApiClient } from "../cli/client.js";
import { runCommand } from "../common/command.js";
import { systemClock, type Clock } from "../common/clock.js";
import { InvalidArgumentError, NotFoundError, UnavailableError, throwIfAborted } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import { removeLab } from "./cleanup.js";
import { buildLabDemoArchive, formLabSwarm, hostClient, listNodes, loadDemoImage, type LabNodeView } from "./cluster.js";
import { applyNetem, applyPartition, healHost, type PartitionOptions } from "./faults.js";
import { isProcessAlive, shoalPath, shoaldStopGraceMs, signalProcess, spawnShoald, waitProcessGone, waitShoaldAnswers } from "./host-process.js";
import { labBridgeName, labHostAddress, labHostNames, labNetnsName, labVethName, validateLabName, validateLabShape, type LabRole } from "./names.js";
import { createLabBridge, createLabHostNetwork, labHostNsenterArgs, pickLabSubnet } from "./network.js";
import { labHostsRootDefault, labStateDir, listLabNames, readLabState, writeLabState, type LabHostState, type LabState } from "./state.js";

/** A command run by `exec` that has not finished by then is killed. */
export const labExecTimeoutMsDefault = 120_000;
const killGoneTimeoutMs = 5_000;

/** One lab host as callers see it. */
export interface LabHost {
  readonly name: string;
  readonly role: LabRole;
  readonly address: string;
  readonly socket: string;
  readonly dataDir: string;
  readonly runDir: string;
  readonly logFile: string;
}

export interface LabUpOptions {
  readonly name: string;
  readonly managers: number;
  readonly workers: number;
  /** Parent of the lab's host dirs (default /var/lib/shoal-lab); the lab owns `DIR/NAME`. */
  readonly dir?: string;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly signal?: AbortSignal;
}

export interface LabExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface LabHostStatus {
  readonly name: string;
  readonly role: LabRole;
  readonly address: string;
  readonly process: "running" | "paused" | "down";
  /** The node's state as the leader (or any answering manager) sees it, or "unknown". */
  readonly node: string;
  readonly leader: boolean;
}

function publicHost(host: LabHostState): LabHost {
  return { name: host.name, role: host.role, address: host.address, socket: host.socket, dataDir: host.dataDir, runDir: host.runDir, logFile: host.logFile };
}

async function isPaused(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "T";
}

/**
 * A lab: several shoal hosts on one machine, each a network namespace on the lab's bridge
 * with its own address, hostname, directories and shoald. State lives in
 * /run/shoal-lab/NAME/state.json, so any process (the CLI, a test) can drive a lab another made.
 */
export class Lab {
  #state: LabState;
  readonly #logger: Logger;
  readonly #clock: Clock;

  private constructor(state: LabState, logger: Logger, clock: Clock) {
    this.#state = state;
    this.#logger = logger;
    this.#clock = clock;
  }

  /**
   * Creates the lab, starts every shoald, forms the swarm and waits until every node is ready.
   * A lab of the same name and shape whose daemons all answer is returned as is; anything
   * else under that name (another shape, a crashed run) is removed first.
   */
  static async up(options: LabUpOptions): Promise<Lab> {
    const name = validateLabName(options.name);
    validateLabShape(options.managers, options.workers);
    throwIfAborted(options.signal);
    const logger = options.logger.child({ component: "lab", lab: name });
    const clock = options.clock ?? systemClock;
    const existing = await readLabState(name).catch(() => undefined);
    if (existing !== undefined && existing.managers === options.managers && existing.workers === options.workers) {
      const lab = new Lab(existing, logger, clock);
      if (await lab.#allAnswer()) return lab;
    }
    await removeLab(name, { logger, clock });
    const state = await Lab.#plan(name, options);
    await writeLabState(state);
    const lab = new Lab(state, logger, clock);
    try {
      await lab.#build(options.signal);
    } catch (error) {
      // Leave nothing half made: the next `up` would have to clean it anyway.
      await removeLab(name, { logger, clock }).catch((cleanupError: unknown) => logger.error({ err: cleanupError }, "removing a failed lab failed"));
      throw error;
    }
    return lab;
  }

  /** Opens an existing lab. NotFoundError when there is none of that name. */
  static async open(name: string, options: { logger: Logger; clock?: Clock }): Promise<Lab> {
    const state = await readLabState(validateLabName(name));
    if (state === undefined) throw new NotFoundError(`there is no lab named "${name}": create it with \`lab up --name ${name}\``);
    return new Lab(state, options.logger.child({ component: "lab", lab: name }), options.clock ?? systemClock);
  }

  /** Removes a lab of that name, whatever state it is in (healthy, crashed, half made). */
  static async downByName(name: string, options: { logger: Logger; clock?: Clock }): Promise<void> {
    await removeLab(validateLabName(name), { logger: options.logger.child({ component: "lab", lab: name }), clock: options.clock ?? systemClock });
  }

  static async list(): Promise<string[]> {
    return await listLabNames();
  }

  static async #plan(name: string, options: LabUpOptions): Promise<LabState> {
    const { octet, subnet } = await pickLabSubnet(name, async (other) => (await readLabState(other).catch(() => undefined)) !== undefined);
    const hostsRoot = join(options.dir ?? labHostsRootDefault, name);
    const hosts = labHostNames(options.managers, options.workers).map(({ name: host, role }): LabHostState => {
      const dir = join(hostsRoot, host);
      return {
        name: host,
        role,
        address: labHostAddress(octet, host),
        netns: labNetnsName(name, host),
        veth: labVethName(name, host),
        utsFile: join(labStateDir(name), `${host}.uts`),
        dir,
        dataDir: join(dir, "data"),
        runDir: join(dir, "run"),
        socket: join(dir, "shoald.sock"),
        logFile: join(dir, "shoald.log"),
        pid: null,
      };
    });
    return { version: 1, name, bridge: labBridgeName(name), subnet, gateway: `${subnet.slice(0, -"0/24".length)}1`, hostsRoot, managers: options.managers, workers: options.workers, hosts };
  }

  async #build(signal: AbortSignal | undefined): Promise<void> {
    await mkdir(labStateDir(this.#state.name), { recursive: true, mode: 0o700 });
    await createLabBridge(this.#state);
    for (const host of this.#state.hosts) {
      await mkdir(host.dir, { recursive: true, mode: 0o700 });
      await createLabHostNetwork(this.#state, host);
    }
    for (const host of this.#state.hosts) await this.#startHost(host);
    const archive = await buildLabDemoArchive();
    await Promise.all(this.#state.hosts.map(async (host) => await loadDemoImage(host, archive, signal)));
    await formLabSwarm(this.#state.hosts, { clock: this.#clock, ...(signal === undefined ? {} : { signal }) });
    this.#logger.info({ subnet: this.#state.subnet, hosts: this.#state.hosts.length }, "lab is up");
  }

  async #allAnswer(): Promise<boolean> {
    for (const host of this.#state.hosts) {
      if (host.pid === null || !(await isProcessAlive(host.pid)) || (await isPaused(host.pid))) return false;
      const answered = await hostClient(host).json("GET", "/info", { signal: AbortSignal.timeout(2_000) }).then(() => true, () => false);
      if (!answered) return false;
    }
    return true;
  }

  get name(): string {
    return this.#state.name;
  }

  get subnet(): string {
    return this.#state.subnet;
  }

  /** The machine's own address on the lab bridge (hosts reach the machine there). */
  get gateway(): string {
    return this.#state.gateway;
  }

  get hosts(): readonly LabHost[] {
    return this.#state.hosts.map(publicHost);
  }

  /** NotFoundError for a name that is not one of this lab's hosts. */
  host(name: string): LabHost {
    return publicHost(this.#hostState(name));
  }

  #hostState(name: string): LabHostState {
    const host = this.#state.hosts.find((candidate) => candidate.name === name);
    if (host === undefined) throw new NotFoundError(`lab ${this.#state.name} has no host "${name}" (hosts: ${this.#state.hosts.map((item) => item.name).join(", ")})`);
    return host;
  }

  /** A REST client for the host's shoald, over its unix socket. */
  client(name: string): ApiClient {
    return hostClient(this.#hostState(name));
  }

  /**
   * Runs a command in the host's network and UTS namespaces with SHOAL_HOST and DOCKER_HOST
   * set to its daemon; a leading "shoal" runs this build's CLI. Never throws for a non-zero exit.
   */
  async exec(name: string, argv: readonly string[], options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<LabExecResult> {
    const host = this.#hostState(name);
    const [program, ...args] = argv;
    if (program === undefined) throw new InvalidArgumentError("exec needs a command to run");
    const command = program === "shoal" ? [process.execPath, shoalPath, ...args] : [program, ...args];
    const env = { ...process.env, SHOAL_HOST: `unix://${host.socket}`, DOCKER_HOST: `unix://${host.socket}` };
    return await runCommand("nsenter", [...labHostNsenterArgs(host), ...command], {
      env,
      timeoutMs: options.timeoutMs ?? labExecTimeoutMsDefault,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
  }

  /**
   * The nodes as one manager sees them: `from` names it, else the first manager that answers.
   * UnavailableError when none answers.
   */
  async nodes(options: { from?: string; signal?: AbortSignal } = {}): Promise<LabNodeView[]> {
    if (options.from !== undefined) return await listNodes(this.#hostState(options.from), options.signal === undefined ? {} : { signal: options.signal });
    let lastError: unknown;
    for (const host of await this.#answeringManagers()) {
      try {
        return await listNodes(host, options.signal === undefined ? {} : { signal: options.signal });
      } catch (error) {
        lastError = error;
      }
    }
    throw new UnavailableError("no lab manager answers: every one is down, paused or failing", { cause: lastError });
  }

  /**
   * The host name of the leader, as the answering managers report it. When they disagree
   * (an election in progress), the view of the majority wins; UnavailableError when no
   * majority of managers names the same leader.
   */
  async leader(options: { signal?: AbortSignal } = {}): Promise<string> {
    const votes = new Map<string, number>();
    for (const host of await this.#answeringManagers()) {
      const nodes = await listNodes(host, { ...options, timeoutMs: 2_000 }).catch(() => undefined);
      const leader = nodes?.find((node) => node.leader)?.hostname;
      if (leader !== undefined && leader !== "") votes.set(leader, (votes.get(leader) ?? 0) + 1);
    }
    const quorum = Math.floor(this.#state.managers / 2) + 1;
    const [winner] = [...votes.entries()].sort((a, b) => b[1] - a[1]);
    if (winner === undefined || winner[1] < quorum) {
      throw new UnavailableError(`no leader is named by a majority of managers (${quorum} of ${this.#state.managers}); votes: ${JSON.stringify(Object.fromEntries(votes))}`);
    }
    return winner[0];
  }

  async #answeringManagers(): Promise<LabHostState[]> {
    const managers: LabHostState[] = [];
    for (const host of this.#state.hosts) {
      if (host.role === "manager" && host.pid !== null && (await isProcessAlive(host.pid)) && !(await isPaused(host.pid))) managers.push(host);
    }
    return managers;
  }

  /** kill -9 of the host's shoald (its containers keep running, as on a real host whose daemon dies). */
  async kill(name: string): Promise<void> {
    const host = this.#hostState(name);
    if (host.pid !== null) {
      signalProcess(host.pid, "SIGKILL");
      signalProcess(host.pid, "SIGCONT");
      await waitProcessGone(host.pid, killGoneTimeoutMs, this.#clock);
    }
    await this.#setPid(host, null);
  }

  /** SIGTERM, then SIGKILL after a grace period. */
  async stop(name: string): Promise<void> {
    const host = this.#hostState(name);
    if (host.pid !== null) {
      signalProcess(host.pid, "SIGCONT");
      signalProcess(host.pid, "SIGTERM");
      if (!(await waitProcessGone(host.pid, shoaldStopGraceMs, this.#clock))) {
        signalProcess(host.pid, "SIGKILL");
        await waitProcessGone(host.pid, killGoneTimeoutMs, this.#clock);
      }
    }
    await this.#setPid(host, null);
  }

  /** Starts the host's shoald from its data dir if it is not running; resolves once it answers. */
  async start(name: string): Promise<void> {
    const host = this.#hostState(name);
    if (host.pid !== null && (await isProcessAlive(host.pid))) return;
    await this.#startHost(host);
  }

  /** SIGSTOP: the daemon freezes with its connections open, like a host that stalls. */
  async pause(name: string): Promise<void> {
    await this.#signalRunning(name, "SIGSTOP");
  }

  async resume(name: string): Promise<void> {
    await this.#signalRunning(name, "SIGCONT");
  }

  async #signalRunning(name: string, signal: NodeJS.Signals): Promise<void> {
    const host = this.#hostState(name);
    if (host.pid === null || !(await isProcessAlive(host.pid))) throw new UnavailableError(`shoald on ${name} is not running: \`lab start ${name}\` first`);
    signalProcess(host.pid, signal);
  }

  /** Cuts the first group off from the others (see PartitionOptions); replaces an earlier partition. */
  async partition(groups: readonly (readonly string[])[], options: PartitionOptions = {}): Promise<void> {
    const resolved = groups.map((group) => group.map((name) => this.#hostState(name)));
    await this.heal();
    await applyPartition(resolved, options);
    this.#logger.info({ groups, oneWay: options.oneWay === true }, "partitioned");
  }

  async heal(): Promise<void> {
    for (const host of this.#state.hosts) await healHost(host);
  }

  /** Delays every packet the host sends (tc netem on its eth0); 0 removes the delay. */
  async delay(name: string, delayMs: number): Promise<void> {
    await this.#netem(name, { delayMs });
  }

  /** Drops PERCENT of the packets the host sends; 0 stops dropping. */
  async loss(name: string, lossPercent: number): Promise<void> {
    await this.#netem(name, { lossPercent });
  }

  readonly #netemSettings = new Map<string, { delayMs: number; lossPercent: number }>();

  async #netem(name: string, change: { delayMs?: number; lossPercent?: number }): Promise<void> {
    const host = this.#hostState(name);
    const settings = { ...(this.#netemSettings.get(name) ?? { delayMs: 0, lossPercent: 0 }), ...change };
    await applyNetem(host, settings);
    this.#netemSettings.set(name, settings);
  }

  /** Per-host process and node state, for `lab status`. */
  async status(): Promise<LabHostStatus[]> {
    const nodes = await this.nodes().catch(() => []);
    const result: LabHostStatus[] = [];
    for (const host of this.#state.hosts) {
      const alive = host.pid !== null && (await isProcessAlive(host.pid));
      const paused = alive && host.pid !== null && (await isPaused(host.pid));
      const node = nodes.find((view) => view.hostname === host.name);
      result.push({ name: host.name, role: host.role, address: host.address, process: !alive ? "down" : paused ? "paused" : "running", node: node?.state ?? "unknown", leader: node?.leader ?? false });
    }
    return result;
  }

  /** Removes everything the lab made; safe to call twice. */
  async down(): Promise<void> {
    await removeLab(this.#state.name, { logger: this.#logger, clock: this.#clock });
  }

  async #startHost(host: LabHostState): Promise<void> {
    const pid = await spawnShoald(host);
    const updated = await this.#setPid(host, pid);
    await waitShoaldAnswers(updated, pid, { clock: this.#clock });
  }

  async #setPid(host: LabHostState, pid: number | null): Promise<LabHostState> {
    const updated = { ...host, pid };
    this.#state = { ...this.#state, hosts: this.#state.hosts.map((item) => (item.name === host.name ? updated : item)) };
    await writeLabState(this.#state);
    return updated;
  }
}
