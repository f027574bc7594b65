import { Writable } from "node:stream";

import { Option, type Command } from "commander";

import { systemClock, type Clock } from "../../common/clock.js";
import { DeadlineExceededError, FailedPreconditionError, InvalidArgumentError } from "../../common/errors.js";
import type { CliContext } from "../context.js";
import { collect, parseEnv, parseMemoryBytes } from "../flags.js";
import { asArray, asRecord, numberField, recordField, stringField, type JsonRecord } from "../parse.js";
import { cpuNanos, labelMap, parseGoDuration, parsePublishFlag, wholeNumber } from "./service-flags.js";

// ---------------------------------------------------------------------------------------
// Flags -> the updated Docker ServiceSpec (pure)
// ---------------------------------------------------------------------------------------

/** `--update-*` or `--rollback-*`: each flag given replaces one field of the config. */
export interface UpdateConfigFlags {
  parallelism?: string;
  delay?: string;
  failureAction?: string;
  monitor?: string;
  maxFailureRatio?: string;
  order?: string;
}

export interface ServiceUpdateOptions {
  image?: string;
  args?: string;
  replicas?: string;
  envAdd: string[];
  envRm: string[];
  labelAdd: string[];
  labelRm: string[];
  constraintAdd?: string[];
  constraintRm?: string[];
  placementPrefAdd?: string[];
  placementPrefRm?: string[];
  publishAdd?: string[];
  publishRm?: string[];
  reserveCpu?: string;
  reserveMemory?: string;
  limitCpu?: string;
  limitMemory?: string;
  healthCmd?: string;
  healthInterval?: string;
  healthTimeout?: string;
  healthRetries?: string;
  healthStartPeriod?: string;
  healthStartInterval?: string;
  /** commander's `--no-healthcheck`: false when given. */
  healthcheck?: boolean;
  restartCondition?: string;
  restartDelay?: string;
  restartMaxAttempts?: string;
  restartWindow?: string;
  update?: UpdateConfigFlags;
  rollbackConfig?: UpdateConfigFlags;
  force?: boolean;
  rollback?: boolean;
  detach?: boolean;
  quiet?: boolean;
}

function withoutKeys(entries: readonly string[], keys: readonly string[]): string[] {
  return entries.filter((entry) => !keys.includes(entry.split("=")[0] ?? entry));
}

function setIfDefined(target: Record<string, unknown>, key: string, value: unknown): void {
  if (value !== undefined) target[key] = value;
}

function updatedContainer(container: JsonRecord, options: ServiceUpdateOptions, env: Readonly<Record<string, string | undefined>>): Record<string, unknown> {
  const added = options.envAdd.map((value) => parseEnv(value, env)).filter((value) => value !== undefined);
  const currentEnv = asArray(container["Env"] ?? [], "Env").map(String);
  const envKeys = [...options.envRm, ...added.map((entry) => entry.split("=")[0] ?? entry)];
  const out: Record<string, unknown> = { ...container, Env: [...withoutKeys(currentEnv, envKeys), ...added] };
  setIfDefined(out, "Image", options.image);
  if (options.args !== undefined) out["Args"] = options.args.split(/\s+/u).filter((part) => part !== "");
  const health = updatedHealthcheck(recordField(container, "Healthcheck"), options);
  if (health !== undefined) out["Healthcheck"] = health;
  return out;
}

/** The health flags `service create` and `service update` share. */
export type HealthFlags = Pick<ServiceUpdateOptions, "healthCmd" | "healthInterval" | "healthTimeout" | "healthRetries" | "healthStartPeriod" | "healthStartInterval" | "healthcheck">;

/** `--health-*` and `--no-healthcheck` on top of the current Healthcheck ({} for a new service); undefined when none is given. */
export function updatedHealthcheck(current: JsonRecord, options: HealthFlags): Record<string, unknown> | undefined {
  const given = [options.healthCmd, options.healthInterval, options.healthTimeout, options.healthRetries, options.healthStartPeriod, options.healthStartInterval];
  if (options.healthcheck === false) {
    if (given.some((value) => value !== undefined)) throw new InvalidArgumentError("--no-healthcheck conflicts with --health-* options");
    return { Test: ["NONE"] };
  }
  if (given.every((value) => value === undefined)) return undefined;
  const health: Record<string, unknown> = { ...current };
  if (options.healthCmd !== undefined) health["Test"] = ["CMD-SHELL", options.healthCmd];
  setIfDefined(health, "Interval", options.healthInterval === undefined ? undefined : parseGoDuration(options.healthInterval, "--health-interval"));
  setIfDefined(health, "Timeout", options.healthTimeout === undefined ? undefined : parseGoDuration(options.healthTimeout, "--health-timeout"));
  setIfDefined(health, "StartPeriod", options.healthStartPeriod === undefined ? undefined : parseGoDuration(options.healthStartPeriod, "--health-start-period"));
  setIfDefined(health, "StartInterval", options.healthStartInterval === undefined ? undefined : parseGoDuration(options.healthStartInterval, "--health-start-interval"));
  setIfDefined(health, "Retries", wholeNumber(options.healthRetries, "--health-retries"));
  return health;
}

