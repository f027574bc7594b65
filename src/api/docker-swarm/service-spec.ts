import { InvalidArgumentError, isShoalError } from "../../common/errors.js";
import type {
  ContainerSpec,
  EndpointSpec,
  HealthConfig,
  Mount,
  Placement,
  ResourceRequirements,
  RestartPolicy,
  ServiceMode,
  ServiceSpec,
  TaskSpec,
  UpdateConfig,
} from "../../manager/objects/index.js";
import {
  dockerFields,
  invalidDocker,
  joinPath,
  msToNanos,
  nanosToMs,
  nested,
  nestedArray,
  present,
  setDefined,
  type DockerFields,
} from "./json.js";

/**
 * Docker Engine API 1.47 ServiceSpec JSON <-> shoal's ServiceSpec. Reading checks the
 * shape (known fields, Docker-only fields left empty) and converts names and units; the
 * values themselves are checked by shoal's parseServiceSpec, whose error paths
 * dockerFieldPath translates back into Docker's names.
 */

type Input = Record<string, unknown>;

function readDuration(fields: DockerFields, key: string, path: string): number | undefined {
  const value = present(fields, key);
  return value === undefined ? undefined : nanosToMs(value, joinPath(path, key));
}

function readMount(value: unknown, path: string): Input {
  const fields = dockerFields(value, path, ["Type", "Source", "Target", "ReadOnly"], ["Consistency", "BindOptions", "VolumeOptions", "TmpfsOptions", "ClusterOptions"]);
  const mount: Input = {};
  setDefined(mount, "type", present(fields, "Type"));
  setDefined(mount, "source", present(fields, "Source"));
  setDefined(mount, "target", present(fields, "Target"));
  setDefined(mount, "readOnly", present(fields, "ReadOnly"));
  return mount;
}

function readHealthcheck(value: unknown, path: string): Input {
  const fields = dockerFields(value, path, ["Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"]);
  const health: Input = {};
  setDefined(health, "test", present(fields, "Test"));
  setDefined(health, "intervalMs", readDuration(fields, "Interval", path));
  setDefined(health, "timeoutMs", readDuration(fields, "Timeout", path));
  setDefined(health, "startPeriodMs", readDuration(fields, "StartPeriod", path));
  setDefined(health, "startIntervalMs", readDuration(fields, "StartInterval", path));
  setDefined(health, "retries", present(fields, "Retries"));
  return health;
}

const containerSpecKnown = ["Image", "Labels", "Command", "Args", "Env", "Dir", "User", "Mounts", "StopSignal", "StopGracePeriod", "Healthcheck", "Init", "Isolation"];
const containerSpecUnsupported = [
  "Hostname", "Groups", "Privileges", "TTY", "OpenStdin", "ReadOnly", "Hosts", "DNSConfig", "Configs", "Secrets",
  "Sysctls", "CapabilityAdd", "CapabilityDrop", "Ulimits", "OomScoreAdj",
];

function readContainerSpec(value: unknown, path: string): Input {
  const fields = dockerFields(value, path, containerSpecKnown, containerSpecUnsupported);
  const init = present(fields, "Init");
  if (init !== undefined && init !== false) throw invalidDocker(joinPath(path, "Init"), "an init process is not supported by shoal; leave it unset or false");
  const isolation = present(fields, "Isolation");
  if (isolation !== undefined && isolation !== "" && isolation !== "default") {
    throw invalidDocker(joinPath(path, "Isolation"), `only "default" isolation is supported on Linux, got ${JSON.stringify(isolation)}`);
  }
  const spec: Input = {};
  setDefined(spec, "image", present(fields, "Image"));
  setDefined(spec, "labels", present(fields, "Labels"));
  setDefined(spec, "command", present(fields, "Command"));
  setDefined(spec, "args", present(fields, "Args"));
  setDefined(spec, "env", present(fields, "Env"));
  setDefined(spec, "dir", present(fields, "Dir"));
  setDefined(spec, "user", present(fields, "User"));
  setDefined(spec, "mounts", nestedArray(fields, "Mounts", path, readMount));
  setDefined(spec, "stopSignal", present(fields, "StopSignal"));
  setDefined(spec, "stopGracePeriodMs", readDuration(fields, "StopGracePeriod", path));
  setDefined(spec, "healthcheck", nested(fields, "Healthcheck", path, readHealthcheck));
  return spec;
}

