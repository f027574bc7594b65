import { Writable } from "node:stream";
import { finished } from "node:stream/promises";

import { Option, type Command } from "commander";

import { systemClock, type Clock } from "../../common/clock.js";
import { DeadlineExceededError, InvalidArgumentError } from "../../common/errors.js";
import { DaemonResponseError } from "../client.js";
import type { CliContext } from "../context.js";
import { collect, parseEnv, parseMemoryBytes } from "../flags.js";
import { formatTable, writeJson } from "../output.js";
import { asArray, asRecord, numberField, recordField, stringField, type JsonRecord } from "../parse.js";
import { demuxDockerStream } from "../stream.js";
import { filtersObject, filtersParam } from "./node.js";
import { compact, cpuNanos, labelMap, parseGoDuration, parseMountFlag, parsePublishFlag, wholeNumber } from "./service-flags.js";
import { addHealthOptions, ProgressRenderer, registerServiceUpdateCommand, updatedHealthcheck, type HealthFlags } from "./service-update.js";

export { parseGoDuration, parseMountFlag, parsePublishFlag } from "./service-flags.js";
export { updatedServiceSpec } from "./service-update.js";
export type { ServiceUpdateOptions } from "./service-update.js";

// ---------------------------------------------------------------------------------------
// Flags -> Docker ServiceSpec (pure)
// ---------------------------------------------------------------------------------------

export interface ServiceCreateOptions extends HealthFlags {
  name?: string;
  replicas?: string;
  mode: string;
  env: string[];
  label: string[];
  containerLabel: string[];
  constraint: string[];
  placementPref: string[];
  replicasMaxPerNode?: string;
  reserveCpu?: string;
  reserveMemory?: string;
  limitCpu?: string;
  limitMemory?: string;
  restartCondition?: string;
  restartDelay?: string;
  restartMaxAttempts?: string;
  restartWindow?: string;
  publish: string[];
  mount: string[];
  /** Overlay networks by name or id, or "name=NET,alias=A": docker's --network. */
  network?: string[];
  endpointMode?: string;
  stopSignal?: string;
  stopGracePeriod?: string;
  workdir?: string;
  user?: string;
  entrypoint?: string;
  updateParallelism?: string;
  updateDelay?: string;
  updateFailureAction?: string;
  updateMonitor?: string;
  updateMaxFailureRatio?: string;
  updateOrder?: string;
  rollbackParallelism?: string;
  rollbackDelay?: string;
  rollbackFailureAction?: string;
  rollbackMonitor?: string;
  rollbackMaxFailureRatio?: string;
  rollbackOrder?: string;
  detach?: boolean;
  quiet?: boolean;
}

/** An UpdateConfig or RollbackConfig from `--update-*` or `--rollback-*` flags; undefined when none is set (the daemon's defaults apply). */
function updateConfigFromFlags(flags: { parallelism?: string | undefined; delay?: string | undefined; failureAction?: string | undefined; monitor?: string | undefined; maxFailureRatio?: string | undefined; order?: string | undefined }, prefix: string): Record<string, unknown> | undefined {
  if (Object.values(flags).every((value) => value === undefined)) return undefined;
  const ratio = flags.maxFailureRatio;
  if (ratio !== undefined && !/^\d+(\.\d+)?$/u.test(ratio)) throw new InvalidArgumentError(`--${prefix}-max-failure-ratio must be a number between 0 and 1`);
  return {
    Parallelism: wholeNumber(flags.parallelism, `--${prefix}-parallelism`) ?? 1,
    Delay: flags.delay === undefined ? 0 : parseGoDuration(flags.delay, `--${prefix}-delay`),
    FailureAction: flags.failureAction ?? "pause",
    Monitor: flags.monitor === undefined ? 5_000_000_000 : parseGoDuration(flags.monitor, `--${prefix}-monitor`),
    MaxFailureRatio: ratio === undefined ? 0 : Number(ratio),
    Order: flags.order ?? "stop-first",
  };
}

function resourcesFromFlags(options: ServiceCreateOptions): Record<string, unknown> {
  return {
    Limits: compact({ NanoCPUs: cpuNanos(options.limitCpu, "--limit-cpu"), MemoryBytes: options.limitMemory === undefined ? undefined : parseMemoryBytes(options.limitMemory) }),
    Reservations: compact({ NanoCPUs: cpuNanos(options.reserveCpu, "--reserve-cpu"), MemoryBytes: options.reserveMemory === undefined ? undefined : parseMemoryBytes(options.reserveMemory) }),
  };
}

function restartPolicyFromFlags(options: ServiceCreateOptions): Record<string, unknown> | undefined {
  const { restartCondition, restartDelay, restartMaxAttempts, restartWindow } = options;
  if (restartCondition === undefined && restartDelay === undefined && restartMaxAttempts === undefined && restartWindow === undefined) return undefined;
  return compact({
    Condition: restartCondition ?? "any",
    Delay: restartDelay === undefined ? undefined : parseGoDuration(restartDelay, "--restart-delay"),
    MaxAttempts: wholeNumber(restartMaxAttempts, "--restart-max-attempts"),
    Window: restartWindow === undefined ? undefined : parseGoDuration(restartWindow, "--restart-window"),
  });
}

