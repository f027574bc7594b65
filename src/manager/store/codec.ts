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

/** The fields of a versioned envelope, and its version, one of `versions` (the codec's by default). */
function parseEnvelope(
  value: unknown,
  format: string,
  keys: readonly string[],
  versions = { min: codecFormatVersion, max: codecFormatVersion },
): { fields: Readonly<Record<string, unknown>>; formatVersion: number } {
  const fields = parseFields(value, format, ["format", "formatVersion", ...keys]);
  if (fields["format"] !== format) throw new InvalidArgumentError(`${format}: wrong format ${JSON.stringify(fields["format"])}`);
  const formatVersion = required(fields, "formatVersion", format, (item, at) => parseInteger(item, at, versions));
  return { fields, formatVersion };
}

/** Encodes one transaction's changes for a raft entry. */
export function encodeStoreChanges(changes: readonly StoreChange[]): Uint8Array {
  return Buffer.from(JSON.stringify({ format: changesFormat, formatVersion: codecFormatVersion, changes }), "utf8");
}

/** Decodes a raft entry written by encodeStoreChanges; InvalidArgumentError names what does not parse. */
export function decodeStoreChanges(data: Uint8Array): StoreChange[] {
  const { fields } = parseEnvelope(parseJson(data, changesFormat), changesFormat, ["changes"]);
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
type SnapshotTable = (typeof snapshotTables)[number];
const tableKinds: { [T in SnapshotTable]: ObjectKind } = {
  clusters: "cluster",
  nodes: "node",
  services: "service",
  tasks: "task",
  networks: "network",
};

/**
 * Snapshots are JSON lines: a header line, then one line per object, table by table, the
 * header counting each table's lines. A reader can then parse a large store a slice at a
 * time instead of as one JSON text (JSON.stringify never writes a raw newline). Version 1
 * was one JSON object holding the tables as arrays; it is still read.
 */
const snapshotFormatVersion = 2;
const snapshotFormatVersionOne = 1;
const newline = 0x0a;

type SnapshotObjectOf<K extends ObjectKind> = { kind: K; object: ObjectByKind[K] };
export type SnapshotObject = { [K in ObjectKind]: SnapshotObjectOf<K> }[ObjectKind];

/** A snapshot whose header is read; its objects are parsed one at a time, as they are taken. */
export interface StoreSnapshotReader {
  /** The store version the snapshot holds. */
  readonly version: number;
  /** Every object, table by table; InvalidArgumentError names the first that does not parse. */
  objects(): Generator<SnapshotObject, void, undefined>;
}

/**
 * A store snapshot's bytes as text pieces that joined in order are the snapshot: the
 * header line, then one line per object. A caller can encode a large store over several
 * turns of the event loop instead of one.
 */
export function* storeSnapshotPieces(content: StoreSnapshotContent): Generator<string, void, undefined> {
  const counts = Object.fromEntries(snapshotTables.map((table) => [table, content[table].length]));
  yield `${JSON.stringify({ format: snapshotFormat, formatVersion: snapshotFormatVersion, version: content.version, counts })}\n`;
  for (const table of snapshotTables) {
    for (const object of content[table]) yield `${JSON.stringify(object)}\n`;
  }
}

function parseSnapshotVersion(fields: Readonly<Record<string, unknown>>): number {
  return required(fields, "version", snapshotFormat, (item, at) => parseInteger(item, at, { min: 0, max: Number.MAX_SAFE_INTEGER }));
}

/** Parses one object of a snapshot as the kind its table holds. */
function parseSnapshotObject(kind: ObjectKind, value: unknown, path: string): SnapshotObject {
  switch (kind) {
    case "cluster":
      return { kind, object: objectParsers.cluster(value, path) };
    case "node":
      return { kind, object: objectParsers.node(value, path) };
    case "service":
      return { kind, object: objectParsers.service(value, path) };
    case "task":
      return { kind, object: objectParsers.task(value, path) };
    case "network":
      return { kind, object: objectParsers.network(value, path) };
  }
}

/** Reads a snapshot's header; InvalidArgumentError when it does not parse or is of another format. */
export function readStoreSnapshot(data: Uint8Array): StoreSnapshotReader {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const headerEnd = bytes.indexOf(newline);
  // A version 1 snapshot has no newline: its "header" is the whole snapshot.
  const header = parseJson(headerEnd === -1 ? bytes : bytes.subarray(0, headerEnd), snapshotFormat);
  const { fields, formatVersion } = parseEnvelope(header, snapshotFormat, ["version", "counts", ...snapshotTables], {
    min: snapshotFormatVersionOne,
    max: snapshotFormatVersion,
  });
  if (formatVersion === snapshotFormatVersionOne) return readSnapshotVersionOne(fields);
  // A version 2 header holds no tables: they are the lines after it.
  parseFields(header, snapshotFormat, ["format", "formatVersion", "version", "counts"]);
  const counts = required(fields, "counts", snapshotFormat, (item, at) => {
    const countFields = parseFields(item, at, snapshotTables);
    return snapshotTables.map(
      (table) => [table, required(countFields, table, at, (value, path) => parseInteger(value, path, { min: 0, max: snapshotObjectsMax }))] as const,
    );
  });
  return {
    version: parseSnapshotVersion(fields),
    *objects() {
      let start = headerEnd + 1;
      for (const [table, count] of counts) {
        for (let index = 0; index < count; index += 1) {
          const path = `${snapshotFormat}.${table}[${index}]`;
          const end = bytes.indexOf(newline, start);
          if (end === -1) throw new InvalidArgumentError(`${path}: the snapshot ends before its ${count} ${table}`);
          yield parseSnapshotObject(tableKinds[table], parseJson(bytes.subarray(start, end), path), path);
          start = end + 1;
        }
      }
      if (start !== bytes.length) throw new InvalidArgumentError(`${snapshotFormat}: ${bytes.length - start} bytes after the objects its header counts`);
    },
  };
}

/** A version 1 snapshot, parsed whole already; its objects are checked as they are taken. */
function readSnapshotVersionOne(fields: Readonly<Record<string, unknown>>): StoreSnapshotReader {
  if (fields["counts"] !== undefined) throw new InvalidArgumentError(`${snapshotFormat}.counts: unknown field in a version 1 snapshot`);
  const tables = snapshotTables.map((table) => {
    // Snapshots from before networks existed have no such key.
    const items = table === "networks" && fields[table] === undefined ? [] : fields[table];
    return [table, parseArray(items, `${snapshotFormat}.${table}`, snapshotObjectsMax, (item) => item)] as const;
  });
  return {
    version: parseSnapshotVersion(fields),
    *objects() {
      for (const [table, items] of tables) {
        for (const [index, item] of items.entries()) yield parseSnapshotObject(tableKinds[table], item, `${snapshotFormat}.${table}[${index}]`);
      }
    },
  };
}

/** Decodes a whole snapshot at once (tests and tools; the store reads it a slice at a time). */
export function decodeStoreSnapshot(data: Uint8Array): StoreSnapshotContent {
  const reader = readStoreSnapshot(data);
  const content: StoreSnapshotContent = { version: reader.version, clusters: [], nodes: [], services: [], tasks: [], networks: [] };
  const lists: { [K in ObjectKind]: ObjectByKind[K][] } = {
    cluster: content.clusters,
    node: content.nodes,
    service: content.services,
    task: content.tasks,
    network: content.networks,
  };
  const add = <K extends ObjectKind>({ kind, object }: SnapshotObjectOf<K>): void => {
    lists[kind].push(object);
  };
  for (const item of reader.objects()) add(item);
  return content;
}
