import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { filtersOverlap, topicMatches } from "../../lib/mqtt/topic-filter.js";

describe("topic filters", () => {
  const cases: Array<[string, string, boolean]> = [
    ["fan/messages", "fan/messages", true],
    ["fan/messages", "fan/messages/x", false],
    ["fan/+", "fan/messages", true],
    ["fan/+", "fan/a/b", false],
    ["fan/+/temp", "fan/7/temp", true],
    ["fan/#", "fan", true],
    ["fan/#", "fan/a/b/c", true],
    ["#", "fan/a", true],
    ["#", "$SYS/broker/load", false],
    ["+/broker", "$SYS/broker", false],
    ["$share/g/fan/+", "fan/messages", true],
  ];
  for (const [filter, topic, expected] of cases) {
    it(`${filter} ${expected ? "matches" : "does not match"} ${topic}`, () =>
      assert.equal(topicMatches(filter, topic), expected));
  }
});

describe("topic filters that overlap (a subscription served by a route)", () => {
  const cases: Array<[string, string, boolean]> = [
    ["fan/messages", "fan/messages", true],
    ["fan/#", "fan/messages", true],
    ["fan/#", "fan", true],
    ["fan/+", "+/messages", true],
    ["fan/+", "fan/a/b", false],
    ["fan/messages", "fan/mesages", false],
    ["#", "$SYS/x", false],
    ["$share/g/fan/messages", "fan/+", true],
  ];
  for (const [a, b, expected] of cases) {
    it(`${a} ${expected ? "overlaps" : "does not overlap"} ${b}`, () => {
      assert.equal(filtersOverlap(a, b), expected);
      assert.equal(filtersOverlap(b, a), expected);
    });
  }
});
