import type { EvaluationMetrics } from "../lib/inference/metadata.js";

/** Classification metrics for the fault class (label 1) at `threshold`. */
export function evaluatePredictions(
  labels: ArrayLike<number>,
  probabilities: ArrayLike<number>,
  threshold: number,
): EvaluationMetrics {
  if (labels.length !== probabilities.length) throw new Error("labels and probabilities differ in length");
  let tp = 0,
    fp = 0,
    tn = 0,
    fn = 0;
  for (let i = 0; i < labels.length; i++) {
    const predicted = (probabilities[i] as number) >= threshold;
    const actual = labels[i] === 1;
    if (predicted && actual) tp++;
    else if (predicted) fp++;
    else if (actual) fn++;
    else tn++;
  }
  const ratio = (a: number, b: number) => (b === 0 ? 0 : a / b);
  const precision = ratio(tp, tp + fp);
  const recall = ratio(tp, tp + fn);
  return {
    rows: labels.length,
    accuracy: ratio(tp + tn, labels.length),
    precision,
    recall,
    f1: ratio(2 * precision * recall, precision + recall),
    rocAuc: rocAuc(labels, probabilities),
    confusion: { truePositive: tp, falsePositive: fp, trueNegative: tn, falseNegative: fn },
  };
}

/**
 * Area under the ROC curve as the Mann–Whitney statistic: the chance that a random faulty reading
 * scores above a random healthy one, ties counting half.
 */
export function rocAuc(labels: ArrayLike<number>, scores: ArrayLike<number>): number | null {
  const order = Array.from({ length: labels.length }, (_, i) => i).sort(
    (a, b) => (scores[a] as number) - (scores[b] as number),
  );
  let positives = 0;
  let rankSum = 0;
  for (let start = 0; start < order.length;) {
    let end = start;
    while (end + 1 < order.length && scores[order[end + 1] as number] === scores[order[start] as number]) end++;
    const averageRank = (start + end) / 2 + 1;
    for (let k = start; k <= end; k++) {
      if (labels[order[k] as number] === 1) {
        positives++;
        rankSum += averageRank;
      }
    }
    start = end + 1;
  }
  const negatives = order.length - positives;
  if (positives === 0 || negatives === 0) return null; // undefined with one class only
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}