function updatedResources(current: JsonRecord, options: ServiceUpdateOptions): Record<string, unknown> | undefined {
  if ([options.limitCpu, options.limitMemory, options.reserveCpu, options.reserveMemory].every((value) => value === undefined)) return undefined;
  const limits: Record<string, unknown> = { ...recordField(current, "Limits") };
  const reservations: Record<string, unknown> = { ...recordField(current, "Reservations") };
  setIfDefined(limits, "NanoCPUs", cpuNanos(options.limitCpu, "--limit-cpu"));
  setIfDefined(limits, "MemoryBytes", options.limitMemory === undefined ? undefined : parseMemoryBytes(options.limitMemory));
  setIfDefined(reservations, "NanoCPUs", cpuNanos(options.reserveCpu, "--reserve-cpu"));
  setIfDefined(reservations, "MemoryBytes", options.reserveMemory === undefined ? undefined : parseMemoryBytes(options.reserveMemory));
  return { ...current, Limits: limits, Reservations: reservations };
}

function updatedRestartPolicy(current: JsonRecord, options: ServiceUpdateOptions): Record<string, unknown> | undefined {
  if ([options.restartCondition, options.restartDelay, options.restartMaxAttempts, options.restartWindow].every((value) => value === undefined)) return undefined;
  const policy: Record<string, unknown> = { ...current };
  setIfDefined(policy, "Condition", options.restartCondition);
  setIfDefined(policy, "Delay", options.restartDelay === undefined ? undefined : parseGoDuration(options.restartDelay, "--restart-delay"));
  setIfDefined(policy, "MaxAttempts", wholeNumber(options.restartMaxAttempts, "--restart-max-attempts"));
  setIfDefined(policy, "Window", options.restartWindow === undefined ? undefined : parseGoDuration(options.restartWindow, "--restart-window"));
  return policy;
}

function spreadPreference(text: string): Record<string, unknown> {
  const match = /^spread=(.+)$/u.exec(text);
  if (match === null) throw new InvalidArgumentError(`invalid placement preference "${text}": use spread=node.labels.NAME`);
  return { Spread: { SpreadDescriptor: match[1] } };
}

function updatedPlacement(current: JsonRecord, options: ServiceUpdateOptions): Record<string, unknown> | undefined {
  if ([options.constraintAdd, options.constraintRm, options.placementPrefAdd, options.placementPrefRm].every((list) => list === undefined || list.length === 0)) return undefined;
  const removeConstraints = options.constraintRm ?? [];
  const constraints = asArray(current["Constraints"] ?? [], "Constraints").map(String).filter((constraint) => !removeConstraints.includes(constraint));
  for (const constraint of options.constraintAdd ?? []) if (!constraints.includes(constraint)) constraints.push(constraint);
  const removeSpreads = new Set((options.placementPrefRm ?? []).map((text) => JSON.stringify(spreadPreference(text))));
  const preferences = asArray(current["Preferences"] ?? [], "Preferences").filter((preference) => !removeSpreads.has(JSON.stringify(preference)));
  preferences.push(...(options.placementPrefAdd ?? []).map(spreadPreference));
  return { ...current, Constraints: constraints, Preferences: preferences };
}

