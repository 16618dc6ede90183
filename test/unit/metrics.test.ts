import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { evaluatePredictions, rocAuc } from "../../model/metrics.js";

describe("evaluatePredictions", () => {
  it("counts the confusion matrix of the fault class at the threshold", () => {
    const m = evaluatePredictions([1, 1, 1, 0, 0, 0, 0, 1], [0.9, 0.6, 0.2, 0.1, 0.7, 0.3, 0.5, 0.5], 0.5);
    assert.deepEqual(m.confusion, { truePositive: 3, falsePositive: 2, trueNegative: 2, falseNegative: 1 });
    assert.equal(m.rows, 8);
    assert.equal(m.accuracy, 5 / 8);
    assert.equal(m.precision, 3 / 5);
    assert.equal(m.recall, 3 / 4);
    assert.ok(Math.abs(m.f1 - (2 * 0.6 * 0.75) / 1.35) < 1e-12);
  });
});

describe("rocAuc", () => {
  it("is 1 for a perfect ranking, 0 for a reversed one, and counts ties as half", () => {
    assert.equal(rocAuc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]), 1);
    assert.equal(rocAuc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]), 0);
    assert.equal(rocAuc([0, 1], [0.5, 0.5]), 0.5);
    assert.equal(rocAuc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 0.75);
  });

  it("is undefined (null) with one class", () => {
    assert.equal(rocAuc([1, 1], [0.2, 0.3]), null);
  });
});
