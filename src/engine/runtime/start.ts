import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

import type { Clock } from "../../common/clock.js";
import type { Logger } from "../../common/logger.js";
import { throwIfAborted } from "../../common/errors.js";
import { writeContainerEtcFiles } from "../network/etc-files.js";
import type { NetworkAttachment, NetworkManager } from "../network/network.js";
import type { NetworkNamespace } from "./spec/spec.js";
import type { OciMount } from "./spec/types.js";
import type { VolumeService } from "../volumes/volumes.js";
import { buildContainerSpec, resolveMounts } from "./container-spec.js";
import { runWithConmon } from "./oci/conmon.js";
import type { OciRuntime } from "./oci/runtime.js";
import type { ContainerAccountFiles } from "./accounts.js";
import { unmountRootfs } from "./rootfs-mount.js";
import type { AccountFiles } from "./spec/user.js";
import type { ContainerStore } from "./store.js";
import type { ContainerRecord, ContainerState, RootfsProvider } from "./types.js";

export interface StartContext {
  store: ContainerStore;
  entry: { record: ContainerRecord; state: ContainerState };
  /** Never started before: no earlier run's files to clear first. */
  fresh: boolean;
  /** An earlier start may have left its account files' mount (see ContainerAccountFiles). */
  mayBeMounted: boolean;
  exitDirectory: string;
  socketDirectory: string;
  cgroupParent: string;
  conmonPath: string;
  runtime: OciRuntime;
  rootfs: RootfsProvider;
  accounts: ContainerAccountFiles;
  network: NetworkManager;
  volumes: VolumeService;
  logger: Logger;
  clock: Clock;
  nofileDefault: number;
  signal: AbortSignal | undefined;
}

type Undo = [string, () => Promise<void>];

async function rollback(context: StartContext, undo: Undo[]): Promise<void> {
  for (const [what, step] of undo.reverse()) {
    try {
      await step();
    } catch (error) {
      context.logger.error({ containerId: context.entry.record.id, err: error }, `undoing ${what} after a failed start failed`);
    }
  }
}

async function removeStaleRunFiles(context: StartContext): Promise<void> {
  const paths = context.store.paths(context.entry.record.id);
  await Promise.all(
    [join(context.exitDirectory, context.entry.record.id), join(paths.conmon, "exit"), join(paths.conmon, "oom"), paths.containerPid, paths.conmonPid].map(
      (path) => rm(path, { force: true }),
    ),
  );
}

interface Prepared {
  namespace: NetworkNamespace;
  attachment: NetworkAttachment;
  /** The generated /etc files, then the container's volumes, binds and tmpfs. */
  mounts: OciMount[];
  /** The rootfs, for the runtime to mount on / (SpecInput.rootfsMounts). */
  rootfsMounts: OciMount[];
  accounts: AccountFiles;
}

/**
 * Everything a start needs before the spec, side by side: the account files, the network
 * (then its /etc files), the volume mounts and the removal of the last run's files. None
 * waits on another, and a start pays the slowest (bridge setup, or a mount) instead of
 * their sum. Registers the undo of the network when it succeeded.
 */
async function prepareRun(context: StartContext, undo: Undo[]): Promise<Prepared> {
  const { record } = context.entry;
  const { id } = record;
  const rootfsPath = context.store.paths(id).rootfs;
  const rootfsMounts = context.rootfs.mounts(id);
  const directories = context.store.prepareRun(id);
  const accounts = (async () => {
    await directories;
    if (context.mayBeMounted) await unmountRootfs(rootfsPath);
    return await context.accounts.read({ imageId: record.imageId, rootfsPath, mounts: rootfsMounts, writableLayer: context.rootfs.writableLayer(id) });
  })();
  const attached = context.network.attach(id, {
    mode: record.networkMode,
    ports: record.portBindings,
    ...(context.signal === undefined ? {} : { signal: context.signal }),
  });
  const etcWritten = Promise.all([attached, directories]).then(async ([network]) => await etcMounts(context, network.attachment));
  const [account, network, etc, volumes, stale, made] = await Promise.allSettled([
    accounts,
    attached,
    etcWritten,
    resolveMounts(record.mounts, context.volumes),
    context.fresh ? undefined : removeStaleRunFiles(context),
    directories,
  ]);
  if (network.status === "fulfilled") undo.push(["network", () => context.network.detach(id, network.value.attachment)]);
  settledValue(made);
  settledValue(stale);
  return {
    ...settledValue(network),
    mounts: [...settledValue(etc), ...settledValue(volumes)],
    rootfsMounts: rootfsMounts.map((mount) => ({ destination: "/", type: mount.type, source: mount.source, options: [...mount.options] })),
    accounts: settledValue(account),
  };
}

function settledValue<T>(result: PromiseSettledResult<T>): T {
  if (result.status === "rejected") throw result.reason;
  return result.value;
}

/**
 * One container start: attach the network, write the /etc files and the OCI spec (the
 * runtime mounts the rootfs), and run the container under conmon. Returns the running
 * state; on any failure undoes every step taken (runtime record, network) and rethrows.
 */
export async function startContainerRun(context: StartContext): Promise<ContainerState> {
  const { record } = context.entry;
  const { id } = record;
  const paths = context.store.paths(id);
  const signalOption = context.signal === undefined ? {} : { signal: context.signal };
  const undo: Undo[] = [];
  try {
    const { namespace, attachment, mounts, rootfsMounts, accounts } = await prepareRun(context, undo);
    const spec = buildContainerSpec({
      record,
      rootfs: paths.rootfs,
      rootfsMounts,
      accounts,
      networkNamespace: namespace,
      mounts,
      cgroupsPath: `${context.cgroupParent}/${id}`,
      nofileDefault: context.nofileDefault,
    });
    await writeFile(paths.spec, JSON.stringify(spec));
    throwIfAborted(context.signal);
    undo.push(["runtime run", () => context.runtime.delete(id, { force: true })]);
    const { pid } = await runWithConmon({
      conmonPath: context.conmonPath,
      runtime: context.runtime,
      id,
      paths: {
        bundle: paths.bundle,
        containerPidFile: paths.containerPid,
        conmonPidFile: paths.conmonPid,
        logPath: paths.log,
        exitDir: context.exitDirectory,
        persistDir: paths.conmon,
        socketDir: context.socketDirectory,
      },
      ...signalOption,
    });
    const now = new Date(context.clock.now()).toISOString();
    return { ...context.entry.state, status: "running", pid, startedAt: now, finishedAt: null, exitCode: null, oomKilled: false, error: "", network: attachment };
  } catch (error) {
    await rollback(context, undo);
    throw error;
  }
}

async function etcMounts(context: StartContext, attachment: NetworkAttachment): Promise<OciMount[]> {
  return await writeContainerEtcFiles({
    directory: context.store.paths(context.entry.record.id).etc,
    hostname: context.entry.record.hostname,
    address: attachment.ipAddress,
    ownNetworkNamespace: attachment.mode !== "host",
  });
}
