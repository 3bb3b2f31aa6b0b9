import { describe, expect, it } from "vitest";
import { headToHead } from "../src/ml/evaluation.ts";
import { decideActivation, type ActiveVersion } from "../src/service/activation-decision.ts";

/** Every branch of the activation decision, and the head-to-head count it reads. */
const evaluation = (accuracy: number) => ({ accuracy, brier: 0.5, ece: 0.05, samples: 100, method: "stratified 5-fold cross-validation" });
const v1: ActiveVersion = { version: "v1", training_accuracy: 0.6 };

describe("decideActivation", () => {
  const cases: { name: string; active: ActiveVersion; result: Parameters<typeof decideActivation>[1]; activate: boolean; reason: RegExp }[] = [
    {
      name: "first population model that beats the prior",
      active: null,
      result: { evaluation: evaluation(0.55), baseline: { name: "circadian prior", accuracy: 0.5, users: 3 } },
      activate: true,
      reason: /first population model: held-out accuracy 55\.0% against 50\.0% for the circadian prior/,
    },
    {
      name: "first population model worse than the prior",
      active: null,
      result: { evaluation: evaluation(0.45), baseline: { name: "circadian prior", accuracy: 0.5, users: 3 } },
      activate: false,
      reason: /the prior keeps answering$/,
    },
    {
      name: "any other first version goes live (no baseline to beat)",
      active: null,
      result: { evaluation: evaluation(0.4) },
      activate: true,
      reason: /^first population model \(held-out accuracy 40\.0%/,
    },
    {
      name: "head to head won (a tie goes to the new version)",
      active: v1,
      result: { evaluation: evaluation(0.1), comparison: { samples: 10, candidateAccuracy: 0.7, activeAccuracy: 0.7 } },
      activate: true,
      reason: /^on the 10 most recent samples, which v1 never saw, the new version scored 70\.0% against 70\.0%$/,
    },
    {
      name: "head to head lost, whatever the held-out score",
      active: v1,
      result: { evaluation: evaluation(0.99), comparison: { samples: 10, candidateAccuracy: 0.6, activeAccuracy: 0.7 } },
      activate: false,
      reason: /; v1 stays active$/,
    },
    {
      name: "too few new rows: the held-out scores decide",
      active: v1,
      result: { evaluation: evaluation(0.65), comparison: { samples: 9, candidateAccuracy: 0, activeAccuracy: 1 } },
      activate: true,
      reason: /scored 65\.0% against 60\.0% for v1 \(only 9 new samples, too few for a head-to-head test\)$/,
    },
    {
      name: "no new rows, lower held-out score",
      active: v1,
      result: { evaluation: evaluation(0.55) },
      activate: false,
      reason: /against 60\.0% for v1; v1 stays active$/,
    },
    {
      name: "an active version with no stored score counts as 0",
      active: { version: "v3", training_accuracy: null },
      result: { evaluation: evaluation(0.2) },
      activate: true,
      reason: /against 0\.0% for v3$/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const decision = decideActivation(c.active, c.result, "population", 10);
      expect(decision.activate).toBe(c.activate);
      expect(decision.reason).toMatch(c.reason);
    });
  }
});

describe("headToHead", () => {
  it("counts each side's hits on the same rows, and asks the active version only for those", () => {
    let asked = 0;
    const active = (p: number[]) => () => {
      asked++;
      return p;
    };
    const result = headToHead([
      { label: 0, candidate: [0.6, 0.3, 0.1], active: active([0.1, 0.8, 0.1]) },
      { label: 2, candidate: [0.1, 0.2, 0.7], active: active([0.1, 0.2, 0.7]) },
      { label: 1, candidate: [0.5, 0.4, 0.1], active: active([0.2, 0.5, 0.3]) },
    ]);
    expect(result).toEqual({ samples: 3, candidateAccuracy: 2 / 3, activeAccuracy: 2 / 3 });
    expect(asked).toBe(3);
    expect(headToHead([])).toBeUndefined();
  });
});
