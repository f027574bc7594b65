import assert from "node:assert/strict";
import { test } from "node:test";

import { AlreadyExistsError, ConflictError, InvalidArgumentError, NotFoundError, ResourceExhaustedError, UnavailableError } from "../../../src/common/errors.js";
import { decodeStoreSnapshot, type MemoryStore, restoreObjectsPerTurn, snapshotObjectsPerTurn, type StoreChange, type StoreEvent } from "../../../src/manager/store/index.js";
import { localStore, newNode, newService, newTask, withState } from "./fixtures.js";

test("a write commits with the next version and is visible to views", async () => {
  const store = localStore();
  const created = await store.update((tx) => tx.create("service", newService("s1", "web")));
  assert.equal(created.meta.version, 0, "inside the transaction the version is not known yet");
  const stored = store.view((tx) => tx.get("service", "s1"));
  assert.equal(stored?.meta.version, 1);
  assert.equal(store.version, 1);
  assert.ok(Object.isFrozen(stored) && Object.isFrozen(stored.spec.taskTemplate), "stored objects are frozen");
});

test("compare-and-swap: an update read at a stale version is refused with ConflictError", async () => {
  const store = localStore();
  await store.update((tx) => tx.create("service", newService("s1", "web")));
  const read = store.view((tx) => tx.get("service", "s1"));
  assert.ok(read !== undefined);
  await store.update((tx) => tx.update("service", { ...read, specVersion: 2 }));
  await assert.rejects(
    store.update((tx) => tx.update("service", { ...read, specVersion: 3 })),
    (error: unknown) => error instanceof ConflictError && /update out of sequence/.test(error.message),
  );
  assert.equal(store.view((tx) => tx.get("service", "s1"))?.specVersion, 2);
  assert.equal(store.version, 2, "the refused write did not move the version");
});

test("a failing callback changes nothing and emits nothing", async () => {
  const store = localStore();
  const events = store.watch();
  await assert.rejects(
    store.update((tx) => {
      tx.create("service", newService("s1", "web"));
      throw new InvalidArgumentError("no");
    }),
    InvalidArgumentError,
  );
  assert.equal(store.view((tx) => tx.find("service").length), 0);
  await store.update((tx) => tx.create("node", newNode("n1", "host1")));
  const first = await events.next();
  assert.equal(first.value?.type === "created" && first.value.kind, "node", "the first event is the later write's");
  await events.return?.();
});

test("duplicate ids and service names are refused", async () => {
  const store = localStore();
  await store.update((tx) => tx.create("service", newService("s1", "web")));
  await assert.rejects(store.update((tx) => tx.create("service", newService("s1", "other"))), AlreadyExistsError);
  await assert.rejects(store.update((tx) => tx.create("service", newService("s2", "web"))), AlreadyExistsError);
  await assert.rejects(store.update((tx) => tx.delete("service", "nope")), NotFoundError);
});

test("watch delivers object events then a commit per transaction, in commit order", async () => {
  const store = localStore();
  const events = store.watch();
  const service = await store.update((tx) => {
    const created = tx.create("service", newService("s1", "web"));
    tx.create("task", newTask("t1", created, 1));
    return created;
  });
  const task = store.view((tx) => tx.get("task", "t1"));
  assert.ok(task !== undefined);
  await store.update((tx) => tx.update("task", withState(task, "assigned")));
  await store.update((tx) => tx.delete("service", service.id));
  const seen: string[] = [];
  for (let index = 0; index < 7; index += 1) {
    const { value } = await events.next();
    assert.ok(value !== undefined);
    seen.push(value.type === "commit" || value.type === "restored" ? `${value.type}@${value.version}` : `${value.type} ${value.kind}@${value.version}`);
  }
  assert.deepEqual(seen, ["created service@1", "created task@1", "commit@1", "updated task@2", "commit@2", "deleted service@3", "commit@3"]);
  await events.return?.();
});

test("an updated event carries the previous object", async () => {
  const store = localStore();
  await store.update((tx) => tx.create("service", newService("s1", "web")));
  const task = await store.update((tx) => tx.create("task", newTask("t1", { id: "s1", spec: newService("s1", "web").spec }, 1)));
  const events = store.watch({ filter: (event) => event.type === "updated" });
  const stored = store.view((tx) => tx.get("task", task.id));
  assert.ok(stored !== undefined);
  await store.update((tx) => tx.update("task", withState(stored, "running")));
  const { value } = await events.next();
  assert.ok(value?.type === "updated" && value.kind === "task");
  assert.equal(value.previous.status.state, "pending");
  assert.equal(value.object.status.state, "running");
  await events.return?.();
});

