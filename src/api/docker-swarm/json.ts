import { InvalidArgumentError } from "../../common/errors.js";

/**
 * Readers for Docker Engine API JSON bodies. Field paths in errors use Docker's names
 * ("TaskTemplate.ContainerSpec.Image"), so a docker user sees the field as they wrote it.
 * Go clients send `null` for unset pointers, slices and maps: null reads as absent.
 */

export type DockerFields = Readonly<Record<string, unknown>>;

export const nanosecondsPerMillisecond = 1_000_000;

export function joinPath(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

export function invalidDocker(path: string, message: string): InvalidArgumentError {
  return new InvalidArgumentError(`${path}: ${message}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * An object whose keys are all `known`; an unknown key is a 400 naming it. Keys in
 * `unsupported` are Docker fields shoal does not implement: they are accepted only when
 * empty (Go's zero value: null, false, 0, "", [] or an object of empty values), so a
 * client that leaves them unset works and one that sets them learns that it cannot.
 */
export function dockerFields(value: unknown, path: string, known: readonly string[], unsupported: readonly string[] = []): DockerFields {
  if (!isRecord(value)) throw invalidDocker(path, "must be a JSON object");
  for (const [key, item] of Object.entries(value)) {
    if (unsupported.includes(key)) {
      if (!isEmptyValue(item)) throw invalidDocker(joinPath(path, key), "is not supported by shoal; leave it unset");
      continue;
    }
    if (!known.includes(key)) throw invalidDocker(joinPath(path, key), `unknown field (known fields: ${known.join(", ")})`);
  }
  return value;
}

export function isEmptyValue(value: unknown): boolean {
  if (value === null || value === undefined || value === false || value === 0 || value === "") return true;
  if (Array.isArray(value)) return value.length === 0;
  if (isRecord(value)) return Object.values(value).every(isEmptyValue);
  return false;
}

/** The field's value, or undefined when absent or null. */
export function present(fields: DockerFields, key: string): unknown {
  const value = fields[key];
  return value === null ? undefined : value;
}

/** A Docker duration (integer nanoseconds) as whole milliseconds, rounded to the nearest. */
export function nanosToMs(value: unknown, path: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw invalidDocker(path, `must be a duration in whole nanoseconds >= 0, got ${JSON.stringify(value)}`);
  }
  return Math.round(value / nanosecondsPerMillisecond);
}

export function msToNanos(ms: number): number {
  return ms * nanosecondsPerMillisecond;
}

/** Sets `target[key]` only when `value` is defined (exactOptionalPropertyTypes-friendly). */
export function setDefined(target: Record<string, unknown>, key: string, value: unknown): void {
  if (value !== undefined) target[key] = value;
}

/** An optional nested object read with `read`, or undefined when absent or null. */
export function nested<T>(fields: DockerFields, key: string, path: string, read: (value: unknown, path: string) => T): T | undefined {
  const value = present(fields, key);
  return value === undefined ? undefined : read(value, joinPath(path, key));
}

/** An optional array read item by item, or undefined when absent or null. */
export function nestedArray<T>(fields: DockerFields, key: string, path: string, read: (value: unknown, path: string) => T): T[] | undefined {
  const value = present(fields, key);
  if (value === undefined) return undefined;
  const at = joinPath(path, key);
  if (!Array.isArray(value)) throw invalidDocker(at, "must be a JSON array");
  return value.map((item: unknown, index) => read(item, `${at}[${index}]`));
}

/** Milliseconds since the epoch as Docker's RFC 3339 timestamps. */
export function dockerTime(ms: number): string {
  return new Date(ms).toISOString();
}
