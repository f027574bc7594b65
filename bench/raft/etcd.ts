// A private 3-member etcd on loopback (as /work/shared/peers/etcd-bench.sh runs it), driven
// through its HTTP/JSON gateway, so bench/raft can put the same load on it. Every process
// it starts is stopped by pid in close().
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { field, freePorts, HttpClient } from "./cluster.js";

export function etcdInstalled(): boolean {
  return spawnSync("etcd", ["--version"], { stdio: "ignore" }).status === 0;
}

const base64 = (text: string): string => Buffer.from(text).toString("base64");

export class EtcdCluster {
  readonly #root: string;
  readonly #clientPorts: number[];
  readonly #peerPorts: number[];
  readonly #processes: (ChildProcess | null)[] = [null, null, null];
  readonly #client = new HttpClient(2048);

  private constructor(root: string, clientPorts: number[], peerPorts: number[]) {
    this.#root = root;
    this.#clientPorts = clientPorts;
    this.#peerPorts = peerPorts;
  }

  static async start(): Promise<EtcdCluster> {
    const ports = await freePorts(6);
    const cluster = new EtcdCluster(await mkdtemp(join(tmpdir(), "shoal-etcd-")), ports.slice(0, 3), ports.slice(3));
    try {
      for (let index = 0; index < 3; index += 1) cluster.startMember(index, "new");
      await cluster.waitHealthy();
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  endpoint(index: number): string {
    return `http://127.0.0.1:${this.#clientPorts[index] ?? 0}`;
  }

  startMember(index: number, state: "new" | "existing"): void {
    const cluster = this.#peerPorts.map((port, i) => `m${i + 1}=http://127.0.0.1:${port}`).join(",");
    const peer = `http://127.0.0.1:${this.#peerPorts[index] ?? 0}`;
    const child = spawn(
      "etcd",
      [
        ...["--name", `m${index + 1}`, "--data-dir", join(this.#root, `m${index + 1}`)],
        ...["--listen-client-urls", this.endpoint(index), "--advertise-client-urls", this.endpoint(index)],
        ...["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer],
        ...["--initial-cluster", cluster, "--initial-cluster-token", "shoal-bench", "--initial-cluster-state", state],
        ...["--heartbeat-interval", "100", "--election-timeout", "1000", "--log-level", "warn", "--logger", "zap"],
      ],
      { stdio: "ignore" },
    );
    this.#processes[index] = child;
  }

  async kill(index: number): Promise<void> {
    const child = this.#processes[index];
    this.#processes[index] = null;
    if (child === null || child === undefined || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }

  async #status(index: number): Promise<{ member: string; leader: string } | null> {
    try {
      const answer = await this.#client.call("POST", `${this.endpoint(index)}/v3/maintenance/status`, {}, 1_000);
      const member = field(field(answer.body, "header"), "member_id");
      const leader = field(answer.body, "leader");
      return typeof member === "string" && typeof leader === "string" ? { member, leader } : null;
    } catch {
      return null;
    }
  }

  /** Index of the member that is leader, once all running members agree. */
  async leader(deadlineMs = 30_000): Promise<number> {
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      const running = [0, 1, 2].filter((index) => this.#processes[index] !== null);
      const statuses = await Promise.all(running.map((index) => this.#status(index)));
      const leaders = new Set(statuses.map((status) => status?.leader ?? "0"));
      const [leader] = [...leaders];
      if (leaders.size === 1 && leader !== undefined && leader !== "0" && statuses.every((status) => status !== null)) {
        const position = statuses.findIndex((status) => status?.member === leader);
        const index = running[position];
        if (index !== undefined) return index;
      }
      if (Date.now() > deadline) throw new Error(`etcd: no agreed leader within ${deadlineMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async waitHealthy(): Promise<void> {
    await this.leader();
  }

  async put(endpoint: string, key: string, value: string): Promise<void> {
    const answer = await this.#client.call("POST", `${endpoint}/v3/kv/put`, { key: base64(key), value: base64(value) });
    if (answer.status !== 200 || field(answer.body, "header") === undefined) {
      throw new Error(`etcd put answered ${answer.status}: ${JSON.stringify(answer.body).slice(0, 200)}`);
    }
  }

  async close(): Promise<void> {
    this.#client.close();
    await Promise.all([0, 1, 2].map((index) => this.kill(index)));
    await rm(this.#root, { recursive: true, force: true });
  }
}
