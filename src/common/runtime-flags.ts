/**
 * Node and V8 flags for shoal's long-running processes: shoald, and the raft bench's
 * kv-node, which stands in for a manager. shoald's shebang carries the same list (a test
 * keeps the two equal), because these must be on the command line: set from inside the
 * process, they would come after V8 has already sized its heap.
 *
 * --max-semi-space-size=2 (MiB): V8 otherwise lets the young generation grow to 16 MiB
 * per semi-space, and a raft leader then paused about 1 ms for each scavenge, ten times a
 * second at one proposal at a time, copying everything allocated since the last one that
 * was still alive. With 2 MiB it scavenges four times as often, each pause about 0.3 ms,
 * for the same total, and the old generation needed fewer full collections. Each pause
 * delays whatever put is in flight: with bench/raft's kv-node at one client, the puts
 * slower than 1.5 ms in the 19,000 after a 5,000-put warm-up went from 196 to 93.
 *
 * --min-semi-space-size=2 (MiB): after about five seconds of little allocation (an idle
 * manager) V8 halves the semi-spaces at the next scavenge, and they grow back only once
 * the survivors since the last growth exceed their size: hundreds of proposals, at the
 * 24 KB or so that survive each of the leader's scavenges (--trace-gc-nvp). Meanwhile
 * the leader scavenged twice as often: 11-12 pauses per 250 puts in the first 750 after
 * 8 s idle, against 5-6 later. Followers, whose survivors never grow them back, stayed
 * at half size and scavenged 4-5 times per 250 puts, against 2-3 with this flag.
 * Measured per member from V8's gc events.
 */
export const daemonNodeFlags: readonly string[] = ["--min-semi-space-size=2", "--max-semi-space-size=2"];
