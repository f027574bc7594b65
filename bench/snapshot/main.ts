// How long a manager's raft snapshot holds the event loop. A store of --tasks tasks (100
// services) is encoded as the manager's snapshot (store JSON, manager directory, raft's
// envelope) twice: in one go, as before (one JSON string, joined to the directory; the
// one-go figure stops there, as the envelope's copy is sliced for both now), and as the
// manager now does it (sliced, the parts copied once), while a setImmediate chain
// measures the longest turn; then a follower restores
// it (parsed and indexed in slices). While the loop is held, raft's ticks and appends,
// the dispatcher's heartbeats and the API all wait. Prints the
// median of --rounds (--quick: 2,000 tasks, 3 rounds); with --json the last stdout line is
// one JSON object with every figure. No peer runs here: etcd and swarmkit encode their
// snapshots in another goroutine, from a consistent read view of their stores.
import { parseArgs } from "node:util";

import { pino } from "pino";

import { parseServiceSpec } from "../../src/manager/objects/index.js";
import { ManagerStateMachine } from "../../src/manager/manager/replicated-state.js";
import { MemberDirectory } from "../../src/manager/manager/member-directory.js";
import { MemoryStore, restoreObjectsPerTurn, snapshotObjectsPerTurn, storeSnapshotPieces } from "../../src/manager/store/index.js";
import { decodeSnapshotEnvelope, encodeSnapshotEnvelope } from "../../src/raft/node/envelope.js";

const servicesCount = 100;
const silent = pino({ level: "silent" });
const members = new Map([
  [1, "10.0.0.1:4242"],
  [2, "10.0.0.2:4242"],
  [3, "10.0.0.3:4242"],
]);

async function buildStore(tasks: number): Promise<MemoryStore> {
  const store = new MemoryStore({ proposer: null, logger: silent });
  const perService = Math.ceil(tasks / servicesCount);
  for (let s = 0; s < servicesCount; s += 1) {
    const spec = parseServiceSpec({ name: `web${s}`, mode: { replicas: perService }, taskTemplate: { containerSpec: { image: "nginx:1.27", env: [`SERVICE=${s}`] } } });
    const service = await store.update((tx) => tx.create("service", { id: `service${s}`, spec, specVersion: 1 }));
    for (let first = 1; first <= perService; first += 100) {
      await store.update((tx) => {
        for (let slot = first; slot < first + 100 && slot <= perService; slot += 1) {
          tx.create("task", {
            id: `task${s}x${slot}`,
            serviceId: service.id,
            serviceName: spec.name,
            slot,
            nodeId: `node${slot % 50}`,
            desiredState: "running",
            spec: spec.taskTemplate,
            specVersion: 1,
            endpoint: spec.endpointSpec,
            attempt: 0,
            status: { state: "running", timestamp: 1_700_000_000_000 + slot, message: "started", err: "" },
          });
        }
      });
    }
  }
  return store;
}

/** Records the longest gap between turns of the event loop until stop(). */
function watchTurns(): { stop: () => number } {
  let last = performance.now();
  let longest = 0;
  let running = true;
  const turn = (): void => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    if (running) setImmediate(turn);
  };
  setImmediate(turn);
  return {
    stop: () => {
      running = false;
      return longest;
    },
  };
}

interface Round {
  oneGoMs: number;
  slicedLongestTurnMs: number;
  slicedTotalMs: number;
  restoreLongestTurnMs: number;
  restoreTotalMs: number;
  bytes: number;
}

/**
 * The manager's state machine bytes as they were encoded before they were sliced: all in
 * one turn. (The envelope's copy of them was in that turn too; it is sliced now for both.)
 */
function encodeInOneGo(store: MemoryStore, directory: MemberDirectory): Buffer {
  const content = store.view((tx) => ({
    version: store.version,
    clusters: tx.find("cluster"),
    nodes: tx.find("node"),
    services: tx.find("service"),
    tasks: tx.find("task"),
    networks: tx.find("network"),
  }));
  const storeBytes = Buffer.from([...storeSnapshotPieces(content)].join(""), "utf8");
  const directoryBytes = Buffer.from(JSON.stringify(directory.all()), "utf8");
  const header = Buffer.alloc(4);
  header.writeUInt32LE(directoryBytes.length, 0);
  return Buffer.concat([header, directoryBytes, storeBytes]);
}

