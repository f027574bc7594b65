import { credentials as grpcCredentials, Metadata, type ChannelCredentials } from "@grpc/grpc-js";

import { systemClock, type Clock } from "../common/clock.js";
import { CoalescedRunner } from "../common/coalesced-runner.js";
import { CancelledError, FailedPreconditionError, InvalidArgumentError, errorMessage } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import type { ProtoGrpcType as DispatcherProto } from "../gen/dispatcher.js";
import type { AssignmentsMessage__Output } from "../gen/shoal/v1/AssignmentsMessage.js";
import type { SessionMessage__Output } from "../gen/shoal/v1/SessionMessage.js";
import { leaderAddressMetadataKey } from "../manager/dispatcher/index.js";
import { nodeRoles, parseTask, type NodeRole, type Task } from "../manager/objects/index.js";
import { loadProto } from "../rpc/proto.js";
import { grpcMessageSizeBytesMax } from "../rpc/server.js";
import { isServiceError, runSession, type SessionPeer } from "./connection.js";
import type { Executor } from "./controller.js";
import { createLogPublisher, type LogPublisher, type WorkerLogContainers } from "./logs.js";
import { TaskDatabase, storedTasksMax, type WorkerRecord } from "./task-db.js";
import { TaskRunner } from "./task-runner.js";

export const reconnectBackoffMsMin = 100;
/**
 * Below the 3 s a new leader's dispatcher waits for known nodes (3 heartbeat periods): a
 * worker still backing off from the old leader's death must reach the new one in time, or
 * it is marked down and its running tasks are rescheduled.
 */
export const reconnectBackoffMsMax = 2_000;
/** Manager addresses remembered from session messages. */
export const managerAddressesMax = 64;

export interface AgentOptions {
  /** The node's data folder; the agent keeps `<dataDir>/worker/tasks.json`. */
  dataDir: string;
  /** "host:port" of one or more managers; more are learned from sessions. */
  managers: readonly string[];
  executor: Executor;
  logger: Logger;
  clock?: Clock;
  /** Uniform in [0, 1), for reconnect jitter. */
  random?: () => number;
  /** mTLS credentials in production; insecure when absent (loopback tests). */
  channelCredentials?: ChannelCredentials;
  /** Metadata sent with every call. */
  callMetadata?: Readonly<Record<string, string>>;
  /** The engine's containers, to serve log subscriptions from the leader; without them this node serves no logs. */
  logContainers?: WorkerLogContainers;
  /**
   * Called with the role the cluster wants for this node, from every session message that
   * names one: at session start and whenever the node's role changes (`node promote`).
   */
  onDesiredRole?: (role: NodeRole) => void;
  /**
   * Called with every manager's reachability as the leader sees it (node id to verdict),
   * from every session message: a follower manager shows it for the managers it does not
   * hear from itself.
   */
  onManagerReachability?: (reachability: ReadonlyMap<string, ManagerReachability>) => void;
}

const managerReachabilities = ["reachable", "unreachable", "unknown"] as const;
type ManagerReachability = (typeof managerReachabilities)[number];

/** A session message's reachability verdict; "" (a manager that does not send it) is unknown. */
function parseReachability(value: string, nodeId: string): ManagerReachability {
  if (value === "") return "unknown";
  const known = managerReachabilities.find((candidate) => candidate === value);
  if (known === undefined) throw new InvalidArgumentError(`the manager sent the reachability "${value.slice(0, 40)}" for ${nodeId.slice(0, 40)}, which is not reachable, unreachable or unknown`);
  return known;
}

/**
 * The worker agent of one node (after swarmkit's agent/): keeps a session with the
 * leader, runs the tasks assigned to it through their controllers, reports their states,
 * and remembers them on disk so a restarted agent re-adopts running containers.
 */
