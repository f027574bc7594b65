// Starts and drives a cluster of bench/raft/kv-node.ts processes on loopback, for the raft
// benchmark and the real-process test. Every process it starts is stopped by pid in close().
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { Agent, request } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { daemonNodeFlags } from "../../src/common/runtime-flags.js";

const kvNodeScript = fileURLToPath(new URL("./kv-node.js", import.meta.url));

/** Ports the kernel hands out for port 0; released before use, which is fine on a quiet loopback. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => {
      const server = createServer();
      return new Promise<ReturnType<typeof createServer>>((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
    }),
  );
  const ports = servers.map((server) => {
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("no port");
    return address.port;
  });
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

export interface HttpAnswer {
  readonly status: number;
  readonly body: unknown;
}

export class HttpClient {
  readonly #agent: Agent;

  constructor(maxSockets: number) {
    this.#agent = new Agent({ keepAlive: true, maxSockets });
  }

  call(method: "GET" | "POST", url: string, body?: unknown, timeoutMs = 10_000): Promise<HttpAnswer> {
    const data = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const target = new URL(url);
      const outgoing = request(
        {
          hostname: target.hostname,
          port: target.port,
          path: target.pathname + target.search,
          method,
          agent: this.#agent,
          headers: data === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(data) },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on("data", (chunk: Buffer) => chunks.push(chunk));
          response.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let parsed: unknown = text;
            try {
              parsed = JSON.parse(text);
            } catch {
              // Not JSON (an error page): keep the text for the caller's message.
            }
            resolve({ status: response.statusCode ?? 0, body: parsed });
          });
          response.on("error", reject);
        },
      );
      outgoing.setTimeout(timeoutMs, () => outgoing.destroy(new Error(`${method} ${url} timed out`)));
      outgoing.on("error", reject);
      outgoing.end(data);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

export function field(body: unknown, name: string): unknown {
  if (typeof body !== "object" || body === null) return undefined;
  return new Map<string, unknown>(Object.entries(body)).get(name);
}

export interface KvMember {
  readonly id: number;
  readonly raftPort: number;
  readonly httpPort: number;
  readonly dataDir: string;
  process: ChildProcess | null;
}

export class KvCluster {
  readonly members: KvMember[];
  readonly root: string;
  readonly #client = new HttpClient(16);
  readonly #logLevel: string;
  readonly #snapshotEvery: number | undefined;

  private constructor(root: string, members: KvMember[], logLevel: string, snapshotEvery: number | undefined) {
    this.root = root;
    this.members = members;
    this.#logLevel = logLevel;
    this.#snapshotEvery = snapshotEvery;
  }

  /** `snapshotEvery`: applied entries between a member's snapshots (kv-node's default otherwise). */
  static async start(options: { size: number; logLevel?: string; snapshotEvery?: number }): Promise<KvCluster> {
    const root = await mkdtemp(join(tmpdir(), "shoal-kv-"));
    const ports = await freePorts(options.size * 2);
    const members = Array.from({ length: options.size }, (_, i) => ({
      id: i + 1,
      raftPort: ports[i * 2] ?? 0,
      httpPort: ports[i * 2 + 1] ?? 0,
      dataDir: join(root, `node-${i + 1}`),
      process: null,
    }));
    const cluster = new KvCluster(root, members, options.logLevel ?? "warn", options.snapshotEvery);
    try {
      await Promise.all(members.map((member) => cluster.startMember(member.id)));
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  member(id: number): KvMember {
    const member = this.members.find((candidate) => candidate.id === id);
    if (member === undefined) throw new Error(`no member ${id}`);
    return member;
  }

  url(id: number, path: string): string {
    return `http://127.0.0.1:${this.member(id).httpPort}${path}`;
  }

  /** Starts a member process and waits until it serves HTTP. */
  async startMember(id: number): Promise<void> {
    const member = this.member(id);
    const membersArgument = this.members.map((other) => `${other.id}=127.0.0.1:${other.raftPort}`).join(",");
    const log = createWriteStream(join(this.root, `node-${id}.log`), { flags: "a" });
    const child = spawn(
      process.execPath,
      [
        ...daemonNodeFlags,
        kvNodeScript,
        ...["--id", String(id), "--data-dir", member.dataDir, "--raft-address", `127.0.0.1:${member.raftPort}`],
        ...["--http-port", String(member.httpPort), "--members", membersArgument, "--bootstrap", "--log-level", this.#logLevel],
        ...(this.#snapshotEvery === undefined ? [] : ["--snapshot-every", String(this.#snapshotEvery)]),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    child.stderr.pipe(log);
    member.process = child;
    await new Promise<void>((resolve, reject) => {
      let output = "";
      const onData = (chunk: Buffer): void => {
        output += chunk.toString();
        if (output.includes("READY")) {
          child.stdout.off("data", onData);
          resolve();
        }
      };
      child.stdout.on("data", onData);
      child.once("exit", (code) => reject(new Error(`member ${id} exited with ${code}; see ${join(this.root, `node-${id}.log`)}`)));
    });
  }

  /** kill -9, and wait for the process to be gone. */
  async kill(id: number): Promise<void> {
    const child = this.member(id).process;
    if (child === null) return;
    this.member(id).process = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }

  async status(id: number): Promise<{ leader: number; role: string; applied: number } | null> {
    try {
      const answer = await this.#client.call("GET", this.url(id, "/status"), undefined, 1_000);
      const leader = field(answer.body, "leader");
      const role = field(answer.body, "role");
      const applied = field(answer.body, "applied");
      if (typeof leader !== "number" || typeof role !== "string" || typeof applied !== "number") return null;
      return { leader, role, applied };
    } catch {
      return null;
    }
  }

  /** The leader every running member agrees on. */
  async leader(deadlineMs = 15_000): Promise<number> {
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      const running = this.members.filter((member) => member.process !== null);
      const statuses = await Promise.all(running.map((member) => this.status(member.id)));
      const leaders = new Set(statuses.map((status) => status?.leader ?? 0));
      const [leader] = [...leaders];
      if (leaders.size === 1 && leader !== undefined && leader !== 0) {
        const index = running.findIndex((member) => member.id === leader);
        if (statuses[index]?.role === "leader") return leader;
      }
      if (Date.now() > deadline) throw new Error(`no agreed leader within ${deadlineMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async close(): Promise<void> {
    this.#client.close();
    await Promise.all(
      this.members.map(async (member) => {
        const child = member.process;
        member.process = null;
        if (child === null || child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
        await exited;
        clearTimeout(timer);
      }),
    );
    await rm(this.root, { recursive: true, force: true });
  }
}
