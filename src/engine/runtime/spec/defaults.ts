import type { OciDeviceRule, OciMount } from "./types.js";

/** Docker's default capability set: enough for ordinary services, nothing that reaches the host. */
export const defaultCapabilities: readonly string[] = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

/** Kernel files that leak host information or allow host actions; hidden as Docker does. */
export const defaultMaskedPaths: readonly string[] = [
  "/proc/asound",
  "/proc/acpi",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/sys/firmware",
  "/sys/devices/virtual/powercap",
];

/** Host-wide tunables a container may read but must never write. */
export const defaultReadonlyPaths: readonly string[] = [
  "/proc/bus",
  "/proc/fs",
  "/proc/irq",
  "/proc/sys",
  "/proc/sysrq-trigger",
];

/** The pseudo filesystems every container gets, with Docker's options. */
export function defaultMounts(): OciMount[] {
  const noSuidExecDev = ["nosuid", "noexec", "nodev"];
  return [
    { destination: "/proc", type: "proc", source: "proc", options: [...noSuidExecDev] },
    {
      destination: "/dev",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: [...noSuidExecDev, "ro"] },
    {
      destination: "/sys/fs/cgroup",
      type: "cgroup",
      source: "cgroup",
      options: [...noSuidExecDev, "relatime", "ro"],
    },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: [...noSuidExecDev] },
    {
      destination: "/dev/shm",
      type: "tmpfs",
      source: "shm",
      options: [...noSuidExecDev, "mode=1777", "size=65536k"],
    },
  ];
}

/**
 * Device cgroup: deny everything; the runtime then adds its fixed allow list for the
 * standard character devices (null, zero, full, random, urandom, tty, ptmx, pts).
 */
export function defaultDeviceRules(): OciDeviceRule[] {
  return [{ allow: false, access: "rwm" }];
}

export const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
export const defaultNofileLimit = 1048576;
export const cpuPeriodMicroseconds = 100_000;