function placementFromFlags(options: ServiceCreateOptions): Record<string, unknown> {
  const preferences = options.placementPref.map((preference) => {
    const match = /^spread=(.+)$/u.exec(preference);
    if (match === null) throw new InvalidArgumentError(`invalid --placement-pref "${preference}": use spread=node.labels.NAME`);
    return { Spread: { SpreadDescriptor: match[1] } };
  });
  return compact({
    Constraints: options.constraint.length === 0 ? undefined : [...options.constraint],
    Preferences: preferences.length === 0 ? undefined : preferences,
    MaxReplicas: wholeNumber(options.replicasMaxPerNode, "--replicas-max-per-node"),
  });
}

function modeFromFlags(options: ServiceCreateOptions): Record<string, unknown> {
  if (options.mode === "global") {
    if (options.replicas !== undefined) throw new InvalidArgumentError("--replicas can only be used with replicated mode");
    return { Global: {} };
  }
  if (options.mode !== "replicated") throw new InvalidArgumentError(`invalid --mode "${options.mode}": use replicated or global`);
  return { Replicated: { Replicas: wholeNumber(options.replicas, "--replicas") ?? 1 } };
}

/**
 * The Docker ServiceSpec `service create` sends, as the docker CLI builds it: flags left
 * out leave their section out (or empty), so the daemon's defaults apply.
 */
export function serviceSpecFromFlags(image: string, args: readonly string[], options: ServiceCreateOptions, env: Readonly<Record<string, string | undefined>>): Record<string, unknown> {
  const containerLabels = labelMap(options.containerLabel);
  const containerSpec = compact({
    Image: image,
    Labels: Object.keys(containerLabels).length === 0 ? undefined : containerLabels,
    Command: options.entrypoint === undefined ? undefined : options.entrypoint.split(/\s+/u).filter((part) => part !== ""),
    Args: args.length === 0 ? undefined : [...args],
    Env: options.env.length === 0 ? undefined : options.env.map((value) => parseEnv(value, env)).filter((value) => value !== undefined),
    Dir: options.workdir,
    User: options.user,
    StopSignal: options.stopSignal,
    Mounts: options.mount.length === 0 ? undefined : options.mount.map(parseMountFlag),
    StopGracePeriod: options.stopGracePeriod === undefined ? undefined : parseGoDuration(options.stopGracePeriod, "--stop-grace-period"),
    Healthcheck: updatedHealthcheck({}, options),
  });
  const ports = options.publish.map(parsePublishFlag);
  const networks = (options.network ?? []).map(parseNetworkFlag);
  return compact({
    Name: options.name,
    Labels: labelMap(options.label),
    TaskTemplate: compact({
      ContainerSpec: containerSpec,
      Resources: resourcesFromFlags(options),
      RestartPolicy: restartPolicyFromFlags(options),
      Placement: placementFromFlags(options),
      Networks: networks.length === 0 ? undefined : networks,
      ForceUpdate: 0,
    }),
    Mode: modeFromFlags(options),
    UpdateConfig: updateConfigFromFlags({ parallelism: options.updateParallelism, delay: options.updateDelay, failureAction: options.updateFailureAction, monitor: options.updateMonitor, maxFailureRatio: options.updateMaxFailureRatio, order: options.updateOrder }, "update"),
    RollbackConfig: updateConfigFromFlags({ parallelism: options.rollbackParallelism, delay: options.rollbackDelay, failureAction: options.rollbackFailureAction, monitor: options.rollbackMonitor, maxFailureRatio: options.rollbackMaxFailureRatio, order: options.rollbackOrder }, "rollback"),
    EndpointSpec: compact({ Mode: options.endpointMode ?? "vip", Ports: ports.length === 0 ? undefined : ports }),
  });
}

/** `--network NAME` or `--network name=NAME,alias=ALIAS[,alias=...]`, as docker reads it. */
function parseNetworkFlag(value: string): Record<string, unknown> {
  if (!value.includes("=")) return { Target: value };
  const aliases: string[] = [];
  let target: string | undefined;
  for (const part of value.split(",")) {
    const [key, item] = [part.slice(0, part.indexOf("=")), part.slice(part.indexOf("=") + 1)];
    if (key === "name") target = item;
    else if (key === "alias") aliases.push(item);
    else throw new InvalidArgumentError(`unknown --network field "${key}" in "${value}": use name=NETWORK[,alias=ALIAS]`);
  }
  if (target === undefined || target === "") throw new InvalidArgumentError(`--network "${value}" names no network: use name=NETWORK`);
  return aliases.length === 0 ? { Target: target } : { Target: target, Aliases: aliases };
}

// ---------------------------------------------------------------------------------------
// Tables (pure)
// ---------------------------------------------------------------------------------------

