// The deterministic cluster simulator (after etcd's raft_test.go network and TigerBeetle's
// VOPR): 3 or 5 RawNodes in one process, a fake network and fake disks, crashes, restarts,
// partitions, membership changes and leader transfers, every choice drawn from one seeded
// PRNG. The invariants are checked as the run goes; at the end the cluster is healed and
// must converge with every acknowledged write applied and a linearizable history.
import type { RaftLogger } from "../../src/raft/core/raft.js";
import type { ConfState, Entry, Message, NodeId, Snapshot } from "../../src/raft/core/types.js";
import { SimDisk } from "./disk.js";
import { checkLinearizable, type Operation } from "./linearizability.js";
import { SimNode, encodeKv, entryFingerprint, type NodeObserver } from "./node.js";
import { Prng } from "./prng.js";

export interface SimulationOptions {
  readonly seed: number;
  readonly size: 3 | 5;
  /** Simulated milliseconds of faults and load before healing. */
  readonly durationMs?: number;
  /** Receives a line per fault and per raft log record (SIM_TRACE=1 prints them). */
  readonly trace?: (line: string) => void;
}

export interface SimulationReport {
  readonly seed: number;
  readonly acknowledgedPuts: number;
  readonly answeredGets: number;
  readonly leaderElections: number;
  readonly crashes: number;
  readonly confChanges: number;
  readonly finalCommit: number;
}

export class SimulationError extends Error {
  override readonly name = "SimulationError";
}

const tickIntervalMs = 10;
const healTimeoutMs = 20_000;
const clientTimeoutMs = 400;
const keys = ["a", "b", "c"];
const silentLogger: RaftLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined };

interface Faults {
  readonly dropRate: number;
  readonly duplicateRate: number;
  readonly maxDelayMs: number;
  readonly crashRatePerMs: number;
  readonly tornWriteRate: number;
  readonly partitionRatePerMs: number;
  readonly confChangeRatePerMs: number;
  readonly transferRatePerMs: number;
}

interface ClientState {
  readonly id: number;
  counter: number;
  /** The node the client talks to until it fails it: possibly a deposed leader. */
  node: NodeId | null;
  waiting: { readonly requestId: string; readonly operation: number; readonly deadline: number; readonly node: NodeId } | null;
}

interface MutableOperation {
  client: number;
  kind: "put" | "get";
  key: string;
  value: string | null;
  invokedAt: number;
  returnedAt: number | null;
}

export class Simulation implements NodeObserver {
  readonly seed: number;
  readonly prng: Prng;
  readonly nodes = new Map<NodeId, SimNode>();
  readonly removedIds = new Set<NodeId>();
  time = 0;
  readonly #faults: Faults;
  readonly #preVote: boolean;
  readonly #checkQuorum: boolean;
  readonly #bootstrap: Snapshot;
  readonly #inFlight = new Map<number, Message[]>();
  /** Directed links that drop everything: "from->to". */
  #blocked = new Set<string>();
  #partitionEndsAt = 0;
  #nextNodeId: NodeId;
  readonly #downUntil = new Map<NodeId, number>();
  readonly #leaders = new Map<number, NodeId>();
  readonly #entriesByPosition = new Map<string, { fingerprint: string; previousTerm: number }>();
  readonly #appliedByIndex = new Map<number, string>();
  readonly #committedTerms: number[] = [0];
  readonly #operations: MutableOperation[] = [];
  readonly #operationByRequest = new Map<string, number>();
  readonly #acknowledged = new Set<string>();
  readonly #clients: ClientState[] = [];
  #healing = false;
  readonly #trace: ((line: string) => void) | null;
  #stats = { elections: 0, crashes: 0, confChanges: 0 };

