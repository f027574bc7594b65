import { mkdir, readFile, readdir, rm } from "node:fs/promises";
import { join } from "node:path";

import type { Clock } from "../../common/clock.js";
import { AlreadyExistsError, FailedPreconditionError, InternalError, NotFoundError, throwIfAborted, systemErrorCode } from "../../common/errors.js";
import { writeFileAtomic } from "../../common/files.js";
import { validateVolumeName } from "./mounts.js";

export interface Volume {
  name: string;
  driver: "local";
  /** Host directory holding the data: `<data-dir>/engine/volumes/<name>/_data`. */
  mountpoint: string;
  createdAt: string;
  labels: Record<string, string>;
}

/** Tells the volume service which containers use a volume, so rm can refuse. */
export type VolumeUsage = (name: string) => string[];

/** Named local volumes. */
export interface VolumeService {
  /** Creates a volume. AlreadyExistsError if the name is taken; InvalidArgumentError for a bad name. */
  create(name: string, options?: { labels?: Record<string, string>; signal?: AbortSignal }): Promise<Volume>;
  /** Returns the volume, creating it when missing (what `-v name:/path` does). */
  ensure(name: string, options?: { signal?: AbortSignal }): Promise<Volume>;
  /** NotFoundError when absent. */
  inspect(name: string, options?: { signal?: AbortSignal }): Promise<Volume>;
  list(options?: { signal?: AbortSignal }): Promise<Volume[]>;
  /** Deletes a volume and its data. FailedPreconditionError while a container uses it. */
  remove(name: string, options?: { signal?: AbortSignal }): Promise<void>;
}

/** Volumes per engine; each is a directory, so the cap is about keeping `ls` and disks sane. */
export const volumesMax = 10_000;
const metadataBytesMax = 64 * 1024;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseVolumeMetadata(text: string, name: string, mountpoint: string): Volume {
  const parsed: unknown = JSON.parse(text);
  if (!isRecord(parsed) || typeof parsed.createdAt !== "string" || !isRecord(parsed.labels)) {
    throw new InternalError(`volume ${name} has unreadable metadata: recreate it`);
  }
  const labels: Record<string, string> = {};
  for (const [key, value] of Object.entries(parsed.labels)) if (typeof value === "string") labels[key] = value;
  return { name, driver: "local", mountpoint, createdAt: parsed.createdAt, labels };
}

class VolumeServiceImpl implements VolumeService {
  readonly #root: string;
  readonly #clock: Clock;
  readonly #usage: VolumeUsage;

  constructor(options: { root: string; clock: Clock; usage: VolumeUsage }) {
    this.#root = options.root;
    this.#clock = options.clock;
    this.#usage = options.usage;
  }

  async create(name: string, options: { labels?: Record<string, string>; signal?: AbortSignal } = {}): Promise<Volume> {
    throwIfAborted(options.signal);
    validateVolumeName(name);
    const directory = join(this.#root, name);
    const existing = await readdir(this.#root).catch(() => []);
    if (existing.length >= volumesMax) throw new FailedPreconditionError(`too many volumes (${volumesMax}): remove some first`);
    try {
      await mkdir(directory);
    } catch (error) {
      if (systemErrorCode(error) === "EEXIST") {
        throw new AlreadyExistsError(`volume ${name} already exists`);
      }
      throw error;
    }
    const volume: Volume = {
      name,
      driver: "local",
      mountpoint: join(directory, "_data"),
      createdAt: new Date(this.#clock.now()).toISOString(),
      labels: { ...options.labels },
    };
    await mkdir(volume.mountpoint, { mode: 0o755 });
    await writeFileAtomic(join(directory, "volume.json"), JSON.stringify({ createdAt: volume.createdAt, labels: volume.labels }), { mode: 0o644 });
    return volume;
  }

  async ensure(name: string, options: { signal?: AbortSignal } = {}): Promise<Volume> {
    throwIfAborted(options.signal);
    try {
      return await this.inspect(name);
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
    }
    try {
      return await this.create(name);
    } catch (error) {
      // Two containers asking for the same new volume at once: the loser uses the winner's.
      if (error instanceof AlreadyExistsError) return await this.inspect(name);
      throw error;
    }
  }

  async inspect(name: string, options: { signal?: AbortSignal } = {}): Promise<Volume> {
    throwIfAborted(options.signal);
    validateVolumeName(name);
    const directory = join(this.#root, name);
    let text: string;
    try {
      text = await readFile(join(directory, "volume.json"), "utf8");
    } catch (error) {
      if (systemErrorCode(error) === "ENOENT") throw new NotFoundError(`no such volume: ${name}`);
      throw error;
    }
    if (text.length > metadataBytesMax) throw new InternalError(`volume ${name} metadata is too large`);
    return parseVolumeMetadata(text, name, join(directory, "_data"));
  }

  async list(options: { signal?: AbortSignal } = {}): Promise<Volume[]> {
    throwIfAborted(options.signal);
    const names = await readdir(this.#root).catch((error: unknown) => {
      if (systemErrorCode(error) === "ENOENT") return [];
      throw error;
    });
    const volumes: Volume[] = [];
    for (const name of names.sort()) {
      try {
        volumes.push(await this.inspect(name));
      } catch (error) {
        // A directory without metadata is a create that crashed half-way: not a volume.
        if (!(error instanceof NotFoundError)) throw error;
      }
    }
    return volumes;
  }

  async remove(name: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.inspect(name, options);
    const users = this.#usage(name);
    if (users.length > 0) {
      throw new FailedPreconditionError(
        `volume ${name} is in use by container(s) ${users.map((id) => id.slice(0, 12)).join(", ")}: remove them first`,
      );
    }
    await rm(join(this.#root, name), { recursive: true, force: true });
  }
}

export function createVolumeService(options: { root: string; clock: Clock; usage: VolumeUsage }): VolumeService {
  return new VolumeServiceImpl(options);
}