export interface Agent {
  /** Loads the local task database, resumes its tasks and starts connecting. Rejects when the database does not parse. */
  start(options?: { signal?: AbortSignal }): Promise<void>;
  /** Closes the session and the task runners; containers keep running. */
  stop(): Promise<void>;
  /** The manager address of the live session, or null. */
  readonly connectedTo: string | null;
  /** The node id the manager knows this node by, once a session opened. */
  readonly nodeId: string | null;
  /**
   * The highest manager raft term seen on a session or assignments message (kept in memory
   * only: a restarted agent accepts the first leader it reaches, then fences from there).
   */
  readonly term: number;
  /** The tasks this agent runs, with their observed statuses. */
  tasks(): Task[];
}

class AgentImpl implements Agent {
  readonly #options: AgentOptions;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #database: TaskDatabase;
  readonly #proto: DispatcherProto;
  readonly #metadata = new Metadata();
  readonly #runners = new Map<string, TaskRunner>();
  readonly #unreported = new Map<string, Task>();
  #addresses: string[];
  #addressIndex = 0;
  #expectedSequence = 1;
  #connectedTo: string | null = null;
  #nodeId: string | null = null;
  #term = 0;
  #unreportedWaiter: (() => void) | null = null;
  #stop: AbortController | null = null;
  #loop: Promise<void> | null = null;
  /** Saves of the task database, one at a time; changes made while one waits ride on it. */
  readonly #saves = new CoalescedRunner(() => this.#save());
  #logs: LogPublisher | null = null;

  constructor(options: AgentOptions) {
    if (options.managers.length === 0) throw new InvalidArgumentError("the agent needs at least one manager address");
    this.#options = options;
    this.#logger = options.logger.child({ component: "agent" });
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#database = new TaskDatabase(options.dataDir);
    this.#proto = loadProto<DispatcherProto>("shoal/v1/dispatcher.proto");
    this.#addresses = [...new Set(options.managers)].slice(0, managerAddressesMax);
    for (const [key, value] of Object.entries(options.callMetadata ?? {})) this.#metadata.set(key, value);
  }

  get connectedTo(): string | null {
    return this.#connectedTo;
  }

  get nodeId(): string | null {
    return this.#nodeId;
  }

  get term(): number {
    return this.#term;
  }

