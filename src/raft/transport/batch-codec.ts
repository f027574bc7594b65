import { InvalidArgumentError } from "../../common/errors.js";
import { isLocalMessageType } from "../core/message.js";
import type { ConfState, Entry, EntryType, Message, MessageType, NodeId, Snapshot } from "../core/types.js";

/**
 * A hand-written protobuf codec for RaftMessageBatch (proto/shoal/v1/raft.proto), used for
 * the Stream call that carries every append, heartbeat and answer. proto-loader's generic
 * codec builds an intermediate object per message and per entry and converts it again into
 * the core's Message; on the replication path that was about a fifth of the transport's CPU
 * and much of its garbage. The bytes are standard protobuf: any protobuf decoder (the
 * SendSnapshot call, tests) reads what this writes, and this reads what they write,
 * skipping unknown fields as protobuf requires.
 *
 * Decoding treats the bytes as untrusted: every number must be a non-negative safe integer,
 * every enum a known value and every length within the buffer, or the whole batch is
 * refused with InvalidArgumentError. Decoded byte fields are views into the input buffer.
 */

/** A batch as the Stream call carries it: the sender's id and its messages. */
export interface MessageBatch {
  readonly from: NodeId;
  readonly messages: readonly Message[];
}

/** Wire numbers of RaftMessageType, indexed by the core's message type. */
const messageTypeNumbers: Record<MessageType, number> = {
  hup: 1,
  beat: 2,
  prop: 3,
  app: 4,
  "app-resp": 5,
  vote: 6,
  "vote-resp": 7,
  "pre-vote": 8,
  "pre-vote-resp": 9,
  snap: 10,
  heartbeat: 11,
  "heartbeat-resp": 12,
  unreachable: 13,
  "snap-status": 14,
  "check-quorum": 15,
  "transfer-leader": 16,
  "timeout-now": 17,
  "read-index": 18,
  "read-index-resp": 19,
};

/** The types a peer may send; local-only ones (hup, beat, ...) are absent and refused. */
const peerMessageTypes = new Map<number, MessageType>();
for (const type of Object.keys(messageTypeNumbers)) {
  if (!isMessageType(type)) continue;
  if (isLocalMessageType(type)) continue;
  peerMessageTypes.set(messageTypeNumbers[type], type);
}

function isMessageType(value: string): value is MessageType {
  return Object.hasOwn(messageTypeNumbers, value);
}

const entryTypeNumbers: Record<EntryType, number> = { normal: 0, "conf-change": 1 };

const wireVarint = 0;
const wireFixed64 = 1;
const wireLengthDelimited = 2;
const wireFixed32 = 5;

const emptyBytes: Uint8Array = new Uint8Array(0);
/** Shared by every decoded message without entries; messages are immutable. */
const noEntries: readonly Entry[] = Object.freeze([]);

// ---------------------------------------------------------------------------------------
// Encoding: sizes first (protobuf prefixes every nested message with its length), then one
// buffer of exactly that size.

function varintBytes(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  if (value < 0x10000000) return 4;
  let bytes = 4;
  let rest = Math.floor(value / 0x10000000);
  while (rest > 0) {
    bytes += 1;
    rest = Math.floor(rest / 0x80);
  }
  return bytes;
}

/** A varint field's bytes (tag included), or 0 for the default value proto3 leaves out. */
function varintFieldBytes(value: number): number {
  return value === 0 ? 0 : 1 + varintBytes(value);
}

function bytesFieldBytes(length: number): number {
  return length === 0 ? 0 : 1 + varintBytes(length) + length;
}

function nestedFieldBytes(length: number): number {
  return 1 + varintBytes(length) + length;
}

function packedBytes(values: readonly number[]): number {
  let bytes = 0;
  for (const value of values) bytes += varintBytes(value);
  return bytes;
}

function confStateBytes(state: ConfState): number {
  let bytes = 0;
  for (const list of [state.voters, state.learners, state.removed ?? []]) {
    if (list.length > 0) bytes += nestedFieldBytes(packedBytes(list));
  }
  return bytes;
}

