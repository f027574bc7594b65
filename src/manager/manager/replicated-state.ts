import { InvalidArgumentError, UnavailableError, errorMessage } from "../../common/errors.js";
import type { AppliedEntry, RaftNode, StateMachine } from "../../raft/index.js";
import { decodeStoreChanges, encodeStoreChanges } from "../store/index.js";
import type { MemoryStore, Proposer, StoreChange } from "../store/index.js";
import { parseManagerMember, parseManagerMembers, type ManagerMember, type MemberDirectory } from "./member-directory.js";

/**
 * What a manager's raft log carries. The first byte of each entry says which kind: store
 * transactions (the bulk) or manager-directory changes. The directory lives next to the
 * store, not in it, because it is raft bookkeeping rather than user-visible state.
 */
const entryTags = { store: 1, member: 2 } as const;
/** Bytes of the directory length prefix in a snapshot. */
const snapshotHeaderBytes = 4;

function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"));
  } catch (error) {
    throw new InvalidArgumentError(`${what} is not valid JSON: ${errorMessage(error)}`, { cause: error });
  }
}

function tagged(tag: number, body: Uint8Array): Buffer {
  return Buffer.concat([Buffer.of(tag), body]);
}

/** A raft entry holding one store transaction. */
export function encodeStoreEntry(changes: readonly StoreChange[]): Buffer {
  return tagged(entryTags.store, encodeStoreChanges(changes));
}

/** A raft entry that adds or replaces one member of the manager directory. */
export function encodeMemberEntry(member: ManagerMember): Buffer {
  return tagged(entryTags.member, Buffer.from(JSON.stringify(member), "utf8"));
}

/**
 * The replicated state of a manager as raft's StateMachine: the MemoryStore and the
 * MemberDirectory, applied in log order on every manager. A committed entry that does not
 * decode means a bug or corrupted storage; the error reaches RaftNode, which stops.
 */
export class ManagerStateMachine implements StateMachine {
  readonly #store: MemoryStore;
  readonly #directory: MemberDirectory;

  constructor(options: { store: MemoryStore; directory: MemberDirectory }) {
    this.#store = options.store;
    this.#directory = options.directory;
  }

  apply(entry: AppliedEntry): void {
    const tag = entry.data[0];
    const body = entry.data.subarray(1);
    switch (tag) {
      case entryTags.store:
        this.#store.applyCommitted(decodeStoreChanges(body), entry.index);
        return;
      case entryTags.member: {
        this.#directory.set(parseManagerMember(parseJson(body, "a manager directory entry"), "member"));
        return;
      }
      default:
        throw new InvalidArgumentError(`raft entry ${entry.index} has unknown tag ${String(tag)}`);
    }
  }

  snapshot(): Promise<Uint8Array[]> {
    // Both are taken now, at the applied index; the store's bytes come later.
    const members = Buffer.from(JSON.stringify(this.#directory.all()), "utf8");
    const store = this.#store.snapshot();
    const header = Buffer.alloc(snapshotHeaderBytes);
    header.writeUInt32LE(members.length, 0);
    return store.then((parts) => [header, members, ...parts]);
  }

  async restore(data: Uint8Array): Promise<void> {
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.length < snapshotHeaderBytes) throw new InvalidArgumentError(`a manager snapshot of ${bytes.length} bytes has no header`);
    const membersBytes = bytes.readUInt32LE(0);
    if (snapshotHeaderBytes + membersBytes > bytes.length) {
      throw new InvalidArgumentError(`a manager snapshot announces ${membersBytes} directory bytes but holds fewer`);
    }
    const members = parseManagerMembers(
      parseJson(bytes.subarray(snapshotHeaderBytes, snapshotHeaderBytes + membersBytes), "a snapshot's manager directory"),
      "snapshot.members",
    );
    await this.#store.restore(bytes.subarray(snapshotHeaderBytes + membersBytes));
    this.#directory.replaceAll(members);
  }
}

/**
 * The store's Proposer over raft: a transaction becomes one raft entry, and the promise
 * resolves with its index once this manager applied it. On a follower raft throws
 * NotLeaderError, an UnavailableError naming the leader and its address.
 */
export function createRaftProposer(raftNode: () => RaftNode | null): Proposer {
  return {
    async propose(changes, options) {
      const node = raftNode();
      if (node === null) throw new UnavailableError("this manager's raft node is not running: retry once it has started");
      const { index } = await node.propose(encodeStoreEntry(changes), options);
      return index;
    },
  };
}