function readResources(value: unknown, path: string, unsupported: readonly string[]): Input {
  const fields = dockerFields(value, path, ["NanoCPUs", "MemoryBytes"], unsupported);
  const resources: Input = {};
  setDefined(resources, "nanoCPUs", present(fields, "NanoCPUs"));
  setDefined(resources, "memoryBytes", present(fields, "MemoryBytes"));
  return resources;
}

function readResourceRequirements(value: unknown, path: string): Input {
  const fields = dockerFields(value, path, ["Limits", "Reservations"]);
  const requirements: Input = {};
  setDefined(requirements, "limits", nested(fields, "Limits", path, (item, at) => readResources(item, at, ["Pids"])));
  setDefined(requirements, "reservations", nested(fields, "Reservations", path, (item, at) => readResources(item, at, ["GenericResources"])));
  return requirements;
}

function readRestartPolicy(value: unknown, path: string): Input {
  const fields = dockerFields(value, path, ["Condition", "Delay", "MaxAttempts", "Window"]);
  const policy: Input = {};
  setDefined(policy, "condition", present(fields, "Condition"));
  setDefined(policy, "delayMs", readDuration(fields, "Delay", path));
  setDefined(policy, "maxAttempts", present(fields, "MaxAttempts"));
  setDefined(policy, "windowMs", readDuration(fields, "Window", path));
  return policy;
}

function readPreference(value: unknown, path: string): Input {
  const fields = dockerFields(value, path, ["Spread"]);
  const spread = nested(fields, "Spread", path, (item, at) => dockerFields(item, at, ["SpreadDescriptor"]));
  if (spread === undefined) throw invalidDocker(joinPath(path, "Spread"), "is required: shoal supports spread preferences only");
  const preference: Input = {};
  setDefined(preference, "spread", present(spread, "SpreadDescriptor"));
  return preference;
}

function readPlatform(value: unknown, path: string): Input {
  const fields = dockerFields(value, path, ["Architecture", "OS"]);
  const platform: Input = {};
  setDefined(platform, "architecture", present(fields, "Architecture"));
  setDefined(platform, "os", present(fields, "OS"));
  return platform;
}

function readPlacement(value: unknown, path: string): Input {
  const fields = dockerFields(value, path, ["Constraints", "Preferences", "MaxReplicas", "Platforms"]);
  const placement: Input = {};
  setDefined(placement, "constraints", present(fields, "Constraints"));
  setDefined(placement, "preferences", nestedArray(fields, "Preferences", path, readPreference));
  setDefined(placement, "maxReplicas", present(fields, "MaxReplicas"));
  setDefined(placement, "platforms", nestedArray(fields, "Platforms", path, readPlatform));
  return placement;
}

function readNetwork(value: unknown, path: string): Input {
  const fields = dockerFields(value, path, ["Target", "Aliases"], ["DriverOpts"]);
  const network: Input = {};
  setDefined(network, "target", present(fields, "Target"));
  setDefined(network, "aliases", present(fields, "Aliases"));
  return network;
}

