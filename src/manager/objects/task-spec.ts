import { parseConstraint } from "../../scheduler/constraint.js";
import { isShoalError } from "../../common/errors.js";
import { serviceDefaults } from "./defaults.js";
import { imageReferenceProblem } from "./image-reference.js";
import { specLimits } from "./limits.js";
import {
  childPath,
  invalidField,
  parseArray,
  parseBoolean,
  parseEnum,
  parseFields,
  parseInteger,
  parseLabels,
  parseString,
  parseStringArray,
  required,
  withDefault,
  type Fields,
} from "./parse.js";
import {
  restartConditions,
  type ContainerSpec,
  type HealthConfig,
  type Mount,
  type NetworkAttachmentConfig,
  type Placement,
  type PlacementPreference,
  type Platform,
  type ResourceRequirements,
  type Resources,
  type RestartPolicy,
  type TaskSpec,
} from "./types.js";

export const labelLimits = {
  countMax: specLimits.labelsCountMax,
  keyBytesMax: specLimits.labelKeyBytesMax,
  valueBytesMax: specLimits.labelValueBytesMax,
};
const shortText = { bytesMax: specLimits.shortTextBytesMax };
const argument = { bytesMax: specLimits.argumentBytesMax };
const durationMs = { min: 0, max: specLimits.durationMsMax };

export function parseLabelsField(fields: Fields, key: string, path: string): Record<string, string> {
  return withDefault(fields, key, path, {}, (value, at) => parseLabels(value, at, labelLimits));
}

export function parseDurationMs(value: unknown, path: string): number {
  return parseInteger(value, path, durationMs);
}

function parseImage(value: unknown, path: string): string {
  const image = parseString(value, path, { bytesMax: specLimits.pathBytesMax, allowEmpty: false });
  const problem = imageReferenceProblem(image);
  if (problem !== undefined) throw invalidField(path, `"${image}" is not a valid image reference: ${problem}`);
  return image;
}

function parseMount(value: unknown, path: string): Mount {
  const fields = parseFields(value, path, ["type", "source", "target", "readOnly"]);
  const type = withDefault(fields, "type", path, "volume" as const, (item, at) => parseEnum(item, at, ["bind", "volume", "tmpfs"] as const));
  const target = required(fields, "target", path, (item, at) => parseString(item, at, { bytesMax: specLimits.pathBytesMax, allowEmpty: false }));
  if (!target.startsWith("/")) throw invalidField(childPath(path, "target"), `must be an absolute path, got "${target}"`);
  const source = withDefault(fields, "source", path, "", (item, at) => parseString(item, at, { bytesMax: specLimits.pathBytesMax }));
  if (type === "bind" && !source.startsWith("/")) throw invalidField(childPath(path, "source"), "a bind mount needs an absolute source path");
  return { type, source, target, readOnly: withDefault(fields, "readOnly", path, false, parseBoolean) };
}

function parseHealthConfig(value: unknown, path: string): HealthConfig {
  const fields = parseFields(value, path, ["test", "intervalMs", "timeoutMs", "retries", "startPeriodMs", "startIntervalMs"]);
  const test = required(fields, "test", path, (item, at) => parseStringArray(item, at, specLimits.argumentsCountMax, argument));
  const kind = test[0];
  if (kind !== "NONE" && kind !== "CMD" && kind !== "CMD-SHELL") {
    throw invalidField(childPath(path, "test"), `must start with "NONE", "CMD" or "CMD-SHELL"`);
  }
  const defaults = serviceDefaults.healthcheck;
  return {
    test,
    intervalMs: withDefault(fields, "intervalMs", path, defaults.intervalMs, parseDurationMs),
    timeoutMs: withDefault(fields, "timeoutMs", path, defaults.timeoutMs, parseDurationMs),
    retries: withDefault(fields, "retries", path, defaults.retries, (item, at) => parseInteger(item, at, { min: 0, max: 1_000 })),
    startPeriodMs: withDefault(fields, "startPeriodMs", path, defaults.startPeriodMs, parseDurationMs),
    startIntervalMs: withDefault(fields, "startIntervalMs", path, defaults.startIntervalMs, parseDurationMs),
  };
}