/** `--publish-rm` names a port by its target: "80" or "80/udp" (tcp when left out). */
function updatedEndpoint(current: JsonRecord, options: ServiceUpdateOptions): Record<string, unknown> | undefined {
  if ((options.publishAdd ?? []).length === 0 && (options.publishRm ?? []).length === 0) return undefined;
  const removed = (options.publishRm ?? []).map((text) => {
    const match = /^(\d+)(?:\/(tcp|udp|sctp))?$/u.exec(text);
    if (match === null) throw new InvalidArgumentError(`invalid --publish-rm "${text}": use TARGET[/PROTOCOL]`);
    return { target: Number(match[1]), protocol: match[2] ?? "tcp" };
  });
  const kept = asArray(current["Ports"] ?? [], "Ports")
    .map((port) => asRecord(port, "port"))
    .filter((port) => !removed.some((gone) => gone.target === numberField(port, "TargetPort") && gone.protocol === stringField(port, "Protocol", "tcp")));
  return { ...current, Ports: [...kept, ...(options.publishAdd ?? []).map(parsePublishFlag)] };
}

function updatedUpdateConfig(current: JsonRecord, flags: UpdateConfigFlags | undefined, prefix: string): Record<string, unknown> | undefined {
  if (flags === undefined || Object.values(flags).every((value) => value === undefined)) return undefined;
  const config: Record<string, unknown> = { ...current };
  setIfDefined(config, "Parallelism", wholeNumber(flags.parallelism, `--${prefix}-parallelism`));
  setIfDefined(config, "Delay", flags.delay === undefined ? undefined : parseGoDuration(flags.delay, `--${prefix}-delay`));
  setIfDefined(config, "FailureAction", flags.failureAction);
  setIfDefined(config, "Monitor", flags.monitor === undefined ? undefined : parseGoDuration(flags.monitor, `--${prefix}-monitor`));
  if (flags.maxFailureRatio !== undefined) {
    if (!/^\d+(\.\d+)?$/u.test(flags.maxFailureRatio) || Number(flags.maxFailureRatio) > 1) throw new InvalidArgumentError(`--${prefix}-max-failure-ratio must be a number between 0 and 1`);
    config["MaxFailureRatio"] = Number(flags.maxFailureRatio);
  }
  setIfDefined(config, "Order", flags.order);
  return config;
}

/** The Docker ServiceSpec `service update` sends: the current spec with the flags applied. */
export function updatedServiceSpec(spec: JsonRecord, options: ServiceUpdateOptions, env: Readonly<Record<string, string | undefined>>): Record<string, unknown> {
  const template = recordField(spec, "TaskTemplate");
  const labels: Record<string, string> = {};
  for (const [key, value] of Object.entries(recordField(spec, "Labels"))) if (!options.labelRm.includes(key)) labels[key] = String(value);
  Object.assign(labels, labelMap(options.labelAdd));
  const mode = recordField(spec, "Mode");
  if (options.replicas !== undefined && (mode["Replicated"] === undefined || mode["Replicated"] === null)) throw new InvalidArgumentError("--replicas can only be used with replicated mode");
  const replicas = wholeNumber(options.replicas, "--replicas");
  // Sections no flag touches are sent back as they were (or left out, as they came).
  const sections = (entries: Record<string, Record<string, unknown> | undefined>): Record<string, unknown> =>
    Object.fromEntries(Object.entries(entries).filter(([, value]) => value !== undefined));
  return {
    ...spec,
    Labels: labels,
    TaskTemplate: {
      ...template,
      ContainerSpec: updatedContainer(recordField(template, "ContainerSpec"), options, env),
      ...sections({
        Resources: updatedResources(recordField(template, "Resources"), options),
        RestartPolicy: updatedRestartPolicy(recordField(template, "RestartPolicy"), options),
        Placement: updatedPlacement(recordField(template, "Placement"), options),
      }),
      ForceUpdate: numberField(template, "ForceUpdate") + (options.force === true ? 1 : 0),
    },
    ...sections({
      UpdateConfig: updatedUpdateConfig(recordField(spec, "UpdateConfig"), options.update, "update"),
      RollbackConfig: updatedUpdateConfig(recordField(spec, "RollbackConfig"), options.rollbackConfig, "rollback"),
      EndpointSpec: updatedEndpoint(recordField(spec, "EndpointSpec"), options),
    }),
    ...(replicas === undefined ? {} : { Mode: { Replicated: { Replicas: replicas } } }),
  };
}

// ---------------------------------------------------------------------------------------
// Rollout progress (pure snapshot + polling loop)
// ---------------------------------------------------------------------------------------

/** How often the rollout display polls, and how long it waits by default. */
export const updateWatchPollIntervalMs = 250;
export const updateWatchDeadlineMsDefault = 600_000;