function readTaskTemplate(value: unknown, path: string): Input {
  const fields = dockerFields(
    value,
    path,
    ["ContainerSpec", "Resources", "RestartPolicy", "Placement", "Networks", "ForceUpdate", "Runtime"],
    ["PluginSpec", "NetworkAttachmentSpec", "LogDriver"],
  );
  const runtime = present(fields, "Runtime");
  if (runtime !== undefined && runtime !== "" && runtime !== "container") {
    throw invalidDocker(joinPath(path, "Runtime"), `only the "container" runtime is supported, got ${JSON.stringify(runtime)}`);
  }
  const template: Input = {};
  setDefined(template, "containerSpec", nested(fields, "ContainerSpec", path, readContainerSpec));
  setDefined(template, "resources", nested(fields, "Resources", path, readResourceRequirements));
  setDefined(template, "restartPolicy", nested(fields, "RestartPolicy", path, readRestartPolicy));
  setDefined(template, "placement", nested(fields, "Placement", path, readPlacement));
  setDefined(template, "networks", nestedArray(fields, "Networks", path, readNetwork));
  setDefined(template, "forceUpdate", present(fields, "ForceUpdate"));
  return template;
}

function readMode(value: unknown, path: string): Input {
  const fields = dockerFields(value, path, ["Replicated", "Global", "ReplicatedJob", "GlobalJob"]);
  const chosen = ["Replicated", "Global", "ReplicatedJob", "GlobalJob"].filter((key) => present(fields, key) !== undefined);
  if (chosen.length > 1) throw invalidDocker(path, `set only one of Replicated or Global, got ${chosen.join(" and ")}`);
  if (chosen[0] === "ReplicatedJob" || chosen[0] === "GlobalJob") throw invalidDocker(joinPath(path, chosen[0]), "job services are not supported by shoal yet");
  if (chosen[0] === "Global") {
    dockerFields(fields["Global"], joinPath(path, "Global"), []);
    return { type: "global" };
  }
  const replicated = nested(fields, "Replicated", path, (item, at) => dockerFields(item, at, ["Replicas"]));
  const mode: Input = { type: "replicated" };
  if (replicated !== undefined) setDefined(mode, "replicas", present(replicated, "Replicas"));
  return mode;
}

function readUpdateConfig(value: unknown, path: string): Input {
  const fields = dockerFields(value, path, ["Parallelism", "Delay", "FailureAction", "Monitor", "MaxFailureRatio", "Order"]);
  const config: Input = {};
  setDefined(config, "parallelism", present(fields, "Parallelism"));
  setDefined(config, "delayMs", readDuration(fields, "Delay", path));
  setDefined(config, "failureAction", present(fields, "FailureAction"));
  setDefined(config, "monitorMs", readDuration(fields, "Monitor", path));
  setDefined(config, "maxFailureRatio", present(fields, "MaxFailureRatio"));
  setDefined(config, "order", present(fields, "Order"));
  return config;
}

function readPort(value: unknown, path: string): Input {
  const fields = dockerFields(value, path, ["Name", "Protocol", "TargetPort", "PublishedPort", "PublishMode"]);
  const port: Input = {};
  setDefined(port, "name", present(fields, "Name"));
  setDefined(port, "protocol", present(fields, "Protocol"));
  setDefined(port, "targetPort", present(fields, "TargetPort"));
  setDefined(port, "publishedPort", present(fields, "PublishedPort"));
  setDefined(port, "publishMode", present(fields, "PublishMode"));
  return port;
}

function readEndpointSpec(value: unknown, path: string): Input {
  const fields = dockerFields(value, path, ["Mode", "Ports"]);
  const endpoint: Input = {};
  setDefined(endpoint, "mode", present(fields, "Mode"));
  setDefined(endpoint, "ports", nestedArray(fields, "Ports", path, readPort));
  return endpoint;
}

/**
 * Reads a Docker ServiceSpec body into shoal's spec input (still to be checked by
 * parseServiceSpec). InvalidArgumentError naming the Docker field on an unknown field, a
 * Docker-only field that is set, a non-object, or a duration that is not whole nanoseconds.
 */
