import { readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";

import { InvalidArgumentError, errorMessage } from "../common/errors.js";
import { parseLogLevel, type LogLevel } from "../common/logger.js";

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface DaemonConfig {
  readonly dataDir: string;
  readonly runDir: string;
  readonly socketPath: string;
  /** Cluster gRPC address. */
  readonly listenAddr: HostPort;
  /** The address other nodes use to reach this one; defaults to listenAddr when routable. */
  readonly advertiseAddr: string | null;
  /** Optional TCP address for the REST API. */
  readonly apiListen: HostPort | null;
  readonly logLevel: LogLevel;
  /** Raft entries between a manager's snapshots (and log compactions); null = raft's default. */
  readonly raftSnapshotInterval: number | null;
}

/** Every setting by its config-file key, with its flag and environment variable. */
export const daemonSettings = {
  dataDir: { flag: "--data-dir", env: "SHOAL_DATA_DIR", fallback: "/var/lib/shoal" },
  runDir: { flag: "--run-dir", env: "SHOAL_RUN_DIR", fallback: "/run/shoal" },
  socket: { flag: "--socket", env: "SHOAL_SOCKET", fallback: "/run/shoal/shoald.sock" },
  listenAddr: { flag: "--listen-addr", env: "SHOAL_LISTEN_ADDR", fallback: "0.0.0.0:4242" },
  advertiseAddr: { flag: "--advertise-addr", env: "SHOAL_ADVERTISE_ADDR", fallback: "" },
  apiListen: { flag: "--api-listen", env: "SHOAL_API_LISTEN", fallback: "" },
  logLevel: { flag: "--log-level", env: "SHOAL_LOG_LEVEL", fallback: "info" },
  raftSnapshotInterval: { flag: "--raft-snapshot-interval", env: "SHOAL_RAFT_SNAPSHOT_INTERVAL", fallback: "" },
} as const;

export type DaemonSettingKey = keyof typeof daemonSettings;
export type DaemonSettings = Partial<Record<DaemonSettingKey, string>>;

function isSettingKey(key: string): key is DaemonSettingKey {
  return Object.hasOwn(daemonSettings, key);
}

/** Parses "host:port", "[v6]:port" or ":port" (all interfaces). */
export function parseHostPort(value: string, what: string): HostPort {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (match === null || !Number.isInteger(port) || port > 65_535) {
    throw new InvalidArgumentError(`${what} "${value}" is not HOST:PORT (e.g. 0.0.0.0:4242 or [::1]:4242)`);
  }
  const host = match[1] ?? match[2] ?? "";
  return { host: host === "" ? "0.0.0.0" : host, port };
}

/** Reads a JSON config file whose keys are the setting names (dataDir, socket, ...). */
export function readConfigFile(path: string): DaemonSettings {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new InvalidArgumentError(`cannot read config file ${path}: ${errorMessage(error)}`, { cause: error });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new InvalidArgumentError(`config file ${path} must hold a JSON object`);
  }
  const settings: DaemonSettings = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (!isSettingKey(key)) {
      throw new InvalidArgumentError(
        `config file ${path}: unknown setting "${key}" (known: ${Object.keys(daemonSettings).join(", ")})`,
      );
    }
    if (typeof value !== "string") {
      throw new InvalidArgumentError(`config file ${path}: setting "${key}" must be a string`);
    }
    settings[key] = value;
  }
  return settings;
}

function absolutePath(value: string, what: string): string {
  if (value === "") throw new InvalidArgumentError(`${what} must not be empty`);
  return isAbsolute(value) ? value : resolve(value);
}

/**
 * Resolves the daemon's settings: a flag wins over the environment, which wins over the
 * config file, which wins over the default.
 */
export function resolveDaemonConfig(sources: {
  flags: DaemonSettings;
  env: Readonly<Record<string, string | undefined>>;
  file: DaemonSettings;
}): DaemonConfig {
  const pick = (key: DaemonSettingKey): string => {
    const setting = daemonSettings[key];
    return sources.flags[key] ?? sources.env[setting.env] ?? sources.file[key] ?? setting.fallback;
  };
  const advertise = pick("advertiseAddr");
  const apiListen = pick("apiListen");
  const snapshotInterval = pick("raftSnapshotInterval");
  if (snapshotInterval !== "" && !/^[1-9]\d{0,8}$/u.test(snapshotInterval)) {
    throw new InvalidArgumentError(`--raft-snapshot-interval "${snapshotInterval}" must be a whole number of raft entries, at least 1`);
  }
  let logLevel: LogLevel;
  try {
    logLevel = parseLogLevel(pick("logLevel"));
  } catch (error) {
    throw new InvalidArgumentError(errorMessage(error), { cause: error });
  }
  return {
    dataDir: absolutePath(pick("dataDir"), "--data-dir"),
    runDir: absolutePath(pick("runDir"), "--run-dir"),
    socketPath: absolutePath(pick("socket"), "--socket"),
    listenAddr: parseHostPort(pick("listenAddr"), "--listen-addr"),
    advertiseAddr: advertise === "" ? null : advertise,
    apiListen: apiListen === "" ? null : parseHostPort(apiListen, "--api-listen"),
    logLevel,
    raftSnapshotInterval: snapshotInterval === "" ? null : Number(snapshotInterval),
  };
}