/** An image reference without its digest, as docker's tables show it. */
function imageWithoutDigest(image: string): string {
  return image.replace(/@sha256:[0-9a-f]+$/u, "");
}

function endpointPorts(ports: readonly unknown[], mode: "ingress" | "host"): string[] {
  return ports
    .map((port) => asRecord(port, "port"))
    .filter((port) => stringField(port, "PublishMode", "ingress") === mode && numberField(port, "PublishedPort") !== 0)
    .map((port) => `*:${numberField(port, "PublishedPort")}->${numberField(port, "TargetPort")}/${stringField(port, "Protocol", "tcp")}`);
}

/** `service ls`: ID NAME MODE REPLICAS IMAGE PORTS, from services listed with status=true. */
export function formatServiceTable(services: readonly JsonRecord[]): string {
  const rows = services.map((service) => {
    const spec = recordField(service, "Spec");
    const mode = recordField(spec, "Mode");
    const status = recordField(service, "ServiceStatus");
    const global = mode["Global"] !== undefined && mode["Global"] !== null;
    const maxPerNode = numberField(recordField(recordField(spec, "TaskTemplate"), "Placement"), "MaxReplicas");
    const replicas = `${numberField(status, "RunningTasks")}/${numberField(status, "DesiredTasks")}${maxPerNode > 0 ? ` (max ${maxPerNode} per node)` : ""}`;
    const image = stringField(recordField(recordField(spec, "TaskTemplate"), "ContainerSpec"), "Image");
    const ports = endpointPorts(asArray(recordField(spec, "EndpointSpec")["Ports"] ?? [], "Ports"), "ingress");
    return [stringField(service, "ID").slice(0, 12), stringField(spec, "Name"), global ? "global" : "replicated", replicas, imageWithoutDigest(image), ports.join(", ")];
  });
  return formatTable(["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"], rows);
}

/** Docker's go-units HumanDuration. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  const minutes = Math.floor(seconds / 60);
  const hours = Math.floor(minutes / 60);
  if (seconds < 1) return "Less than a second";
  if (seconds === 1) return "1 second";
  if (seconds < 60) return `${seconds} seconds`;
  if (minutes === 1) return "About a minute";
  if (minutes < 60) return `${minutes} minutes`;
  if (Math.round(minutes / 60) === 1) return "About an hour";
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(hours / 24 / 365)} years`;
}

function capitalize(text: string): string {
  return text === "" ? text : text.charAt(0).toUpperCase() + text.slice(1);
}

/** Longest error shown in `service ps` unless --no-trunc (docker's maxErrLength). */
export const taskErrorCharsMax = 30;

export interface TaskTableOptions {
  noTrunc: boolean;
  nowMs: number;
  /** Service id -> name. */
  serviceNames: ReadonlyMap<string, string>;
  /** Node id -> hostname. */
  nodeNames: ReadonlyMap<string, string>;
}

function taskSlotName(task: JsonRecord, serviceNames: ReadonlyMap<string, string>): string {
  const serviceName = serviceNames.get(stringField(task, "ServiceID")) ?? stringField(task, "ServiceID");
  const slot = numberField(task, "Slot");
  return `${serviceName}.${slot === 0 ? stringField(task, "NodeID") : String(slot)}`;
}

function taskError(task: JsonRecord, noTrunc: boolean): string {
  const status = recordField(task, "Status");
  const error = stringField(status, "Err");
  if (error === "") return "";
  // A pending task's error is the scheduler's explanation: shown whole, it says what to fix.
  const keepWhole = noTrunc || stringField(status, "State") === "pending";
  return `"${!keepWhole && error.length > taskErrorCharsMax ? `${error.slice(0, taskErrorCharsMax - 1)}…` : error}"`;
}

/**
 * `service ps`: ID NAME IMAGE NODE DESIRED STATE CURRENT STATE ERROR PORTS. Tasks are grouped
 * by slot, newest first; older tasks of a slot are shown as " \_ name", as docker does.
 */
export function formatTaskTable(tasks: readonly JsonRecord[], options: TaskTableOptions): string {
  const named = tasks.map((task) => ({ task, name: taskSlotName(task, options.serviceNames), created: Date.parse(stringField(task, "CreatedAt")) }));
  named.sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }) || b.created - a.created);
  const rows = named.map(({ task, name }, index) => {
    const status = recordField(task, "Status");
    const since = options.nowMs - Date.parse(stringField(status, "Timestamp"));
    const id = stringField(task, "ID");
    const image = stringField(recordField(recordField(task, "Spec"), "ContainerSpec"), "Image");
    return [
      options.noTrunc ? id : id.slice(0, 12),
      index > 0 && named[index - 1]?.name === name ? ` \\_ ${name}` : name,
      options.noTrunc ? image : imageWithoutDigest(image),
      options.nodeNames.get(stringField(task, "NodeID")) ?? stringField(task, "NodeID"),
      capitalize(stringField(task, "DesiredState")),
      `${capitalize(stringField(status, "State"))} ${humanDuration(Number.isNaN(since) ? 0 : Math.max(0, since))} ago`,
      taskError(task, options.noTrunc),
      endpointPorts(asArray(recordField(status, "PortStatus")["Ports"] ?? [], "Ports"), "host").join(", "),
    ];
  });
  return formatTable(["ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR", "PORTS"], rows);
}