export function readDockerServiceSpec(value: unknown): Input {
  const fields = dockerFields(value, "Spec", ["Name", "Labels", "TaskTemplate", "Mode", "UpdateConfig", "RollbackConfig", "EndpointSpec"], ["Networks"]);
  const spec: Input = {};
  setDefined(spec, "name", present(fields, "Name"));
  setDefined(spec, "labels", present(fields, "Labels"));
  setDefined(spec, "taskTemplate", nested(fields, "TaskTemplate", "", readTaskTemplate));
  setDefined(spec, "mode", nested(fields, "Mode", "", readMode));
  setDefined(spec, "updateConfig", nested(fields, "UpdateConfig", "", readUpdateConfig));
  setDefined(spec, "rollbackConfig", nested(fields, "RollbackConfig", "", readUpdateConfig));
  setDefined(spec, "endpointSpec", nested(fields, "EndpointSpec", "", readEndpointSpec));
  return spec;
}

const segmentNames: Readonly<Record<string, string>> = { os: "OS", spread: "Spread.SpreadDescriptor", healthcheck: "Healthcheck" };

/**
 * Translates a shoal spec path ("spec.taskTemplate.containerSpec.stopGracePeriodMs") into
 * Docker's ("TaskTemplate.ContainerSpec.StopGracePeriod"). Label keys are kept as written.
 */
export function dockerFieldPath(path: string): string {
  const segments = path.replace(/^spec\.?/u, "").split(".");
  const out: string[] = [];
  for (let index = 0; index < segments.length; index += 1) {
    const segment = segments[index] ?? "";
    const match = /^([A-Za-z]+)(\[\d+\])?$/u.exec(segment);
    if (match === null || match[1] === undefined) {
      out.push(segment);
      continue;
    }
    const [, name, suffix = ""] = match;
    const previous = segments[index - 1];
    if (previous === "mode" && name === "replicas") out.push("Replicated", "Replicas");
    else if (previous === "mode" && name === "type") continue;
    else out.push(`${segmentNames[name] ?? name.charAt(0).toUpperCase() + name.slice(1).replace(/Ms$/u, "")}${suffix}`);
    if (name === "labels") {
      if (index + 1 < segments.length) out.push(segments.slice(index + 1).join("."));
      break;
    }
  }
  return out.join(".") || "Spec";
}

