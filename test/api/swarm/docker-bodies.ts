/**
 * Request bodies captured from the stock docker CLI 28.2.2 (API 1.47) against a recording
 * socket, so the tests check what docker really sends.
 */

/** `docker service create --replicas 3 --name web busybox sleep 1d` */
export const dockerCreateMinimal = {
  Name: "web",
  Labels: {},
  TaskTemplate: {
    ContainerSpec: { Image: "busybox:latest", Args: ["sleep", "1d"], Init: false, DNSConfig: {} },
    Resources: { Limits: {}, Reservations: {} },
    Placement: {},
    ForceUpdate: 0,
  },
  Mode: { Replicated: { Replicas: 3 } },
  EndpointSpec: { Mode: "vip" },
};

/** `docker service create --mode global --name g busybox` */
export const dockerCreateGlobal = {
  Name: "g",
  Labels: {},
  TaskTemplate: {
    ContainerSpec: { Image: "busybox:latest", Init: false, DNSConfig: {} },
    Resources: { Limits: {}, Reservations: {} },
    Placement: {},
    ForceUpdate: 0,
  },
  Mode: { Global: {} },
  EndpointSpec: { Mode: "vip" },
};

/**
 * `docker service create --name web2 -e A=1 --label tier=front --container-label c=1
 * --constraint node.role==worker --placement-pref spread=node.labels.zone --reserve-cpu 0.5
 * --reserve-memory 64m --limit-cpu 1 --limit-memory 128m --restart-condition on-failure
 * --restart-delay 3s --restart-max-attempts 4 --restart-window 1m --publish 8080:80
 * --publish mode=host,target=53,published=53,protocol=udp --mount type=volume,... (3 mounts)
 * --stop-signal SIGINT --stop-grace-period 20s --update-* --rollback-parallelism 3
 * --rollback-delay 1s --workdir /w --user nobody --health-cmd true --health-interval 5s
 * --replicas-max-per-node 2 --replicas 2 busybox:1.36 sleep 1d`
 */
export const dockerCreateFull = {
  Name: "web2",
  Labels: { tier: "front" },
  TaskTemplate: {
    ContainerSpec: {
      Image: "busybox:1.36",
      Labels: { c: "1" },
      Args: ["sleep", "1d"],
      Env: ["A=1"],
      Dir: "/w",
      User: "nobody",
      Init: false,
      StopSignal: "SIGINT",
      Mounts: [
        { Type: "volume", Source: "data", Target: "/data" },
        { Type: "bind", Source: "/tmp", Target: "/host", ReadOnly: true },
        { Type: "tmpfs", Target: "/scratch" },
      ],
      StopGracePeriod: 20000000000,
      Healthcheck: { Test: ["CMD-SHELL", "true"], Interval: 5000000000 },
      DNSConfig: {},
    },
    Resources: { Limits: { NanoCPUs: 1000000000, MemoryBytes: 134217728 }, Reservations: { NanoCPUs: 500000000, MemoryBytes: 67108864 } },
    RestartPolicy: { Condition: "on-failure", Delay: 3000000000, MaxAttempts: 4, Window: 60000000000 },
    Placement: { Constraints: ["node.role==worker"], Preferences: [{ Spread: { SpreadDescriptor: "node.labels.zone" } }], MaxReplicas: 2 },
    ForceUpdate: 0,
  },
  Mode: { Replicated: { Replicas: 2 } },
  UpdateConfig: { Parallelism: 2, Delay: 10000000000, FailureAction: "rollback", Monitor: 7000000000, MaxFailureRatio: 0.2, Order: "start-first" },
  RollbackConfig: { Parallelism: 3, Delay: 1000000000, FailureAction: "pause", Monitor: 5000000000, MaxFailureRatio: 0, Order: "stop-first" },
  EndpointSpec: {
    Mode: "vip",
    Ports: [
      { Protocol: "tcp", TargetPort: 80, PublishedPort: 8080, PublishMode: "ingress" },
      { Protocol: "udp", TargetPort: 53, PublishedPort: 53, PublishMode: "host" },
    ],
  },
};