// ---------------------------------------------------------------------------------------
// Convergence display
// ---------------------------------------------------------------------------------------

/** Docker's progress numbers for task states (progress/progress.go); "running" completes the bar. */
const stateProgress: Readonly<Record<string, number>> = { new: 1, allocated: 2, pending: 3, assigned: 4, accepted: 5, preparing: 6, ready: 7, starting: 8, running: 9 };
const progressBarWidth = 50;
/** How often the display polls the tasks, and how long it waits by default. */
export const convergePollIntervalMs = 250;
export const convergeDeadlineMsDefault = 300_000;
/** A global service with no task yet may have no eligible node: wait this long for its first task. */
export const globalFirstTaskWaitMs = 3_000;

function progressBar(state: string): string {
  const done = Math.round(((stateProgress[state] ?? 0) / 9) * progressBarWidth);
  return `[${"=".repeat(Math.max(0, done - 1))}${done > 0 ? ">" : ""}${" ".repeat(progressBarWidth - done)}]`;
}

export interface ConvergenceSnapshot {
  lines: string[];
  running: number;
  desired: number;
  converged: boolean;
}

function slotLine(label: string, task: JsonRecord | undefined): string {
  if (task === undefined) return `${label}: `;
  const status = recordField(task, "Status");
  const state = stringField(status, "State");
  if (stateProgress[state] === undefined) return `${label}: ${stringField(status, "Err") || stringField(status, "Message") || state}`;
  return `${label}: ${state.padEnd(10)}${progressBar(state)}`;
}

function newestBy(tasks: readonly JsonRecord[], key: (task: JsonRecord) => string): Map<string, JsonRecord> {
  const newest = new Map<string, JsonRecord>();
  for (const task of tasks) {
    const current = newest.get(key(task));
    if (current === undefined || Date.parse(stringField(task, "CreatedAt")) >= Date.parse(stringField(current, "CreatedAt"))) newest.set(key(task), task);
  }
  return newest;
}

/**
 * The convergence display for a service from its up-to-date tasks meant to run: one line
 * per slot (replicated) or node (global), and whether every one of them is running.
 */
export function convergenceSnapshot(service: JsonRecord, tasks: readonly JsonRecord[], options: { elapsedMs: number }): ConvergenceSnapshot {
  const mode = recordField(recordField(service, "Spec"), "Mode");
  const global = mode["Global"] !== undefined && mode["Global"] !== null;
  const wanted = tasks.filter((task) => stringField(task, "DesiredState") === "running");
  const isRunning = (task: JsonRecord | undefined): boolean => task !== undefined && stringField(recordField(task, "Status"), "State") === "running";
  if (global) {
    const byNode = newestBy(wanted, (task) => stringField(task, "NodeID"));
    const nodes = [...byNode.keys()].sort();
    const running = nodes.filter((node) => isRunning(byNode.get(node))).length;
    const converged = running === nodes.length && (nodes.length > 0 || options.elapsedMs >= globalFirstTaskWaitMs);
    return { lines: [`overall progress: ${running} out of ${nodes.length} tasks`, ...nodes.map((node) => slotLine(node.slice(0, 12), byNode.get(node)))], running, desired: nodes.length, converged };
  }
  const desired = numberField(recordField(mode, "Replicated"), "Replicas");
  const bySlot = newestBy(wanted, (task) => String(numberField(task, "Slot")));
  const lines = [`overall progress: 0 out of ${desired} tasks`];
  let running = 0;
  for (let slot = 1; slot <= desired; slot += 1) {
    const task = bySlot.get(String(slot));
    if (isRunning(task)) running += 1;
    lines.push(slotLine(`${slot}/${desired}`, task));
  }
  lines[0] = `overall progress: ${running} out of ${desired} tasks`;
  const extra = [...bySlot.keys()].some((slot) => Number(slot) > desired && isRunning(bySlot.get(slot)));
  return { lines, running, desired, converged: running === desired && !extra };
}

export interface ConvergeOptions {
  clock?: Clock;
  deadlineMs?: number;
  signal?: AbortSignal;
}

