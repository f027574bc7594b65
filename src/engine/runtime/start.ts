import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

import type { Clock } from "../../common/clock.js";
import type { Logger } from "../../common/logger.js";
import { throwIfAborted } from "../../common/errors.js";
import { writeContainerEtcFiles } from "../network/etc-files.js";
import type { NetworkAttachment, NetworkManager } from "../network/network.js";
import type { NetworkNamespace } from "./spec/spec.js";
import type { VolumeService } from "../volumes/volumes.js";
import { buildContainerSpec, resolveMounts } from "./container-spec.js";
import { createWithConmon } from "./oci/conmon.js";
import type { OciRuntime } from "./oci/runtime.js";
import { mountRootfs, unmountRootfs } from "./rootfs-mount.js";
import type { ContainerStore } from "./store.js";
import type { ContainerRecord, ContainerState, RootfsProvider } from "./types.js";

export interface StartContext {
  store: ContainerStore;
  entry: { record: ContainerRecord; state: ContainerState };
  exitDirectory: string;
  socketDirectory: string;
  cgroupParent: string;
  conmonPath: string;
  runtime: OciRuntime;
  rootfs: RootfsProvider;
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

/**
 * Mounts the rootfs and attaches the network side by side (they are independent, and
 * bridge setup is the slow part of a start); registers the undo of each that succeeded.
 */
async function prepareRootfsAndNetwork(
  context: StartContext,
  undo: Undo[],
): Promise<{ namespace: NetworkNamespace; attachment: NetworkAttachment }> {
  const { record } = context.entry;
  const { id } = record;
  const rootfs = context.store.paths(id).rootfs;
  const mounted = (async () => {
    await unmountRootfs(rootfs);
    await mountRootfs(context.rootfs.mounts(id), rootfs, context.signal);
  })();
  const attached = context.network.attach(id, {
    mode: record.networkMode,
    ports: record.portBindings,
    ...(context.signal === undefined ? {} : { signal: context.signal }),
  });
  const [mount, network] = await Promise.allSettled([mounted, attached]);
  if (mount.status === "fulfilled") undo.push(["rootfs mount", () => unmountRootfs(rootfs)]);
  if (network.status === "fulfilled") undo.push(["network", () => context.network.detach(id, network.value.attachment)]);
  if (mount.status === "rejected") throw mount.reason;
  if (network.status === "rejected") throw network.reason;
  return network.value;
}

/**
 * One container start: mount the rootfs, attach the network, write the /etc files and the
 * OCI spec, create the container under conmon and start it. Returns the running state;
 * on any failure undoes every step taken (runtime record, network, mount) and rethrows.
 */
export async function startContainerRun(context: StartContext): Promise<ContainerState> {
  const { record } = context.entry;
  const { id } = record;
  const paths = context.store.paths(id);
  const signalOption = context.signal === undefined ? {} : { signal: context.signal };
  const undo: Undo[] = [];
  try {
    const { namespace, attachment } = await prepareRootfsAndNetwork(context, undo);
    const spec = await buildContainerSpec({
      record,
      rootfs: paths.rootfs,
      networkNamespace: namespace,
      mounts: [...(await etcMounts(context, attachment)), ...(await resolveMounts(record.mounts, context.volumes))],
      cgroupsPath: `${context.cgroupParent}/${id}`,
      nofileDefault: context.nofileDefault,
    });
    await Promise.all([writeFile(paths.spec, JSON.stringify(spec)), removeStaleRunFiles(context)]);
    throwIfAborted(context.signal);
    undo.push(["runtime create", () => context.runtime.delete(id, { force: true })]);
    const { pid } = await createWithConmon({
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
    await context.runtime.start(id, signalOption);
    const now = new Date(context.clock.now()).toISOString();
    return { ...context.entry.state, status: "running", pid, startedAt: now, finishedAt: null, exitCode: null, oomKilled: false, error: "", network: attachment };
  } catch (error) {
    await rollback(context, undo);
    throw error;
  }
}

async function etcMounts(context: StartContext, attachment: NetworkAttachment): Promise<Awaited<ReturnType<typeof writeContainerEtcFiles>>> {
  return await writeContainerEtcFiles({
    directory: context.store.paths(context.entry.record.id).etc,
    hostname: context.entry.record.hostname,
    address: attachment.ipAddress,
    ownNetworkNamespace: attachment.mode !== "host",
  });
}
