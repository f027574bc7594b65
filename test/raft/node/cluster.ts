import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";

import { pino } from "pino";

import { systemClock } from "../../../src/common/clock.js";
import type { NodeId } from "../../../src/raft/core/types.js";
import { NotLeaderError, RaftNode } from "../../../src/raft/node.js";
import type { AppliedEntry, RaftMember, StateMachine } from "../../../src/raft/node.js";
import { createGrpcRaftTransport } from "../../../src/raft/transport/transport.js";
import type { RaftTransport } from "../../../src/raft/transport/transport.js";
import type { SnapshotFileOpener } from "../../../src/raft/snap/snapshotter.js";
import type { SegmentOpener } from "../../../src/raft/wal/wal.js";

export const testLogger = pino({ level: process.env.SHOAL_TEST_LOG ?? "silent" });

/**
 * Records every applied entry, in order, as text. With deferSnapshotBytes, a snapshot's
 * bytes (the state at the call) come only once a later entry is applied, or 20 ms later if
 * none is, as a large state encoded in slices would: a driver that took the snapshot's
 * index when the bytes arrived would record entries the bytes do not hold. With
 * deferRestore, a restore ends 30 ms after the call, and an entry applied before it ends
 * fails the member.
 */
export class RecordingStateMachine implements StateMachine {
  applied: string[] = [];
  readonly #deferSnapshotBytes: boolean;
  readonly #deferRestore: boolean;
  #releaseSnapshots: (() => void)[] = [];
  #restoring = false;

  constructor(options: { deferSnapshotBytes?: boolean; deferRestore?: boolean } = {}) {
    this.#deferSnapshotBytes = options.deferSnapshotBytes ?? false;
    this.#deferRestore = options.deferRestore ?? false;
  }

  apply(entry: AppliedEntry): void {
    if (this.#restoring) throw new Error(`entry ${entry.index} was applied while a snapshot was being restored`);
    this.applied.push(Buffer.from(entry.data).toString());
    const waiting = this.#releaseSnapshots;
    this.#releaseSnapshots = [];
    for (const release of waiting) release();
  }

  snapshot(): Uint8Array | Promise<Uint8Array> {
    const bytes = Buffer.from(JSON.stringify(this.applied));
    if (!this.#deferSnapshotBytes) return bytes;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(bytes), 20);
      this.#releaseSnapshots.push(() => {
        clearTimeout(timer);
        resolve(bytes);
      });
    });
  }
  restore(data: Uint8Array): void | Promise<void> {
    const parsed: unknown = JSON.parse(Buffer.from(data).toString());
    if (!Array.isArray(parsed) || !parsed.every((item) => typeof item === "string")) throw new Error("bad snapshot");
    if (!this.#deferRestore) {
      this.applied = parsed;
      return;
    }
    // Like the manager's store: the new state replaces the old only when the load ends.
    this.#restoring = true;
    return new Promise((resolve) => {
      setTimeout(() => {
        this.#restoring = false;
        this.applied = parsed;
        resolve();
      }, 30);
    });
  }
}