/** Draws snapshots: redrawn in place on a terminal, else only the lines that changed. */
export class ProgressRenderer {
  #previous: string[] = [];
  constructor(
    readonly out: Writable,
    readonly terminal: boolean,
  ) {}

  draw(lines: readonly string[]): void {
    if (this.terminal) {
      const up = this.#previous.length > 0 ? `\u001b[${this.#previous.length}A` : "";
      this.out.write(`${up}${lines.map((line) => `\u001b[2K${line}\n`).join("")}`);
    } else {
      for (const [index, line] of lines.entries()) if (this.#previous[index] !== line) this.out.write(`${line}\n`);
    }
    this.#previous = [...lines];
  }
}

export interface UpdateSnapshot {
  lines: string[];
  /** "done" once completed (or, without an update status, once every slot runs the spec); "stopped" when paused. */
  outcome: "rolling" | "done" | "stopped";
  /** The update status message, for the error of a paused rollout. */
  message: string;
}

function isLive(task: JsonRecord): boolean {
  const desired = stringField(task, "DesiredState");
  return desired === "running" || desired === "ready";
}

function createdAt(task: JsonRecord): number {
  return Date.parse(stringField(task, "CreatedAt"));
}

function slotKey(task: JsonRecord): string {
  const slot = numberField(task, "Slot");
  return slot === 0 ? stringField(task, "NodeID").slice(0, 12) : String(slot);
}

function taskState(task: JsonRecord): string {
  const status = recordField(task, "Status");
  const health = stringField(status, "Health");
  return `${stringField(status, "State")}${health === "" ? "" : ` (${health})`}`;
}

/**
 * One slot's line: "3/12: 1a2b3c4d5e6f shutdown -> 9f8e7d6c5b4a running (starting)": the
 * task it replaces (still running with start-first, stopping with stop-first) until the new
 * one is done, then the new one alone.
 */
function slotLine(label: string, tasks: readonly JsonRecord[], current: (task: JsonRecord) => boolean): { line: string; updated: boolean } {
  const newestFirst = [...tasks].sort((left, right) => createdAt(right) - createdAt(left));
  const fresh = newestFirst.filter(isLive).find(current);
  const old = newestFirst.find((task) => !current(task));
  const id = (task: JsonRecord): string => stringField(task, "ID").slice(0, 12);
  if (fresh === undefined) return { line: `${label}: ${old === undefined ? "(none)" : `${id(old)} ${taskState(old)}`} -> waiting`, updated: false };
  const status = recordField(fresh, "Status");
  const done = stringField(status, "State") === "running" && !["starting", "unhealthy"].includes(stringField(status, "Health"));
  const oldLive = old !== undefined && isLive(old);
  const arrow = old !== undefined && (oldLive || !done) && createdAt(old) <= createdAt(fresh) ? `${id(old)} ${taskState(old)} -> ` : "";
  return { line: `${label}: ${arrow}${id(fresh)} ${taskState(fresh)}`, updated: done && !oldLive };
}

/** The rollout display for a service and its tasks (Docker API shapes). */
export function updateSnapshot(service: JsonRecord, tasks: readonly JsonRecord[]): UpdateSnapshot {
  const spec = recordField(service, "Spec");
  const template = JSON.stringify(recordField(spec, "TaskTemplate"));
  const current = (task: JsonRecord): boolean => JSON.stringify(recordField(task, "Spec")) === template;
  const bySlot = new Map<string, JsonRecord[]>();
  for (const task of tasks) {
    const list = bySlot.get(slotKey(task));
    if (list === undefined) bySlot.set(slotKey(task), [task]);
    else list.push(task);
  }
  const mode = recordField(spec, "Mode");
  const replicated = mode["Replicated"] !== undefined && mode["Replicated"] !== null;
  const keys = replicated
    ? Array.from({ length: numberField(recordField(mode, "Replicated"), "Replicas") }, (_, index) => String(index + 1))
    : [...bySlot.keys()].filter((key) => bySlot.get(key)?.some(isLive) === true).sort();
  const slotLines = keys.map((key) => slotLine(replicated ? `${key}/${keys.length}` : key, bySlot.get(key) ?? [], current));
  const updated = slotLines.filter((slot) => slot.updated).length;
  const status = recordField(service, "UpdateStatus");
  const state = stringField(status, "State");
  const message = stringField(status, "Message");
  const head = `${state === "" ? "converging" : state}: ${updated} out of ${keys.length} tasks on the current spec${message === "" ? "" : ` (${message})`}`;
  const lines = [head, ...slotLines.map((slot) => slot.line)];
  if (state === "paused" || state === "rollback_paused") return { lines, outcome: "stopped", message };
  if (state === "completed" || state === "rollback_completed") return { lines, outcome: "done", message };
  return { lines, outcome: state === "" && updated === keys.length ? "done" : "rolling", message };
}

/**
 * Polls a service and its tasks after `service update` until the rollout completes,
 * drawing one line per slot (old task -> new task, state, health). A paused rollout ends
 * it with FailedPreconditionError carrying the update status message.
 */
export async function watchUpdate(context: CliContext, serviceId: string, options: { clock?: Clock; deadlineMs?: number; signal?: AbortSignal } = {}): Promise<void> {
  const clock = options.clock ?? systemClock;
  const client = context.client();
  const started = clock.now();
  const deadline = started + (options.deadlineMs ?? updateWatchDeadlineMsDefault);
  const renderer = new ProgressRenderer(context.out, "isTTY" in context.out && context.out.isTTY === true);
  const signal = options.signal === undefined ? {} : { signal: options.signal };
  const filters = JSON.stringify({ service: { [serviceId]: true } });
  for (;;) {
    const service = asRecord(await client.json("GET", `/services/${encodeURIComponent(serviceId)}`, signal), "service");
    const tasks = asArray(await client.json("GET", "/tasks", { query: { filters }, ...signal }), "task list").map((task) => asRecord(task, "task"));
    const snapshot = updateSnapshot(service, tasks);
    renderer.draw(snapshot.lines);
    if (snapshot.outcome === "done") {
      context.out.write("verify: Service converged\n");
      return;
    }
    if (snapshot.outcome === "stopped") throw new FailedPreconditionError(`${snapshot.message}; see \`shoal service inspect --pretty ${serviceId}\`, then update again or roll back`);
    if (clock.now() >= deadline) {
      throw new DeadlineExceededError(`the update of service ${serviceId} did not finish within ${Math.round((deadline - started) / 1000)}s; it goes on in the background: see \`shoal service ps ${serviceId}\``);
    }
    await clock.sleep(updateWatchPollIntervalMs, signal);
  }
}

// ---------------------------------------------------------------------------------------
// Command
// ---------------------------------------------------------------------------------------

function addUpdateConfigOptions(command: Command, prefix: "update" | "rollback"): void {
  const what = prefix === "update" ? "updated" : "rolled back";
  command
    .option(`--${prefix}-parallelism <n>`, `tasks ${what} at once (0 = all)`)
    .option(`--${prefix}-delay <duration>`, `delay between ${what} tasks (e.g. 10s)`)
    .addOption(new Option(`--${prefix}-failure-action <action>`, `what to do when ${what} tasks fail`).choices(prefix === "update" ? ["pause", "continue", "rollback"] : ["pause", "continue"]))
    .option(`--${prefix}-monitor <duration>`, "how long to watch each new task for failure")
    .option(`--${prefix}-max-failure-ratio <ratio>`, "tolerated failure fraction (0..1)")
    .addOption(new Option(`--${prefix}-order <order>`, "stop-first or start-first").choices(["stop-first", "start-first"]));
}

/** The `--health-*` flags of `service create` and `service update`. */
export function addHealthOptions(command: Command): Command {
  return command
    .option("--health-cmd <command>", "health check command, run with /bin/sh -c in the container")
    .option("--health-interval <duration>", "time between health checks")
    .option("--health-timeout <duration>", "longest a health check may run")
    .option("--health-retries <n>", "failures in a row that make a task unhealthy")
    .option("--health-start-period <duration>", "grace period after start when failures do not count")
    .option("--health-start-interval <duration>", "time between health checks during the start period")
    .option("--no-healthcheck", "disable the image's health check");
}

function addUpdateOptions(command: Command): Command {
  addHealthOptions(command)
    .option("--image <image>", "new image")
    .option("--args <command>", "new command arguments (space separated)")
    .option("--replicas <n>", "number of tasks")
    .option("--env-add <NAME=value>", "add or change an environment variable (repeatable)", collect, [])
    .option("--env-rm <NAME>", "remove an environment variable (repeatable)", collect, [])
    .option("--label-add <key=value>", "add or change a service label (repeatable)", collect, [])
    .option("--label-rm <key>", "remove a service label (repeatable)", collect, [])
    .option("--constraint-add <expr>", "add a placement constraint (repeatable)", collect, [])
    .option("--constraint-rm <expr>", "remove a placement constraint (repeatable)", collect, [])
    .option("--placement-pref-add <pref>", "add a placement preference, spread=node.labels.NAME (repeatable)", collect, [])
    .option("--placement-pref-rm <pref>", "remove a placement preference (repeatable)", collect, [])
    .option("--publish-add <port>", "publish a port: [PUBLISHED:]TARGET[/PROTO] or mode=..,target=..,published=.. (repeatable)", collect, [])
    .option("--publish-rm <target>", "stop publishing a port, by its target TARGET[/PROTO] (repeatable)", collect, [])
    .option("--reserve-cpu <cpus>", "CPUs reserved per task")
    .option("--reserve-memory <bytes>", "memory reserved per task (e.g. 64m)")
    .option("--limit-cpu <cpus>", "CPU limit per task")
    .option("--limit-memory <bytes>", "memory limit per task")
    .addOption(new Option("--restart-condition <condition>", "when to restart tasks").choices(["none", "on-failure", "any"]))
    .option("--restart-delay <duration>", "delay between restarts")
    .option("--restart-max-attempts <n>", "most restarts (0 = unlimited)")
    .option("--restart-window <duration>", "window the attempts are counted in")
    .option("--force", "replace every task even when the spec is unchanged")
    .option("--rollback", "go back to the spec before the last update")
    .option("-d, --detach", "exit right away instead of following the rollout")
    .option("-q, --quiet", "do not show the rollout progress");
  addUpdateConfigOptions(command, "update");
  addUpdateConfigOptions(command, "rollback");
  return command;
}

type RawUpdateFlags = Omit<ServiceUpdateOptions, "update" | "rollbackConfig"> & Record<string, unknown>;

function configFlags(raw: RawUpdateFlags, prefix: "update" | "rollback"): UpdateConfigFlags {
  const flags: UpdateConfigFlags = {};
  for (const key of ["parallelism", "delay", "failureAction", "monitor", "maxFailureRatio", "order"] as const) {
    const value = raw[`${prefix}${key.charAt(0).toUpperCase()}${key.slice(1)}`];
    if (typeof value === "string") flags[key] = value;
  }
  return flags;
}

async function updateService(context: CliContext, reference: string, raw: RawUpdateFlags): Promise<string> {
  const options: ServiceUpdateOptions = { ...raw, update: configFlags(raw, "update"), rollbackConfig: configFlags(raw, "rollback") };
  const client = context.client();
  const current = asRecord(await client.json("GET", `/services/${encodeURIComponent(reference)}`), "service");
  const version = recordField(current, "Version")["Index"];
  const id = stringField(current, "ID");
  const spec = recordField(current, "Spec");
  await client.json("POST", `/services/${encodeURIComponent(id)}/update`, {
    query: { version: typeof version === "number" ? version : undefined, rollback: options.rollback === true ? "previous" : undefined },
    body: options.rollback === true ? spec : updatedServiceSpec(spec, options, process.env),
  });
  return id;
}

async function followRollout(context: CliContext, id: string, options: { detach?: boolean; quiet?: boolean }): Promise<void> {
  if (options.detach === true) return;
  if (options.quiet === true) {
    await watchUpdate({ ...context, out: new Writable({ write: (_chunk, _encoding, done) => done() }) }, id);
    return;
  }
  await watchUpdate(context, id);
}

/** `service update` and `service rollback`. */
export function registerServiceUpdateCommand(service: Command, context: CliContext): void {
  addUpdateOptions(service.command("update").description("Change a service and roll its tasks onto the new spec, or roll it back").argument("<service>")).action(
    async (reference: string, raw: RawUpdateFlags) => {
      const id = await updateService(context, reference, raw);
      context.out.write(`${reference}\n`);
      await followRollout(context, id, raw);
    },
  );
  service
    .command("rollback")
    .description("Go back to the spec a service had before its last update")
    .argument("<service>")
    .option("-d, --detach", "exit right away instead of following the rollback")
    .option("-q, --quiet", "do not show the rollback progress")
    .action(async (reference: string, options: { detach?: boolean; quiet?: boolean }) => {
      const id = await updateService(context, reference, { envAdd: [], envRm: [], labelAdd: [], labelRm: [], rollback: true });
      context.out.write(`${reference}\nrollback: manually requested rollback\n`);
      await followRollout(context, id, options);
    });
}