function snapshotMetadataBytes(snapshot: Snapshot): number {
  const { metadata } = snapshot;
  return varintFieldBytes(metadata.index) + varintFieldBytes(metadata.term) + nestedFieldBytes(confStateBytes(metadata.confState));
}

function snapshotBytes(snapshot: Snapshot): number {
  return nestedFieldBytes(snapshotMetadataBytes(snapshot)) + bytesFieldBytes(snapshot.data.length);
}

function entryBytes(entry: Entry): number {
  return (
    varintFieldBytes(entry.term) +
    varintFieldBytes(entry.index) +
    varintFieldBytes(entryTypeNumbers[entry.type]) +
    bytesFieldBytes(entry.data.length)
  );
}

function messageBytes(message: Message): number {
  let bytes =
    varintFieldBytes(messageTypeNumbers[message.type]) +
    varintFieldBytes(message.from) +
    varintFieldBytes(message.to) +
    varintFieldBytes(message.term) +
    varintFieldBytes(message.logTerm) +
    varintFieldBytes(message.index) +
    varintFieldBytes(message.commit) +
    (message.reject ? 2 : 0) +
    varintFieldBytes(message.rejectHint) +
    bytesFieldBytes(message.context.length);
  for (const entry of message.entries) bytes += nestedFieldBytes(entryBytes(entry));
  if (message.snapshot !== null) bytes += nestedFieldBytes(snapshotBytes(message.snapshot));
  return bytes;
}

class ProtoWriter {
  readonly buffer: Buffer;
  position = 0;

  constructor(bytes: number) {
    this.buffer = Buffer.allocUnsafe(bytes);
  }

  varint(value: number): void {
    let rest = value;
    // Bitwise operators work on 32 bits: above 2^31 the low seven bits come from division.
    while (rest >= 0x80000000) {
      this.buffer[this.position] = (rest % 0x80) | 0x80;
      this.position += 1;
      rest = Math.floor(rest / 0x80);
    }
    while (rest >= 0x80) {
      this.buffer[this.position] = (rest & 0x7f) | 0x80;
      this.position += 1;
      rest >>>= 7;
    }
    this.buffer[this.position] = rest;
    this.position += 1;
  }

  varintField(tag: number, value: number): void {
    if (value === 0) return;
    this.buffer[this.position] = tag;
    this.position += 1;
    this.varint(value);
  }

  bytesField(tag: number, bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.header(tag, bytes.length);
    this.buffer.set(bytes, this.position);
    this.position += bytes.length;
  }

  /** A length-delimited field's tag and length; the caller writes its contents next. */
  header(tag: number, length: number): void {
    this.buffer[this.position] = tag;
    this.position += 1;
    this.varint(length);
  }
}

function writeConfState(writer: ProtoWriter, state: ConfState): void {
  const lists = [state.voters, state.learners, state.removed ?? []];
  for (const [position, list] of lists.entries()) {
    if (list.length === 0) continue;
    writer.header(((position + 1) << 3) | wireLengthDelimited, packedBytes(list));
    for (const value of list) writer.varint(value);
  }
}

function writeSnapshot(writer: ProtoWriter, snapshot: Snapshot): void {
  const { metadata } = snapshot;
  writer.header(0x0a, snapshotMetadataBytes(snapshot));
  writer.varintField(0x08, metadata.index);
  writer.varintField(0x10, metadata.term);
  writer.header(0x1a, confStateBytes(metadata.confState));
  writeConfState(writer, metadata.confState);
  writer.bytesField(0x12, snapshot.data);
}

function writeEntry(writer: ProtoWriter, entry: Entry): void {
  writer.header(0x3a, entryBytes(entry));
  writer.varintField(0x08, entry.term);
  writer.varintField(0x10, entry.index);
  writer.varintField(0x18, entryTypeNumbers[entry.type]);
  writer.bytesField(0x22, entry.data);
}