  tasks(): Task[] {
    return [...this.#runners.values()].map((runner) => runner.task);
  }

  async start(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#stop !== null) throw new FailedPreconditionError("the agent is already started");
    if (options.signal?.aborted === true) throw new CancelledError("agent start cancelled");
    const stored = await this.#database.load();
    this.#term = stored.term;
    this.#stop = new AbortController();
    for (const entry of stored.tasks) {
      this.#addRunner(entry.task);
      if (!entry.reported) this.#unreported.set(entry.task.id, entry.task);
    }
    this.#logger.info({ tasks: stored.tasks.length, term: stored.term, managers: this.#addresses }, "agent started");
    this.#loop = this.#connectLoop(this.#stop.signal);
    this.#startLogs();
  }

  #startLogs(): void {
    const containers = this.#options.logContainers;
    if (containers === undefined) return;
    this.#logs = createLogPublisher({
      containers,
      session: () => (this.#connectedTo === null || this.#nodeId === null ? null : { address: this.#connectedTo, nodeId: this.#nodeId }),
      logger: this.#options.logger,
      clock: this.#clock,
      ...(this.#options.channelCredentials === undefined ? {} : { channelCredentials: this.#options.channelCredentials }),
      ...(this.#options.callMetadata === undefined ? {} : { callMetadata: this.#options.callMetadata }),
    });
    this.#logs.start();
  }

  async stop(): Promise<void> {
    const stop = this.#stop;
    if (stop === null) return;
    stop.abort();
    await this.#loop;
    await this.#logs?.stop();
    this.#logs = null;
    await Promise.all([...this.#runners.values()].map((runner) => runner.close()));
    await this.#saves.run();
    this.#runners.clear();
    this.#unreported.clear();
    this.#stop = null;
  }

  async #connectLoop(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      const address = this.#addresses[this.#addressIndex % this.#addresses.length] ?? this.#addresses[0] ?? "";
      let established = false;
      const client = new this.#proto.shoal.v1.Dispatcher(address, this.#options.channelCredentials ?? grpcCredentials.createInsecure(), {
        "grpc.max_receive_message_length": grpcMessageSizeBytesMax,
        "grpc.max_send_message_length": grpcMessageSizeBytesMax,
      });
      try {
        const description = await this.#options.executor.describe({ signal });
        this.#expectedSequence = 1;
        await runSession({
          client,
          metadata: this.#metadata,
          description,
          clock: this.#clock,
          logger: this.#logger,
          signal,
          peer: this.#sessionPeer(address, () => {
            established = true;
          }),
        });
      } catch (error) {
        if (signal.aborted) break;
        this.#onSessionError(address, error);
      } finally {
        this.#connectedTo = null;
        client.close();
      }
      failures = established ? 0 : failures + 1;
      const backoffMs = Math.min(reconnectBackoffMsMax, reconnectBackoffMsMin * 2 ** Math.min(failures, 16));
      await this.#clock.sleep(backoffMs / 2 + (this.#random() * backoffMs) / 2, { signal }).catch(() => undefined);
    }
  }

  #sessionPeer(address: string, onEstablished: () => void): SessionPeer {
    return {
      onEstablished: (message) => {
        this.#fence(address, message.term, "session");
        onEstablished();
        this.#connectedTo = address;
        this.#nodeId = message.nodeId;
        this.#logger.info({ address, nodeId: message.nodeId, sessionId: message.sessionId }, "session opened");
        this.#onManagers(message);
      },
      onManagers: (message) => {
        this.#fence(address, message.term, "session");
        this.#onManagers(message);
      },
      onAssignments: (message) => {
        this.#fence(address, message.term, "assignments");
        this.#onAssignments(message);
      },
      waitForUnreported: (signal) => this.#waitForUnreported(signal),
      unreported: (limit) => this.#unreportedBatch(limit),
      acknowledge: (tasks) => this.#acknowledge(tasks),
    };
  }

  /** Moves on to the next manager, or to the leader a follower named. */
  #onSessionError(address: string, error: unknown): void {
    const leader = isServiceError(error) ? error.metadata.get(leaderAddressMetadataKey)[0] : undefined;
    if (typeof leader === "string" && leader !== "" && leader !== address) {
      this.#addresses = [leader, ...this.#addresses.filter((known) => known !== leader)].slice(0, managerAddressesMax);
      this.#addressIndex = 0;
      this.#logger.info({ address, leader }, "manager is not the leader; reconnecting to the leader");
      return;
    }
    this.#addressIndex = (this.#addressIndex + 1) % this.#addresses.length;
    this.#logger.warn({ address, err: errorMessage(error) }, "session with manager ended; trying the next manager");
  }

  /**
   * Refuses a message from a leadership older than one already seen: that manager was
   * deposed (a partition, a SIGSTOP beyond the election timeout) and may not command this
   * node any more (issue 6). Throwing ends the session, so the agent moves to another manager.
   */
  #fence(address: string, term: number, kind: "session" | "assignments"): void {
    if (term < this.#term) {
      this.#logger.warn({ address, messageTerm: term, highestTerm: this.#term }, `refusing a ${kind} message of term ${term} from a deposed leader: term ${this.#term} was already seen`);
      throw new FailedPreconditionError(`manager ${address} sent a ${kind} message of term ${term}, below term ${this.#term} already seen; it is no longer the leader`);
    }
    if (term === this.#term) return;
    this.#term = term;
    this.#persist();
  }

  #onManagers(message: SessionMessage__Output): void {
    const reachability = new Map<string, ManagerReachability>();
    for (const peer of message.managers.slice(0, managerAddressesMax)) {
      if (peer.addr !== "" && !this.#addresses.includes(peer.addr) && this.#addresses.length < managerAddressesMax) this.#addresses.push(peer.addr);
      reachability.set(peer.nodeId, parseReachability(peer.reachability, peer.nodeId));
    }
    this.#options.onManagerReachability?.(reachability);
    if (message.role === "") return;
    const role = nodeRoles.find((candidate) => candidate === message.role);
    if (role === undefined) throw new InvalidArgumentError(`the manager sent the role "${message.role.slice(0, 40)}", which is neither worker nor manager`);
    this.#options.onDesiredRole?.(role);
  }

  #onAssignments(message: AssignmentsMessage__Output): void {
    if (message.sequence !== this.#expectedSequence) {
      throw new FailedPreconditionError(`assignments message ${message.sequence} arrived when ${this.#expectedSequence} was due; reopening the session`);
    }
    this.#expectedSequence += 1;
    const tasks = message.updateTasks.map((bytes, index) => {
      const path = `assignments[${message.sequence}].updateTasks[${index}]`;
      let value: unknown;
      try {
        value = JSON.parse(bytes.toString("utf8"));
      } catch (error) {
        throw new InvalidArgumentError(`${path} is not JSON`, { cause: error });
      }
      return parseTask(value, path);
    });
    if (message.type === "COMPLETE") {
      const keep = new Set(tasks.map((task) => task.id));
      for (const [taskId, runner] of this.#runners) if (!keep.has(taskId)) runner.remove();
    }
    for (const task of tasks) this.#upsert(task);
    for (const taskId of message.removeTaskIds) this.#runners.get(taskId)?.remove();
    this.#persist();
  }

  #upsert(task: Task): void {
    const runner = this.#runners.get(task.id);
    if (runner !== undefined) {
      runner.update(task);
      return;
    }
    if (this.#runners.size >= storedTasksMax) {
      this.#logger.error({ taskId: task.id }, `this node already runs ${storedTasksMax} tasks; ignoring a new assignment`);
      return;
    }
    this.#addRunner(task);
  }

  #addRunner(task: Task): void {
    let controller;
    try {
      controller = this.#options.executor.controller(task);
    } catch (error) {
      const rejected: Task = { ...task, status: { state: "rejected", timestamp: this.#clock.now(), message: "cannot run here", err: errorMessage(error) } };
      this.#unreported.set(task.id, rejected);
      this.#wakeReporter();
      return;
    }
    const runner = new TaskRunner({
      task,
      controller,
      clock: this.#clock,
      logger: this.#logger,
      hooks: {
        onStatus: (changed) => {
          this.#unreported.set(changed.id, changed);
          this.#wakeReporter();
          this.#persist();
        },
        onRemoved: (taskId) => {
          this.#runners.delete(taskId);
          this.#unreported.delete(taskId);
          this.#persist();
        },
      },
    });
    this.#runners.set(task.id, runner);
    runner.start();
  }

  #waitForUnreported(signal: AbortSignal): Promise<void> {
    if (this.#unreported.size > 0) return Promise.resolve();
    if (signal.aborted) return Promise.reject(new CancelledError("session closed"));
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.#unreportedWaiter = null;
        reject(new CancelledError("session closed"));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#unreportedWaiter = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
    });
  }

  #wakeReporter(): void {
    const waiter = this.#unreportedWaiter;
    this.#unreportedWaiter = null;
    waiter?.();
  }

  #unreportedBatch(limit: number): Task[] {
    return [...this.#unreported.values()].slice(0, limit);
  }

  #acknowledge(tasks: readonly Task[]): void {
    // Only the very status sent is acknowledged; a newer one still waits for its turn.
    for (const task of tasks) if (this.#unreported.get(task.id) === task) this.#unreported.delete(task.id);
    this.#persist();
  }

  #snapshot(): WorkerRecord {
    return {
      tasks: [...this.#runners.values()].map((runner) => ({ task: runner.task, reported: !this.#unreported.has(runner.task.id) })),
      term: this.#term,
    };
  }

  /** Saves the task database soon (see #saves). */
  #persist(): void {
    void this.#saves.run();
  }

  async #save(): Promise<void> {
    try {
      await this.#database.save(this.#snapshot());
    } catch (error) {
      this.#logger.error({ err: error, path: this.#database.path }, "could not save the worker task database");
    }
  }
}

export function createAgent(options: AgentOptions): Agent {
  return new AgentImpl(options);
}
