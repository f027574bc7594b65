import { InvalidArgumentError } from "../../common/errors.js";

/**
 * Small hand-written parsers for data from outside (user specs, raft entries, snapshots):
 * each takes `unknown` plus the path of the value, and returns a typed value or throws
 * InvalidArgumentError naming the path and what the user must fix.
 */

export type Fields = Readonly<Record<string, unknown>>;

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === "object") return "an object";
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value);
  return typeof value;
}

export function invalidField(path: string, message: string): InvalidArgumentError {
  return new InvalidArgumentError(`${path}: ${message}`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** An object with only the given keys; an unknown key is an error naming it. */
export function parseFields(value: unknown, path: string, known: readonly string[]): Fields {
  if (!isPlainObject(value)) throw invalidField(path, `must be an object, got ${describe(value)}`);
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw invalidField(path === "" ? key : `${path}.${key}`, `unknown field (known fields: ${known.join(", ")})`);
    }
  }
  return value;
}

export function childPath(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

export interface StringLimits {
  bytesMax: number;
  /** Checked after the length; `patternText` says what the pattern allows. */
  pattern?: RegExp;
  patternText?: string;
  allowEmpty?: boolean;
}

export function parseString(value: unknown, path: string, limits: StringLimits): string {
  if (typeof value !== "string") throw invalidField(path, `must be a string, got ${describe(value)}`);
  if (value === "" && limits.allowEmpty === false) throw invalidField(path, "must not be empty");
  if (Buffer.byteLength(value) > limits.bytesMax) throw invalidField(path, `must be at most ${limits.bytesMax} bytes`);
  if (limits.pattern !== undefined && value !== "" && !limits.pattern.test(value)) {
    throw invalidField(path, `must be ${limits.patternText ?? `like ${String(limits.pattern)}`}, got ${describe(value)}`);
  }
  return value;
}

export interface IntegerLimits {
  min: number;
  max: number;
}

export function parseInteger(value: unknown, path: string, limits: IntegerLimits): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw invalidField(path, `must be a whole number, got ${describe(value)}`);
  }
  if (value < limits.min || value > limits.max) {
    throw invalidField(path, `must be between ${limits.min} and ${limits.max}, got ${value}`);
  }
  return value;
}

export function parseNumber(value: unknown, path: string, limits: IntegerLimits): number {
  if (typeof value !== "number" || !Number.isFinite(value)) throw invalidField(path, `must be a number, got ${describe(value)}`);
  if (value < limits.min || value > limits.max) {
    throw invalidField(path, `must be between ${limits.min} and ${limits.max}, got ${value}`);
  }
  return value;
}

export function parseBoolean(value: unknown, path: string): boolean {
  if (typeof value !== "boolean") throw invalidField(path, `must be true or false, got ${describe(value)}`);
  return value;
}

export function parseEnum<T extends string>(value: unknown, path: string, allowed: readonly T[]): T {
  const found = allowed.find((candidate) => candidate === value);
  if (found === undefined) throw invalidField(path, `must be one of ${allowed.join(", ")}, got ${describe(value)}`);
  return found;
}

export function parseArray<T>(value: unknown, path: string, countMax: number, parseItem: (item: unknown, itemPath: string) => T): T[] {
  if (!Array.isArray(value)) throw invalidField(path, `must be an array, got ${describe(value)}`);
  if (value.length > countMax) throw invalidField(path, `must have at most ${countMax} entries, got ${value.length}`);
  return value.map((item: unknown, index) => parseItem(item, `${path}[${index}]`));
}

export function parseStringArray(value: unknown, path: string, countMax: number, limits: StringLimits): string[] {
  return parseArray(value, path, countMax, (item, itemPath) => parseString(item, itemPath, limits));
}

export interface LabelLimits {
  countMax: number;
  keyBytesMax: number;
  valueBytesMax: number;
}

export function parseLabels(value: unknown, path: string, limits: LabelLimits): Record<string, string> {
  if (!isPlainObject(value)) throw invalidField(path, `must be an object of strings, got ${describe(value)}`);
  const entries = Object.entries(value);
  if (entries.length > limits.countMax) throw invalidField(path, `must have at most ${limits.countMax} labels, got ${entries.length}`);
  const labels: Record<string, string> = {};
  for (const [key, item] of entries) {
    if (key === "") throw invalidField(path, "label keys must not be empty");
    if (Buffer.byteLength(key) > limits.keyBytesMax) {
      throw invalidField(path, `label key "${key.slice(0, 40)}..." is longer than ${limits.keyBytesMax} bytes`);
    }
    labels[key] = parseString(item, `${path}.${key}`, { bytesMax: limits.valueBytesMax });
  }
  return labels;
}

/** Reads `fields[key]` with `parse` when present, else returns `fallback`. */
export function withDefault<T>(fields: Fields, key: string, path: string, fallback: T, parse: (value: unknown, path: string) => T): T {
  const value = fields[key];
  if (value === undefined) return fallback;
  return parse(value, childPath(path, key));
}

/** Reads a field that must be present. */
export function required<T>(fields: Fields, key: string, path: string, parse: (value: unknown, path: string) => T): T {
  const value = fields[key];
  if (value === undefined) throw invalidField(childPath(path, key), "is required");
  return parse(value, childPath(path, key));
}