function writeMessage(writer: ProtoWriter, message: Message, bytes: number): void {
  writer.header(0x12, bytes);
  writer.varintField(0x08, messageTypeNumbers[message.type]);
  writer.varintField(0x10, message.from);
  writer.varintField(0x18, message.to);
  writer.varintField(0x20, message.term);
  writer.varintField(0x28, message.logTerm);
  writer.varintField(0x30, message.index);
  for (const entry of message.entries) writeEntry(writer, entry);
  writer.varintField(0x40, message.commit);
  if (message.snapshot !== null) {
    writer.header(0x4a, snapshotBytes(message.snapshot));
    writeSnapshot(writer, message.snapshot);
  }
  writer.varintField(0x50, message.reject ? 1 : 0);
  writer.varintField(0x58, message.rejectHint);
  writer.bytesField(0x62, message.context);
}

/** Encodes a batch as a RaftMessageBatch; snapshot data, when present, is included. */
export function encodeMessageBatch(batch: MessageBatch): Buffer {
  const sizes = batch.messages.map(messageBytes);
  let total = varintFieldBytes(batch.from);
  for (const size of sizes) total += nestedFieldBytes(size);
  const writer = new ProtoWriter(total);
  writer.varintField(0x08, batch.from);
  for (const [position, message] of batch.messages.entries()) writeMessage(writer, message, sizes[position] ?? 0);
  if (writer.position !== total) throw new Error(`raft batch encoder wrote ${writer.position} of ${total} bytes`);
  return writer.buffer;
}

// ---------------------------------------------------------------------------------------
// Decoding.

class ProtoReader {
  readonly #bytes: Uint8Array;
  position: number;
  readonly end: number;

  constructor(bytes: Uint8Array, start: number, end: number) {
    this.#bytes = bytes;
    this.position = start;
    this.end = end;
  }

  more(): boolean {
    return this.position < this.end;
  }

  /** A varint as a non-negative safe integer; anything larger is refused. */
  varint(field: string): number {
    let value = 0;
    let scale = 1;
    for (let count = 0; count < 10; count += 1) {
      if (this.position >= this.end) throw new InvalidArgumentError(`raft message field ${field} is truncated`);
      const byte = this.#bytes[this.position] ?? 0;
      this.position += 1;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (!Number.isSafeInteger(value)) {
          throw new InvalidArgumentError(`raft message field ${field} is not a non-negative safe integer`);
        }
        return value;
      }
      scale *= 0x80;
    }
    throw new InvalidArgumentError(`raft message field ${field} is a varint longer than 10 bytes`);
  }

  /** A field's tag: its number (1 to 2^29 - 1) and wire type. */
  tag(): number {
    const tag = this.varint("tag");
    if (tag > 0xffffffff || tag >>> 3 === 0) throw new InvalidArgumentError(`raft message has an invalid field tag ${tag}`);
    return tag;
  }

  /**
   * Reads a length prefix and returns where the field ends, leaving the position at its
   * start (a number, not a {start, end} object: this runs for every field of every message).
   */
  delimitedEnd(field: string): number {
    const length = this.varint(field);
    if (length > this.end - this.position) throw new InvalidArgumentError(`raft message field ${field} runs past the end of its message`);
    return this.position + length;
  }

  bytes(field: string): Uint8Array {
    const end = this.delimitedEnd(field);
    const start = this.position;
    this.position = end;
    return this.#bytes.subarray(start, end);
  }

  nested(field: string): ProtoReader {
    const end = this.delimitedEnd(field);
    const start = this.position;
    this.position = end;
    return new ProtoReader(this.#bytes, start, end);
  }

  /** Skips a field this decoder does not know, as protobuf requires for compatibility. */
  skip(wireType: number): void {
    let end: number;
    if (wireType === wireVarint) {
      this.varint("(unknown)");
      return;
    }
    if (wireType === wireLengthDelimited) {
      this.position = this.delimitedEnd("(unknown)");
      return;
    }
    if (wireType === wireFixed64) end = this.position + 8;
    else if (wireType === wireFixed32) end = this.position + 4;
    else throw new InvalidArgumentError(`raft message has a field of unsupported wire type ${wireType}`);
    if (end > this.end) throw new InvalidArgumentError("raft message has a truncated unknown field");
    this.position = end;
  }
}

