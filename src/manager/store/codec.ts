import { InvalidArgumentError, errorMessage } from "../../common/errors.js";
import { parseCluster, parseNetwork, parseNode, parseService, parseTask } from "../objects/index.js";
import { parseArray, parseEnum, parseFields, parseInteger, required } from "../objects/parse.js";
import { changeActions, objectKinds, type ObjectByKind, type ObjectKind, type StoreChange } from "./types.js";

/**
 * Raft entries and snapshots are JSON in a versioned envelope. JSON because the objects are
 * plain data with no binary fields, every manager runs the same code, and a log entry can be
 * read by eye when debugging; the envelope's `formatVersion` lets a later release change the
 * encoding. Decoding parses every object fully: bytes from disk or the network are
 * `unknown` until checked.
 */

export const changesFormat = "shoal.store.changes";
export const snapshotFormat = "shoal.store.snapshot";
export const codecFormatVersion = 1;
/**
 * Most objects one update() (or one batch.update() callback) may change, and the size at
 * which a batch sends what it has gathered as one proposal (swarmkit's
 * MaxChangesPerTransaction).
 */
export const transactionChangesMax = 200;
/** Most changes one raft entry may carry: a batch flushes once it reaches transactionChangesMax, so it stays below twice that. */
export const entryChangesMax = 2 * transactionChangesMax;
/** Most objects a snapshot may hold, per kind. */
export const snapshotObjectsMax = 10_000_000;

const objectParsers: { [K in ObjectKind]: (value: unknown, path: string) => ObjectByKind[K] } = {
  cluster: parseCluster,
  node: parseNode,
  service: parseService,
  task: parseTask,
  network: parseNetwork,
};

function parseChange(value: unknown, path: string): StoreChange {
  const fields = parseFields(value, path, ["action", "kind", "object"]);
  const action = required(fields, "action", path, (item, at) => parseEnum(item, at, changeActions));
  const kind = required(fields, "kind", path, (item, at) => parseEnum(item, at, objectKinds));
  switch (kind) {
    case "cluster":
      return { action, kind, object: required(fields, "object", path, objectParsers.cluster) };
    case "node":
      return { action, kind, object: required(fields, "object", path, objectParsers.node) };
    case "service":
      return { action, kind, object: required(fields, "object", path, objectParsers.service) };
    case "task":
      return { action, kind, object: required(fields, "object", path, objectParsers.task) };
    case "network":
      return { action, kind, object: required(fields, "object", path, objectParsers.network) };
  }
}

function parseJson(data: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("utf8"));
  } catch (error) {
    throw new InvalidArgumentError(`${what} is not valid JSON: ${errorMessage(error)}`, { cause: error });
  }
}

function parseEnvelope(value: unknown, format: string, keys: readonly string[]): Readonly<Record<string, unknown>> {
  const fields = parseFields(value, format, ["format", "formatVersion", ...keys]);
  if (fields["format"] !== format) throw new InvalidArgumentError(`${format}: wrong format ${JSON.stringify(fields["format"])}`);
  required(fields, "formatVersion", format, (item, at) => parseInteger(item, at, { min: codecFormatVersion, max: codecFormatVersion }));
  return fields;
}

/** Encodes one transaction's changes for a raft entry. */
export function encodeStoreChanges(changes: readonly StoreChange[]): Uint8Array {
  return Buffer.from(JSON.stringify({ format: changesFormat, formatVersion: codecFormatVersion, changes }), "utf8");
}

/** Decodes a raft entry written by encodeStoreChanges; InvalidArgumentError names what does not parse. */
export function decodeStoreChanges(data: Uint8Array): StoreChange[] {
  const fields = parseEnvelope(parseJson(data, changesFormat), changesFormat, ["changes"]);
  return required(fields, "changes", changesFormat, (item, at) => parseArray(item, at, entryChangesMax, parseChange));
}

export interface StoreSnapshotContent {
  version: number;
  clusters: ObjectByKind["cluster"][];
  nodes: ObjectByKind["node"][];
  services: ObjectByKind["service"][];
  tasks: ObjectByKind["task"][];
  networks: ObjectByKind["network"][];
}

const snapshotTables = ["clusters", "nodes", "services", "tasks", "networks"] as const;

/**
 * A store snapshot's JSON in pieces, one per object, which joined are the JSON of the whole
 * (the same text as JSON.stringify of it): a caller can encode a large store over several
 * turns of the event loop instead of one.
 */
export function* storeSnapshotPieces(content: StoreSnapshotContent): Generator<string, void, undefined> {
  yield `{"format":${JSON.stringify(snapshotFormat)},"formatVersion":${codecFormatVersion},"version":${content.version}`;
  for (const table of snapshotTables) {
    let opening = `,"${table}":[`;
    for (const object of content[table]) {
      yield `${opening}${JSON.stringify(object)}`;
      opening = ",";
    }
    yield opening === "," ? "]" : `${opening}]`;
  }
  yield "}";
}

export function decodeStoreSnapshot(data: Uint8Array): StoreSnapshotContent {
  const keys = ["version", "clusters", "nodes", "services", "tasks", "networks"];
  const fields = parseEnvelope(parseJson(data, snapshotFormat), snapshotFormat, keys);
  const list = <T>(key: string, parse: (value: unknown, path: string) => T): T[] =>
    required(fields, key, snapshotFormat, (item, at) => parseArray(item, at, snapshotObjectsMax, parse));
  return {
    version: required(fields, "version", snapshotFormat, (item, at) => parseInteger(item, at, { min: 0, max: Number.MAX_SAFE_INTEGER })),
    clusters: list("clusters", objectParsers.cluster),
    nodes: list("nodes", objectParsers.node),
    services: list("services", objectParsers.service),
    tasks: list("tasks", objectParsers.task),
    // Snapshots from before networks existed have no such key.
    networks: fields["networks"] === undefined ? [] : list("networks", objectParsers.network),
  };
}
