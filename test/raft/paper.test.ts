// One test per rule of the Raft paper (Ongaro & Ousterhout, "In Search of an Understandable
// Consensus Algorithm"), each laid out as init -> step -> check, after etcd's
// raft_paper_test.go. Extensions from Ongaro's thesis (pre-vote, check-quorum, leadership
// transfer, ReadIndex) follow at the end.
import assert from "node:assert/strict";
import { test } from "node:test";

import { encodeConfChange } from "../../src/raft/core/conf-change.js";
import { ProposalDroppedError } from "../../src/raft/core/raft.js";
import type { Raft } from "../../src/raft/core/raft.js";
import type { ConfChange, Message, NodeId } from "../../src/raft/core/types.js";
import { MemoryLogStorage } from "../../src/raft/storage/memory-storage.js";
import {
  Network,
  entry,
  message,
  newTestRaft,
  persistLocal,
  readMessages,
  storageWithTerms,
  tickUntilElection,
} from "./core/helpers.js";

const noData = new Uint8Array(0);

function summary(messages: readonly Message[]): string[] {
  return messages.map((m) => `${m.type} ${m.from}->${m.to} t${m.term}${m.reject ? " reject" : ""}`);
}

function commitNoop(raft: Raft): void {
  // Acknowledge the leader's no-op from every follower so an entry of its term commits.
  const last = raft.log.lastIndex();
  for (const id of raft.tracker.voters) {
    if (id !== raft.id) raft.step(message({ type: "app-resp", from: id, to: raft.id, term: raft.term, index: last }));
  }
  readMessages(raft);
}

function makeLeader(raft: Raft): void {
  raft.becomeCandidate();
  raft.becomeLeader();
  persistLocal(raft);
  commitNoop(raft);
}

function proposeAndPersist(raft: Raft, data: string): number {
  raft.step(message({ type: "prop", from: raft.id, to: raft.id, entries: [entry(0, 0, data)] }));
  persistLocal(raft);
  return raft.log.lastIndex();
}

// ---- §5.1 terms -------------------------------------------------------------------------

for (const role of ["follower", "candidate", "leader"] as const) {
  test(`§5.1 a ${role} that sees a higher term adopts it and becomes follower`, () => {
    // Raft §5.1: "If a server receives a request with a stale term ... current term is
    // smaller than the other's, it updates its current term; a candidate or leader reverts
    // to follower state."
    const raft = newTestRaft(1, [1, 2, 3]);
    if (role === "candidate") raft.becomeCandidate();
    if (role === "leader") makeLeader(raft);
    raft.step(message({ type: "app", from: 2, to: 1, term: 5 }));
    assert.equal(raft.term, 5);
    assert.equal(raft.state, "follower");
    assert.equal(raft.lead, 2);
  });
}

test("§5.1 a message with a stale term is ignored", () => {
  // Raft §5.1: "If a server receives a request with a stale term number, it rejects the request."
  const raft = newTestRaft(1, [1, 2, 3], { storage: storageWithTerms([1, 2], [1, 2, 3]) });
  raft.becomeFollower(2, 2);
  raft.step(message({ type: "app", from: 2, to: 1, term: 1, index: 2, logTerm: 2, entries: [entry(1, 3)] }));
  assert.equal(raft.log.lastIndex(), 2, "a stale append must not change the log");
  assert.equal(raft.term, 2);
});

// ---- §5.2 leader election ---------------------------------------------------------------

test("§5.2 a server starts as follower", () => {
  // Raft §5.2: "When servers start up, they begin as followers."
  const raft = newTestRaft(1, [1, 2, 3]);
  assert.equal(raft.state, "follower");
});

test("§5.2 a leader sends heartbeats every heartbeat timeout", () => {
  // Raft §5.2: "Leaders send periodic heartbeats ... to all followers to maintain authority."
  const raft = newTestRaft(1, [1, 2, 3], { election: 10, heartbeat: 1 });
  makeLeader(raft);
  raft.tick();
  const heartbeats = readMessages(raft).filter((m) => m.type === "heartbeat");
  assert.deepEqual(heartbeats.map((m) => m.to), [2, 3]);
  assert.ok(heartbeats.every((m) => m.term === raft.term));
});

for (const role of ["follower", "candidate"] as const) {
  test(`§5.2 a ${role} that hears nothing starts an election with a new term`, () => {
    // Raft §5.2: "If a follower receives no communication over ... the election timeout ...
    // it increments its current term, transitions to candidate, votes for itself and issues
    // RequestVote RPCs in parallel to each of the other servers."
    const raft = newTestRaft(1, [1, 2, 3]);
    if (role === "candidate") raft.becomeCandidate();
    const termBefore = raft.term;
    for (let tick = 0; tick < 2 * raft.electionTimeout; tick += 1) raft.tick();
    assert.equal(raft.state, "candidate");
    assert.equal(raft.term, termBefore + 1);
    assert.equal(raft.vote, 1);
    const votes = readMessages(raft).filter((m) => m.type === "vote" && m.term === raft.term);
    assert.deepEqual(votes.map((m) => m.to), [2, 3]);
  });
}