/** Reads a repeated uint64 field, packed (proto3's default) or one value per tag. */
function readIds(reader: ProtoReader, wireType: number, into: number[], field: string): void {
  if (wireType === wireVarint) {
    into.push(reader.varint(field));
    return;
  }
  if (wireType !== wireLengthDelimited) throw new InvalidArgumentError(`raft message field ${field} has wire type ${wireType}`);
  const packed = reader.nested(field);
  while (packed.more()) into.push(packed.varint(field));
}

function readConfState(reader: ProtoReader): ConfState {
  const voters: number[] = [];
  const learners: number[] = [];
  const removed: number[] = [];
  while (reader.more()) {
    const tag = reader.tag();
    const field = tag >>> 3;
    if (field === 1) readIds(reader, tag & 7, voters, "snapshot.voters");
    else if (field === 2) readIds(reader, tag & 7, learners, "snapshot.learners");
    else if (field === 3) readIds(reader, tag & 7, removed, "snapshot.removed");
    else reader.skip(tag & 7);
  }
  return removed.length > 0 ? { voters, learners, removed } : { voters, learners };
}

function expectWireType(tag: number, wireType: number, field: string): void {
  if ((tag & 7) !== wireType) throw new InvalidArgumentError(`raft message field ${field} has wire type ${tag & 7}`);
}

function readSnapshot(reader: ProtoReader): Snapshot {
  let metadata: Snapshot["metadata"] | null = null;
  let data = emptyBytes;
  while (reader.more()) {
    const tag = reader.tag();
    if (tag >>> 3 === 1) {
      expectWireType(tag, wireLengthDelimited, "snapshot.metadata");
      metadata = readSnapshotMetadata(reader.nested("snapshot.metadata"));
    } else if (tag >>> 3 === 2) {
      expectWireType(tag, wireLengthDelimited, "snapshot.data");
      data = reader.bytes("snapshot.data");
    } else {
      reader.skip(tag & 7);
    }
  }
  if (metadata === null) throw new InvalidArgumentError("raft snapshot without metadata");
  return { metadata, data };
}

function readSnapshotMetadata(reader: ProtoReader): Snapshot["metadata"] {
  let index = 0;
  let term = 0;
  let confState: ConfState = { voters: [], learners: [] };
  while (reader.more()) {
    const tag = reader.tag();
    const field = tag >>> 3;
    if (field === 1 && (tag & 7) === wireVarint) index = reader.varint("snapshot.index");
    else if (field === 2 && (tag & 7) === wireVarint) term = reader.varint("snapshot.term");
    else if (field === 3 && (tag & 7) === wireLengthDelimited) confState = readConfState(reader.nested("snapshot.confState"));
    else if (field >= 1 && field <= 3) throw new InvalidArgumentError(`raft snapshot metadata field ${field} has wire type ${tag & 7}`);
    else reader.skip(tag & 7);
  }
  return { index, term, confState };
}

function readEntry(reader: ProtoReader): Entry {
  let term = 0;
  let index = 0;
  let type: EntryType = "normal";
  let data = emptyBytes;
  while (reader.more()) {
    const tag = reader.tag();
    switch (tag) {
      case 0x08:
        term = reader.varint("entry.term");
        break;
      case 0x10:
        index = reader.varint("entry.index");
        break;
      case 0x18: {
        const number = reader.varint("entry.type");
        if (number === 0) type = "normal";
        else if (number === 1) type = "conf-change";
        else throw new InvalidArgumentError(`unknown raft entry type ${number}`);
        break;
      }
      case 0x22:
        data = reader.bytes("entry.data");
        break;
      default:
        if (tag >>> 3 >= 1 && tag >>> 3 <= 4) throw new InvalidArgumentError(`raft entry field ${tag >>> 3} has wire type ${tag & 7}`);
        reader.skip(tag & 7);
    }
  }
  return { term, index, type, data };
}

