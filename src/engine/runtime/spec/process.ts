import { posix } from "node:path";

import { InvalidArgumentError } from "../../../common/errors.js";
import { defaultPath } from "./defaults.js";

/** The runtime-relevant part of an OCI image config (the `config` object of the image JSON). */
export interface ImageRuntimeConfig {
  entrypoint: readonly string[];
  cmd: readonly string[];
  env: readonly string[];
  workingDir: string;
  user: string;
  stopSignal: string | null;
}

/** What the user asked for at create time; undefined means "take the image's". */
export interface ProcessOverrides {
  entrypoint?: readonly string[];
  cmd?: readonly string[];
  env?: readonly string[];
  workingDir?: string;
  user?: string;
}

/**
 * Docker's rules: an entrypoint override also drops the image's Cmd unless a command is
 * given too; the process is entrypoint followed by cmd, and must not be empty.
 */
export function resolveArgs(image: ImageRuntimeConfig, overrides: ProcessOverrides): string[] {
  const entrypoint = overrides.entrypoint ?? image.entrypoint;
  const cmd = overrides.cmd ?? (overrides.entrypoint === undefined ? image.cmd : []);
  const args = [...entrypoint, ...cmd];
  if (args.length === 0) {
    throw new InvalidArgumentError("no command specified: the image has no Entrypoint or Cmd; give a command");
  }
  return args;
}

function envKey(entry: string): string {
  const index = entry.indexOf("=");
  return index === -1 ? entry : entry.slice(0, index);
}

/** Validates one `KEY=value` entry given by a user. */
export function parseEnvEntry(entry: string): string {
  const key = envKey(entry);
  if (key === "" || !entry.includes("=") || key.includes("\0") || entry.includes("\0")) {
    throw new InvalidArgumentError(`invalid environment variable "${entry}": use KEY=value`);
  }
  return entry;
}

/**
 * Image env, then user env overriding by key, then the defaults a process expects
 * (PATH, HOSTNAME, HOME) where neither set them.
 */
export function resolveEnv(options: {
  image: readonly string[];
  overrides: readonly string[];
  hostname: string;
  home: string;
}): string[] {
  const merged = new Map<string, string>();
  for (const entry of options.image) merged.set(envKey(entry), entry);
  for (const entry of options.overrides) merged.set(envKey(entry), parseEnvEntry(entry));
  if (!merged.has("PATH")) merged.set("PATH", `PATH=${defaultPath}`);
  if (!merged.has("HOSTNAME")) merged.set("HOSTNAME", `HOSTNAME=${options.hostname}`);
  if (!merged.has("HOME")) merged.set("HOME", `HOME=${options.home}`);
  return [...merged.values()];
}

/** The working directory: absolute, normalised, "/" by default. */
export function resolveWorkingDir(image: ImageRuntimeConfig, overrides: ProcessOverrides): string {
  const dir = overrides.workingDir ?? image.workingDir;
  if (dir === "") return "/";
  if (!dir.startsWith("/")) {
    throw new InvalidArgumentError(`working directory "${dir}" is not absolute: start it with /`);
  }
  return posix.normalize(dir);
}
