import assert from "node:assert/strict";
import { test } from "node:test";

import { InvalidArgumentError } from "../../../src/common/errors.js";
import { familiarReference, formatReference, parseChallenge, parseReference } from "../../../src/engine/registry/index.js";

const digest = `sha256:${"b".repeat(64)}`;

test("references normalise like docker's", () => {
  const cases: [string, string][] = [
    ["busybox", "docker.io/library/busybox:latest"],
    ["library/busybox:1.36", "docker.io/library/busybox:1.36"],
    ["docker.io/busybox", "docker.io/library/busybox:latest"],
    ["index.docker.io/team/app:v2", "docker.io/team/app:v2"],
    ["team/app", "docker.io/team/app:latest"],
    ["localhost/app", "localhost/app:latest"],
    ["127.0.0.1:5000/a/b/c:tag", "127.0.0.1:5000/a/b/c:tag"],
    ["registry.example.com:443/app", "registry.example.com:443/app:latest"],
    [`busybox@${digest}`, `docker.io/library/busybox@${digest}`],
    [`host:5000/app:1@${digest}`, `host:5000/app:1@${digest}`],
  ];
  for (const [input, expected] of cases) assert.equal(formatReference(parseReference(input)), expected, input);
  assert.equal(familiarReference(parseReference("busybox")), "busybox:latest");
  assert.equal(familiarReference(parseReference("team/app:1")), "team/app:1");
  assert.equal(familiarReference(parseReference("127.0.0.1:5000/app")), "127.0.0.1:5000/app:latest");
});

test("bad references are refused with a message naming the bad part", () => {
  const cases: [string, RegExp][] = [
    ["", /1 to/u],
    ["UPPER/case", /repository component "UPPER"/u],
    ["app:-bad", /tag "-bad"/u],
    ["app@sha256:123", /not a sha256 digest/u],
    ["a//b", /repository component ""/u],
    ["bad_host:99999999/app", /repository component|registry host/u],
  ];
  for (const [input, message] of cases) assert.throws(() => parseReference(input), (error: unknown) => error instanceof InvalidArgumentError && message.test(error.message), input);
});

test("WWW-Authenticate challenges parse", () => {
  const bearer = parseChallenge('Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull"');
  assert.equal(bearer?.scheme, "bearer");
  assert.equal(bearer?.params.get("realm"), "https://auth.example.com/token");
  assert.equal(bearer?.params.get("scope"), "repository:a/b:pull");
  assert.equal(parseChallenge('Basic realm="Registry Realm"')?.scheme, "basic");
  assert.equal(parseChallenge("Negotiate abc"), undefined);
});
