import assert from "node:assert/strict";
import { test } from "node:test";

import { PeerContacts } from "../../../src/manager/manager/peer-contact.js";
import { FakeClock } from "../../helpers/fake-clock.js";

test("a peer is heard within a window until the window passes since its last message", () => {
  const clock = new FakeClock();
  const contacts = new PeerContacts(clock);
  assert.equal(contacts.heardWithin(2, 800), false, "a peer never heard from counts as heard");
  contacts.heard(2);
  clock.advance(800);
  assert.equal(contacts.heardWithin(2, 800), true);
  clock.advance(1);
  assert.equal(contacts.heardWithin(2, 800), false);
  contacts.heard(2);
  assert.equal(contacts.heardWithin(2, 800), true);
  contacts.forget(2);
  assert.equal(contacts.heardWithin(2, 800), false);
});
