import assert from "node:assert/strict";
import { test } from "node:test";

import { pino } from "pino";

import { OverlayPlane, overlayBridgeMac, type OverlayAttachment, type OverlayState } from "../../../src/worker/network/index.js";
import { waitFor } from "../../helpers/wait.js";
import { dataPlaneSkipReason, linkNodes, namespaces, pings, sh } from "./netns.js";

const skip = dataPlaneSkipReason() ?? false;
const logger = pino({ level: "silent" });
const web = { vni: 4_097, subnet: "10.240.1.0/24" };
const other = { vni: 4_098, subnet: "10.240.2.0/24" };

function attachment(key: string, containerNetns: string, vni: number, address: string): OverlayAttachment {
  return { key, containerNetns, vni, address, interfaceName: "eth1" };
}

test("two nodes' containers reach each other over a VXLAN overlay; another overlay is isolated; changes apply incrementally", { skip, timeout: 60_000 }, async (t) => {
  const { names, remove } = await namespaces("shoal-ovl", ["n1", "n2", "c1", "c2", "c3"]);
  const [n1, n2, c1, c2, c3] = ["n1", "n2", "c1", "c2", "c3"].map((name) => names[name] ?? assert.fail(name));
  assert.ok(n1 !== undefined && n2 !== undefined && c1 !== undefined && c2 !== undefined && c3 !== undefined);
  const plane1 = new OverlayPlane({ logger, hostNetns: n1 });
  const plane2 = new OverlayPlane({ logger, hostNetns: n2 });
  t.after(async () => {
    try {
      await plane1.close();
      await plane2.close();
    } finally {
      await remove();
    }
  });
  await linkNodes(n1, n2, { left: "192.168.251.1", right: "192.168.251.2" });
  // Node 1 does not know node 2 yet: its floods go nowhere.
  const state1: OverlayState = { localAddress: "192.168.251.1", peers: [], networks: [web] };
  await plane1.apply(state1, [attachment("c1/web", c1, web.vni, "10.240.1.2/24")]);
  // c3 sits on another overlay with an address from web's subnet: only the VNI separates it.
  const state2: OverlayState = { localAddress: "192.168.251.2", peers: ["192.168.251.1", "192.168.251.2"], networks: [web, other] };
  await plane2.apply(state2, [attachment("c2/web", c2, web.vni, "10.240.1.3/24"), attachment("c3/other", c3, other.vni, "10.240.1.4/24")]);
  assert.match(await sh(`ip -n ${c1} -o addr show dev eth1`), /inet 10\.240\.1\.2\/24/u);
  assert.match(await sh(`ip -n ${n2} -d link show shov-4097`), /vxlan id 4097 local 192\.168\.251\.2 .*dstport 4789/u);
  assert.equal(await pings(c1, "10.240.1.3"), false, "without a peer entry node 1 cannot flood the ARP request to node 2");

  await plane1.apply({ ...state1, peers: ["192.168.251.2"] }, [attachment("c1/web", c1, web.vni, "10.240.1.2/24")]);
  assert.match(await sh(`bridge -n ${n1} fdb show dev shov-4097`), /00:00:00:00:00:00 dst 192\.168\.251\.2/u);
  await waitFor("c1 reaches c2 across the overlay", async () => (await pings(c1, "10.240.1.3")) || undefined, { timeoutMs: 10_000 });
  assert.equal(await pings(c1, "10.240.1.4"), false, "a container on another overlay network is unreachable");
  assert.equal(await pings(c3, "10.240.1.2"), false, "and it cannot reach in either");

  // c2's task goes away: its interface goes, the rest stays. The bridge keeps its own MAC
  // (tasks cache it for the node's address) instead of taking another port's.
  const bridgeMac = overlayBridgeMac(web.vni, "192.168.251.2");
  assert.notEqual(bridgeMac, overlayBridgeMac(web.vni, "192.168.251.1"), "each node's bridge on one overlay has its own MAC");
  assert.match(await sh(`ip -n ${n2} -o link show shob-4097`), new RegExp(`link/ether ${bridgeMac} `, "u"));
  await plane2.apply(state2, [attachment("c3/other", c3, other.vni, "10.240.1.4/24")]);
  assert.match(await sh(`ip -n ${n2} -o link show shob-4097`), new RegExp(`link/ether ${bridgeMac} `, "u"), "the bridge's MAC outlives its ports");
  assert.equal((await sh(`ip -n ${c2} -o link show`)).includes("eth1"), false);
  assert.equal(await pings(c1, "10.240.1.3"), false);
  // The other network goes: its devices go.
  await plane2.apply({ ...state2, networks: [web] }, []);
  assert.equal((await sh(`ip -n ${n2} -o link show`)).includes("shov-4098"), false);
});