test("watch ends cleanly on abort and on close", async () => {
  const store = localStore();
  const controller = new AbortController();
  const aborted = store.watch({ signal: controller.signal });
  const closed = store.watch();
  const pending = aborted.next();
  controller.abort();
  assert.deepEqual(await pending, { value: undefined, done: true });
  store.close();
  assert.deepEqual(await closed.next(), { value: undefined, done: true });
  await assert.rejects(store.update((tx) => tx.create("node", newNode("n1", "h"))), UnavailableError);
});

test("a watcher that falls behind its queue limit is closed with an error", async () => {
  const store = localStore({ watchQueueEventsMax: 5 });
  const slow = store.watch();
  for (let index = 0; index < 4; index += 1) await store.update((tx) => tx.create("node", newNode(`n${index}`, `h${index}`)));
  const received: StoreEvent[] = [];
  await assert.rejects(async () => {
    for await (const event of slow) received.push(event);
  }, ResourceExhaustedError);
  assert.equal(received.length, 5, "the queued events are delivered before the error");
});

test("batch commits many updates in several proposals and a failed callback leaves the rest", async () => {
  const proposals: number[] = [];
  const store = localStore({
    proposer: {
      propose: (changes) => {
        proposals.push(changes.length);
        const index = store.version + 1;
        store.applyCommitted(changes, index);
        return Promise.resolve(index);
      },
    },
  });
  const service = newService("s1", "web", 450);
  await store.update((tx) => tx.create("service", service));
  const failures: unknown[] = [];
  await store.batch(async (batch) => {
    for (let slot = 1; slot <= 450; slot += 1) {
      try {
        await batch.update((tx) => {
          tx.create("task", newTask(`t${slot}`, service, slot));
          if (slot === 7) throw new InvalidArgumentError("slot 7 fails");
        });
      } catch (error) {
        failures.push(error);
      }
    }
  });
  assert.equal(failures.length, 1);
  const tasks = store.view((tx) => tx.find("task", { by: "serviceId", serviceId: "s1" }));
  assert.equal(tasks.length, 449);
  assert.equal(tasks.find((task) => task.id === "t7"), undefined);
  assert.deepEqual(proposals, [1, 200, 200, 49], "the batch flushes every 200 changes");
});

test("indexes find tasks by service, node, desired state and slot, and follow updates", async () => {
  const store = localStore();
  const a = newService("sa", "alpha");
  const b = newService("sb", "beta");
  await store.update((tx) => {
    tx.create("service", a);
    tx.create("service", b);
    tx.create("task", { ...newTask("t1", a, 1), nodeId: "n1" });
    tx.create("task", { ...newTask("t2", a, 2), nodeId: "n2" });
    tx.create("task", { ...newTask("t3", b, 1), nodeId: "n1", desiredState: "shutdown" });
  });
  const ids = (tasks: { id: string }[]): string[] => tasks.map((task) => task.id).sort();
  store.view((tx) => {
    assert.deepEqual(ids(tx.find("task", { by: "serviceId", serviceId: "sa" })), ["t1", "t2"]);
    assert.deepEqual(ids(tx.find("task", { by: "nodeId", nodeId: "n1" })), ["t1", "t3"]);
    assert.deepEqual(ids(tx.find("task", { by: "desiredState", state: "shutdown" })), ["t3"]);
    assert.deepEqual(ids(tx.find("task", { by: "slot", serviceId: "sa", slot: 2 })), ["t2"]);
    assert.deepEqual(ids(tx.find("service", { by: "name", name: "beta" })), ["sb"]);
  });
  const t1 = store.view((tx) => tx.get("task", "t1"));
  assert.ok(t1 !== undefined);
  await store.update((tx) => {
    tx.update("task", { ...t1, nodeId: "n2" });
    assert.deepEqual(ids(tx.find("task", { by: "nodeId", nodeId: "n2" })), ["t1", "t2"], "a write transaction reads its own changes");
  });
  assert.deepEqual(ids(store.view((tx) => tx.find("task", { by: "nodeId", nodeId: "n1" }))), ["t3"]);
});

test("lookup resolves ids, names and unique id prefixes", async () => {
  const store = localStore();
  await store.update((tx) => {
    tx.create("service", newService("abc123", "web"));
    tx.create("service", newService("abd456", "db"));
  });
  store.view((tx) => {
    assert.equal(tx.lookup("service", "abc123").spec.name, "web");
    assert.equal(tx.lookup("service", "db").id, "abd456");
    assert.equal(tx.lookup("service", "abc").id, "abc123");
    assert.throws(() => tx.lookup("service", "ab"), /ambiguous/);
    assert.throws(() => tx.lookup("service", "zzz"), NotFoundError);
  });
});

