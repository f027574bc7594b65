import { credentials as grpcCredentials, Metadata, type ChannelCredentials, type ClientReadableStream } from "@grpc/grpc-js";

import { systemClock, type Clock } from "../../common/clock.js";
import { CoalescedRunner } from "../../common/coalesced-runner.js";
import { CancelledError, errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import type { ProtoGrpcType as DispatcherProto } from "../../gen/dispatcher.js";
import type { NetworkMapMessage__Output } from "../../gen/shoal/v1/NetworkMapMessage.js";
import { parseNetworkMap, type NetworkMap } from "../../manager/dispatcher/index.js";
import { taskStateRank, type PublishedPort, type Task } from "../../manager/objects/index.js";
import { loadProto } from "../../rpc/proto.js";
import { grpcMessageSizeBytesMax } from "../../rpc/server.js";
import { readFile } from "node:fs/promises";

import type { Agent } from "../agent.js";
import { applyBalancerRuleset, balancerRuleset, containerUplink } from "./balancer.js";
import { desiredOverlay } from "./desired.js";
import { DnsServer, parseResolvConfNameservers, type DnsLookup } from "./dns-server.js";
import { OverlayPlane, type OverlayAttachment } from "./overlay.js";
import { applyMeshRuleset, meshRuleset, type HostPortRule } from "./mesh.js";
import { createServiceLookup, vipRules } from "./services.js";

const runningRank = taskStateRank("running");

/** How often the data plane compares what runs locally with what is programmed (picks up started containers). */
export const dataPlaneSyncIntervalMs = 200;
/** Wait before asking a manager for the network map again after the stream failed; doubles per failure. */
export const mapRetryDelayMs = 200;
export const mapRetryDelayMsMax = 5_000;

export interface NetworkAgentOptions {
  /** The manager the worker agent has a session with, and the node id it knows us by; null while unknown. */
  session: () => { address: string; nodeId: string } | null;
  /** The tasks the worker agent runs, with their observed statuses (container pids). */
  tasks: () => Task[];
  logger: Logger;
  channelCredentials?: ChannelCredentials;
  callMetadata?: Readonly<Record<string, string>>;
  clock?: Clock;
}

/**
 * The node's data plane driver: follows the cluster's network map from the manager the
 * worker agent talks to, and programs the overlays for the tasks this node runs. Every
 * map message and every dataPlaneSyncIntervalMs it applies the difference.
 */
export class NetworkAgent {
  readonly #options: NetworkAgentOptions;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #proto: DispatcherProto;
  readonly #metadata = new Metadata();
  readonly #overlay: OverlayPlane;
  #map: NetworkMap | undefined;
  #stop: AbortController | null = null;
  #loops: Promise<unknown> | null = null;
  /**
   * Applies the newest map, one sync at a time. Maps that arrive while a sync waits add no
   * sync of their own: in a rolling update the manager sends one every 50 ms, and one sync
   * per map could pile up on a slow node until the map taking a stopping task out of the
   * balancers came after the task's drain time.
   */
  readonly #syncs = new CoalescedRunner(() => this.#syncOnce());
  #lastError = "";
  /** Per container namespace: its uplink (eth0 address, gateway) and the ruleset last loaded. */
  readonly #containers = new Map<string, { uplink: { address: string; gateway: string } | undefined; ruleset: string }>();
  /** One resolver per gateway address containers use (one per node in practice). */
  readonly #resolvers = new Map<string, DnsServer | undefined>();
  #lookup: DnsLookup = () => undefined;
  #meshRuleset = "";
  readonly #hostUplinks = new Map<string, { address: string; gateway: string }>();

  constructor(options: NetworkAgentOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: "network-agent" });
    this.#clock = options.clock ?? systemClock;
    this.#proto = loadProto<DispatcherProto>("shoal/v1/dispatcher.proto");
    this.#overlay = new OverlayPlane({ logger: options.logger });
    for (const [key, value] of Object.entries(options.callMetadata ?? {})) this.#metadata.set(key, value);
  }

  /** The last map received (diagnostics and tests). */
  get map(): NetworkMap | undefined {
    return this.#map;
  }

  start(): void {
    if (this.#stop !== null) return;
    const stop = new AbortController();
    this.#stop = stop;
    this.#loops = Promise.all([this.#mapLoop(stop.signal), this.#syncLoop(stop.signal)]);
  }

  /**
   * Stops following the map. The overlays stay: containers outlive the daemon, and a
   * restarted daemon takes them over (the lab or host teardown removes the devices).
   */
  async stop(): Promise<void> {
    const stop = this.#stop;
    if (stop === null) return;
    stop.abort();
    await this.#loops;
    await this.#syncs.idle();
    this.#stop = null;
    for (const resolver of this.#resolvers.values()) resolver?.close();
    this.#resolvers.clear();
  }

  async #syncLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.#syncs.run();
      await this.#clock.sleep(dataPlaneSyncIntervalMs, { signal }).catch(() => undefined);
    }
  }

  /** Applies the desired state of the newest map once; never rejects (failures are logged and retried). */
  async #syncOnce(): Promise<void> {
    const signal = this.#stop?.signal;
    const session = this.#options.session();
    if (signal === undefined || this.#map === undefined || session === null || signal.aborted) return;
    const desired = desiredOverlay(this.#map, session.nodeId, this.#options.tasks());
    if (desired === undefined) return;
    try {
      await this.#overlay.apply(desired.state, desired.attachments, { signal });
      await this.#programServices(this.#map, desired.attachments, signal);
      await this.#programMesh(this.#map, signal);
      this.#lastError = "";
    } catch (error) {
      if (signal.aborted) return;
      // The next sync retries; log each distinct failure once.
      const message = errorMessage(error);
      if (message !== this.#lastError) this.#logger.warn({ err: message }, "programming the overlay failed; retrying");
      this.#lastError = message;
    }
  }

  /** Loads each local container's VIP rules and points its DNS at the node's resolver. */
  async #programServices(map: NetworkMap, attachments: readonly OverlayAttachment[], signal: AbortSignal): Promise<void> {
    const networkOfVni = new Map(map.networks.map((network) => [network.vni, network.id]));
    const networksByNetns = new Map<string, Set<string>>();
    for (const attachment of attachments) {
      const networkId = networkOfVni.get(attachment.vni);
      if (networkId === undefined) continue;
      const set = networksByNetns.get(attachment.containerNetns) ?? new Set<string>();
      set.add(networkId);
      networksByNetns.set(attachment.containerNetns, set);
    }
    for (const netns of this.#containers.keys()) if (!networksByNetns.has(netns)) this.#containers.delete(netns);
    // A task told to stop keeps its interfaces until its container exits, but its rules stay
    // as they are: it is about to go, and nsenter into a namespace that vanishes mid-way fails.
    const stopping = new Set(this.#options.tasks().filter((task) => taskStateRank(task.desiredState) > runningRank).map((task) => `/proc/${task.status.containerStatus?.pid ?? 0}/ns/net`));
    const networksBySource = new Map<string, ReadonlySet<string>>();
    for (const [netns, networkIds] of networksByNetns) {
      let container = this.#containers.get(netns);
      if (container !== undefined && stopping.has(netns)) {
        if (container.uplink !== undefined) networksBySource.set(container.uplink.address, networkIds);
        continue;
      }
      if (container === undefined) {
        container = { uplink: await containerUplink(netns, { signal }), ruleset: "" };
        this.#containers.set(netns, container);
      }
      const resolver = container.uplink === undefined ? undefined : await this.#resolverOn(container.uplink.gateway);
      if (container.uplink !== undefined) networksBySource.set(container.uplink.address, networkIds);
      const ruleset = balancerRuleset(vipRules(map, networkIds), resolver === undefined ? undefined : container.uplink?.gateway);
      if (ruleset === container.ruleset) continue;
      await applyBalancerRuleset(netns, ruleset, { signal });
      container.ruleset = ruleset;
    }
    this.#lookup = createServiceLookup(map, networksBySource);
  }

  async #programMesh(map: NetworkMap, signal: AbortSignal): Promise<void> {
    const session = this.#options.session();
    const ruleset = meshRuleset(map, session === null ? [] : await this.#directPorts(map, session.nodeId, signal));
    if (ruleset === this.#meshRuleset) return;
    await applyMeshRuleset(ruleset, { signal });
    this.#meshRuleset = ruleset;
  }

  /**
   * Ports published straight to this node's containers: host-mode ports of the tasks
   * running here, and ingress ports of local-traffic-policy services (to this node's ready
   * tasks only; refused when it has none).
   */
  async #directPorts(map: NetworkMap, nodeId: string, signal: AbortSignal): Promise<HostPortRule[]> {
    const rules = new Map<string, { protocol: "tcp" | "udp"; publishedPort: number; targetPort: number; targets: string[] }>();
    const rule = (port: PublishedPort): { targets: string[] } => {
      const key = `${port.protocol}/${port.publishedPort}`;
      const existing = rules.get(key) ?? { ...port, targets: [] };
      rules.set(key, existing);
      return existing;
    };
    const localPolicy = new Map(map.services.filter((service) => service.trafficPolicy === "local").map((service) => [service.id, service.publishedPorts]));
    for (const ports of localPolicy.values()) for (const port of ports) rule(port);
    const readyHere = new Set(map.services.flatMap((service) => service.tasks.filter((task) => task.ready && task.nodeId === nodeId).map((task) => task.id)));
    const seen = new Set<string>();
    for (const task of this.#options.tasks()) {
      const pid = task.status.containerStatus?.pid ?? 0;
      if (pid <= 0 || task.status.state !== "running" || task.desiredState !== "running") continue;
      const hostPorts: PublishedPort[] = task.endpoint.ports
        .filter((port) => port.publishMode === "host" && port.publishedPort !== 0 && port.protocol !== "sctp")
        .map((port) => ({ protocol: port.protocol === "udp" ? "udp" : "tcp", publishedPort: port.publishedPort, targetPort: port.targetPort }));
      const policyPorts = readyHere.has(task.id) ? (localPolicy.get(task.serviceId) ?? []) : [];
      if (hostPorts.length === 0 && policyPorts.length === 0) continue;
      const netns = `/proc/${pid}/ns/net`;
      seen.add(netns);
      let uplink = this.#hostUplinks.get(netns);
      if (uplink === undefined) {
        uplink = await containerUplink(netns, { signal });
        if (uplink === undefined) continue;
        this.#hostUplinks.set(netns, uplink);
      }
      for (const port of [...hostPorts, ...policyPorts]) rule(port).targets.push(uplink.address);
    }
    for (const netns of this.#hostUplinks.keys()) if (!seen.has(netns)) this.#hostUplinks.delete(netns);
    return [...rules.values()];
  }

  /** The resolver listening on `gateway`:53, started on first use; undefined when it cannot listen there. */
  async #resolverOn(gateway: string): Promise<DnsServer | undefined> {
    if (this.#resolvers.has(gateway)) return this.#resolvers.get(gateway);
    const upstreams = parseResolvConfNameservers(await readFile("/etc/resolv.conf", "utf8").catch(() => ""));
    const resolver = new DnsServer({ logger: this.#logger, lookup: (source, name) => this.#lookup(source, name), upstreams, clock: this.#clock });
    try {
      await resolver.listen(gateway, 53);
      this.#resolvers.set(gateway, resolver);
      this.#logger.info({ address: gateway, upstreams }, "service name resolver listening");
      return resolver;
    } catch (error) {
      resolver.close();
      this.#resolvers.set(gateway, undefined);
      this.#logger.warn({ address: gateway, err: errorMessage(error) }, "cannot serve service names to containers; they keep the host's resolvers");
      return undefined;
    }
  }

  async #mapLoop(signal: AbortSignal): Promise<void> {
    let delayMs = mapRetryDelayMs;
    while (!signal.aborted) {
      const session = this.#options.session();
      if (session !== null) {
        try {
          await this.#follow(session.address, signal);
          delayMs = mapRetryDelayMs;
        } catch (error) {
          if (signal.aborted) return;
          this.#logger.debug({ err: errorMessage(error), retryInMs: delayMs }, "network map stream ended");
          delayMs = Math.min(delayMs * 2, mapRetryDelayMsMax);
        }
      }
      await this.#clock.sleep(session === null ? mapRetryDelayMs : delayMs, { signal }).catch(() => undefined);
    }
  }

  /** Follows one NetworkMap stream until it ends or fails. */
  async #follow(address: string, signal: AbortSignal): Promise<void> {
    const client = new this.#proto.shoal.v1.Dispatcher(address, this.#options.channelCredentials ?? grpcCredentials.createInsecure(), {
      "grpc.max_receive_message_length": grpcMessageSizeBytesMax,
    });
    const call: ClientReadableStream<NetworkMapMessage__Output> = client.NetworkMap({}, this.#metadata);
    const onAbort = (): void => call.cancel();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      await new Promise<void>((resolve, reject) => {
        call.on("data", (message: NetworkMapMessage__Output) => {
          try {
            this.#map = parseNetworkMap(message.map);
            void this.#syncs.run();
          } catch (error) {
            call.cancel();
            reject(error instanceof Error ? error : new Error(String(error)));
          }
        });
        call.on("error", (error) => reject(signal.aborted ? new CancelledError("network map stream cancelled", { cause: error }) : error));
        call.on("end", resolve);
      });
    } finally {
      signal.removeEventListener("abort", onAbort);
      client.close();
    }
  }
}

/**
 * Runs a NetworkAgent beside a worker agent: it follows the agent's session and tasks,
 * starts now, and stops when the agent stops (the daemon's one-line wiring).
 */
export function withNetworkAgent(agent: Agent, options: Pick<NetworkAgentOptions, "logger" | "channelCredentials" | "callMetadata" | "clock">): Agent {
  const network = new NetworkAgent({
    ...options,
    session: () => (agent.connectedTo === null || agent.nodeId === null ? null : { address: agent.connectedTo, nodeId: agent.nodeId }),
    tasks: () => agent.tasks(),
  });
  network.start();
  return {
    start: (startOptions) => agent.start(startOptions),
    stop: async () => {
      await network.stop();
      await agent.stop();
    },
    get connectedTo() {
      return agent.connectedTo;
    },
    get nodeId() {
      return agent.nodeId;
    },
    get term() {
      return agent.term;
    },
    tasks: () => agent.tasks(),
  };
}