  constructor(options: SimulationOptions) {
    this.seed = options.seed;
    this.#trace = options.trace ?? null;
    this.prng = new Prng(options.seed);
    const prng = this.prng;
    this.#faults = {
      dropRate: prng.pick([0, 0.01, 0.05, 0.15]),
      duplicateRate: prng.pick([0, 0.01, 0.05]),
      maxDelayMs: prng.pick([2, 8, 25]),
      crashRatePerMs: prng.pick([0, 0.0005, 0.002]),
      tornWriteRate: prng.pick([0, 0.02]),
      partitionRatePerMs: prng.pick([0, 0.001, 0.003]),
      confChangeRatePerMs: prng.pick([0, 0.001, 0.004]),
      transferRatePerMs: prng.pick([0, 0.001]),
    };
    this.#preVote = prng.chance(0.7);
    this.#checkQuorum = prng.chance(0.7);
    const voters = Array.from({ length: options.size }, (_, index) => index + 1);
    this.#nextNodeId = options.size + 1;
    // The cluster starts from a snapshot at index 1 that holds the first configuration, so
    // a member added later learns the whole membership from the snapshot it is sent.
    const confState: ConfState = { voters, learners: [], removed: [] };
    this.#bootstrap = {
      metadata: { index: 1, term: 1, confState },
      data: encodeKv({ values: new Map(), applied: new Set() }),
    };
    this.#committedTerms.push(1);
    for (const id of voters) this.#startNode(id, new SimDisk(this.#bootstrap));
    for (let client = 0; client < 3; client += 1) this.#clients.push({ id: client, counter: 0, node: null, waiting: null });
  }

  // ---- NodeObserver --------------------------------------------------------------------

  now(): number {
    return this.time;
  }

  send(message: Message): void {
    if (this.#healing) {
      this.#schedule(message);
      return;
    }
    if (this.#blocked.has(`${message.from}->${message.to}`) || this.prng.chance(this.#faults.dropRate)) {
      this.#dropped(message);
      return;
    }
    this.#schedule(message);
    if (this.prng.chance(this.#faults.duplicateRate)) this.#schedule(message);
  }

  #schedule(message: Message): void {
    const at = this.time + this.prng.between(1, this.#faults.maxDelayMs);
    const bucket = this.#inFlight.get(at);
    if (bucket === undefined) this.#inFlight.set(at, [message]);
    else bucket.push(message);
  }

  #dropped(message: Message): void {
    const sender = this.nodes.get(message.from);
    if (sender === undefined || !sender.alive) return;
    if (message.type === "snap") sender.raw.reportSnapshot(message.to, "failure");
    else if (this.prng.chance(0.1)) sender.raw.reportUnreachable(message.to);
  }

  persisted(node: SimNode, entries: readonly Entry[]): void {
    for (const entry of entries) {
      const previousTerm = entry.index - 1 >= node.storage.firstIndex() - 1 ? node.storage.term(entry.index - 1) : -1;
      const position = `${entry.index}:${entry.term}`;
      const fingerprint = entryFingerprint(entry);
      const known = this.#entriesByPosition.get(position);
      if (known === undefined) {
        this.#entriesByPosition.set(position, { fingerprint, previousTerm });
        continue;
      }
      if (known.fingerprint !== fingerprint) this.fail(`log matching: node ${node.id} holds a different entry at ${position}`);
      if (previousTerm !== -1 && known.previousTerm !== -1 && known.previousTerm !== previousTerm) {
        this.fail(`log matching: node ${node.id} has term ${previousTerm} before ${position}, others ${known.previousTerm}`);
      }
    }
  }

  committed(node: SimNode, commit: number): void {
    for (let index = this.#committedTerms.length; index <= commit; index += 1) {
      this.#committedTerms.push(node.storage.term(index));
    }
    const from = Math.max(node.storage.firstIndex(), 1);
    for (let index = Math.max(from, commit - 5); index <= commit; index += 1) {
      if (node.storage.term(index) !== this.#committedTerms[index]) {
        this.fail(`node ${node.id} committed term ${node.storage.term(index)} at ${index}; ${this.#committedTerms[index]} was committed`);
      }
    }
  }

  applied(node: SimNode, entry: Entry): void {
    const fingerprint = `${entry.term}:${entryFingerprint(entry)}`;
    const known = this.#appliedByIndex.get(entry.index);
    if (known === undefined) this.#appliedByIndex.set(entry.index, fingerprint);
    else if (known !== fingerprint) this.fail(`state machine safety: node ${node.id} applied a different entry at ${entry.index}`);
  }

  becameLeader(node: SimNode, term: number): void {
    this.#stats.elections += 1;
    const previous = this.#leaders.get(term);
    if (previous !== undefined && previous !== node.id) this.fail(`election safety: nodes ${previous} and ${node.id} led term ${term}`);
    this.#leaders.set(term, node.id);
    // Leader completeness: the new leader holds every entry known to be committed.
    const lastCommitted = this.#committedTerms.length - 1;
    if (node.storage.lastIndex() < lastCommitted) {
      this.fail(`leader completeness: node ${node.id} leads term ${term} without committed entry ${lastCommitted}`);
    }
    for (let index = node.storage.firstIndex(); index <= lastCommitted; index += 1) {
      if (node.storage.term(index) !== this.#committedTerms[index]) {
        this.fail(`leader completeness: node ${node.id} (term ${term}) has term ${node.storage.term(index)} at committed ${index}`);
      }
    }
  }

  putAcknowledged(requestId: string, at: number): void {
    this.#acknowledged.add(requestId);
    this.#complete(requestId, at, null);
  }

  getAnswered(requestId: string, value: string | null, at: number): void {
    this.#complete(requestId, at, value);
  }

  #complete(requestId: string, at: number, value: string | null): void {
    const index = this.#operationByRequest.get(requestId);
    if (index === undefined) return;
    const operation = this.#operations[index];
    if (operation === undefined || operation.returnedAt !== null) return;
    operation.returnedAt = at;
    if (operation.kind === "get") operation.value = value;
    for (const client of this.#clients) if (client.waiting?.requestId === requestId) client.waiting = null;
  }

  fail(message: string): never {
    const logs = [...this.nodes.values()].filter((node) => node.alive).map((node) => node.logSummary());
    throw new SimulationError(`seed ${this.seed} at ${this.time} ms: ${message}\n  ${logs.join("\n  ")}`);
  }

  // ---- nodes ---------------------------------------------------------------------------

  #startNode(id: NodeId, disk: SimDisk): SimNode {
    const node = new SimNode({
      id,
      disk,
      prng: this.prng,
      observer: this,
      preVote: this.#preVote,
      checkQuorum: this.#checkQuorum,
      logger: this.#nodeLogger(id),
      crashInWrite: () => !this.#healing && this.prng.chance(this.#faults.tornWriteRate),
    });
    this.nodes.set(id, node);
    return node;
  }

  #nodeLogger(id: NodeId): RaftLogger {
    const trace = this.#trace;
    if (trace === null) return silentLogger;
    const line = (level: string) => (object: Record<string, unknown>, message: string) =>
      trace(`${this.time} ms node ${id} ${level}: ${message} ${JSON.stringify(object)}`);
    return { debug: line("debug"), info: line("info"), warn: line("warn") };
  }

  #event(message: string): void {
    this.#trace?.(`${this.time} ms ${message}`);
  }

  #drive(node: SimNode): void {
    if (!node.drive()) this.#crashed(node);
    for (const id of node.confState.removed ?? []) this.removedIds.add(id);
  }

  #crashed(node: SimNode): void {
    this.#event(`crash node ${node.id}`);
    node.alive = false;
    this.#stats.crashes += 1;
    this.#downUntil.set(node.id, this.time + this.prng.between(50, 1_000));
    // Their clients never hear back: the outcome of their puts stays unknown.
    for (const client of this.#clients) if (client.waiting?.node === node.id) client.waiting = null;
  }

  #crash(node: SimNode): void {
    node.disk.crash(0);
    this.#crashed(node);
  }

  #restart(id: NodeId): void {
    const old = this.nodes.get(id);
    if (old === undefined || old.alive || this.removedIds.has(id)) return;
    this.#downUntil.delete(id);
    this.#event(`restart node ${id}`);
    const node = this.#startNode(id, old.disk);
    this.#drive(node);
  }

  liveNodes(): SimNode[] {
    return [...this.nodes.values()].filter((node) => node.alive && !this.removedIds.has(node.id));
  }

  leader(): SimNode | null {
    let best: SimNode | null = null;
    let bestTerm = -1;
    for (const node of this.liveNodes()) {
      const status = node.raw.status();
      if (status.softState.role === "leader" && status.hardState.term > bestTerm) {
        best = node;
        bestTerm = status.hardState.term;
      }
    }
    return best;
  }

  // ---- the run -------------------------------------------------------------------------

  /** Runs faults and load for `durationMs`, then heals and checks convergence. */
  run(durationMs: number): SimulationReport {
    while (this.time < durationMs) this.#step();
    this.#heal();
    return this.#finalChecks();
  }

  #step(): void {
    this.time += 1;
    this.#deliver();
    for (const node of this.nodes.values()) {
      if (!node.alive || (this.time + node.id) % tickIntervalMs !== 0) continue;
      node.raw.tick();
      this.#drive(node);
    }
    if (this.#healing) return;
    this.#injectFaults();
    this.#runClients();
  }

  #deliver(): void {
    const due = this.#inFlight.get(this.time);
    if (due === undefined) return;
    this.#inFlight.delete(this.time);
    for (const message of due) {
      const node = this.nodes.get(message.to);
      if (node === undefined || !node.alive || this.#blocked.has(`${message.from}->${message.to}`)) {
        this.#dropped(message);
        continue;
      }
      node.raw.step(message);
      this.#drive(node);
      if (message.type === "snap") {
        // The transport reports a delivered snapshot to its sender.
        const sender = this.nodes.get(message.from);
        if (sender?.alive === true) {
          sender.raw.reportSnapshot(message.to, "finish");
          this.#drive(sender);
        }
      }
    }
  }

  #injectFaults(): void {
    const prng = this.prng;
    for (const [id, until] of this.#downUntil) if (until <= this.time) this.#restart(id);
    if (prng.chance(this.#faults.crashRatePerMs)) {
      const live = this.liveNodes();
      if (live.length > 0) this.#crash(prng.pick(live));
    }
    if (this.time >= this.#partitionEndsAt && this.#blocked.size > 0) this.#blocked = new Set();
    if (prng.chance(this.#faults.partitionRatePerMs)) this.#partition();
    if (prng.chance(this.#faults.confChangeRatePerMs)) this.#changeMembership();
    if (prng.chance(this.#faults.transferRatePerMs)) {
      const leader = this.leader();
      if (leader !== null) {
        const transferee = prng.pick(leader.confState.voters);
        this.#event(`transfer leadership from ${leader.id} to ${transferee}`);
        leader.raw.transferLeader(transferee);
        this.#drive(leader);
      }
    }
  }

  #partition(): void {
    const prng = this.prng;
    const ids = [...this.nodes.keys()];
    const blocked = new Set<string>();
    const kind = prng.pick(["isolate", "split", "asymmetric", "bridge"] as const);
    const target = prng.pick(ids);
    if (kind === "isolate" || kind === "asymmetric") {
      for (const other of ids) {
        if (other === target) continue;
        // Asymmetric: the target hears the others but cannot be heard.
        blocked.add(`${target}->${other}`);
        if (kind === "isolate") blocked.add(`${other}->${target}`);
      }
    } else {
      const side = new Set(ids.filter(() => prng.chance(0.5)));
      for (const a of ids) {
        for (const b of ids) {
          // Bridge: one node keeps talking to both halves.
          if (side.has(a) === side.has(b) || (kind === "bridge" && (a === target || b === target))) continue;
          blocked.add(`${a}->${b}`);
        }
      }
    }
    this.#blocked = blocked;
    this.#event(`partition ${kind}: blocked ${[...blocked].join(" ")}`);
    this.#partitionEndsAt = this.time + prng.between(50, 600);
  }

  #changeMembership(): void {
    const leader = this.leader();
    if (leader === null) return;
    const prng = this.prng;
    const { voters, learners } = leader.confState;
    let change: { type: "add-voter" | "add-learner" | "remove-node"; nodeId: NodeId } | null = null;
    const learner = learners[0];
    if (learner !== undefined && prng.chance(0.7)) change = { type: "add-voter", nodeId: learner };
    else if (voters.length + learners.length < 6 && prng.chance(0.5)) change = { type: "add-learner", nodeId: this.#nextNodeId };
    else if (voters.length > 3) change = { type: "remove-node", nodeId: prng.pick(voters) };
    else if (learner !== undefined) change = { type: "remove-node", nodeId: learner };
    if (change === null) return;
    try {
      leader.raw.proposeConfChange({ ...change, context: new Uint8Array(0) });
    } catch (error) {
      if (error instanceof Error && error.name === "ProposalDroppedError") return;
      throw error;
    }
    this.#stats.confChanges += 1;
    this.#event(`propose ${change.type} ${change.nodeId} at leader ${leader.id}`);
    if (change.type === "add-learner") {
      // The operator starts the new member's process; it waits, empty, for the leader.
      this.#nextNodeId += 1;
      this.#startNode(change.nodeId, new SimDisk(null));
    }
    this.#drive(leader);
  }

  // ---- clients -------------------------------------------------------------------------

  #runClients(): void {
    for (const client of this.#clients) {
      if (client.waiting !== null && client.waiting.deadline <= this.time) {
        client.waiting = null;
        client.node = null;
      }
      if (client.waiting !== null || !this.prng.chance(0.05)) continue;
      this.#startOperation(client);
    }
  }

  #startOperation(client: ClientState): void {
    const prng = this.prng;
    const live = this.liveNodes();
    if (live.length === 0) return;
    const sticky = client.node === null ? undefined : live.find((candidate) => candidate.id === client.node);
    const node = sticky ?? prng.pick(live);
    client.node = node.id;
    client.counter += 1;
    const requestId = `c${client.id}-${client.counter}`;
    const key = prng.pick(keys);
    const isPut = prng.chance(0.5);
    const operation: MutableOperation = {
      client: client.id,
      kind: isPut ? "put" : "get",
      key,
      value: isPut ? requestId : null,
      invokedAt: this.time,
      returnedAt: null,
    };
    const accepted = isPut ? node.proposePut({ requestId, key, value: requestId }) : node.requestRead(requestId, key);
    if (!accepted) {
      client.node = null;
      return;
    }
    this.#operations.push(operation);
    const index = this.#operations.length - 1;
    this.#operationByRequest.set(requestId, index);
    client.waiting = { requestId, operation: index, deadline: this.time + clientTimeoutMs, node: node.id };
    this.#drive(node);
  }

  // ---- healing and final checks --------------------------------------------------------

  #heal(): void {
    this.#healing = true;
    this.#blocked = new Set();
    for (const id of [...this.nodes.keys()]) this.#restart(id);
    const deadline = this.time + healTimeoutMs;
    while (this.time < deadline) {
      for (let step = 0; step < 50; step += 1) this.#step();
      if (this.#converged()) return;
    }
    const states = this.liveNodes().map((node) => {
      const status = node.raw.status();
      return `${node.id}:${status.softState.role} t${status.hardState.term} c${status.hardState.commit} a${status.applied} ${JSON.stringify(node.confState)}`;
    });
    this.fail(`the healed cluster did not converge within ${healTimeoutMs} ms: ${states.join("; ")}`);
  }

  #converged(): boolean {
    const leader = this.leader();
    if (leader === null) return false;
    const status = leader.raw.status();
    // An entry of the leader's term must be committed for the whole log to be.
    if (leader.storage.lastIndex() !== status.hardState.commit) return false;
    const members = [...leader.confState.voters, ...leader.confState.learners];
    return members.every((id) => {
      const node = this.nodes.get(id);
      return node !== undefined && node.alive && node.raw.status().applied === status.hardState.commit;
    });
  }

  #finalChecks(): SimulationReport {
    const leader = this.leader();
    if (leader === null) this.fail("no leader after healing");
    const members = [...leader.confState.voters, ...leader.confState.learners];
    for (const id of members) {
      const node = this.nodes.get(id);
      if (node === undefined) this.fail(`member ${id} has no process`);
      for (const requestId of this.#acknowledged) {
        if (!node.kv.applied.has(requestId)) this.fail(`acknowledged put ${requestId} is missing on node ${id}`);
      }
    }
    const history: Operation[] = this.#operations.map((operation) => ({ ...operation }));
    const result = checkLinearizable(history);
    if (!result.ok) this.fail(`the history of key ${result.key ?? "?"} is not linearizable`);
    return {
      seed: this.seed,
      acknowledgedPuts: this.#acknowledged.size,
      answeredGets: this.#operations.filter((operation) => operation.kind === "get" && operation.returnedAt !== null).length,
      leaderElections: this.#stats.elections,
      crashes: this.#stats.crashes,
      confChanges: this.#stats.confChanges,
      finalCommit: leader.raw.status().hardState.commit,
    };
  }
}

export function runSimulation(options: SimulationOptions): SimulationReport {
  const simulation = new Simulation(options);
  return simulation.run(options.durationMs ?? 3_000);
}
