import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { Acl, filterCovers, filtersOverlap, topicMatches } from "../../lib/mqtt/acl.js";
import { ConfigError } from "../../lib/errors.js";
import { REPO_ROOT } from "../support/paths.js";

const as = (username: string | undefined, clientId = `${username ?? "anon"}-1`) => ({ username, clientId });

describe("Mosquitto's ACL syntax (lib/mqtt/acl.ts)", () => {
  it("reads users, access words, patterns with %u and %c, comments and topics with spaces", () => {
    const acl = Acl.parse(
      [
        "# a comment",
        "   # an indented comment",
        "topic read public/#",
        "",
        "user alice",
        "topic write a/b",
        "topic a/rw",
        "topic read  room one/temp  ",
        "topic deny a/b/secret",
        "topic readwrite a/#",
        "pattern write devices/%u/%c",
        "user bob smith",
        "topic read b/+",
        "pattern deny a/#",
      ].join("\r\n"),
      "test-acl",
    );
    assert.deepEqual([...acl.users.keys()], ["alice", "bob smith"]);
    assert.deepEqual(
      acl.anonymous.map((r) => [r.access, r.topic, r.source]),
      [["read", "public/#", "test-acl:3"]],
    );
    // Anonymous rules are for anonymous clients only.
    assert.equal(acl.checkSubscribe(as(undefined), "public/x").allowed, true);
    assert.equal(acl.checkSubscribe(as("carol"), "public/x").allowed, false);
    // No access word: readwrite. A topic keeps its inner spaces.
    assert.equal(acl.checkPublish(as("alice"), "a/rw").allowed, false, "pattern deny a/# applies to alice too");
    assert.equal(acl.checkSubscribe(as("alice"), "room one/temp").allowed, true);
    // Patterns apply to every user wherever they stand, with the client's own name and id.
    assert.equal(acl.checkPublish(as("carol", "c7"), "devices/carol/c7").allowed, true);
    assert.equal(acl.checkPublish(as("carol", "c7"), "devices/alice/c7").allowed, false);
    // A name or id holding a wildcard or a level separator never fills a pattern.
    assert.equal(acl.checkPublish(as("ev/il", "c7"), "devices/ev/il/c7").allowed, false);
    assert.equal(acl.checkPublish(as("carol", "+"), "devices/carol/+").allowed, false);
    const refusal = acl.checkPublish(as("bob smith"), "a/b");
    assert.equal(refusal.allowed, false);
    assert.equal(refusal.rule?.source, "test-acl:14");
    assert.equal(acl.checkSubscribe(as("bob smith"), "b/+").allowed, true);
    assert.equal(acl.checkSubscribe(as("bob smith"), "b/#").allowed, false);
  });

  it("lets a deny win over any grant, and over a subscription it overlaps at all", () => {
    const acl = Acl.parse("user u\ntopic readwrite x/#\ntopic deny x/secret\n");
    assert.equal(acl.checkPublish(as("u"), "x/open").allowed, true);
    assert.equal(acl.checkPublish(as("u"), "x/secret").allowed, false);
    assert.equal(acl.checkSubscribe(as("u"), "x/open").allowed, true);
    assert.equal(acl.checkSubscribe(as("u"), "x/+").allowed, false);
    assert.equal(acl.checkSubscribe(as("u"), "x/#").allowed, false);
  });

  it("refuses a line Mosquitto would refuse, naming it", () => {
    for (const [text, message] of [
      ["user u\ntopik read a", /acl:2: unknown keyword "topik"/],
      ["user", /acl:1: "user" without a name/],
      ["user u\ntopic read", /acl:2: "topic" without a topic/],
      ["topic read a/#/b", /acl:1: "#" must be the last level/],
      ["pattern write a/b+", /acl:1: a wildcard must be a whole level/],
    ] as const)
      assert.throws(
        () => Acl.parse(text),
        (e: unknown) => e instanceof ConfigError && message.test(e.message),
      );
  });

  it("merges users of two files: a user in both has the rules of both", () => {
    const acl = Acl.parse("user u\ntopic write a").merge(Acl.parse("user u\ntopic write b\nuser v\ntopic read c"));
    assert.equal(acl.checkPublish(as("u"), "a").allowed, true);
    assert.equal(acl.checkPublish(as("u"), "b").allowed, true);
    assert.equal(acl.checkSubscribe(as("v"), "c").allowed, true);
  });

  it("matches topics and filters as MQTT 3.1.1 does", () => {
    assert.equal(topicMatches("fan/#", "fan"), true);
    assert.equal(topicMatches("fan/+", "fan/messages/7"), false);
    assert.equal(topicMatches("#", "$SYS/broker"), false);
    assert.equal(filterCovers("fan/#", "fan/+/x"), true);
    assert.equal(filterCovers("fan/+", "fan/#"), false);
    assert.equal(filterCovers("fan/messages", "fan/+"), false);
    assert.equal(filterCovers("#", "$SYS/#"), false);
    assert.equal(filterCovers("$share/g/fan/messages", "$share/g/fan/messages"), true);
    assert.equal(filtersOverlap("fan/+", "+/anomaly"), true);
    assert.equal(filtersOverlap("fan/a", "fan/b"), false);
  });
});

describe("the shipped ACL, deploy/mosquitto/acl", () => {
  const acl = Acl.parse(readFileSync(`${REPO_ROOT}deploy/mosquitto/acl`, "utf8"), "deploy/mosquitto/acl");
  const users = [...acl.users.keys()];
  const writers = (topic: string) => users.filter((u) => acl.checkPublish(as(u), topic).allowed);

  it("parses, with a user for each part", () => {
    for (const user of ["connector", "predict", "health", "writer", "page", "simulator"])
      assert.ok(users.includes(user), `user ${user} in ${users.join(", ")}`);
  });

  it("lets only predict (and the connector, for sensor notices) publish predictions, and the replay of an operator", () => {
    assert.ok(writers("fan/anomaly").includes("predict"));
    for (const user of writers("fan/anomaly")) assert.ok(["predict", "connector", "replay"].includes(user), user);
  });

  it("lets only health publish health transitions", () => {
    assert.deepEqual(writers("fan/alarm"), ["health"]);
  });

  it("gives the simulator readings to publish and nothing to read, and the page nothing to publish", () => {
    assert.equal(acl.checkPublish(as("simulator"), "fan/messages").allowed, true);
    for (const topic of ["fan/anomaly", "fan/alarm", "fan/deadletter"])
      assert.equal(acl.checkPublish(as("simulator"), topic).allowed, false, topic);
    for (const filter of ["#", "fan/#", "fan/anomaly", "fan/messages"])
      assert.equal(acl.checkSubscribe(as("simulator"), filter).allowed, false, filter);
    for (const topic of ["fan/messages", "fan/anomaly", "fan/alarm", "fan/deadletter"])
      assert.equal(acl.checkPublish(as("page"), topic).allowed, false, topic);
  });

  it("lets nobody of the services read everything, and the connector read its readings as a shared subscription", () => {
    for (const user of users) assert.equal(acl.checkSubscribe(as(user), "#").allowed, false, user);
    assert.equal(acl.checkSubscribe(as("connector"), "$share/fanwatch/fan/anomaly").allowed, true);
    assert.equal(acl.checkSubscribe(as("health"), "fan/anomaly").allowed, false);
  });

  it("lets no anonymous client do anything", () => {
    assert.equal(acl.checkPublish(as(undefined), "fan/messages").allowed, false);
    assert.equal(acl.checkSubscribe(as(undefined), "fan/messages").allowed, false);
  });
});
