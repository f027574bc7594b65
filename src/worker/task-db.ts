import { mkdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";

import { InvalidArgumentError, errorMessage, systemErrorCode } from "../common/errors.js";
import { syncDirectory, writeFileAtomic } from "../common/files.js";
import { parseTask, type Task } from "../manager/objects/index.js";

/** Tasks the local database keeps; a worker never runs more (the agent refuses extra assignments). */
export const storedTasksMax = 10_000;
const dbFormat = "shoal.worker.tasks";
const dbFormatVersion = 1;

/** One task as the worker last saw it: the manager's task with the worker's own observed status. */
export interface StoredTask {
  task: Task;
  /** Whether the manager acknowledged `task.status`. */
  reported: boolean;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** What the worker keeps across restarts. */
export interface WorkerRecord {
  tasks: StoredTask[];
  /**
   * The highest leader term the agent has seen: a restarted agent must still refuse a
   * deposed leader. Files written before it was kept have none, read as 0.
   */
  term: number;
}

/** Parses the database file's content; InvalidArgumentError names what is wrong. */
export function parseTaskDatabase(text: string, path: string): WorkerRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new InvalidArgumentError(`${path} is not JSON (${errorMessage(error)}); move it away to start with no local tasks`, { cause: error });
  }
  if (!isRecord(parsed) || parsed["format"] !== dbFormat || parsed["formatVersion"] !== dbFormatVersion) {
    throw new InvalidArgumentError(`${path} is not a version ${dbFormatVersion} worker task database`);
  }
  const tasks = parsed["tasks"];
  if (!Array.isArray(tasks) || tasks.length > storedTasksMax) {
    throw new InvalidArgumentError(`${path}: "tasks" must be an array of at most ${storedTasksMax} entries`);
  }
  const term = parsed["term"] ?? 0;
  if (typeof term !== "number" || !Number.isSafeInteger(term) || term < 0) throw new InvalidArgumentError(`${path}: "term" must be a whole number, 0 or more`);
  const stored = tasks.map((entry: unknown, index): StoredTask => {
    const at = `${path}: tasks[${index}]`;
    if (!isRecord(entry) || typeof entry["reported"] !== "boolean") throw new InvalidArgumentError(`${at} must be {task, reported}`);
    return { task: parseTask(entry["task"], `${at}.task`), reported: entry["reported"] };
  });
  return { tasks: stored, term };
}

/**
 * The worker's restart-safe memory (swarmkit's agent/storage.go): its assignments with the
 * states it observed, in one JSON file replaced atomically (write, fsync, rename, fsync
 * the folder), so that a crash leaves either the old or the new content.
 */
export class TaskDatabase {
  readonly #path: string;
  /**
   * Each task's JSON, by task object. The agent replaces a task when it changes, never
   * edits it, and a save follows every change of every task: with hundreds of tasks, most
   * of each save's text is the same as the last one's (a whole JSON.stringify of them was a
   * twentieth of a busy worker's CPU during a converge).
   */
  readonly #taskJson = new WeakMap<Task, string>();

  constructor(dataDir: string) {
    this.#path = join(dataDir, "worker", "tasks.json");
  }

  get path(): string {
    return this.#path;
  }

  /** The stored record; no tasks and term 0 when the file does not exist yet. */
  async load(): Promise<WorkerRecord> {
    let text: string;
    try {
      text = await readFile(this.#path, "utf8");
    } catch (error) {
      if (systemErrorCode(error) === "ENOENT") return { tasks: [], term: 0 };
      throw error;
    }
    return parseTaskDatabase(text, this.#path);
  }

  /** Replaces the stored content. */
  async save(record: WorkerRecord): Promise<void> {
    const { tasks, term } = record;
    if (tasks.length > storedTasksMax) throw new InvalidArgumentError(`cannot store ${tasks.length} tasks, more than ${storedTasksMax}`);
    const folder = dirname(this.#path);
    await mkdir(folder, { recursive: true });
    const entries = tasks.map(({ task, reported }) => `{"task":${this.#json(task)},"reported":${reported}}`);
    const header = `{"format":${JSON.stringify(dbFormat)},"formatVersion":${dbFormatVersion},"term":${term}`;
    await writeFileAtomic(this.#path, `${header},"tasks":[${entries.join(",")}]}`);
    await syncDirectory(folder);
  }

  #json(task: Task): string {
    let json = this.#taskJson.get(task);
    if (json === undefined) {
      json = JSON.stringify(task);
      this.#taskJson.set(task, json);
    }
    return json;
  }
}
