import { InvalidArgumentError } from "../common/errors.js";

/**
 * Placement constraints, as swarm writes them: `key==value` or `key!=value`. Keys name a
 * node attribute (`node.id`, `node.hostname`, `node.role`, `node.platform.os`,
 * `node.platform.arch`) or a label (`node.labels.NAME`, `engine.labels.NAME`). Values compare
 * case-insensitively, as swarm does; a missing label never equals anything.
 */

export type ConstraintOperator = "==" | "!=";

export type ConstraintKey =
  | { type: "node.id" }
  | { type: "node.hostname" }
  | { type: "node.role" }
  | { type: "node.platform.os" }
  | { type: "node.platform.arch" }
  | { type: "node.labels"; label: string }
  | { type: "engine.labels"; label: string };

export interface Constraint {
  key: ConstraintKey;
  operator: ConstraintOperator;
  /** Lower-cased, since matching ignores case. */
  value: string;
  /** The constraint as written, for messages. */
  text: string;
}

export const constraintBytesMax = 1024;

const labelNamePattern = /^[a-zA-Z0-9_][a-zA-Z0-9_.-]*$/u;
const valuePattern = /^[a-zA-Z0-9:_.*()?+[\]\\^$|/ -]+$/u;
const fixedKeys: ReadonlyMap<string, ConstraintKey> = new Map<string, ConstraintKey>([
  ["node.id", { type: "node.id" }],
  ["node.hostname", { type: "node.hostname" }],
  ["node.role", { type: "node.role" }],
  ["node.platform.os", { type: "node.platform.os" }],
  ["node.platform.arch", { type: "node.platform.arch" }],
]);

function parseConstraintKey(text: string, constraint: string): ConstraintKey {
  const fixed = fixedKeys.get(text.toLowerCase());
  if (fixed !== undefined) return fixed;
  for (const prefix of ["node.labels.", "engine.labels."] as const) {
    if (text.startsWith(prefix)) {
      const label = text.slice(prefix.length);
      if (!labelNamePattern.test(label)) {
        throw new InvalidArgumentError(`constraint "${constraint}": label name "${label}" is empty or has characters other than [a-zA-Z0-9_.-]`);
      }
      return prefix === "node.labels." ? { type: "node.labels", label } : { type: "engine.labels", label };
    }
  }
  throw new InvalidArgumentError(
    `constraint "${constraint}": unknown key "${text}" (use node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.NAME or engine.labels.NAME)`,
  );
}

/** Parses one constraint, or throws InvalidArgumentError saying what is wrong with it. */
export function parseConstraint(text: string): Constraint {
  if (text.length > constraintBytesMax) throw new InvalidArgumentError(`constraint is longer than ${constraintBytesMax} characters`);
  const equal = text.indexOf("==");
  const notEqual = text.indexOf("!=");
  if (equal === -1 && notEqual === -1) {
    throw new InvalidArgumentError(`constraint "${text}": expected KEY==VALUE or KEY!=VALUE`);
  }
  const useEqual = equal !== -1 && (notEqual === -1 || equal < notEqual);
  const at = useEqual ? equal : notEqual;
  const key = text.slice(0, at).trim();
  const value = text.slice(at + 2).trim();
  if (value === "" || !valuePattern.test(value) || value.includes("==") || value.includes("!=")) {
    throw new InvalidArgumentError(`constraint "${text}": the value is empty or has characters swarm does not allow`);
  }
  return { key: parseConstraintKey(key, text), operator: useEqual ? "==" : "!=", value: value.toLowerCase(), text };
}

export function parseConstraints(texts: readonly string[]): Constraint[] {
  return texts.map(parseConstraint);
}

/** The node attributes constraints read; a subset of the manager's Node. */
export interface ConstraintSubject {
  id: string;
  spec: { role: string; labels: Readonly<Record<string, string>> };
  description?: {
    hostname: string;
    platform: { os: string; architecture: string };
    engine: { labels: Readonly<Record<string, string>> };
  };
}

function constraintActual(key: ConstraintKey, node: ConstraintSubject): string | undefined {
  switch (key.type) {
    case "node.id":
      return node.id;
    case "node.hostname":
      return node.description?.hostname;
    case "node.role":
      return node.spec.role;
    case "node.platform.os":
      return node.description?.platform.os;
    case "node.platform.arch":
      return node.description?.platform.architecture;
    case "node.labels":
      return node.spec.labels[key.label];
    case "engine.labels":
      return node.description?.engine.labels[key.label];
  }
}

export function constraintMatches(constraint: Constraint, node: ConstraintSubject): boolean {
  const actual = constraintActual(constraint.key, node);
  const equal = actual !== undefined && actual.toLowerCase() === constraint.value;
  return constraint.operator === "==" ? equal : !equal;
}
