import { describe, expect, it } from "vitest";
import { ENERGY_LABELS } from "../src/domain.ts";
import { argmax, score, stratifiedFolds, seededRandom } from "../src/ml/evaluation.ts";
import { energyFeatureRow, isValidTimeZone, localHourAndWeekday } from "../src/ml/features.ts";
import { ForestFormatError } from "../src/ml/forest.ts";
import { mlRandomForest } from "../src/ml/ml-random-forest.ts";
import { forestAlgorithm } from "../src/ml/algorithms.ts";
import { energyProbabilities, syntheticSamples, syntheticUsers } from "../src/ml/synthetic.ts";
import { trainModel } from "../src/ml/train-model.ts";
import runTrainJob from "../src/ml/train-worker.ts";
import { clearPatternUser } from "./support/fixtures.ts";

function dataset(count: number, seed: number, user = clearPatternUser()) {
  const samples = syntheticSamples(user, count, seed);
  return {
    rows: samples.map((s) => energyFeatureRow(s.features)),
    labels: samples.map((s) => ENERGY_LABELS.indexOf(s.energy)),
  };
}

function accuracy(predict: (row: number[]) => number[], data: { rows: number[][]; labels: number[] }): number {
  return data.rows.filter((row, i) => argmax(predict(row)) === data.labels[i]).length / data.rows.length;
}

describe("features", () => {
  it("puts missing sleep quality in as NaN, not zero", () => {
    const row = energyFeatureRow({ hour_of_day: 9, day_of_week: 2, tasks_completed_today: 1, avg_energy_last_7_days: 2, sleep_quality: null });
    expect(row.slice(0, 4)).toEqual([9, 2, 1, 2]);
    expect(Number.isNaN(row[4])).toBe(true);
  });

  it("reads local hour and weekday (0 = Monday) across zones and DST", () => {
    const monday0830utc = Date.UTC(2026, 10, 23, 8, 30);
    expect(localHourAndWeekday(monday0830utc, "UTC")).toEqual({ hour: 8, weekday: 0 });
    expect(localHourAndWeekday(monday0830utc, "America/Los_Angeles")).toEqual({ hour: 0, weekday: 0 });
    expect(localHourAndWeekday(monday0830utc, "Pacific/Kiritimati")).toEqual({ hour: 22, weekday: 0 });
    expect(localHourAndWeekday(Date.UTC(2026, 10, 22, 23, 0), "Europe/Berlin")).toEqual({ hour: 0, weekday: 0 });
    // Summer time in Berlin is UTC+2.
    expect(localHourAndWeekday(Date.UTC(2026, 6, 5, 10, 0), "Europe/Berlin")).toEqual({ hour: 12, weekday: 6 });
    expect(isValidTimeZone("Asia/Kolkata")).toBe(true);
    expect(isValidTimeZone("Not/AZone")).toBe(false);
  });
});

describe("evaluation", () => {
  it("spreads every class evenly over the folds, reproducibly", () => {
    const labels = [...new Array(23).fill(0), ...new Array(9).fill(1), ...new Array(3).fill(2)];
    const folds = stratifiedFolds(labels, 5, 42);
    expect(folds).toEqual(stratifiedFolds(labels, 5, 42));
    expect(folds).not.toEqual(stratifiedFolds(labels, 5, 43));
    for (let f = 0; f < 5; f++) {
      const zeros = labels.filter((l, i) => l === 0 && folds[i] === f).length;
      expect(zeros === 4 || zeros === 5).toBe(true);
      expect(labels.filter((l, i) => l === 1 && folds[i] === f).length).toBeLessThanOrEqual(2);
    }
    expect(new Set(labels.flatMap((l, i) => (l === 2 ? [folds[i]] : []))).size).toBe(3);
  });

  it("scores accuracy, Brier and calibration error", () => {
    const perfect = score(
      [
        [1, 0, 0],
        [0, 1, 0],
      ],
      [0, 1],
    );
    expect(perfect).toEqual({ accuracy: 1, brier: 0, ece: 0, samples: 2 });
    const s = score(
      [
        [0.6, 0.4, 0],
        [0.6, 0.4, 0],
      ],
      [0, 1],
    );
    expect(s.accuracy).toBe(0.5);
    expect(s.ece).toBeCloseTo(0.1, 10);
    expect(s.brier).toBeCloseTo((0.4 ** 2 + 0.4 ** 2 + (0.6 ** 2 + 0.6 ** 2)) / 2, 10);
    expect(score([], []).samples).toBe(0);
  });

  it("has a seeded random source in [0, 1)", () => {
    const r = seededRandom(1);
    const xs = Array.from({ length: 1000 }, r);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    expect(seededRandom(1)()).toBe(xs[0]);
  });
});

describe("synthetic users", () => {
  it("gives valid probabilities and a learnable daily pattern", () => {
    const [user] = syntheticUsers(1, 3);
    for (const s of syntheticSamples(user!, 200, 1)) {
      expect(s.probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 10);
      expect(s.features.hour_of_day).toBeGreaterThanOrEqual(0);
      expect(s.features.hour_of_day).toBeLessThan(24);
    }
    const morning = energyProbabilities(user!, { hour_of_day: 10, day_of_week: 1, tasks_completed_today: 0, avg_energy_last_7_days: 2, sleep_quality: 0.8 });
    const night = energyProbabilities(user!, { hour_of_day: 2, day_of_week: 1, tasks_completed_today: 0, avg_energy_last_7_days: 2, sleep_quality: 0.8 });
    expect(night[0]).toBeGreaterThan(morning[0]);
  });
});