/** Polls the service's up-to-date tasks until they all run, drawing docker's progress display. */
export async function waitForConvergence(context: CliContext, serviceId: string, options: ConvergeOptions = {}): Promise<void> {
  const clock = options.clock ?? systemClock;
  const client = context.client();
  const started = clock.now();
  const deadline = started + (options.deadlineMs ?? convergeDeadlineMsDefault);
  const renderer = new ProgressRenderer(context.out, "isTTY" in context.out && context.out.isTTY === true);
  const filters = JSON.stringify({ service: { [serviceId]: true }, "_up-to-date": { true: true }, "desired-state": { running: true } });
  for (;;) {
    const service = asRecord(await client.json("GET", `/services/${encodeURIComponent(serviceId)}`, options.signal === undefined ? {} : { signal: options.signal }), "service");
    const tasks = asArray(await client.json("GET", "/tasks", { query: { filters } }), "task list").map((task) => asRecord(task, "task"));
    const snapshot = convergenceSnapshot(service, tasks, { elapsedMs: clock.now() - started });
    renderer.draw(snapshot.lines);
    if (snapshot.converged) {
      context.out.write("verify: Service converged\n");
      return;
    }
    if (clock.now() >= deadline) {
      throw new DeadlineExceededError(
        `service ${serviceId} did not converge within ${Math.round((deadline - started) / 1000)}s (${snapshot.running} of ${snapshot.desired} tasks running); it keeps converging in the background: see \`shoal service ps ${serviceId}\``,
      );
    }
    await clock.sleep(convergePollIntervalMs, options.signal === undefined ? {} : { signal: options.signal });
  }
}

// ---------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------

function addCreateOptions(command: Command): Command {
  const update = (prefix: "update" | "rollback", what: string): void => {
    command
      .option(`--${prefix}-parallelism <n>`, `tasks ${what} at once (0 = all)`)
      .option(`--${prefix}-delay <duration>`, `delay between ${what} batches (e.g. 10s)`)
      .addOption(new Option(`--${prefix}-failure-action <action>`, `what to do when ${what} fails`).choices(prefix === "update" ? ["pause", "continue", "rollback"] : ["pause", "continue"]))
      .option(`--${prefix}-monitor <duration>`, "how long to watch each new task for failure")
      .option(`--${prefix}-max-failure-ratio <ratio>`, "tolerated failure fraction (0..1)")
      .addOption(new Option(`--${prefix}-order <order>`, "stop-first or start-first").choices(["stop-first", "start-first"]));
  };
  command
    .option("--name <name>", "service name (a DNS label)")
    .option("--replicas <n>", "number of tasks (replicated mode)")
    .addOption(new Option("--mode <mode>", "replicated or global").choices(["replicated", "global"]).default("replicated"))
    .option("-e, --env <NAME=value>", "environment variable (repeatable)", collect, [])
    .option("-l, --label <key=value>", "service label (repeatable)", collect, [])
    .option("--container-label <key=value>", "container label (repeatable)", collect, [])
    .option("--constraint <expr>", "placement constraint, e.g. node.role==worker (repeatable)", collect, [])
    .option("--placement-pref <pref>", "placement preference, e.g. spread=node.labels.zone (repeatable)", collect, [])
    .option("--replicas-max-per-node <n>", "most tasks per node (0 = unlimited)")
    .option("--reserve-cpu <cpus>", "CPUs reserved per task")
    .option("--reserve-memory <bytes>", "memory reserved per task (e.g. 64m)")
    .option("--limit-cpu <cpus>", "CPU limit per task")
    .option("--limit-memory <bytes>", "memory limit per task")
    .addOption(new Option("--restart-condition <condition>", "when to restart tasks").choices(["none", "on-failure", "any"]))
    .option("--restart-delay <duration>", "delay between restarts (e.g. 5s)")
    .option("--restart-max-attempts <n>", "most restarts (0 = unlimited)")
    .option("--restart-window <duration>", "window the attempts are counted in")
    .option("-p, --publish <port>", "publish a port: [PUBLISHED:]TARGET[/PROTO] or mode=host,target=..,published=.. (repeatable)", collect, [])
    .option("--mount <mount>", "mount: type=bind|volume|tmpfs,source=..,target=..[,readonly] (repeatable)", collect, [])
    .option("--network <network>", "attach to an overlay network: NAME or name=NAME,alias=ALIAS (repeatable)", collect, [])
    .addOption(new Option("--endpoint-mode <mode>", "how the service is reached: a virtual IP, or DNS round robin over its tasks").choices(["vip", "dnsrr"]))
    .option("--stop-signal <signal>", "signal that stops a task's container")
    .option("--stop-grace-period <duration>", "time to wait before killing a container (e.g. 10s)")
    .option("-w, --workdir <dir>", "working directory inside the container")
    .option("-u, --user <user>", "user inside the container")
    .option("--entrypoint <cmd>", "override the image's entrypoint")
    .option("-d, --detach", "exit right away instead of waiting for the service to converge")
    .option("-q, --quiet", "do not show the convergence display");
  addHealthOptions(command);
  update("update", "updated");
  update("rollback", "rolled back");
  return command;
}

async function listByName(context: CliContext, path: string): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  for (const item of asArray(await context.client().json("GET", path), path)) {
    const record = asRecord(item, "object");
    const name = path === "/nodes" ? stringField(recordField(record, "Description"), "Hostname") : stringField(recordField(record, "Spec"), "Name");
    names.set(stringField(record, "ID"), name);
  }
  return names;
}

