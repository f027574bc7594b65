import { once } from "node:events";

import type { ServerWritableStream } from "@grpc/grpc-js";

import type { Clock } from "../../common/clock.js";
import { Throttle } from "../../common/throttle.js";
import type { NetworkMapMessage } from "../../gen/shoal/v1/NetworkMapMessage.js";
import type { NetworkMapRequest__Output } from "../../gen/shoal/v1/NetworkMapRequest.js";
import type { MemoryStore, StoreEvent } from "../store/index.js";
import { buildNetworkMap, encodeNetworkMap, networkMapIntervalMs } from "./network-map.js";

export type NetworkMapCall = ServerWritableStream<NetworkMapRequest__Output, NetworkMapMessage>;

function mattersToMap(event: StoreEvent): boolean {
  if (event.type === "commit" || event.type === "restored") return true;
  return event.kind !== "cluster";
}

/**
 * Sends the whole network map at once, then again whenever it changes: commits are
 * gathered for at most networkMapIntervalMs (see Throttle), the map is rebuilt from one
 * view, and sent only when it differs from the last one sent.
 * Returns when `signal` fires; rejects when a write fails.
 */
export async function streamNetworkMap(options: { call: NetworkMapCall; store: MemoryStore; clock: Clock; signal: AbortSignal }): Promise<void> {
  const { call, store, clock, signal } = options;
  let sequence = 0;
  let lastSent = "";
  const send = async (): Promise<void> => {
    const encoded = encodeNetworkMap(store.view(buildNetworkMap));
    const text = encoded.toString("utf8");
    if (text === lastSent) return;
    lastSent = text;
    sequence += 1;
    if (!call.write({ sequence, map: encoded })) await once(call, "drain", { signal });
  };
  await send();
  // A failed send ends the watch through `stopped`, and the failure is rethrown below.
  const stopped = new AbortController();
  const events = store.watch({ signal: AbortSignal.any([signal, stopped.signal]), filter: mattersToMap });
  let sending: Promise<void> = Promise.resolve();
  let failure: Error | undefined;
  const changes = new Throttle({
    clock,
    intervalMs: networkMapIntervalMs,
    run: () => {
      sending = sending.then(send).catch((error: unknown) => {
        failure = error instanceof Error ? error : new Error(String(error));
        stopped.abort();
      });
    },
  });
  // The first send just went out.
  changes.ranNow();
  try {
    for await (const event of events) {
      if (event.type === "commit" || event.type === "restored") changes.note();
    }
  } catch (error) {
    // The watch ends with an error when `stopped` fires; the send's failure is what counts.
    if (failure === undefined) throw error;
  } finally {
    changes.cancel();
    await events.return?.();
    await sending;
  }
  if (failure !== undefined) throw failure;
}