async function round(store: MemoryStore, directory: MemberDirectory): Promise<Round> {
  const machine = new ManagerStateMachine({ store, directory });
  const oneGoStart = performance.now();
  const oneGoData = encodeInOneGo(store, directory);
  const oneGoMs = performance.now() - oneGoStart;
  const oneGo = await encodeSnapshotEnvelope({ members, data: oneGoData });
  // Let the loop settle, so that the first turn measured is not the one-go encoding's.
  await new Promise<void>((resolve) => setImmediate(resolve));
  const turns = watchTurns();
  const slicedStart = performance.now();
  const sliced = await encodeSnapshotEnvelope({ members, data: await machine.snapshot() });
  const slicedTotalMs = performance.now() - slicedStart;
  await new Promise<void>((resolve) => setImmediate(resolve));
  const slicedLongestTurnMs = turns.stop();
  if (sliced.length !== oneGo.length) throw new Error(`sliced snapshot of ${sliced.length} bytes, one-go of ${oneGo.length}`);
  // A follower catching up: the same bytes restored into an empty manager.
  const follower = new ManagerStateMachine({ store: new MemoryStore({ proposer: null, logger: silent }), directory: new MemberDirectory([]) });
  const restoreTurns = watchTurns();
  const restoreStart = performance.now();
  await follower.restore(decodeSnapshotEnvelope(sliced).data);
  const restoreTotalMs = performance.now() - restoreStart;
  await new Promise<void>((resolve) => setImmediate(resolve));
  const restoreLongestTurnMs = restoreTurns.stop();
  return { oneGoMs, slicedLongestTurnMs, slicedTotalMs, restoreLongestTurnMs, restoreTotalMs, bytes: sliced.length };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

const round2 = (value: number): number => Math.round(value * 100) / 100;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      tasks: { type: "string" },
      rounds: { type: "string" },
      quick: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    },
  });
  const tasks = Number.parseInt(values.tasks ?? (values.quick ? "2000" : "10000"), 10);
  const roundsCount = Number.parseInt(values.rounds ?? (values.quick ? "3" : "5"), 10);
  if (!(tasks > 0 && roundsCount > 0)) throw new Error("--tasks and --rounds must be positive integers");
  const store = await buildStore(tasks);
  const directory = new MemberDirectory(
    [...members].map(([raftId, address]) => ({ raftId, nodeId: `manager${raftId}`, address, suffrage: "voter" as const })),
  );
  const rounds: Round[] = [];
  for (let index = 0; index < roundsCount; index += 1) rounds.push(await round(store, directory));
  const figures = {
    tasks: store.view((tx) => tx.find("task").length),
    snapshot_mb: round2((rounds[0]?.bytes ?? 0) / 1e6),
    objects_per_turn: snapshotObjectsPerTurn,
    restore_objects_per_turn: restoreObjectsPerTurn,
    one_go_block_ms: round2(median(rounds.map((r) => r.oneGoMs))),
    sliced_longest_turn_ms: round2(median(rounds.map((r) => r.slicedLongestTurnMs))),
    sliced_total_ms: round2(median(rounds.map((r) => r.slicedTotalMs))),
    restore_longest_turn_ms: round2(median(rounds.map((r) => r.restoreLongestTurnMs))),
    restore_total_ms: round2(median(rounds.map((r) => r.restoreTotalMs))),
  };
  console.log(`snapshot: ${figures.tasks} tasks, ${figures.snapshot_mb} MB, median of ${roundsCount} rounds`);
  console.log(`  encoded in one go (before): the event loop held ${figures.one_go_block_ms} ms`);
  console.log(
    `  sliced, ${snapshotObjectsPerTurn} objects per turn (now): longest turn ${figures.sliced_longest_turn_ms} ms, ${figures.sliced_total_ms} ms from start to bytes`,
  );
  console.log(
    `  restored by a follower, ${restoreObjectsPerTurn} objects per turn: longest turn ${figures.restore_longest_turn_ms} ms, ${figures.restore_total_ms} ms in all`,
  );
  if (values.json === true) console.log(JSON.stringify(figures));
}

await main();