describe("ml-random-forest behind the forest interface", () => {
  const train = dataset(120, 1);

  it("is reproducible with a seed and gives probabilities that sum to 1", () => {
    const a = mlRandomForest.fit(train.rows, train.labels, 3, { nEstimators: 20, seed: 7 });
    const b = mlRandomForest.fit(train.rows, train.labels, 3, { nEstimators: 20, seed: 7 });
    for (const row of train.rows.slice(0, 20)) {
      const p = a.predictProba(row);
      expect(p).toHaveLength(3);
      expect(p.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 10);
      expect(b.predictProba(row)).toEqual(p);
    }
  });

  it("round-trips through serialize/load to identical probabilities", () => {
    const forest = mlRandomForest.fit(train.rows, train.labels, 3, { nEstimators: 20, seed: 3, maxDepth: 6, minSamplesLeaf: 2 });
    const loaded = forestAlgorithm(forest.kind).load(forest.serialize());
    for (const row of dataset(50, 9).rows) expect(loaded.predictProba(row)).toEqual(forest.predictProba(row));
  });

  it("refuses foreign, other-version and corrupt blobs", () => {
    expect(() => mlRandomForest.load(new Uint8Array([0, 255, 1]))).toThrow(ForestFormatError);
    const other = new TextEncoder().encode(JSON.stringify({ format: "ml-random-forest", version: 99, nClasses: 3, model: {} }));
    expect(() => mlRandomForest.load(other)).toThrow(/version 99/);
    const broken = new TextEncoder().encode(JSON.stringify({ format: "ml-random-forest", version: 1, nClasses: 3, model: null }));
    expect(() => mlRandomForest.load(broken)).toThrow(ForestFormatError);
    expect(() => forestAlgorithm("xgboost")).toThrow(RangeError);
    expect(() => mlRandomForest.fit([], [], 3, { nEstimators: 1, seed: 1 })).toThrow(RangeError);
  });

  it("handles a single-class training set", () => {
    const forest = mlRandomForest.fit(train.rows.slice(0, 10), new Array(10).fill(1), 3, { nEstimators: 5, seed: 1 });
    expect(forest.predictProba(train.rows[0]!)).toEqual([0, 1, 0]);
  });
});

describe("trainModel (the worker's job)", () => {
  it("reaches at least 60% held-out accuracy from 50 samples of a clear daily pattern", () => {
    // Four users with different chronotypes; each model is scored on 400 fresh samples it never saw.
    const accuracies = [0, 1, 2, 3].map((i) => {
      const user = clearPatternUser(i, 11);
      const train = dataset(50, 100 + i, user);
      const result = runTrainJob({ ...train, nClasses: 3, format: "ml-random-forest", options: { nEstimators: 100, seed: 1 } });
      const forest = mlRandomForest.load(result.modelData);
      return accuracy((row) => forest.predictProba(row), dataset(400, 900 + i, user));
    });
    const mean = accuracies.reduce((a, b) => a + b, 0) / accuracies.length;
    expect(mean).toBeGreaterThanOrEqual(0.6);
  });

  it("reports a k-fold evaluation below 1,000 rows and a holdout above", () => {
    const small = trainModel({ ...dataset(60, 2), nClasses: 3, format: "ml-random-forest", options: { nEstimators: 10, seed: 1 } });
    expect(small.evaluation.method).toBe("stratified 5-fold cross-validation");
    expect(small.evaluation.samples).toBe(60);
    expect(small.evaluation.accuracy).toBeGreaterThan(0.34);
    expect(small.evaluation.brier).toBeGreaterThan(0);
    expect(small.comparison).toBeUndefined();
    const big = trainModel({ ...dataset(1000, 2), nClasses: 3, format: "ml-random-forest", options: { nEstimators: 2, seed: 1, maxDepth: 4 } });
    expect(big.evaluation.method).toBe("stratified 20% holdout");
    expect(big.evaluation.samples).toBe(200);
  });

  it("compares with the active model on rows it never saw", () => {
    const data = dataset(80, 4);
    const first = trainModel({
      rows: data.rows.slice(0, 50),
      labels: data.labels.slice(0, 50),
      nClasses: 3,
      format: "ml-random-forest",
      options: { nEstimators: 10, seed: 1 },
    });
    const second = trainModel({
      ...data,
      nClasses: 3,
      format: "ml-random-forest",
      options: { nEstimators: 10, seed: 1 },
      active: { format: first.format, blob: first.modelData, unseenFrom: 50 },
    });
    expect(second.comparison?.samples).toBe(30);
    expect(second.comparison?.activeAccuracy).toBeGreaterThan(0);
    const none = trainModel({
      ...data,
      nClasses: 3,
      format: "ml-random-forest",
      options: { nEstimators: 5, seed: 1 },
      active: { format: first.format, blob: first.modelData, unseenFrom: 80 },
    });
    expect(none.comparison).toBeUndefined();
  });
});
