// A linearizability checker for a key-value register history, after Wing & Gong with
// Lowe's memoization (the algorithm Porcupine implements). Histories are split per key
// (a put/get register is P-compositional), and each key is searched on its own.

export interface Operation {
  readonly client: number;
  readonly kind: "put" | "get";
  readonly key: string;
  /** For a put: the value written. For a get: the value read (null: the key was absent). */
  readonly value: string | null;
  readonly invokedAt: number;
  /**
   * When the client saw the answer. Null for a put whose outcome is unknown (timed out,
   * node crashed): it may take effect at any time after invocation, or never. Gets without
   * an answer are not part of the history.
   */
  readonly returnedAt: number | null;
}

interface Event {
  readonly kind: "call" | "return";
  readonly operation: number;
  readonly time: number;
  prev: Event | null;
  next: Event | null;
  match: Event | null;
}

export interface LinearizabilityResult {
  readonly ok: boolean;
  /** The first key whose history has no linearization. */
  readonly key?: string;
}

/** Caches (linearized set, state) pairs per key; beyond this the search gives up loudly. */
export const linearizabilityCacheEntriesMax = 2_000_000;

export function checkLinearizable(history: readonly Operation[]): LinearizabilityResult {
  const byKey = new Map<string, Operation[]>();
  for (const operation of history) {
    if (operation.kind === "get" && operation.returnedAt === null) continue;
    const list = byKey.get(operation.key) ?? [];
    list.push(operation);
    byKey.set(operation.key, list);
  }
  for (const [key, operations] of [...byKey].sort(([a], [b]) => a.localeCompare(b))) {
    if (!checkRegister(operations)) return { ok: false, key };
  }
  return { ok: true };
}

function buildEvents(operations: readonly Operation[]): Event | null {
  const events: Event[] = [];
  operations.forEach((operation, index) => {
    const call: Event = { kind: "call", operation: index, time: operation.invokedAt, prev: null, next: null, match: null };
    const returned: Event = {
      kind: "return",
      operation: index,
      time: operation.returnedAt ?? Infinity,
      prev: null,
      next: null,
      match: call,
    };
    call.match = returned;
    events.push(call, returned);
  });
  // At equal times calls sort first: two operations that touch at an instant overlap.
  events.sort((a, b) => a.time - b.time || (a.kind === b.kind ? 0 : a.kind === "call" ? -1 : 1));
  const head: Event = { kind: "call", operation: -1, time: -Infinity, prev: null, next: null, match: null };
  let previous = head;
  for (const event of events) {
    previous.next = event;
    event.prev = previous;
    previous = event;
  }
  return head;
}

function lift(call: Event): void {
  const returned = call.match;
  if (call.prev !== null) call.prev.next = call.next;
  if (call.next !== null) call.next.prev = call.prev;
  if (returned === null) return;
  if (returned.prev !== null) returned.prev.next = returned.next;
  if (returned.next !== null) returned.next.prev = returned.prev;
}

function unlift(call: Event): void {
  const returned = call.match;
  if (returned !== null) {
    if (returned.prev !== null) returned.prev.next = returned;
    if (returned.next !== null) returned.next.prev = returned;
  }
  if (call.prev !== null) call.prev.next = call;
  if (call.next !== null) call.next.prev = call;
}

/** The register's step function: whether `operation` may run on `state`, and the new state. */
function stepRegister(state: string | null, operation: Operation): { ok: boolean; state: string | null } {
  if (operation.kind === "put") return { ok: true, state: operation.value };
  return { ok: operation.value === state, state };
}

function checkRegister(operations: readonly Operation[]): boolean {
  const head = buildEvents(operations);
  if (head === null) return true;
  const stack: { call: Event; state: string | null }[] = [];
  const cache = new Set<string>();
  let linearized = 0n;
  let state: string | null = null;
  let event = head.next;
  while (event !== null) {
    if (event.kind === "return") {
      // Every operation still in the list at an infinite return is a put that may never
      // have happened: everything that did return was linearized.
      if (event.time === Infinity) return true;
      const top = stack.pop();
      if (top === undefined) return false;
      state = top.state;
      linearized &= ~(1n << BigInt(top.call.operation));
      unlift(top.call);
      event = top.call.next;
      continue;
    }
    const operation = operations[event.operation];
    if (operation === undefined) throw new Error("event without operation");
    const result = stepRegister(state, operation);
    const nextLinearized = linearized | (1n << BigInt(event.operation));
    const cacheKey = `${nextLinearized.toString(36)}|${result.state ?? "\u0000"}`;
    if (result.ok && !cache.has(cacheKey)) {
      if (cache.size >= linearizabilityCacheEntriesMax) throw new Error("linearizability search exceeded its cache limit");
      cache.add(cacheKey);
      stack.push({ call: event, state });
      state = result.state;
      linearized = nextLinearized;
      lift(event);
      event = head.next;
    } else {
      event = event.next;
    }
  }
  return true;
}
