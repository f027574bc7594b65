import { InvalidArgumentError } from "../../common/errors.js";
import { isIdentityField } from "../../rpc/tls/index.js";

/** Raft ids are random integers below 2^53, so they stay exact as JavaScript numbers. */
export const raftIdMax = Number.MAX_SAFE_INTEGER;
/** Managers (present and removed) the directory remembers; removed ids are kept so they are never reused. */
export const directoryMembersMax = 1_024;
/** Longest "host:port" a member may advertise. */
export const memberAddressLengthMax = 256;

export const memberSuffrages = ["learner", "voter", "removed"] as const;
export type MemberSuffrage = (typeof memberSuffrages)[number];

/** One manager's raft identity: which node holds which raft id, where, and with what vote. */
export interface ManagerMember {
  readonly raftId: number;
  readonly nodeId: string;
  /** "host:port" of the member's gRPC server. */
  readonly address: string;
  readonly suffrage: MemberSuffrage;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Parses one member from untrusted data (a raft entry, state.json, a Join answer). */
export function parseManagerMember(value: unknown, path: string): ManagerMember {
  if (!isRecord(value)) throw new InvalidArgumentError(`${path} must be an object`);
  const { raftId, nodeId, address, suffrage } = value;
  if (typeof raftId !== "number" || !Number.isSafeInteger(raftId) || raftId <= 0) {
    throw new InvalidArgumentError(`${path}.raftId must be a positive integer below 2^53`);
  }
  if (typeof nodeId !== "string" || !isIdentityField(nodeId)) throw new InvalidArgumentError(`${path}.nodeId must be a node id`);
  if (typeof address !== "string" || address.length === 0 || address.length > memberAddressLengthMax) {
    throw new InvalidArgumentError(`${path}.address must be a "host:port" of at most ${memberAddressLengthMax} characters`);
  }
  const known = memberSuffrages.find((item) => item === suffrage);
  if (known === undefined) throw new InvalidArgumentError(`${path}.suffrage must be one of ${memberSuffrages.join(", ")}`);
  return { raftId, nodeId, address, suffrage: known };
}

/** Parses a list of members, refusing duplicates and lists beyond directoryMembersMax. */
export function parseManagerMembers(value: unknown, path: string): ManagerMember[] {
  if (!Array.isArray(value)) throw new InvalidArgumentError(`${path} must be a list`);
  if (value.length > directoryMembersMax) throw new InvalidArgumentError(`${path} holds more than ${directoryMembersMax} members`);
  const members = value.map((item: unknown, index) => parseManagerMember(item, `${path}[${index}]`));
  if (new Set(members.map((member) => member.raftId)).size !== members.length) {
    throw new InvalidArgumentError(`${path} names a raft id twice`);
  }
  return members;
}

/**
 * Which node holds which raft id, replicated through raft entries (see replicated-state.ts)
 * so that every manager can map a peer certificate (node id) to a raft id and a raft id to
 * an address. Removed members stay listed so their ids are never handed out again.
 */
export class MemberDirectory {
  readonly #byRaftId = new Map<number, ManagerMember>();

  constructor(members: readonly ManagerMember[] = []) {
    for (const member of members) this.#byRaftId.set(member.raftId, member);
  }

  /** Adds or replaces a member; InvalidArgumentError when the directory is full. */
  set(member: ManagerMember): void {
    if (!this.#byRaftId.has(member.raftId) && this.#byRaftId.size >= directoryMembersMax) {
      throw new InvalidArgumentError(`the manager directory already holds ${directoryMembersMax} members`);
    }
    this.#byRaftId.set(member.raftId, member);
  }

  replaceAll(members: readonly ManagerMember[]): void {
    this.#byRaftId.clear();
    for (const member of members) this.#byRaftId.set(member.raftId, member);
  }

  byRaftId(raftId: number): ManagerMember | undefined {
    return this.#byRaftId.get(raftId);
  }

  /** The node's current (not removed) membership. */
  byNodeId(nodeId: string): ManagerMember | undefined {
    for (const member of this.#byRaftId.values()) {
      if (member.nodeId === nodeId && member.suffrage !== "removed") return member;
    }
    return undefined;
  }

  /** Every member ever added, removed ones included, by raft id. */
  all(): ManagerMember[] {
    return [...this.#byRaftId.values()].sort((a, b) => a.raftId - b.raftId);
  }

  /** Members not removed. */
  active(): ManagerMember[] {
    return this.all().filter((member) => member.suffrage !== "removed");
  }

  isUsedRaftId(raftId: number): boolean {
    return this.#byRaftId.has(raftId);
  }
}