test("§5.2 the election outcome follows the votes received in one round", () => {
  // Raft §5.2: "A candidate wins an election if it receives votes from a majority of the
  // servers in the full cluster for the same term."
  const cases: { size: number; votes: Record<number, boolean>; state: string }[] = [
    { size: 1, votes: {}, state: "leader" },
    { size: 3, votes: { 2: true, 3: true }, state: "leader" },
    { size: 3, votes: { 2: true }, state: "leader" },
    { size: 5, votes: { 2: true, 3: true }, state: "leader" },
    { size: 5, votes: { 2: true }, state: "candidate" },
    { size: 3, votes: { 2: false, 3: false }, state: "follower" },
    { size: 5, votes: { 2: false, 3: false, 4: false }, state: "follower" },
    { size: 3, votes: {}, state: "candidate" },
  ];
  for (const { size, votes, state } of cases) {
    const ids = Array.from({ length: size }, (_, index) => index + 1);
    const raft = newTestRaft(1, ids);
    raft.step(message({ type: "hup", from: 1, to: 1 }));
    for (const [id, granted] of Object.entries(votes)) {
      raft.step(message({ type: "vote-resp", from: Number(id), to: 1, term: raft.term, reject: !granted }));
    }
    assert.equal(raft.state, state, `size ${size} votes ${JSON.stringify(votes)}`);
  }
});

test("§5.2 a follower votes for at most one candidate per term, first come first served", () => {
  // Raft §5.2: "Each server will vote for at most one candidate in a given term, on a
  // first-come-first-served basis."
  const cases: { vote: NodeId; from: NodeId; reject: boolean }[] = [
    { vote: 0, from: 2, reject: false },
    { vote: 0, from: 3, reject: false },
    { vote: 2, from: 2, reject: false },
    { vote: 3, from: 3, reject: false },
    { vote: 2, from: 3, reject: true },
    { vote: 3, from: 2, reject: true },
  ];
  for (const { vote, from, reject } of cases) {
    const storage = new MemoryLogStorage();
    storage.setHardState({ term: 1, vote, commit: 0 });
    const raft = newTestRaft(1, [1, 2, 3], { storage });
    raft.step(message({ type: "vote", from, to: 1, term: 1 }));
    const answers = readMessages(raft);
    assert.deepEqual(summary(answers), [`vote-resp 1->${from} t1${reject ? " reject" : ""}`], `vote ${vote} from ${from}`);
  }
});

test("§5.2 a candidate that hears from a leader of its term or later steps down", () => {
  // Raft §5.2: "If the leader's term is at least as large as the candidate's current term,
  // then the candidate recognizes the leader as legitimate and returns to follower state."
  for (const offset of [0, 1]) {
    const raft = newTestRaft(1, [1, 2, 3]);
    raft.step(message({ type: "hup", from: 1, to: 1 }));
    const term = raft.term + offset;
    raft.step(message({ type: "app", from: 2, to: 1, term }));
    assert.equal(raft.state, "follower");
    assert.equal(raft.term, term);
    assert.equal(raft.lead, 2);
  }
});