test("task state only moves forward: a backward write fails an assertion and changes nothing", async () => {
  const store = localStore();
  const service = newService("s1", "web");
  await store.update((tx) => {
    tx.create("service", service);
    tx.create("task", newTask("t1", service, 1, "running"));
  });
  const task = store.view((tx) => tx.get("task", "t1"));
  assert.ok(task !== undefined);
  await assert.rejects(
    store.update((tx) => tx.update("task", withState(task, "pending"))),
    (error: unknown) => error instanceof assert.AssertionError && /back to pending/.test(error.message),
  );
  await assert.rejects(store.update((tx) => tx.update("task", { ...task, desiredState: "new" })), assert.AssertionError);
  assert.equal(store.view((tx) => tx.get("task", "t1"))?.status.state, "running");
});

test("snapshot and restore round-trip the whole state and its indexes", async () => {
  const store = localStore();
  const service = newService("s1", "web", 3);
  await store.update((tx) => {
    tx.create("service", service);
    tx.create("node", newNode("n1", "host1"));
    for (let slot = 1; slot <= 3; slot += 1) tx.create("task", { ...newTask(`t${slot}`, service, slot), nodeId: "n1" });
  });
  await store.update((tx) => tx.delete("task", "t3"));
  const data = Buffer.concat(await store.snapshot());
  const copy = localStore();
  const events = copy.watch();
  await copy.restore(data);
  assert.equal(copy.version, store.version);
  assert.deepEqual(
    copy.view((tx) => [tx.find("service"), tx.find("node"), tx.find("task", { by: "nodeId", nodeId: "n1" }).map((task) => task.id).sort()]),
    store.view((tx) => [tx.find("service"), tx.find("node"), tx.find("task", { by: "nodeId", nodeId: "n1" }).map((task) => task.id).sort()]),
  );
  assert.deepEqual((await events.next()).value, { type: "restored", version: store.version });
  await events.return?.();
  await assert.rejects(copy.restore(Buffer.from("{not json")), InvalidArgumentError);
  await assert.rejects(
    copy.restore(Buffer.from(Buffer.from(data).toString("utf8").replace('"state":"ready"', '"state":"sleepy"'))),
    /nodes\[0\]\.status\.state/,
  );
  assert.equal(copy.view((tx) => tx.find("task").length), 2, "a refused snapshot changes nothing");
});

test("a proposer failure leaves the store unchanged", async () => {
  const store = localStore({ proposer: { propose: () => Promise.reject(new UnavailableError("not the leader")) } });
  const events = store.watch({ filter: (event) => event.type !== "commit" });
  await assert.rejects(store.update((tx) => tx.create("service", newService("s1", "web"))), UnavailableError);
  assert.equal(store.version, 0);
  assert.equal(store.view((tx) => tx.find("service").length), 0);
  store.close();
  assert.deepEqual(await events.next(), { value: undefined, done: true }, "no event was emitted");
});

test("with a proposer, writes apply through applyCommitted, which may run after propose resolves", async () => {
  const committed: { changes: readonly StoreChange[]; index: number }[] = [];
  let raftIndex = 10;
  const store = localStore({
    proposer: {
      propose: (changes) => {
        raftIndex += 2;
        committed.push({ changes, index: raftIndex });
        return Promise.resolve(raftIndex);
      },
    },
  });
  const writing = store.update((tx) => tx.create("service", newService("s1", "web")));
  await new Promise<void>((resolve) => setImmediate(resolve));
  assert.equal(store.version, 0, "nothing applies before the driver applies the entry");
  const [entry] = committed;
  assert.ok(entry !== undefined);
  store.applyCommitted(entry.changes, entry.index);
  await writing;
  assert.equal(store.view((tx) => tx.get("service", "s1"))?.meta.version, 12);
});

test("a committed batch that lost a race is refused identically and its writer gets ConflictError", async () => {
  const pending: { changes: readonly StoreChange[]; resolve: (index: number) => void }[] = [];
  const leader = localStore({ proposer: { propose: (changes) => new Promise((resolve) => pending.push({ changes, resolve })) } });
  const follower = localStore();
  const create: StoreChange[] = [{ action: "create", kind: "service", object: { ...newService("s1", "web"), meta: { version: 0, createdAt: 1, updatedAt: 1 } } }];
  leader.applyCommitted(create, 1);
  follower.applyCommitted(create, 1);
  const read = leader.view((tx) => tx.get("service", "s1"));
  assert.ok(read !== undefined);
  const writing = leader.update((tx) => tx.update("service", { ...read, specVersion: 5 }));
  await new Promise<void>((resolve) => setImmediate(resolve));
  const [mine] = pending;
  assert.ok(mine !== undefined);
  // An entry from an earlier leader that touched the same service commits first.
  const earlier: StoreChange[] = [{ action: "update", kind: "service", object: { ...read, specVersion: 4 } }];
  for (const store of [leader, follower]) {
    store.applyCommitted(earlier, 2);
    store.applyCommitted(mine.changes, 3);
  }
  mine.resolve(3);
  await assert.rejects(writing, ConflictError);
  for (const store of [leader, follower]) {
    assert.equal(store.view((tx) => tx.get("service", "s1"))?.specVersion, 4);
    assert.equal(store.version, 3);
  }
});