async function converge(context: CliContext, serviceId: string, options: { detach?: boolean; quiet?: boolean }): Promise<void> {
  if (options.detach === true) return;
  if (options.quiet === true) {
    const silent = new Writable({ write: (_chunk, _encoding, done) => done() });
    await waitForConvergence({ ...context, out: silent }, serviceId);
    return;
  }
  await waitForConvergence(context, serviceId);
}

function registerServiceListCommands(service: Command, context: CliContext): void {
  service
    .command("ls")
    .description("List services")
    .option("-q, --quiet", "only ids")
    .option("-f, --filter <key=value>", "filter: id, label, mode, name (repeatable)", collect, [])
    .action(async (options: { quiet?: boolean; filter: string[] }) => {
      const list = asArray(await context.client().json("GET", "/services", { query: { status: true, filters: filtersParam(options.filter) } }), "service list").map((item) => asRecord(item, "service"));
      if (options.quiet === true) context.out.write(list.map((item) => `${stringField(item, "ID")}\n`).join(""));
      else context.out.write(formatServiceTable(list));
    });
  service
    .command("ps")
    .description("List the tasks of services")
    .argument("<services...>")
    .option("--no-trunc", "do not shorten ids, images and errors")
    .option("-q, --quiet", "only task ids")
    .option("-f, --filter <key=value>", "filter: desired-state, id, label, name, node (repeatable)", collect, [])
    .action(async (references: string[], options: { trunc: boolean; quiet?: boolean; filter: string[] }) => {
      const serviceIds = [];
      for (const reference of references) serviceIds.push(stringField(asRecord(await context.client().json("GET", `/services/${encodeURIComponent(reference)}`), "service"), "ID"));
      const filters = JSON.stringify({ ...filtersObject(options.filter), service: Object.fromEntries(serviceIds.map((id) => [id, true])) });
      const tasks = asArray(await context.client().json("GET", "/tasks", { query: { filters } }), "task list").map((task) => asRecord(task, "task"));
      if (options.quiet === true) {
        context.out.write(tasks.map((task) => `${stringField(task, "ID")}\n`).join(""));
        return;
      }
      const tableOptions = { noTrunc: !options.trunc, nowMs: Date.now(), serviceNames: await listByName(context, "/services"), nodeNames: await listByName(context, "/nodes") };
      context.out.write(formatTaskTable(tasks, tableOptions));
    });
}

/** `service inspect --pretty`'s UpdateStatus block, as docker prints it, with the reason in full. */
function updateStatusLines(status: JsonRecord): string[] {
  const state = stringField(status, "State");
  if (state === "") return [];
  const completedAt = stringField(status, "CompletedAt");
  return [
    "UpdateStatus:",
    ` State:\t\t${state}`,
    ` Started:\t${stringField(status, "StartedAt")}`,
    ...(completedAt === "" ? [] : [` Completed:\t${completedAt}`]),
    ` Message:\t${stringField(status, "Message")}`,
  ];
}

function updateConfigLines(title: string, config: JsonRecord): string[] {
  if (Object.keys(config).length === 0) return [];
  const seconds = (ns: number): string => `${ns / 1e9}s`;
  return [
    `${title}:`,
    ` Parallelism:\t${numberField(config, "Parallelism")}`,
    ...(numberField(config, "Delay") === 0 ? [] : [` Delay:\t\t${seconds(numberField(config, "Delay"))}`]),
    ` On failure:\t${stringField(config, "FailureAction", "pause")}`,
    ` Monitoring Period: ${seconds(numberField(config, "Monitor"))}`,
    ` Max failure ratio: ${numberField(config, "MaxFailureRatio")}`,
    ` Update order:      ${stringField(config, "Order", "stop-first")}`,
  ];
}

/** `service inspect --pretty`. */
export function formatServicePretty(service: JsonRecord): string {
  const spec = recordField(service, "Spec");
  const template = recordField(spec, "TaskTemplate");
  const container = recordField(template, "ContainerSpec");
  const mode = recordField(spec, "Mode");
  const global = mode["Global"] !== undefined && mode["Global"] !== null;
  const args = asArray(container["Args"] ?? [], "Args").map(String);
  const ports = asArray(recordField(spec, "EndpointSpec")["Ports"] ?? [], "Ports").map((port) => asRecord(port, "port"));
  const lines = [
    `ID:\t\t${stringField(service, "ID")}`,
    `Name:\t\t${stringField(spec, "Name")}`,
    ...Object.entries(recordField(spec, "Labels")).map(([key, value], index) => `${index === 0 ? "Labels:\n" : ""} ${key}=${String(value)}`),
    `Service Mode:\t${global ? "Global" : "Replicated"}`,
    ...(global ? [] : [` Replicas:\t${numberField(recordField(mode, "Replicated"), "Replicas")}`]),
    "Placement:",
    ...asArray(recordField(template, "Placement")["Constraints"] ?? [], "Constraints").map((constraint) => ` Constraints:\t${String(constraint)}`),
    "ContainerSpec:",
    ` Image:\t\t${stringField(container, "Image")}`,
    ...(args.length === 0 ? [] : [` Args:\t\t${args.join(" ")}`]),
    ...asArray(container["Env"] ?? [], "Env").map((entry, index) => `${index === 0 ? " Env:\t\t" : "\t\t"}${String(entry)}`),
    ...updateStatusLines(recordField(service, "UpdateStatus")),
    ...updateConfigLines("UpdateConfig", recordField(spec, "UpdateConfig")),
    ...updateConfigLines("RollbackConfig", recordField(spec, "RollbackConfig")),
    `Endpoint Mode:\t${stringField(recordField(spec, "EndpointSpec"), "Mode")}`,
    ...(ports.length === 0 ? [] : ["Ports:", ...ports.map((port) => ` PublishedPort = ${numberField(port, "PublishedPort")}\n  Protocol = ${stringField(port, "Protocol")}\n  TargetPort = ${numberField(port, "TargetPort")}\n  PublishMode = ${stringField(port, "PublishMode")}`)]),
  ];
  return lines.join("\n") + "\n";
}