test("§5.2 election timeouts are randomized over [timeout, 2 x timeout)", () => {
  // Raft §5.2: "Raft uses randomized election timeouts to ensure that split votes are rare."
  const seen = new Set<number>();
  for (let seed = 0; seed < 200; seed += 1) {
    const raft = newTestRaft(1, [1, 2, 3], { election: 10, seed });
    let ticks = 0;
    while (raft.state === "follower") {
      raft.tick();
      ticks += 1;
    }
    seen.add(ticks);
  }
  assert.deepEqual([...seen].sort((a, b) => a - b), [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
});

test("§5.2 randomized timeouts rarely let two followers time out together", () => {
  // Raft §5.2: "election timeouts are chosen randomly ... so that in most cases only a
  // single server will time out."
  let conflicts = 0;
  for (let round = 0; round < 200; round += 1) {
    const a = newTestRaft(1, [1, 2, 3], { seed: round * 2 + 1 });
    const b = newTestRaft(2, [1, 2, 3], { seed: round * 2 + 2 });
    while (a.state === "follower" && b.state === "follower") {
      a.tick();
      b.tick();
    }
    if (a.state === "candidate" && b.state === "candidate") conflicts += 1;
  }
  assert.ok(conflicts <= 0.3 * 200, `${conflicts} of 200 rounds timed out together`);
});

// ---- §5.3 log replication ---------------------------------------------------------------

test("§5.3 a leader appends a proposal and sends it to every follower", () => {
  // Raft §5.3: "The leader appends the command to its log as a new entry, then issues
  // AppendEntries RPCs in parallel to each of the other servers to replicate the entry."
  const raft = newTestRaft(1, [1, 2, 3]);
  makeLeader(raft);
  const lastBefore = raft.log.lastIndex();
  raft.step(message({ type: "prop", from: 1, to: 1, entries: [entry(0, 0, "some data")] }));
  assert.equal(raft.log.lastIndex(), lastBefore + 1);
  const appends = readMessages(raft).filter((m) => m.type === "app");
  assert.deepEqual(appends.map((m) => m.to), [2, 3]);
  for (const append of appends) {
    assert.equal(append.index, lastBefore);
    assert.deepEqual(append.entries.map((e) => [e.term, e.index]), [[raft.term, lastBefore + 1]]);
    assert.equal(append.commit, lastBefore);
  }
});

test("§5.3 a leader commits an entry once a majority stored it, and tells followers", () => {
  // Raft §5.3: "A log entry is committed once the leader that created the entry has
  // replicated it on a majority of the servers ... the leader includes the highest index it
  // knows to be committed in future AppendEntries RPCs."
  const raft = newTestRaft(1, [1, 2, 3]);
  makeLeader(raft);
  const index = proposeAndPersist(raft, "x");
  readMessages(raft);
  assert.ok(raft.log.committed < index);
  raft.step(message({ type: "app-resp", from: 2, to: 1, term: raft.term, index }));
  assert.equal(raft.log.committed, index);
  const appends = readMessages(raft).filter((m) => m.type === "app");
  assert.ok(appends.length > 0 && appends.every((m) => m.commit === index));
});

test("§5.3 the acknowledgements needed to commit are a majority of the cluster", () => {
  // Raft §5.3: "once the leader ... has replicated it on a majority of the servers".
  const cases: { size: number; acks: NodeId[]; committed: boolean }[] = [
    { size: 1, acks: [], committed: true },
    { size: 3, acks: [], committed: false },
    { size: 3, acks: [2], committed: true },
    { size: 5, acks: [2], committed: false },
    { size: 5, acks: [2, 3], committed: true },
  ];
  for (const { size, acks, committed } of cases) {
    const ids = Array.from({ length: size }, (_, index) => index + 1);
    const raft = newTestRaft(1, ids);
    makeLeader(raft);
    const index = proposeAndPersist(raft, "x");
    for (const id of acks) raft.step(message({ type: "app-resp", from: id, to: 1, term: raft.term, index }));
    assert.equal(raft.log.committed === index, committed, `size ${size} acks ${acks.join(",")}`);
  }
});

test("§10.2.1 a leader's own entry counts toward the quorum only once on its disk", () => {
  // Thesis §10.2.1: the leader may write to its disk in parallel with replication, but an
  // entry held by the leader's memory and one follower's disk is on one disk of three.
  const raft = newTestRaft(1, [1, 2, 3]);
  makeLeader(raft);
  raft.step(message({ type: "prop", from: 1, to: 1, entries: [entry(0, 0, "x")] }));
  const index = raft.log.lastIndex();
  raft.step(message({ type: "app-resp", from: 2, to: 1, term: raft.term, index }));
  assert.ok(raft.log.committed < index, "committed before the leader's fsync");
  readMessages(raft);
  persistLocal(raft);
  assert.equal(raft.log.committed, index);
  const appends = readMessages(raft).filter((m) => m.type === "app");
  assert.ok(appends.length > 0 && appends.every((m) => m.commit === index), "followers learn the new commit index");
});

test("§5.3 committing an entry commits every entry before it, including earlier terms'", () => {
  // Raft §5.3: "This also commits all preceding entries in the leader's log, including
  // entries created by previous leaders."
  const storage = storageWithTerms([2, 2], [1, 2, 3]);
  storage.setHardState({ term: 2, vote: 0, commit: 0 });
  const raft = newTestRaft(1, [1, 2, 3], { storage });
  raft.becomeCandidate();
  raft.becomeLeader();
  persistLocal(raft);
  const noop = raft.log.lastIndex();
  raft.step(message({ type: "app-resp", from: 2, to: 1, term: raft.term, index: noop }));
  assert.equal(raft.log.committed, noop);
  assert.deepEqual(raft.log.nextCommittedEntries(Infinity).map((e) => e.index), [1, 2, 3]);
});

test("§5.3 a follower commits what the leader says is committed, up to what it holds", () => {
  // Raft §5.3: "Once a follower learns that a log entry is committed, it applies the entry
  // to its local state machine."
  const raft = newTestRaft(1, [1, 2, 3]);
  raft.becomeFollower(1, 2);
  raft.step(message({ type: "app", from: 2, to: 1, term: 1, index: 0, logTerm: 0, entries: [entry(1, 1), entry(1, 2)], commit: 1 }));
  assert.equal(raft.log.committed, 1);
  raft.step(message({ type: "app", from: 2, to: 1, term: 1, index: 2, logTerm: 1, entries: [], commit: 5 }));
  assert.equal(raft.log.committed, 2, "commit is capped at the last entry the message covered");
});

test("§5.3 a follower rejects an append whose previous entry it does not hold", () => {
  // Raft §5.3: "If the follower does not find an entry in its log with the same index and
  // term, then it refuses the new entries."
  const cases: { index: number; logTerm: number; reject: boolean }[] = [
    { index: 0, logTerm: 0, reject: false },
    { index: 1, logTerm: 1, reject: false },
    { index: 2, logTerm: 2, reject: false },
    { index: 2, logTerm: 1, reject: true },
    { index: 3, logTerm: 3, reject: true },
  ];
  for (const { index, logTerm, reject } of cases) {
    const raft = newTestRaft(1, [1, 2, 3], { storage: storageWithTerms([1, 2], [1, 2, 3]) });
    raft.becomeFollower(2, 2);
    raft.step(message({ type: "app", from: 2, to: 1, term: 2, index, logTerm }));
    const [answer] = readMessages(raft);
    assert.equal(answer?.type, "app-resp");
    assert.equal(answer.reject, reject, `index ${index} logTerm ${logTerm}`);
  }
});

test("§5.3 a follower deletes a conflicting suffix and appends the leader's entries", () => {
  // Raft §5.3: "If an existing entry conflicts with a new one (same index but different
  // terms), delete the existing entry and all that follow it."
  const cases: { index: number; logTerm: number; entries: [number, number][]; want: [number, number][] }[] = [
    { index: 2, logTerm: 2, entries: [[3, 3]], want: [[1, 1], [2, 2], [3, 3]] },
    { index: 1, logTerm: 1, entries: [[3, 2], [4, 3]], want: [[1, 1], [3, 2], [4, 3]] },
    { index: 0, logTerm: 0, entries: [[1, 1]], want: [[1, 1], [2, 2]] },
    { index: 0, logTerm: 0, entries: [[3, 1]], want: [[3, 1]] },
  ];
  for (const { index, logTerm, entries, want } of cases) {
    const raft = newTestRaft(1, [1, 2, 3], { storage: storageWithTerms([1, 2], [1, 2, 3]) });
    raft.becomeFollower(2, 2);
    raft.step(message({ type: "app", from: 2, to: 1, term: 2, index, logTerm, entries: entries.map(([t, i]) => entry(t, i)) }));
    const log = raft.log.slice(raft.log.firstIndex(), raft.log.lastIndex() + 1, Infinity);
    assert.deepEqual(log.map((e) => [e.term, e.index]), want, `append after ${index}`);
  }
});

test("§5.3 a new leader forces divergent follower logs to match its own", () => {
  // Raft §5.3 (figure 7): "the leader handles inconsistencies by forcing the followers'
  // logs to duplicate its own."
  const leaderTerms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
  const followerLogs = [
    [1, 1, 1, 4, 4, 5, 5, 6, 6],
    [1, 1, 1, 4],
    [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    [1, 1, 1, 4, 4, 4, 4],
    [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
  ];
  for (const followerTerms of followerLogs) {
    const leaderStorage = storageWithTerms(leaderTerms, [1, 2, 3]);
    leaderStorage.setHardState({ term: 7, vote: 0, commit: 0 });
    const leader = newTestRaft(1, [1, 2, 3], { storage: leaderStorage });
    const followerStorage = storageWithTerms(followerTerms, [1, 2, 3]);
    followerStorage.setHardState({ term: 7, vote: 0, commit: 0 });
    const follower = newTestRaft(2, [1, 2, 3], { storage: followerStorage });
    // Node 3 votes for the leader but plays no part in the logs.
    const voter = newTestRaft(3, [1, 2, 3]);
    const network = new Network([leader, follower, voter]);
    network.campaign(1);
    assert.equal(leader.state, "leader");
    network.propose(1, "");
    const leaderLog = leader.log.slice(1, leader.log.lastIndex() + 1, Infinity).map((e) => [e.term, e.index]);
    const followerLog = follower.log.slice(1, follower.log.lastIndex() + 1, Infinity).map((e) => [e.term, e.index]);
    assert.deepEqual(followerLog, leaderLog, `follower log ${followerTerms.join(",")}`);
  }
});

test("§5.3 fast backtracking needs one round trip per conflicting term, not per entry", () => {
  // Raft §5.3: "the follower can include the term of the conflicting entry and the first
  // index it stores for that term ... one AppendEntries RPC will be required for each term."
  const leaderStorage = storageWithTerms([1, ...Array<number>(50).fill(4)], [1, 2, 3]);
  leaderStorage.setHardState({ term: 5, vote: 0, commit: 1 });
  const leader = newTestRaft(1, [1, 2, 3], { storage: leaderStorage });
  const followerStorage = storageWithTerms([1, ...Array<number>(60).fill(3)], [1, 2, 3]);
  followerStorage.setHardState({ term: 5, vote: 0, commit: 1 });
  const follower = newTestRaft(2, [1, 2, 3], { storage: followerStorage });
  const network = new Network([leader, follower, newTestRaft(3, [1, 2, 3])]);
  network.campaign(1);
  assert.equal(leader.state, "leader");
  const rejections = network.delivered.filter((m) => m.type === "app-resp" && m.reject && m.from === 2);
  assert.ok(rejections.length <= 2, `${rejections.length} rejections for one conflicting term`);
  assert.equal(follower.log.lastIndex(), leader.log.lastIndex());
  assert.equal(follower.log.termOrNull(30), 4);
});

// ---- §5.4 safety ------------------------------------------------------------------------

test("§5.4.1 a voter denies its vote to a candidate whose log is less up to date", () => {
  // Raft §5.4.1: "The RequestVote RPC ... the voter denies its vote if its own log is more
  // up-to-date than that of the candidate."
  const cases: { index: number; logTerm: number; reject: boolean }[] = [
    { index: 2, logTerm: 2, reject: false }, // same last term, same length
    { index: 3, logTerm: 2, reject: false }, // same last term, longer
    { index: 1, logTerm: 2, reject: true }, // same last term, shorter
    { index: 1, logTerm: 3, reject: false }, // later last term wins regardless of length
    { index: 5, logTerm: 1, reject: true }, // earlier last term loses regardless of length
  ];
  for (const { index, logTerm, reject } of cases) {
    const raft = newTestRaft(1, [1, 2, 3], { storage: storageWithTerms([1, 2], [1, 2, 3]) });
    raft.step(message({ type: "vote", from: 2, to: 1, term: 3, index, logTerm }));
    const [answer] = readMessages(raft);
    assert.equal(answer?.type, "vote-resp");
    assert.equal(answer.reject, reject, `index ${index} logTerm ${logTerm}`);
  }
});

test("§5.4.2 a leader commits entries of earlier terms only by committing one of its own", () => {
  // Raft §5.4.2: "Raft never commits log entries from previous terms by counting replicas.
  // Only log entries from the leader's current term are committed by counting replicas."
  const storage = storageWithTerms([1, 2], [1, 2, 3]);
  storage.setHardState({ term: 2, vote: 0, commit: 0 });
  const raft = newTestRaft(1, [1, 2, 3], { storage });
  raft.becomeCandidate();
  raft.becomeLeader();
  persistLocal(raft);
  assert.equal(raft.term, 3);
  // A majority holds index 2 (term 2), but that is not enough to commit it.
  raft.step(message({ type: "app-resp", from: 2, to: 1, term: 3, index: 2 }));
  assert.equal(raft.log.committed, 0);
  raft.step(message({ type: "app-resp", from: 2, to: 1, term: 3, index: 3 }));
  assert.equal(raft.log.committed, 3);
});

test("§5.4.3 an elected leader holds every committed entry (election restriction)", () => {
  // Raft §5.4.3: leader completeness. Node 3 misses a committed entry; it cannot win.
  const network = Network.ofSize(3);
  network.campaign(1);
  network.isolate(3);
  network.propose(1, "committed");
  const committed = network.node(1).log.committed;
  network.recover();
  network.isolate(1);
  network.campaign(3);
  assert.notEqual(network.node(3).state, "leader");
  network.campaign(2);
  assert.equal(network.node(2).state, "leader");
  assert.ok(network.node(2).log.committed >= committed);
});

// ---- §6 membership ----------------------------------------------------------------------

function confChangeEntry(change: ConfChange): Message["entries"][number] {
  return { term: 0, index: 0, type: "conf-change", data: encodeConfChange(change) };
}

test("§6 adding a voter changes the quorum once applied", () => {
  // Raft §6: "the cluster configuration is stored and communicated using special entries".
  const raft = newTestRaft(1, [1, 2]);
  makeLeader(raft);
  raft.applyConfChange({ type: "add-voter", nodeId: 3, context: noData });
  assert.deepEqual(raft.tracker.voters, [1, 2, 3]);
  const index = proposeAndPersist(raft, "x");
  raft.step(message({ type: "app-resp", from: 3, to: 1, term: raft.term, index }));
  assert.equal(raft.log.committed, index, "2 of 3 voters is a quorum");
});

test("§6 learners receive the log but never vote or count toward the quorum", () => {
  const raft = newTestRaft(1, [1, 2, 3], { learners: [4] });
  raft.becomeCandidate();
  raft.becomeLeader();
  raft.bcastAppend();
  assert.ok(readMessages(raft).some((m) => m.type === "app" && m.to === 4), "the learner gets appends");
  commitNoop(raft);
  raft.step(message({ type: "prop", from: 1, to: 1, entries: [entry(0, 0, "x")] }));
  const index = raft.log.lastIndex();
  raft.step(message({ type: "app-resp", from: 4, to: 1, term: raft.term, index }));
  assert.ok(raft.log.committed < index, "a learner's ack must not commit");
  const learner = newTestRaft(4, [1, 2, 3], { learners: [4] });
  for (let tick = 0; tick < 50; tick += 1) learner.tick();
  assert.equal(learner.state, "follower", "a learner never campaigns");
  const candidate = newTestRaft(1, [1, 2, 3], { learners: [4] });
  candidate.step(message({ type: "hup", from: 1, to: 1 }));
  assert.ok(readMessages(candidate).every((m) => m.to !== 4), "no vote request goes to a learner");
});

test("§6 only one conf change may be pending, and only after the leader commits in its term", () => {
  const raft = newTestRaft(1, [1, 2, 3]);
  raft.becomeCandidate();
  raft.becomeLeader();
  const propose = (nodeId: number): void =>
    raft.step(message({ type: "prop", from: 1, to: 1, entries: [confChangeEntry({ type: "add-voter", nodeId, context: noData })] }));
  assert.throws(() => propose(4), ProposalDroppedError, "no entry of this term is committed yet");
  commitNoop(raft);
  raft.log.appliedTo(raft.log.committed);
  propose(4);
  assert.throws(() => propose(5), ProposalDroppedError, "the first change is not applied yet");
});

test("§6 a promoted learner becomes a voter and counts toward the quorum", () => {
  const raft = newTestRaft(1, [1, 2, 3], { learners: [4] });
  makeLeader(raft);
  raft.applyConfChange({ type: "add-voter", nodeId: 4, context: noData });
  assert.deepEqual(raft.tracker.voters, [1, 2, 3, 4]);
  assert.deepEqual(raft.tracker.learners, []);
  assert.equal(raft.tracker.progress.get(4)?.isLearner, false);
});

test("§6 removed ids are remembered: their messages are dropped and they cannot rejoin", () => {
  const raft = newTestRaft(1, [1, 2, 3]);
  makeLeader(raft);
  const confState = raft.applyConfChange({ type: "remove-node", nodeId: 3, context: noData });
  assert.deepEqual(confState.removed, [3]);
  raft.step(message({ type: "app-resp", from: 3, to: 1, term: 99, index: 1 }));
  assert.equal(raft.term, 1, "a removed node's higher term must not disturb the leader");
  assert.equal(raft.state, "leader");
  raft.applyConfChange({ type: "add-voter", nodeId: 3, context: noData });
  assert.deepEqual(raft.tracker.voters, [1, 2]);
  raft.log.appliedTo(raft.log.committed);
  assert.throws(
    () => raft.step(message({ type: "prop", from: 1, to: 1, entries: [confChangeEntry({ type: "add-voter", nodeId: 3, context: noData })] })),
    ProposalDroppedError,
  );
});

test("§6 a leader removed from the configuration steps down", () => {
  const raft = newTestRaft(1, [1, 2, 3]);
  makeLeader(raft);
  raft.applyConfChange({ type: "remove-node", nodeId: 1, context: noData });
  assert.equal(raft.state, "follower");
  for (let tick = 0; tick < 50; tick += 1) raft.tick();
  assert.equal(raft.state, "follower", "a removed node never campaigns");
});

test("§6 removing a voter lets the smaller quorum commit pending entries", () => {
  const raft = newTestRaft(1, [1, 2]);
  makeLeader(raft);
  const index = proposeAndPersist(raft, "x");
  assert.ok(raft.log.committed < index);
  raft.applyConfChange({ type: "remove-node", nodeId: 2, context: noData });
  assert.equal(raft.log.committed, index);
});

// ---- §7 log compaction ------------------------------------------------------------------

test("§7 a leader sends a snapshot to a follower that needs compacted entries", () => {
  // Raft §7: "the leader must occasionally send snapshots to followers that lag behind."
  const storage = storageWithTerms([1, 1, 1, 1, 1], [1, 2]);
  storage.setHardState({ term: 1, vote: 1, commit: 5 });
  storage.createSnapshot(4, { voters: [1, 2], learners: [] }, new TextEncoder().encode("state"));
  storage.compact(4);
  const raft = newTestRaft(1, [1, 2], { storage, applied: 5 });
  raft.becomeCandidate();
  raft.becomeLeader();
  readMessages(raft);
  // The follower is at 2: index 3 and its term are compacted.
  const progress = raft.tracker.progress.get(2);
  assert.ok(progress !== undefined);
  progress.next = 3;
  progress.recentActive = true;
  raft.sendAppend(2);
  const [snap] = readMessages(raft);
  assert.equal(snap?.type, "snap");
  assert.equal(snap.snapshot?.metadata.index, 4);
  assert.equal(progress.state, "snapshot");
  raft.step(message({ type: "snap-status", from: 2, to: 1 }));
  assert.equal(progress.state, "probe");
});

test("§7 a follower installs a newer snapshot and ignores a stale one", () => {
  // Raft §7 InstallSnapshot: "If existing log entry has same index and term as snapshot's
  // last included entry, retain log entries following it"; else discard the entire log.
  const snapshot = { metadata: { index: 11, term: 11, confState: { voters: [1, 2], learners: [] } }, data: noData };
  const raft = newTestRaft(1, [1, 2]);
  raft.becomeFollower(11, 2);
  raft.step(message({ type: "snap", from: 2, to: 1, term: 11, snapshot }));
  assert.equal(raft.log.committed, 11);
  assert.equal(raft.log.lastIndex(), 11);
  assert.equal(raft.log.termOrNull(11), 11);
  assert.equal(readMessages(raft)[0]?.index, 11);
  const stale = { metadata: { index: 5, term: 5, confState: { voters: [1, 2], learners: [] } }, data: noData };
  raft.step(message({ type: "snap", from: 2, to: 1, term: 11, snapshot: stale }));
  assert.equal(raft.log.lastIndex(), 11, "a stale snapshot changes nothing");
  assert.equal(raft.log.unstable.snapshot?.metadata.index, 11);
});

test("§7 a follower that holds the snapshot's entries only fast-forwards its commit", () => {
  const raft = newTestRaft(1, [1, 2], { storage: storageWithTerms([1, 1, 1], [1, 2]) });
  raft.becomeFollower(1, 2);
  const snapshot = { metadata: { index: 2, term: 1, confState: { voters: [1, 2], learners: [] } }, data: noData };
  raft.step(message({ type: "snap", from: 2, to: 1, term: 1, snapshot }));
  assert.equal(raft.log.committed, 2);
  assert.equal(raft.log.lastIndex(), 3, "entries after the snapshot are kept");
  assert.equal(raft.log.hasPendingSnapshot(), false);
});

// ---- replication flow control -----------------------------------------------------------

test("replication: the in-flight window bounds appends to a silent follower", () => {
  const raft = newTestRaft(1, [1, 2, 3], { maxInflightMsgs: 3 });
  makeLeader(raft);
  const progress = raft.tracker.progress.get(2);
  assert.equal(progress?.state, "replicate");
  for (let round = 0; round < 10; round += 1) {
    raft.step(message({ type: "prop", from: 1, to: 1, entries: [entry(0, 0, "x")] }));
  }
  const appends = readMessages(raft).filter((m) => m.type === "app" && m.to === 2);
  assert.equal(appends.length, 3);
  assert.equal(progress.isPaused(), true);
});

test("replication: appends are batched up to maxSizePerMsgBytes", () => {
  const raft = newTestRaft(1, [1, 2], { maxSizePerMsgBytes: 300 });
  makeLeader(raft);
  const progress = raft.tracker.progress.get(2);
  assert.ok(progress !== undefined);
  progress.becomeProbe();
  for (let round = 0; round < 10; round += 1) {
    raft.step(message({ type: "prop", from: 1, to: 1, entries: [entry(0, 0, "x".repeat(100))] }));
  }
  readMessages(raft);
  progress.probeSent = false;
  raft.sendAppend(2);
  const [append] = readMessages(raft);
  assert.equal(append?.entries.length, 2, "two 124-byte entries fit in 300 bytes, three do not");
});

test("replication: a leader drops proposals beyond the uncommitted-bytes limit", () => {
  const raft = newTestRaft(1, [1, 2, 3], { maxUncommittedEntriesBytes: 250 });
  makeLeader(raft);
  const propose = (): void => raft.step(message({ type: "prop", from: 1, to: 1, entries: [entry(0, 0, "x".repeat(100))] }));
  propose();
  propose();
  assert.throws(propose, ProposalDroppedError);
});

// ---- pre-vote, check-quorum, lease ------------------------------------------------------

test("pre-vote: a partitioned node does not raise its term and cannot disrupt the leader", () => {
  const network = Network.ofSize(3, { preVote: true });
  network.campaign(1);
  const term = network.node(1).term;
  network.isolate(3);
  for (let round = 0; round < 5; round += 1) network.campaign(3);
  assert.equal(network.node(3).term, term, "pre-votes are lost, so the term stays");
  assert.equal(network.node(3).state, "pre-candidate");
  network.recover();
  network.propose(1, "x");
  assert.equal(network.node(1).state, "leader");
  assert.equal(network.node(1).term, term);
});

test("check-quorum: a leader that cannot reach a quorum steps down", () => {
  const raft = newTestRaft(1, [1, 2, 3], { checkQuorum: true });
  makeLeader(raft);
  // Node 2 answered within the first timeout (through commitNoop); nobody afterwards.
  for (let tick = 0; tick < 2 * raft.electionTimeout; tick += 1) raft.tick();
  assert.equal(raft.state, "follower");
});

test("leader lease: a follower that heard from its leader ignores a disruptive vote request", () => {
  const raft = newTestRaft(1, [1, 2, 3], { checkQuorum: true });
  raft.step(message({ type: "heartbeat", from: 2, to: 1, term: 1 }));
  readMessages(raft);
  raft.step(message({ type: "vote", from: 3, to: 1, term: 2, index: 10, logTerm: 5 }));
  assert.equal(raft.term, 1);
  assert.deepEqual(readMessages(raft), []);
  for (let tick = 0; tick < raft.electionTimeout; tick += 1) raft.tick();
  raft.becomeFollower(raft.term, 2);
  raft.electionElapsed = raft.electionTimeout;
  raft.step(message({ type: "vote", from: 3, to: 1, term: 2, index: 10, logTerm: 5 }));
  assert.equal(raft.term, 2, "after the lease expires the vote is considered");
});

test("leader lost: a follower whose stream to the leader failed gives up the lease and campaigns within the randomized part of its timeout", () => {
  const raft = newTestRaft(1, [1, 2, 3], { checkQuorum: true, preVote: true });
  raft.step(message({ type: "heartbeat", from: 2, to: 1, term: 1 }));
  readMessages(raft);
  raft.step(message({ type: "unreachable", from: 2, to: 1 }));
  raft.step(message({ type: "pre-vote", from: 3, to: 1, term: 2, index: 10, logTerm: 5 }));
  assert.deepEqual(
    readMessages(raft).map((sent) => ({ type: sent.type, to: sent.to, reject: sent.reject })),
    [{ type: "pre-vote-resp", to: 3, reject: false }],
    "without the lease the pre-vote is granted",
  );
  let ticks = 0;
  while (raft.state === "follower" && ticks < 2 * raft.electionTimeout) {
    raft.tick();
    ticks += 1;
  }
  assert.equal(raft.state, "pre-candidate");
  assert.ok(ticks <= raft.electionTimeout, `campaigned after ${ticks} ticks; the full timeout is at least ${raft.electionTimeout}`);
});

test("leader lost: a report about another member, or one the leader's next heartbeat answers, leaves the lease", () => {
  const raft = newTestRaft(1, [1, 2, 3], { checkQuorum: true, preVote: true });
  raft.step(message({ type: "heartbeat", from: 2, to: 1, term: 1 }));
  raft.step(message({ type: "unreachable", from: 3, to: 1 }));
  readMessages(raft);
  raft.step(message({ type: "pre-vote", from: 3, to: 1, term: 2, index: 10, logTerm: 5 }));
  assert.deepEqual(readMessages(raft), [], "member 3 is not the leader: the lease holds");
  raft.step(message({ type: "unreachable", from: 2, to: 1 }));
  raft.step(message({ type: "heartbeat", from: 2, to: 1, term: 1 }));
  readMessages(raft);
  raft.step(message({ type: "pre-vote", from: 3, to: 1, term: 2, index: 10, logTerm: 5 }));
  assert.deepEqual(readMessages(raft), [], "the leader was heard from again: the lease is back");
  let ticks = 0;
  while (raft.state === "follower" && ticks < 2 * raft.electionTimeout) {
    raft.tick();
    ticks += 1;
  }
  assert.ok(ticks >= raft.electionTimeout, `campaigned after ${ticks} ticks, within the lease`);
});

// ---- leadership transfer and ReadIndex ---------------------------------------------------

test("transfer: the leader catches the transferee up, then it takes over at once", () => {
  const network = Network.ofSize(3, { checkQuorum: true });
  network.campaign(1);
  network.isolate(3);
  network.propose(1, "x");
  network.recover();
  network.send(message({ type: "transfer-leader", from: 3, to: 1 }));
  assert.equal(network.node(3).state, "leader");
  assert.equal(network.node(1).state, "follower");
  assert.equal(network.node(3).log.lastIndex(), network.node(1).log.lastIndex());
});

test("transfer: proposals are refused while a transfer is in progress, and it times out", () => {
  const network = Network.ofSize(3);
  network.campaign(1);
  network.isolate(3);
  const leader = network.node(1);
  leader.step(message({ type: "transfer-leader", from: 3, to: 1 }));
  network.send(...readMessages(leader));
  assert.equal(leader.leadTransferee, 3);
  assert.throws(() => network.propose(1, "y"), ProposalDroppedError);
  for (let tick = 0; tick < leader.electionTimeout; tick += 1) leader.tick();
  assert.equal(leader.leadTransferee, 0);
  assert.equal(leader.state, "leader");
});

test("ReadIndex: the leader answers after a quorum confirms it with a heartbeat round", () => {
  const network = Network.ofSize(3);
  network.campaign(1);
  network.propose(1, "x");
  const leader = network.node(1);
  const context = new TextEncoder().encode("read-1");
  network.send(message({ type: "read-index", from: 1, to: 1, context }));
  assert.deepEqual(leader.readStates, [{ index: leader.log.committed, requestContext: context }]);
  const confirmations = network.delivered.filter((m) => m.type === "heartbeat-resp" && m.context.length > 0);
  assert.ok(confirmations.length >= 1);
});

test("ReadIndex: with no quorum the leader never answers", () => {
  const network = Network.ofSize(3);
  network.campaign(1);
  network.isolate(1);
  network.send(message({ type: "read-index", from: 1, to: 1, context: new TextEncoder().encode("r") }));
  assert.deepEqual(network.node(1).readStates, []);
});

test("ReadIndex: a follower forwards to the leader and gets the read point back", () => {
  const network = Network.ofSize(3);
  network.campaign(1);
  network.propose(1, "x");
  const context = new TextEncoder().encode("read-2");
  network.send(message({ type: "read-index", from: 2, to: 2, context }));
  assert.deepEqual(network.node(2).readStates, [{ index: network.node(1).log.committed, requestContext: context }]);
});

test("§5.2 one leader is elected in a cluster with lost messages", () => {
  // Election safety across a whole cluster: whatever the order, at most one leader per term.
  const network = Network.ofSize(5);
  network.cut(1, 2);
  network.campaign(1);
  const leaders = [...network.nodes.values()].filter((node) => node.state === "leader");
  assert.equal(leaders.length, 1);
  tickUntilElection(network.node(2));
  assert.ok([...network.nodes.values()].filter((n) => n.state === "leader" && n.term === leaders[0]?.term).length <= 1);
});

test("§6 a node whose log holds two unapplied conf changes does not campaign", () => {
  // Configurations apply at apply time (etcd's model), so a candidate counts votes in a
  // configuration at most one change behind. A crash that kept entries but tore off the
  // hard state can leave two changes beyond the commit index (simulator seed 16320).
  const storage = new MemoryLogStorage();
  const changes = [
    { type: "add-voter" as const, nodeId: 4, context: noData },
    { type: "remove-node" as const, nodeId: 1, context: noData },
  ];
  storage.append([entry(1, 1), ...changes.map((change, offset) => ({ term: 1, index: 2 + offset, type: "conf-change" as const, data: encodeConfChange(change) }))]);
  storage.setHardState({ term: 1, vote: 0, commit: 1 });
  storage.setConfState({ voters: [1, 2, 3], learners: [] });
  const raft = newTestRaft(2, [1, 2, 3], { storage, applied: 1 });
  raft.step(message({ type: "hup", from: 2, to: 2 }));
  assert.equal(raft.state, "follower");
  // Once the first change is known committed and applied, one pending change is allowed.
  raft.log.commitTo(2);
  raft.log.appliedTo(2);
  raft.applyConfChange(changes[0] ?? assert.fail());
  raft.step(message({ type: "hup", from: 2, to: 2 }));
  assert.equal(raft.state, "candidate");
});

test("ReadIndex: a new leader defers reads until an entry of its term commits", () => {
  // Thesis §6.4: the leader's commit index is only known current once it commits an entry
  // of its own term; a read answered earlier could miss a write committed by a predecessor.
  const raft = newTestRaft(1, [1, 2, 3]);
  raft.becomeCandidate();
  raft.becomeLeader();
  persistLocal(raft);
  readMessages(raft);
  const context = new TextEncoder().encode("early");
  raft.step(message({ type: "read-index", from: 1, to: 1, context }));
  assert.equal(readMessages(raft).some((m) => m.type === "heartbeat"), false, "no confirmation round yet");
  raft.step(message({ type: "app-resp", from: 2, to: 1, term: raft.term, index: raft.log.lastIndex() }));
  const heartbeats = readMessages(raft).filter((m) => m.type === "heartbeat" && m.context.length > 0);
  assert.deepEqual(heartbeats.map((m) => m.to), [2, 3]);
  // A follower echoes the heartbeat's context.
  raft.step(message({ type: "heartbeat-resp", from: 3, to: 1, term: raft.term, context: heartbeats[1]?.context ?? assert.fail() }));
  assert.deepEqual(raft.readStates, [{ index: raft.log.committed, requestContext: context }]);
});

test("§5.1 a node with a higher term answers a stale leader, which then steps down", () => {
  // Raft §5.1: "If a candidate or leader discovers that its term is out of date, it
  // immediately reverts to follower state." The answer is sent even without pre-vote or
  // check-quorum, so a node that cannot campaign (here a learner) is never stranded.
  const learner = newTestRaft(4, [1, 2, 3], { learners: [4] });
  learner.becomeFollower(9, 0);
  learner.step(message({ type: "app", from: 1, to: 4, term: 3 }));
  const [answer] = readMessages(learner);
  assert.equal(answer?.type, "app-resp");
  assert.equal(answer.term, 9);
  const leader = newTestRaft(1, [1, 2, 3], { learners: [4] });
  makeLeader(leader);
  leader.step(answer);
  assert.equal(leader.state, "follower");
  assert.equal(leader.term, 9);
});