/** Rewrites an InvalidArgumentError from shoal's spec parser to name the Docker field. */
export function withDockerFieldNames(error: unknown): unknown {
  if (!isShoalError(error) || !(error instanceof InvalidArgumentError)) return error;
  const match = /^(spec(?:[.[][^:]*)?): (.*)$/su.exec(error.message);
  if (match === null || match[1] === undefined || match[2] === undefined) return error;
  return new InvalidArgumentError(`${dockerFieldPath(match[1])}: ${match[2]}`, { cause: error });
}

function dockerContainerSpec(spec: ContainerSpec): Input {
  const out: Input = {
    Image: spec.image,
    Labels: { ...spec.labels },
    ...(spec.command.length > 0 ? { Command: [...spec.command] } : {}),
    ...(spec.args.length > 0 ? { Args: [...spec.args] } : {}),
    ...(spec.env.length > 0 ? { Env: [...spec.env] } : {}),
    ...(spec.dir === "" ? {} : { Dir: spec.dir }),
    ...(spec.user === "" ? {} : { User: spec.user }),
    ...(spec.mounts.length > 0 ? { Mounts: spec.mounts.map(dockerMount) } : {}),
    ...(spec.stopSignal === "" ? {} : { StopSignal: spec.stopSignal }),
    StopGracePeriod: msToNanos(spec.stopGracePeriodMs),
  };
  if (spec.healthcheck !== undefined) out["Healthcheck"] = dockerHealthcheck(spec.healthcheck);
  return out;
}

function dockerMount(mount: Mount): Input {
  return { Type: mount.type, ...(mount.source === "" ? {} : { Source: mount.source }), Target: mount.target, ...(mount.readOnly ? { ReadOnly: true } : {}) };
}

function dockerHealthcheck(health: HealthConfig): Input {
  return {
    Test: [...health.test],
    Interval: msToNanos(health.intervalMs),
    Timeout: msToNanos(health.timeoutMs),
    StartPeriod: msToNanos(health.startPeriodMs),
    StartInterval: msToNanos(health.startIntervalMs),
    Retries: health.retries,
  };
}

function dockerResources(resources: ResourceRequirements): Input {
  return {
    Limits: { NanoCPUs: resources.limits.nanoCPUs, MemoryBytes: resources.limits.memoryBytes },
    Reservations: { NanoCPUs: resources.reservations.nanoCPUs, MemoryBytes: resources.reservations.memoryBytes },
  };
}

function dockerRestartPolicy(policy: RestartPolicy): Input {
  return { Condition: policy.condition, Delay: msToNanos(policy.delayMs), MaxAttempts: policy.maxAttempts, Window: msToNanos(policy.windowMs) };
}

function dockerPlacement(placement: Placement): Input {
  return {
    ...(placement.constraints.length > 0 ? { Constraints: [...placement.constraints] } : {}),
    ...(placement.preferences.length > 0 ? { Preferences: placement.preferences.map((preference) => ({ Spread: { SpreadDescriptor: preference.spread } })) } : {}),
    ...(placement.maxReplicas > 0 ? { MaxReplicas: placement.maxReplicas } : {}),
    ...(placement.platforms.length > 0 ? { Platforms: placement.platforms.map((platform) => ({ Architecture: platform.architecture, OS: platform.os })) } : {}),
  };
}

/** A shoal task template as Docker's TaskSpec. */
export function dockerTaskSpec(spec: TaskSpec): Input {
  return {
    ContainerSpec: dockerContainerSpec(spec.containerSpec),
    Resources: dockerResources(spec.resources),
    RestartPolicy: dockerRestartPolicy(spec.restartPolicy),
    Placement: dockerPlacement(spec.placement),
    ...(spec.networks.length > 0 ? { Networks: spec.networks.map((network) => ({ Target: network.target, Aliases: [...network.aliases] })) } : {}),
    ForceUpdate: spec.forceUpdate,
    Runtime: "container",
  };
}

function dockerMode(mode: ServiceMode): Input {
  return mode.type === "global" ? { Global: {} } : { Replicated: { Replicas: mode.replicas } };
}

function dockerUpdateConfig(config: UpdateConfig): Input {
  return {
    Parallelism: config.parallelism,
    Delay: msToNanos(config.delayMs),
    FailureAction: config.failureAction,
    Monitor: msToNanos(config.monitorMs),
    MaxFailureRatio: config.maxFailureRatio,
    Order: config.order,
  };
}

/** A shoal endpoint spec as Docker's EndpointSpec. */
export function dockerEndpointSpec(endpoint: EndpointSpec): Input {
  return {
    Mode: endpoint.mode,
    ...(endpoint.ports.length > 0
      ? {
          Ports: endpoint.ports.map((port) => ({
            ...(port.name === "" ? {} : { Name: port.name }),
            Protocol: port.protocol,
            TargetPort: port.targetPort,
            PublishedPort: port.publishedPort,
            PublishMode: port.publishMode,
          })),
        }
      : {}),
  };
}

/** A shoal ServiceSpec as Docker's ServiceSpec; readDockerServiceSpec reads it back unchanged. */
export function dockerServiceSpec(spec: ServiceSpec): Input {
  return {
    Name: spec.name,
    Labels: { ...spec.labels },
    TaskTemplate: dockerTaskSpec(spec.taskTemplate),
    Mode: dockerMode(spec.mode),
    UpdateConfig: dockerUpdateConfig(spec.updateConfig),
    RollbackConfig: dockerUpdateConfig(spec.rollbackConfig),
    EndpointSpec: dockerEndpointSpec(spec.endpointSpec),
  };
}