interface MessageFields {
  type: MessageType | null;
  from: number;
  to: number;
  term: number;
  logTerm: number;
  index: number;
  /** Null until the first entry: most messages carry none. */
  entries: Entry[] | null;
  commit: number;
  snapshot: Snapshot | null;
  reject: boolean;
  rejectHint: number;
  context: Uint8Array;
}

/** Varint fields of RaftMessage by tag, apart from type and reject, which need checks. */
const messageNumberFields = new Map<number, "from" | "to" | "term" | "logTerm" | "index" | "commit" | "rejectHint">([
  [0x10, "from"],
  [0x18, "to"],
  [0x20, "term"],
  [0x28, "logTerm"],
  [0x30, "index"],
  [0x40, "commit"],
  [0x58, "rejectHint"],
]);

function readMessageField(reader: ProtoReader, tag: number, fields: MessageFields): void {
  const numberField = messageNumberFields.get(tag);
  if (numberField !== undefined) {
    fields[numberField] = reader.varint(numberField);
    return;
  }
  switch (tag) {
    case 0x08: {
      const number = reader.varint("type");
      const type = peerMessageTypes.get(number);
      if (type === undefined) throw new InvalidArgumentError(`raft message type ${number} is not accepted from a peer`);
      fields.type = type;
      return;
    }
    case 0x3a:
      (fields.entries ??= []).push(readEntry(reader.nested("entries")));
      return;
    case 0x4a:
      fields.snapshot = readSnapshot(reader.nested("snapshot"));
      return;
    case 0x50: {
      const value = reader.varint("reject");
      if (value > 1) throw new InvalidArgumentError("raft message field reject is not a boolean");
      fields.reject = value === 1;
      return;
    }
    case 0x62:
      fields.context = reader.bytes("context");
      return;
    default:
      if (tag >>> 3 >= 1 && tag >>> 3 <= 12) throw new InvalidArgumentError(`raft message field ${tag >>> 3} has wire type ${tag & 7}`);
      reader.skip(tag & 7);
  }
}

function readMessage(reader: ProtoReader): Message {
  // Zero values where proto3 leaves fields out; the type is unknown until its field is read.
  const fields: MessageFields = {
    type: null,
    from: 0,
    to: 0,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: null,
    commit: 0,
    snapshot: null,
    reject: false,
    rejectHint: 0,
    context: emptyBytes,
  };
  while (reader.more()) readMessageField(reader, reader.tag(), fields);
  const { type } = fields;
  // proto3 leaves out a zero enum, which is RAFT_MESSAGE_TYPE_UNSPECIFIED: not a message.
  if (type === null) throw new InvalidArgumentError("raft message type 0 is not accepted from a peer");
  // Spelled out rather than spread: this runs for every message received.
  return {
    type,
    from: fields.from,
    to: fields.to,
    term: fields.term,
    logTerm: fields.logTerm,
    index: fields.index,
    entries: fields.entries ?? noEntries,
    commit: fields.commit,
    snapshot: fields.snapshot,
    reject: fields.reject,
    rejectHint: fields.rejectHint,
    context: fields.context,
  };
}

/**
 * Decodes a RaftMessageBatch from a peer. Throws InvalidArgumentError for malformed bytes,
 * numbers beyond 2^53, unknown enums and message types that only exist inside one node.
 * The caller still checks that the messages come from, and are addressed to, whom they claim.
 */
export function decodeMessageBatch(bytes: Buffer): MessageBatch {
  const reader = new ProtoReader(bytes, 0, bytes.length);
  let from = 0;
  const messages: Message[] = [];
  while (reader.more()) {
    const tag = reader.tag();
    if (tag === 0x08) from = reader.varint("batch.from");
    else if (tag === 0x12) messages.push(readMessage(reader.nested("message")));
    else if (tag >>> 3 === 1 || tag >>> 3 === 2) throw new InvalidArgumentError(`raft batch field ${tag >>> 3} has wire type ${tag & 7}`);
    else reader.skip(tag & 7);
  }
  return { from, messages };
}