async function scaleService(context: CliContext, reference: string, replicas: number): Promise<string> {
  const client = context.client();
  const service = asRecord(await client.json("GET", `/services/${encodeURIComponent(reference)}`), "service");
  const spec = recordField(service, "Spec");
  const mode = recordField(spec, "Mode");
  if (mode["Replicated"] === undefined || mode["Replicated"] === null) throw new InvalidArgumentError(`${reference}: scale can only be used with replicated mode`);
  const version = recordField(service, "Version")["Index"];
  const id = stringField(service, "ID");
  await client.json("POST", `/services/${encodeURIComponent(id)}/update`, {
    query: { version: typeof version === "number" ? version : undefined },
    body: { ...spec, Mode: { Replicated: { Replicas: replicas } } },
  });
  return id;
}

/** Parses `SERVICE=REPLICAS` arguments of `service scale`. */
export function parseScaleArguments(values: readonly string[]): Array<{ service: string; replicas: number }> {
  return values.map((value) => {
    const match = /^(.+)=(\d+)$/u.exec(value);
    if (match?.[1] === undefined || match[2] === undefined) throw new InvalidArgumentError(`invalid scale specifier "${value}": use SERVICE=REPLICAS`);
    return { service: match[1], replicas: Number(match[2]) };
  });
}

function registerServiceChangeCommands(service: Command, context: CliContext): void {
  addCreateOptions(service.command("create").description("Create a service").argument("<image>").argument("[command...]"))
    .passThroughOptions()
    .action(async (image: string, args: string[], options: ServiceCreateOptions) => {
      const body = serviceSpecFromFlags(image, args, options, process.env);
      const created = asRecord(await context.client().json("POST", "/services/create", { body }), "create answer");
      const id = stringField(created, "ID");
      context.out.write(`${id}\n`);
      await converge(context, id, options);
    });
  service
    .command("scale")
    .description("Set the replica count of replicated services")
    .argument("<service=replicas...>")
    .option("-d, --detach", "exit right away instead of waiting for the services to converge")
    .action(async (values: string[], options: { detach?: boolean }) => {
      for (const { service: reference, replicas } of parseScaleArguments(values)) {
        const id = await scaleService(context, reference, replicas);
        context.out.write(`${reference} scaled to ${replicas}\n`);
        await converge(context, id, options);
      }
    });
  service
    .command("rm")
    .description("Remove services")
    .argument("<services...>")
    .action(async (references: string[]) => {
      const failures: string[] = [];
      for (const reference of references) {
        try {
          await context.client().json("DELETE", `/services/${encodeURIComponent(reference)}`);
          context.out.write(`${reference}\n`);
        } catch (error) {
          failures.push(error instanceof Error ? error.message : String(error));
        }
      }
      if (failures.length > 0) throw new Error(failures.join("\n"));
    });
  service
    .command("inspect")
    .description("Show services in detail")
    .argument("<services...>")
    .option("--pretty", "human-readable instead of JSON")
    .action(async (references: string[], options: { pretty?: boolean }) => {
      const services: JsonRecord[] = [];
      for (const reference of references) services.push(asRecord(await context.client().json("GET", `/services/${encodeURIComponent(reference)}`), "service"));
      if (options.pretty === true) context.out.write(services.map(formatServicePretty).join("\n"));
      else writeJson(context.out, services);
    });
}

/** The context docker's `service logs` prints before each line: "web.1.abcdef123456@node1". */
export function logContextText(details: ReadonlyMap<string, string>, names: { service: string; slot: number; node: string }, options: { noTaskIds: boolean; noTrunc: boolean }): string {
  const taskId = details.get("com.docker.swarm.task.id") ?? "";
  const task = options.noTaskIds ? "" : `.${options.noTrunc ? taskId : taskId.slice(0, 12)}`;
  return `${names.service}.${names.slot === 0 ? (details.get("com.docker.swarm.node.id") ?? "").slice(0, 12) : String(names.slot)}${task}@${names.node}`;
}

