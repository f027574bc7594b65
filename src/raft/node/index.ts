export { coalesceMessages } from "./coalesce.js";
export { CommitNoticeHold, commitNoticeDelayMs } from "./commit-notices.js";
export { decodeEntryEnvelope, decodeSnapshotEnvelope, encodeEntryEnvelope, encodeSnapshotEnvelope } from "./envelope.js";
export type { ProposalId, SnapshotBytes, SnapshotEnvelope } from "./envelope.js";
export { PendingReads, pendingReadsMax } from "./pending-reads.js";
