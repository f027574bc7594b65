import type { Message, NodeId } from "../../../src/raft/core/types.js";
import type { RaftTransportHandler } from "../../../src/raft/transport/transport.js";

/** A transport handler that keeps what the transport hands it, for assertions. */
export class Recorder implements RaftTransportHandler {
  readonly messages: Message[] = [];
  readonly unreachable: NodeId[] = [];
  readonly snapshots: [NodeId, string][] = [];

  step(message: Message): void {
    this.messages.push(message);
  }

  reportUnreachable(id: NodeId): void {
    this.unreachable.push(id);
  }

  reportSnapshot(id: NodeId, status: "finish" | "failure"): void {
    this.snapshots.push([id, status]);
  }
}
