import { InvalidArgumentError } from "../../common/errors.js";
import type { ConfChange, ConfChangeType } from "./types.js";

/**
 * Wire format of a conf-change entry's data (big-endian):
 *   u8 version (1) | u8 type | u32 node id high | u32 node id low | u32 context length | context
 * The node id is split in two words because ids may use all 53 bits of a JS number.
 */
const confChangeVersion = 1;
const confChangeHeaderBytes = 14;
/** Contexts carry a member's address; anything larger is a corrupt or hostile entry. */
export const confChangeContextBytesMax = 64 * 1024;

const typeCodes: Record<ConfChangeType, number> = { "add-voter": 1, "add-learner": 2, "remove-node": 3 };
const typesByCode = new Map<number, ConfChangeType>(
  Object.entries(typeCodes).map(([type, code]) => [code, parseConfChangeTypeName(type)]),
);

function parseConfChangeTypeName(value: string): ConfChangeType {
  if (value === "add-voter" || value === "add-learner" || value === "remove-node") return value;
  throw new InvalidArgumentError(`unknown conf change type "${value}"`);
}

export function encodeConfChange(change: ConfChange): Uint8Array {
  if (!Number.isSafeInteger(change.nodeId) || change.nodeId <= 0) {
    throw new InvalidArgumentError(`conf change node id must be a positive integer, got ${change.nodeId}`);
  }
  if (change.context.length > confChangeContextBytesMax) {
    throw new InvalidArgumentError(
      `conf change context is ${change.context.length} bytes; the limit is ${confChangeContextBytesMax}`,
    );
  }
  const bytes = new Uint8Array(confChangeHeaderBytes + change.context.length);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, confChangeVersion);
  view.setUint8(1, typeCodes[change.type]);
  view.setUint32(2, Math.floor(change.nodeId / 2 ** 32));
  view.setUint32(6, change.nodeId % 2 ** 32);
  view.setUint32(10, change.context.length);
  bytes.set(change.context, confChangeHeaderBytes);
  return bytes;
}

/** Parses a conf-change entry's data; throws InvalidArgumentError on any malformed input. */
export function decodeConfChange(data: Uint8Array): ConfChange {
  if (data.length < confChangeHeaderBytes) {
    throw new InvalidArgumentError(`conf change data is ${data.length} bytes, shorter than its header`);
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const version = view.getUint8(0);
  if (version !== confChangeVersion) {
    throw new InvalidArgumentError(`conf change version ${version} is not supported (expected ${confChangeVersion})`);
  }
  const type = typesByCode.get(view.getUint8(1));
  if (type === undefined) {
    throw new InvalidArgumentError(`conf change type code ${view.getUint8(1)} is unknown`);
  }
  const nodeId = view.getUint32(2) * 2 ** 32 + view.getUint32(6);
  if (!Number.isSafeInteger(nodeId) || nodeId <= 0) {
    throw new InvalidArgumentError(`conf change node id ${nodeId} is not a positive safe integer`);
  }
  const contextLength = view.getUint32(10);
  if (contextLength > confChangeContextBytesMax || confChangeHeaderBytes + contextLength !== data.length) {
    throw new InvalidArgumentError(`conf change context length ${contextLength} does not match its ${data.length} bytes`);
  }
  return { type, nodeId, context: data.slice(confChangeHeaderBytes) };
}