const containerSpecFields = ["image", "command", "args", "env", "dir", "user", "labels", "mounts", "stopSignal", "stopGracePeriodMs", "healthcheck"];

function parseContainerSpec(value: unknown, path: string): ContainerSpec {
  const fields = parseFields(value, path, containerSpecFields);
  const argumentsOf = (key: string): string[] =>
    withDefault(fields, key, path, [], (item, at) => parseStringArray(item, at, specLimits.argumentsCountMax, argument));
  const env = withDefault(fields, "env", path, [], (item, at) => parseStringArray(item, at, specLimits.envCountMax, argument));
  env.forEach((entry, index) => {
    if (!entry.includes("=") || entry.startsWith("=")) throw invalidField(`${childPath(path, "env")}[${index}]`, `must be KEY=value, got "${entry}"`);
  });
  const spec: ContainerSpec = {
    image: required(fields, "image", path, parseImage),
    command: argumentsOf("command"),
    args: argumentsOf("args"),
    env,
    dir: withDefault(fields, "dir", path, "", (item, at) => parseString(item, at, { bytesMax: specLimits.pathBytesMax })),
    user: withDefault(fields, "user", path, "", (item, at) => parseString(item, at, shortText)),
    labels: parseLabelsField(fields, "labels", path),
    mounts: withDefault(fields, "mounts", path, [], (item, at) => parseArray(item, at, specLimits.mountsCountMax, parseMount)),
    stopSignal: withDefault(fields, "stopSignal", path, serviceDefaults.stopSignal, (item, at) =>
      parseString(item, at, { bytesMax: 32, pattern: /^(?:SIG[A-Z0-9+]+|[0-9]+)$/u, patternText: "a signal name like SIGTERM or a number" }),
    ),
    stopGracePeriodMs: withDefault(fields, "stopGracePeriodMs", path, serviceDefaults.stopGracePeriodMs, parseDurationMs),
  };
  if (fields["healthcheck"] !== undefined) spec.healthcheck = parseHealthConfig(fields["healthcheck"], childPath(path, "healthcheck"));
  return spec;
}

function parseResources(value: unknown, path: string): Resources {
  const fields = parseFields(value, path, ["nanoCPUs", "memoryBytes"]);
  const amount = { min: 0, max: Number.MAX_SAFE_INTEGER };
  return {
    nanoCPUs: withDefault(fields, "nanoCPUs", path, 0, (item, at) => parseInteger(item, at, amount)),
    memoryBytes: withDefault(fields, "memoryBytes", path, 0, (item, at) => parseInteger(item, at, amount)),
  };
}

function parseResourceRequirements(value: unknown, path: string): ResourceRequirements {
  const fields = parseFields(value, path, ["limits", "reservations"]);
  return {
    limits: withDefault(fields, "limits", path, { nanoCPUs: 0, memoryBytes: 0 }, parseResources),
    reservations: withDefault(fields, "reservations", path, { nanoCPUs: 0, memoryBytes: 0 }, parseResources),
  };
}

function parseRestartPolicy(value: unknown, path: string): RestartPolicy {
  const fields = parseFields(value, path, ["condition", "delayMs", "maxAttempts", "windowMs"]);
  const defaults = serviceDefaults.restartPolicy;
  return {
    condition: withDefault(fields, "condition", path, defaults.condition, (item, at) => parseEnum(item, at, restartConditions)),
    delayMs: withDefault(fields, "delayMs", path, defaults.delayMs, parseDurationMs),
    maxAttempts: withDefault(fields, "maxAttempts", path, defaults.maxAttempts, (item, at) => parseInteger(item, at, { min: 0, max: 1_000_000 })),
    windowMs: withDefault(fields, "windowMs", path, defaults.windowMs, parseDurationMs),
  };
}

