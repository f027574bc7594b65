export { messageFromWire, messageToWire } from "./message-codec.js";
export {
  batchBytesMax,
  createGrpcRaftTransport,
  peerQueueMessagesMax,
  reconnectBackoffMsMax,
  reconnectBackoffMsMin,
  snapshotChunkBytes,
  snapshotTransferBytesMax,
} from "./transport.js";
export type {
  GrpcRaftTransportOptions,
  RaftPeerCall,
  RaftTransport,
  RaftTransportHandler,
  RaftTransportStats,
} from "./transport.js";
