import { InvalidArgumentError } from "../../common/errors.js";

/** Parsers for `service create` and `service update` flags, shared by both commands (pure). */

const durationUnitsNs: Readonly<Record<string, number>> = { ns: 1, us: 1e3, "µs": 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** Go's duration syntax ("1m30s", "500ms", "10s", "0") as nanoseconds, as docker's flags read it. */
export function parseGoDuration(text: string, flag: string): number {
  if (text === "0") return 0;
  const part = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gu;
  let total = 0;
  let consumed = 0;
  for (const match of text.matchAll(part)) {
    if (match.index !== consumed) break;
    total += Number(match[1]) * (durationUnitsNs[match[2] ?? ""] ?? Number.NaN);
    consumed += match[0].length;
  }
  if (text === "" || consumed !== text.length || !Number.isFinite(total)) {
    throw new InvalidArgumentError(`invalid duration "${text}" for ${flag}: use a number with a unit, like 10s, 1m30s or 500ms`);
  }
  return Math.round(total);
}

export function keyValues(text: string, flag: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const part of text.split(",")) {
    const at = part.indexOf("=");
    if (at <= 0) {
      fields.set(part.trim().toLowerCase(), "true");
      continue;
    }
    fields.set(part.slice(0, at).trim().toLowerCase(), part.slice(at + 1).trim());
  }
  if (fields.size === 0) throw new InvalidArgumentError(`${flag} needs key=value pairs`);
  return fields;
}

function portNumber(text: string | undefined, what: string, value: string): number {
  const port = Number(text);
  if (text === undefined || !/^\d{1,5}$/u.test(text) || port < 1 || port > 65_535) {
    throw new InvalidArgumentError(`invalid ${what} port in --publish "${value}": ports are 1-65535`);
  }
  return port;
}

/** `--publish [published:]target[/proto]` or `--publish mode=host,target=53,published=53,protocol=udp`. */
export function parsePublishFlag(value: string): Record<string, unknown> {
  if (value.includes("=")) {
    const fields = keyValues(value, "--publish");
    for (const key of fields.keys()) {
      if (!["mode", "target", "published", "protocol"].includes(key)) throw new InvalidArgumentError(`unknown --publish field "${key}": use mode, target, published, protocol`);
    }
    return {
      Protocol: fields.get("protocol") ?? "tcp",
      TargetPort: portNumber(fields.get("target"), "target", value),
      ...(fields.has("published") ? { PublishedPort: portNumber(fields.get("published"), "published", value) } : {}),
      PublishMode: fields.get("mode") ?? "ingress",
    };
  }
  const match = /^(?:(\d+):)?(\d+)(?:\/(tcp|udp|sctp))?$/u.exec(value);
  if (match === null) throw new InvalidArgumentError(`invalid --publish "${value}": use [PUBLISHED:]TARGET[/PROTOCOL] or mode=...,target=...,published=...`);
  return {
    Protocol: match[3] ?? "tcp",
    TargetPort: portNumber(match[2], "target", value),
    ...(match[1] === undefined ? {} : { PublishedPort: portNumber(match[1], "published", value) }),
    PublishMode: "ingress",
  };
}

/** `--mount type=bind,source=/a,target=/b,readonly` (src/dst/destination/ro aliases as docker's). */
export function parseMountFlag(value: string): Record<string, unknown> {
  const mount: Record<string, unknown> = { Type: "volume" };
  for (const [key, item] of keyValues(value, "--mount")) {
    if (key === "type") mount["Type"] = item;
    else if (key === "source" || key === "src") mount["Source"] = item;
    else if (key === "target" || key === "dst" || key === "destination") mount["Target"] = item;
    else if (key === "readonly" || key === "ro") {
      if (item !== "true" && item !== "1" && item !== "false" && item !== "0") throw new InvalidArgumentError(`invalid readonly value "${item}" in --mount`);
      if (item === "true" || item === "1") mount["ReadOnly"] = true;
    } else throw new InvalidArgumentError(`unknown --mount field "${key}": shoal supports type, source, target and readonly`);
  }
  if (mount["Target"] === undefined) throw new InvalidArgumentError(`--mount "${value}" needs target=PATH`);
  return mount;
}

export function labelMap(values: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const value of values) {
    const at = value.indexOf("=");
    if (at === 0) throw new InvalidArgumentError(`bad label "${value}": use key=value`);
    if (at < 0) labels[value] = "";
    else labels[value.slice(0, at)] = value.slice(at + 1);
  }
  return labels;
}

export function wholeNumber(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/u.test(text)) throw new InvalidArgumentError(`${flag} must be a whole number >= 0, not "${text}"`);
  return Number(text);
}

export function cpuNanos(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const cpus = Number(text);
  if (!/^\d+(\.\d+)?$/u.test(text)) throw new InvalidArgumentError(`${flag} must be a number of CPUs like 0.5 or 2, not "${text}"`);
  return Math.round(cpus * 1e9);
}

export function compact(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined));
}