test("applyCommitted asserts that versions only grow", () => {
  const store = localStore();
  store.applyCommitted([], 5);
  assert.throws(() => store.applyCommitted([], 5), assert.AssertionError);
});

test("a watch filter that throws ends only its own watch", async () => {
  const store = localStore();
  const broken = store.watch({
    filter: () => {
      throw new Error("filter bug");
    },
  });
  const healthy = store.watch();
  await store.update((tx) => tx.create("node", newNode("n1", "h1")));
  await assert.rejects(broken.next(), /filter bug/);
  assert.equal((await healthy.next()).value?.type, "created");
  assert.equal(store.view((tx) => tx.find("node").length), 1);
  await healthy.return?.();
});

test("viewAndWatch reads a state and then sees every later change", async () => {
  const store = localStore();
  await store.update((tx) => tx.create("node", newNode("n1", "h1")));
  const { result, events } = store.viewAndWatch((tx) => tx.find("node").map((node) => node.id));
  assert.deepEqual(result, ["n1"]);
  await store.update((tx) => tx.create("node", newNode("n2", "h2")));
  const { value } = await events.next();
  assert.ok(value?.type === "created" && value.kind === "node");
  assert.equal(value.object.id, "n2");
  await events.return?.();
});

test("restore refuses a snapshot with two services of one name", async () => {
  const store = localStore();
  await store.update((tx) => {
    tx.create("service", newService("s1", "web"));
    tx.create("service", newService("s2", "api"));
  });
  const tampered = Buffer.from(Buffer.concat(await store.snapshot()).toString("utf8").replace('"name":"api"', '"name":"web"'));
  await assert.rejects(localStore().restore(tampered), /two services named "web"/);
});

/** A store holding one service and `tasks` of its tasks. */
async function storeWithTasks(tasks: number): Promise<{ store: MemoryStore; service: ReturnType<typeof newService> }> {
  const store = localStore();
  const service = newService("s1", "web");
  await store.update((tx) => tx.create("service", service));
  for (let first = 1; first <= tasks; first += 128) {
    await store.update((tx) => {
      for (let slot = first; slot < first + 128 && slot <= tasks; slot += 1) tx.create("task", newTask(`t${slot}`, service, slot));
    });
  }
  return { store, service };
}

test("a snapshot holds the state at the call and is encoded over several turns of the event loop", async () => {
  const tasks = 3 * snapshotObjectsPerTurn;
  const { store, service } = await storeWithTasks(tasks);
  const version = store.version;
  let turns = 0;
  let done = false;
  const countTurns = (): void => {
    turns += 1;
    if (!done) setImmediate(countTurns);
  };
  const pending = store.snapshot().finally(() => {
    done = true;
  });
  setImmediate(countTurns);
  // Written while the snapshot is being encoded: none of it may show in the snapshot.
  await store.update((tx) => {
    tx.delete("task", "t1");
    tx.create("task", newTask("late", service, tasks + 1));
  });
  const content = decodeStoreSnapshot(Buffer.concat(await pending));
  assert.ok(turns >= 2, `the snapshot took ${turns} turns of the event loop`);
  assert.equal(content.version, version);
  assert.equal(content.tasks.length, tasks);
  assert.ok(content.tasks.some((task) => task.id === "t1") && !content.tasks.some((task) => task.id === "late"));
});

test("a restore loads over several turns of the event loop, and readers see the old state until it ends", async () => {
  const tasks = 3 * restoreObjectsPerTurn;
  const { store: source } = await storeWithTasks(tasks);
  const data = Buffer.concat(await source.snapshot());
  const target = localStore();
  await target.update((tx) => tx.create("node", newNode("n1", "host1")));
  const seenDuring: number[] = [];
  let done = false;
  const look = (): void => {
    if (done) return;
    seenDuring.push(target.view((tx) => tx.find("task").length + tx.find("node").length));
    setImmediate(look);
  };
  setImmediate(look);
  await target.restore(data);
  done = true;
  assert.ok(seenDuring.length >= 2, `the restore took ${seenDuring.length} turns of the event loop`);
  assert.ok(seenDuring.every((count) => count === 1), "a reader saw a partly restored store");
  assert.equal(target.version, source.version);
  assert.equal(target.view((tx) => tx.find("task").length), tasks);
  assert.equal(target.view((tx) => tx.get("node", "n1")), undefined);
});
