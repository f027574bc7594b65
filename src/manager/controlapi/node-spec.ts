import { InvalidArgumentError } from "../../common/errors.js";
import { namePattern, nodeAvailabilities, nodeRoles, specLimits } from "../objects/index.js";
import type { Labels, NodeSpec } from "../objects/index.js";

const nodeSpecFields = ["name", "labels", "role", "availability"];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function invalid(path: string, message: string): InvalidArgumentError {
  return new InvalidArgumentError(`${path}: ${message}`);
}

function parseNodeLabels(value: unknown, path: string): Labels {
  if (!isRecord(value)) throw invalid(path, "must be an object of strings");
  const entries = Object.entries(value);
  if (entries.length > specLimits.labelsCountMax) throw invalid(path, `must have at most ${specLimits.labelsCountMax} labels, got ${entries.length}`);
  const labels: Labels = {};
  for (const [key, item] of entries) {
    if (key === "") throw invalid(path, "label keys must not be empty");
    if (Buffer.byteLength(key) > specLimits.labelKeyBytesMax) throw invalid(path, `label key "${key.slice(0, 40)}..." is longer than ${specLimits.labelKeyBytesMax} bytes`);
    if (typeof item !== "string") throw invalid(`${path}.${key}`, "must be a string");
    if (Buffer.byteLength(item) > specLimits.labelValueBytesMax) throw invalid(`${path}.${key}`, `must be at most ${specLimits.labelValueBytesMax} bytes`);
    labels[key] = item;
  }
  return labels;
}

function parseChoice<T extends string>(value: unknown, path: string, allowed: readonly T[]): T {
  const found = allowed.find((candidate) => candidate === value);
  if (found === undefined) throw invalid(path, `must be one of ${allowed.join(", ")}, got ${JSON.stringify(value)}`);
  return found;
}

/**
 * The node spec a user update asks for: each field given replaces the stored one, fields left
 * out keep their value. The same rules as the store's node parser apply (a name is empty or
 * a DNS label; labels within the spec limits).
 */
export function mergeNodeSpec(current: NodeSpec, input: unknown, path = "spec"): NodeSpec {
  if (!isRecord(input)) throw invalid(path, "must be an object");
  for (const key of Object.keys(input)) {
    if (!nodeSpecFields.includes(key)) throw invalid(`${path}.${key}`, `unknown field (known fields: ${nodeSpecFields.join(", ")})`);
  }
  const spec: NodeSpec = { ...current, labels: { ...current.labels } };
  const { name, labels, role, availability } = input;
  if (name !== undefined) {
    if (typeof name !== "string") throw invalid(`${path}.name`, "must be a string");
    if (name !== "" && (Buffer.byteLength(name) > specLimits.nameBytesMax || !namePattern.test(name))) {
      throw invalid(`${path}.name`, `must be a DNS label of at most ${specLimits.nameBytesMax} bytes, got ${JSON.stringify(name.slice(0, 80))}`);
    }
    spec.name = name;
  }
  if (labels !== undefined) spec.labels = parseNodeLabels(labels, `${path}.labels`);
  if (role !== undefined) spec.role = parseChoice(role, `${path}.role`, nodeRoles);
  if (availability !== undefined) spec.availability = parseChoice(availability, `${path}.availability`, nodeAvailabilities);
  return spec;
}
