import type { FastifyRequest } from "fastify";

import { InvalidArgumentError } from "../common/errors.js";

function rawQuery(request: FastifyRequest): Record<string, unknown> {
  const query = request.query;
  return typeof query === "object" && query !== null ? { ...query } : {};
}

/** A single query parameter; the last one wins when it is repeated. */
export function queryString(request: FastifyRequest, name: string): string | undefined {
  const value = rawQuery(request)[name];
  if (Array.isArray(value)) {
    const last: unknown = value.at(-1);
    return typeof last === "string" ? last : undefined;
  }
  return typeof value === "string" ? value : undefined;
}

/** A repeatable query parameter (`names=a&names=b`). */
export function queryStrings(request: FastifyRequest, name: string): string[] {
  const value = rawQuery(request)[name];
  if (Array.isArray(value)) return value.filter((item): item is string => typeof item === "string");
  return typeof value === "string" ? [value] : [];
}

/** Docker's booleans: 1/true/True are true, 0/false/"" or absent are false. */
export function queryBoolean(request: FastifyRequest, name: string): boolean {
  const value = queryString(request, name);
  if (value === undefined || value === "" || value === "0" || value.toLowerCase() === "false") return false;
  if (value === "1" || value.toLowerCase() === "true") return true;
  throw new InvalidArgumentError(`query parameter ${name} must be 1/true or 0/false, not "${value}"`);
}

/** An integer query parameter, or undefined when absent. */
export function queryInteger(request: FastifyRequest, name: string, options: { min?: number; max?: number } = {}): number | undefined {
  const value = queryString(request, name);
  if (value === undefined || value === "") return undefined;
  const parsed = Number(value);
  if (!/^-?\d+$/.test(value) || parsed < (options.min ?? Number.MIN_SAFE_INTEGER) || parsed > (options.max ?? Number.MAX_SAFE_INTEGER)) {
    throw new InvalidArgumentError(`query parameter ${name} must be a whole number${options.min === undefined ? "" : ` >= ${options.min}`}, not "${value}"`);
  }
  return parsed;
}