/**
 * Splits a frame sent with details (and, with timestamps, the time first) into its parts:
 * "[TIME ]k=v,k=v line".
 */
export function splitLogDetails(payload: string, options: { timestamps: boolean }): { timestamp: string; details: Map<string, string>; line: string } {
  let rest = payload;
  let timestamp = "";
  if (options.timestamps) {
    const space = rest.indexOf(" ");
    timestamp = space < 0 ? rest : rest.slice(0, space);
    rest = space < 0 ? "" : rest.slice(space + 1);
  }
  const space = rest.indexOf(" ");
  const head = space < 0 ? rest : rest.slice(0, space);
  const details = new Map<string, string>();
  for (const pair of head.split(",")) {
    const at = pair.indexOf("=");
    if (at > 0) details.set(pair.slice(0, at), decodeURIComponent(pair.slice(at + 1)));
  }
  return { timestamp, details, line: space < 0 ? "" : rest.slice(space + 1) };
}

interface LogsOptions {
  follow?: boolean;
  tail: string;
  timestamps?: boolean;
  raw?: boolean;
  taskIds: boolean;
  trunc: boolean;
}

function logPrefixer(context: CliContext, options: LogsOptions, target: Writable): Writable {
  const tasks = new Map<string, { service: string; slot: number; node: string }>();
  const namesOf = async (details: ReadonlyMap<string, string>): Promise<{ service: string; slot: number; node: string }> => {
    const taskId = details.get("com.docker.swarm.task.id") ?? "";
    const known = tasks.get(taskId);
    if (known !== undefined) return known;
    const client = context.client();
    const task = asRecord(await client.json("GET", `/tasks/${encodeURIComponent(taskId)}`), "task");
    const serviceName = stringField(recordField(task, "ServiceAnnotations"), "Name", stringField(task, "ServiceID"));
    const node = asRecord(await client.json("GET", `/nodes/${encodeURIComponent(stringField(task, "NodeID"))}`), "node");
    const names = { service: serviceName, slot: numberField(task, "Slot"), node: stringField(recordField(node, "Description"), "Hostname") };
    tasks.set(taskId, names);
    return names;
  };
  return new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      const { timestamp, details, line } = splitLogDetails(chunk.toString("utf8"), { timestamps: options.timestamps === true });
      const text = timestamp === "" ? line : `${timestamp} ${line}`;
      if (options.raw === true) {
        target.write(text);
        done();
        return;
      }
      namesOf(details).then(
        (names) => {
          target.write(`${logContextText(details, names, { noTaskIds: !options.taskIds, noTrunc: !options.trunc })}    | ${text}`);
          done();
        },
        (error: unknown) => done(error instanceof Error ? error : new Error(String(error))),
      );
    },
  });
}

function registerServiceLogsCommand(service: Command, context: CliContext): void {
  service
    .command("logs")
    .description("Print the logs of a service's tasks (or of one task)")
    .argument("<service|task>")
    .option("-f, --follow", "keep streaming new output")
    .option("-n, --tail <lines>", "only the last N lines of each task", "all")
    .option("-t, --timestamps", "prefix each line with its time")
    .option("--raw", "no task context before each line")
    .option("--no-task-ids", "leave task ids out of the context")
    .option("--no-trunc", "full ids in the context")
    .action(async (reference: string, options: LogsOptions) => {
      const client = context.client();
      let path = `/services/${encodeURIComponent(reference)}/logs`;
      try {
        await client.json("GET", `/services/${encodeURIComponent(reference)}`);
      } catch (error) {
        // Not a service: docker's `service logs` takes a task id as well.
        if (!(error instanceof DaemonResponseError) || error.status !== 404) throw error;
        path = `/tasks/${encodeURIComponent(reference)}/logs`;
      }
      const query = { stdout: 1, stderr: 1, details: 1, follow: options.follow === true ? 1 : undefined, tail: options.tail, timestamps: options.timestamps === true ? 1 : undefined };
      const response = await client.stream("GET", path, { query });
      if (response.status !== 200) {
        await client.json("GET", path, { query });
        throw new Error(`logs of ${reference} answered ${response.status}`);
      }
      const stdout = logPrefixer(context, options, context.out);
      const stderr = logPrefixer(context, options, context.err);
      await demuxDockerStream(response.body, { stdout, stderr });
      // Lines are written once their task's names are known: wait for the last of them.
      stdout.end();
      stderr.end();
      await Promise.all([finished(stdout), finished(stderr)]);
    });
}

/** `shoal service create|ls|ps|inspect|scale|update|rm|logs`. */
export function registerServiceCommands(program: Command, context: CliContext): void {
  const service = program.command("service").description("Manage services").enablePositionalOptions();
  registerServiceChangeCommands(service, context);
  registerServiceUpdateCommand(service, context);
  registerServiceListCommands(service, context);
  registerServiceLogsCommand(service, context);
}