function parseConstraintText(value: unknown, path: string): string {
  const text = parseString(value, path, { bytesMax: 1_024, allowEmpty: false });
  try {
    parseConstraint(text);
  } catch (error) {
    if (!isShoalError(error)) throw error;
    throw invalidField(path, error.message);
  }
  return text;
}

function parsePreference(value: unknown, path: string): PlacementPreference {
  const fields = parseFields(value, path, ["spread"]);
  const spread = required(fields, "spread", path, (item, at) =>
    parseString(item, at, {
      bytesMax: 1_024,
      allowEmpty: false,
      pattern: /^(?:node|engine)\.labels\.[a-zA-Z0-9_][a-zA-Z0-9_.-]*$/u,
      patternText: "node.labels.NAME or engine.labels.NAME",
    }),
  );
  return { spread };
}

export function parsePlatform(value: unknown, path: string): Platform {
  const fields = parseFields(value, path, ["os", "architecture"]);
  return {
    os: withDefault(fields, "os", path, "", (item, at) => parseString(item, at, shortText)),
    architecture: withDefault(fields, "architecture", path, "", (item, at) => parseString(item, at, shortText)),
  };
}

function parsePlacement(value: unknown, path: string): Placement {
  const fields = parseFields(value, path, ["constraints", "preferences", "maxReplicas", "platforms"]);
  return {
    constraints: withDefault(fields, "constraints", path, [], (item, at) => parseArray(item, at, specLimits.constraintsCountMax, parseConstraintText)),
    preferences: withDefault(fields, "preferences", path, [], (item, at) => parseArray(item, at, specLimits.preferencesCountMax, parsePreference)),
    maxReplicas: withDefault(fields, "maxReplicas", path, 0, (item, at) => parseInteger(item, at, { min: 0, max: specLimits.replicasMax })),
    platforms: withDefault(fields, "platforms", path, [], (item, at) => parseArray(item, at, specLimits.platformsCountMax, parsePlatform)),
  };
}

function parseNetworkAttachment(value: unknown, path: string): NetworkAttachmentConfig {
  const fields = parseFields(value, path, ["target", "aliases"]);
  return {
    target: required(fields, "target", path, (item, at) => parseString(item, at, { ...shortText, allowEmpty: false })),
    aliases: withDefault(fields, "aliases", path, [], (item, at) => parseStringArray(item, at, 64, shortText)),
  };
}

function emptyPlacement(): Placement {
  return { constraints: [], preferences: [], maxReplicas: 0, platforms: [] };
}

function emptyResources(): ResourceRequirements {
  return { limits: { nanoCPUs: 0, memoryBytes: 0 }, reservations: { nanoCPUs: 0, memoryBytes: 0 } };
}

/** Parses a task template (`taskTemplate` of a service spec, or `spec` of a stored task). */
export function parseTaskSpec(value: unknown, path: string): TaskSpec {
  const fields = parseFields(value, path, ["containerSpec", "resources", "restartPolicy", "placement", "networks", "forceUpdate"]);
  return {
    containerSpec: required(fields, "containerSpec", path, parseContainerSpec),
    resources: withDefault(fields, "resources", path, emptyResources(), parseResourceRequirements),
    restartPolicy: withDefault(fields, "restartPolicy", path, { ...serviceDefaults.restartPolicy }, parseRestartPolicy),
    placement: withDefault(fields, "placement", path, emptyPlacement(), parsePlacement),
    networks: withDefault(fields, "networks", path, [], (item, at) => parseArray(item, at, specLimits.networksCountMax, parseNetworkAttachment)),
    forceUpdate: withDefault(fields, "forceUpdate", path, 0, (item, at) => parseInteger(item, at, { min: 0, max: Number.MAX_SAFE_INTEGER })),
  };
}