export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  deadlineMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Settles as `promise` does, or fails once `deadlineMs` pass: for tests whose bug is a hang. */
export async function settlesWithin<T>(what: string, promise: Promise<T>, deadlineMs = 2_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${deadlineMs} ms`)), deadlineMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** For assert.rejects: the error is a NotLeaderError naming `leader`. */
export function isNotLeader(leader: NodeId): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof NotLeaderError, `expected NotLeaderError, got ${String(error)}`);
    assert.equal(error.leader, leader);
    return true;
  };
}

export interface TestMember {
  readonly id: NodeId;
  readonly dataDir: string;
  address: string;
  node: RaftNode | null;
  /** The transport of the current run (null before the first start). */
  transport: RaftTransport | null;
  machine: RecordingStateMachine;
}

export interface TestClusterOptions {
  readonly snapshotEveryEntries?: number;
  /** 0 unless given: most tests count entries to the snapshot they wait for. */
  readonly snapshotSpreadEntries?: number;
  /** Each member's random source; crypto's by default. */
  readonly random?: (id: NodeId) => (bound: number) => number;
  /** Members' state machines hand over snapshot bytes late (see RecordingStateMachine). */
  readonly deferSnapshotBytes?: boolean;
  /** Members' state machines finish restoring a snapshot 30 ms after the call. */
  readonly deferRestore?: boolean;
  readonly tickMs?: number;
  readonly segmentBytesTarget?: number;
  /** Opens each member's WAL segments (fault and timing injection); real files by default. */
  readonly walOpenSegment?: (id: NodeId) => SegmentOpener;
  /** Opens each member's snapshot files for writing (timing injection); real files by default. */
  readonly snapshotOpenFile?: (id: NodeId) => SnapshotFileOpener;
  /** Wraps each member's transport (message loss injection); the gRPC transport by default. */
  readonly wrapTransport?: (id: NodeId, transport: RaftTransport) => RaftTransport;
}

/** Raft members in one process over real gRPC on loopback, with real WALs in temp dirs. */
export class TestCluster {
  readonly members: TestMember[] = [];
  /** Fatal errors of any member; close() fails the test that saw one. */
  readonly fatalErrors: Error[] = [];
  readonly #root: string;
  readonly #options: TestClusterOptions;

  private constructor(root: string, options: TestClusterOptions) {
    this.#root = root;
    this.#options = options;
  }

  static async start(size: number, options: TestClusterOptions = {}): Promise<TestCluster> {
    const cluster = new TestCluster(await mkdtemp(join(tmpdir(), "shoal-raft-node-")), options);
    for (let id = 1; id <= size; id += 1) {
      cluster.members.push({ id, dataDir: join(cluster.#root, `node-${id}`), address: "", node: null, transport: null, machine: cluster.#newMachine() });
    }
    await Promise.all(cluster.members.map((member) => cluster.startMember(member.id, { bootstrap: true })));
    return cluster;
  }

  /** Registers a member that is not started yet (for joins); returns it. */
  async addMember(id: NodeId): Promise<TestMember> {
    const member: TestMember = { id, dataDir: join(this.#root, `node-${id}`), address: "", node: null, transport: null, machine: this.#newMachine() };
    this.members.push(member);
    await this.startMember(id, { bootstrap: false });
    return member;
  }

  #newMachine(): RecordingStateMachine {
    return new RecordingStateMachine({ deferSnapshotBytes: this.#options.deferSnapshotBytes ?? false, deferRestore: this.#options.deferRestore ?? false });
  }

  member(id: NodeId): TestMember {
    const member = this.members.find((candidate) => candidate.id === id);
    if (member === undefined) throw new Error(`no member ${id}`);
    return member;
  }

  /** The first member that is not `member` (a follower, when `member` is the leader). */
  otherThan(member: TestMember): TestMember {
    const other = this.members.find((candidate) => candidate.id !== member.id);
    if (other === undefined) throw new Error(`no member other than ${member.id}`);
    return other;
  }

  /** Starts (or restarts) a member; the first start of each picks a free port. */
  async startMember(id: NodeId, options: { bootstrap: boolean }): Promise<RaftNode> {
    const member = this.member(id);
    const grpcTransport = createGrpcRaftTransport({ id, logger: testLogger, clock: systemClock });
    const transport = this.#options.wrapTransport?.(id, grpcTransport) ?? grpcTransport;
    member.transport = transport;
    const [host, port] = member.address === "" ? ["127.0.0.1", 0] : member.address.split(":");
    member.address = await transport.listen({ host: host ?? "127.0.0.1", port: Number(port) });
    // Peers listen before they start raft, so the cluster start waits for every address.
    if (this.members.some((other) => other.address === "")) {
      await waitFor("all members listening", () => this.members.every((other) => other.address !== ""));
    }
    const members: RaftMember[] = this.members.map((other) => ({ id: other.id, address: other.address }));
    member.machine = this.#newMachine();
    member.node = await RaftNode.start({
      id,
      dataDir: member.dataDir,
      stateMachine: member.machine,
      transport,
      logger: testLogger,
      members,
      bootstrap: options.bootstrap,
      // 50 ms ticks (elections after 0.5-1 s) keep tests quick without spurious elections on a busy CI box.
      tickMs: this.#options.tickMs ?? 50,
      ...(this.#options.snapshotEveryEntries === undefined
        ? {}
        : {
            snapshotEveryEntries: this.#options.snapshotEveryEntries,
            snapshotSpreadEntries: this.#options.snapshotSpreadEntries ?? 0,
            snapshotCatchUpEntries: 5,
          }),
      ...(this.#options.random === undefined ? {} : { random: this.#options.random(id) }),
      ...(this.#options.segmentBytesTarget === undefined ? {} : { segmentBytesTarget: this.#options.segmentBytesTarget }),
      ...(this.#options.walOpenSegment === undefined ? {} : { walOpenSegment: this.#options.walOpenSegment(id) }),
      ...(this.#options.snapshotOpenFile === undefined ? {} : { snapshotOpenFile: this.#options.snapshotOpenFile(id) }),
      onFatalError: (error) => {
        this.fatalErrors.push(error);
      },
    });
    return member.node;
  }

  async stopMember(id: NodeId): Promise<void> {
    const member = this.member(id);
    await member.node?.close();
    member.node = null;
  }

  running(): TestMember[] {
    return this.members.filter((member) => member.node !== null);
  }

  /** The one leader that every running member agrees on. */
  async leader(deadlineMs = 10_000): Promise<TestMember> {
    return waitFor(
      "an agreed leader",
      () => {
        const running = this.running();
        const leaders = new Set(running.map((member) => member.node?.status().leader));
        const [leader] = [...leaders];
        if (leaders.size !== 1 || leader === undefined || leader === 0) return undefined;
        const member = running.find((candidate) => candidate.id === leader);
        return member?.node?.status().role === "leader" ? member : undefined;
      },
      deadlineMs,
    );
  }

  async close(): Promise<void> {
    await Promise.all(
      this.members.map(async (member) => {
        await member.node?.close();
      }),
    );
    await rm(this.#root, { recursive: true, force: true });
    assert.deepEqual(this.fatalErrors.map((error) => error.message), [], "a raft member stopped on a fatal error");
  }
}

/** A gate over one member's fsyncs: GatedFsync (WAL segments) or GatedSnapshotSync (snapshot files). */
export interface MemberGate {
  readonly open: unknown;
  openGate(): void;
  dispose(): Promise<void>;
}

/**
 * A 3-member cluster where each member gets a fresh gate from `newGate`, plugged in by
 * `plug` (as walOpenSegment or snapshotOpenFile). When the test ends every gate opens, the
 * cluster closes, and then the gates are disposed.
 */
export async function startGatedCluster<Gate extends MemberGate>(
  t: TestContext,
  options: TestClusterOptions,
  newGate: () => Gate,
  plug: (openerOf: (id: NodeId) => Gate["open"]) => TestClusterOptions,
): Promise<{ cluster: TestCluster; gates: Map<NodeId, Gate> }> {
  const gates = new Map<NodeId, Gate>();
  const cluster = await TestCluster.start(3, {
    ...options,
    ...plug((id) => {
      const gate = newGate();
      gates.set(id, gate);
      return gate.open;
    }),
  });
  t.after(async () => {
    for (const gate of gates.values()) gate.openGate();
    await cluster.close();
    for (const gate of gates.values()) await gate.dispose();
  });
  return { cluster, gates };
}
