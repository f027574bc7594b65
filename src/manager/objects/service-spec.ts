import { serviceDefaults } from "./defaults.js";
import { namePattern, namePatternText, specLimits } from "./limits.js";
import {
  childPath,
  invalidField,
  parseArray,
  parseEnum,
  parseFields,
  parseInteger,
  parseNumber,
  parseString,
  required,
  withDefault,
} from "./parse.js";
import { parseDurationMs, parseLabelsField, parseTaskSpec } from "./task-spec.js";
import {
  endpointModes,
  failureActions,
  portProtocols,
  publishModes,
  updateOrders,
  type EndpointSpec,
  type PortConfig,
  type ServiceMode,
  type ServiceSpec,
  type UpdateConfig,
} from "./types.js";

/** A spec as a user may write it: any field may be left out (and is then defaulted). */
export type SpecInput<T> = T extends readonly (infer Item)[]
  ? SpecInput<Item>[]
  : T extends object
    ? { [K in keyof T]?: SpecInput<T[K]> | undefined }
    : T;

export type ServiceSpecInput = SpecInput<ServiceSpec>;

export function parseName(value: unknown, path: string): string {
  return parseString(value, path, { bytesMax: specLimits.nameBytesMax, allowEmpty: false, pattern: namePattern, patternText: namePatternText });
}

function parseMode(value: unknown, path: string): ServiceMode {
  const fields = parseFields(value, path, ["type", "replicas"]);
  const type = withDefault(fields, "type", path, "replicated" as const, (item, at) => parseEnum(item, at, ["replicated", "global"] as const));
  if (type === "global") {
    if (fields["replicas"] !== undefined) throw invalidField(childPath(path, "replicas"), "a global service has no replica count");
    return { type };
  }
  const replicas = withDefault(fields, "replicas", path, serviceDefaults.replicas, (item, at) =>
    parseInteger(item, at, { min: 0, max: specLimits.replicasMax }),
  );
  return { type, replicas };
}

function parseUpdateConfig(defaults: UpdateConfig): (value: unknown, path: string) => UpdateConfig {
  return (value, path) => {
    const fields = parseFields(value, path, ["parallelism", "delayMs", "failureAction", "monitorMs", "maxFailureRatio", "order"]);
    return {
      parallelism: withDefault(fields, "parallelism", path, defaults.parallelism, (item, at) => parseInteger(item, at, { min: 0, max: specLimits.replicasMax })),
      delayMs: withDefault(fields, "delayMs", path, defaults.delayMs, parseDurationMs),
      failureAction: withDefault(fields, "failureAction", path, defaults.failureAction, (item, at) => parseEnum(item, at, failureActions)),
      monitorMs: withDefault(fields, "monitorMs", path, defaults.monitorMs, parseDurationMs),
      maxFailureRatio: withDefault(fields, "maxFailureRatio", path, defaults.maxFailureRatio, (item, at) => parseNumber(item, at, { min: 0, max: 1 })),
      order: withDefault(fields, "order", path, defaults.order, (item, at) => parseEnum(item, at, updateOrders)),
    };
  };
}

function parsePort(value: unknown, path: string): PortConfig {
  const fields = parseFields(value, path, ["name", "protocol", "targetPort", "publishedPort", "publishMode"]);
  return {
    name: withDefault(fields, "name", path, "", (item, at) => parseString(item, at, { bytesMax: specLimits.shortTextBytesMax })),
    protocol: withDefault(fields, "protocol", path, "tcp" as const, (item, at) => parseEnum(item, at, portProtocols)),
    targetPort: required(fields, "targetPort", path, (item, at) => parseInteger(item, at, { min: 1, max: 65_535 })),
    publishedPort: withDefault(fields, "publishedPort", path, 0, (item, at) => parseInteger(item, at, { min: 0, max: 65_535 })),
    publishMode: withDefault(fields, "publishMode", path, "ingress" as const, (item, at) => parseEnum(item, at, publishModes)),
  };
}

function parseEndpointSpec(value: unknown, path: string): EndpointSpec {
  const fields = parseFields(value, path, ["mode", "ports"]);
  const ports = withDefault(fields, "ports", path, [], (item, at) => parseArray(item, at, specLimits.portsCountMax, parsePort));
  const published = new Set<string>();
  ports.forEach((port, index) => {
    if (port.publishedPort === 0) return;
    const key = `${port.protocol}/${port.publishedPort}`;
    if (published.has(key)) throw invalidField(`${childPath(path, "ports")}[${index}].publishedPort`, `port ${key} is published twice`);
    published.add(key);
  });
  return { mode: withDefault(fields, "mode", path, "vip" as const, (item, at) => parseEnum(item, at, endpointModes)), ports };
}

const serviceSpecFields = ["name", "labels", "taskTemplate", "mode", "updateConfig", "rollbackConfig", "endpointSpec"];

/**
 * Parses user input into a complete ServiceSpec, filling swarm's defaults for every field
 * left out. Throws InvalidArgumentError naming the offending field (`path` prefixes it,
 * e.g. "spec") on: a non-object, an unknown field, a name that is not a DNS label, negative
 * or fractional numbers, oversized labels, a bad constraint or an image reference that does
 * not parse.
 */
export function parseServiceSpec(value: unknown, path = ""): ServiceSpec {
  const fields = parseFields(value, path, serviceSpecFields);
  return {
    name: required(fields, "name", path, parseName),
    labels: parseLabelsField(fields, "labels", path),
    taskTemplate: required(fields, "taskTemplate", path, parseTaskSpec),
    mode: withDefault(fields, "mode", path, { type: "replicated", replicas: serviceDefaults.replicas }, parseMode),
    updateConfig: withDefault(fields, "updateConfig", path, { ...serviceDefaults.updateConfig }, parseUpdateConfig(serviceDefaults.updateConfig)),
    rollbackConfig: withDefault(fields, "rollbackConfig", path, { ...serviceDefaults.rollbackConfig }, parseUpdateConfig(serviceDefaults.rollbackConfig)),
    endpointSpec: withDefault(fields, "endpointSpec", path, { mode: "vip", ports: [] }, parseEndpointSpec),
  };
}

/** Parses the endpoint snapshot stored on a task. */
export function parseStoredEndpoint(value: unknown, path: string): EndpointSpec {
  return parseEndpointSpec(value, path);
}

/**
 * A complete spec from a partial one, with swarm's defaults: replicas 1, restart on any exit
 * after 5 s, update and rollback one task at a time, pausing on failure, watching each new
 * task for 5 s, stopping the old task first. The same checks as parseServiceSpec apply.
 */
export function withServiceDefaults(spec: ServiceSpecInput): ServiceSpec {
  return parseServiceSpec(spec);
}
