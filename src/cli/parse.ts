/**
 * Readers for the daemon's JSON answers: the CLI treats them as unknown and reads each
 * field it shows through these, so a malformed answer gives a clear error, not `undefined`.
 */

export class MalformedResponseError extends Error {
  override readonly name = "MalformedResponseError";
}

export type JsonRecord = Readonly<Record<string, unknown>>;

export function asRecord(value: unknown, what: string): JsonRecord {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new MalformedResponseError(`the daemon's ${what} is not a JSON object`);
  }
  return value as JsonRecord;
}

export function asArray(value: unknown, what: string): readonly unknown[] {
  if (!Array.isArray(value)) throw new MalformedResponseError(`the daemon's ${what} is not a JSON array`);
  return value;
}

export function stringField(record: JsonRecord, key: string, fallback = ""): string {
  const value = record[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "string") throw new MalformedResponseError(`field ${key} is not a string`);
  return value;
}

export function numberField(record: JsonRecord, key: string, fallback = 0): number {
  const value = record[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number") throw new MalformedResponseError(`field ${key} is not a number`);
  return value;
}

export function booleanField(record: JsonRecord, key: string, fallback = false): boolean {
  const value = record[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "boolean") throw new MalformedResponseError(`field ${key} is not a boolean`);
  return value;
}

export function recordField(record: JsonRecord, key: string): JsonRecord {
  const value = record[key];
  return value === undefined || value === null ? {} : asRecord(value, key);
}
