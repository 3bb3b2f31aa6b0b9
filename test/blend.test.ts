import { describe, expect, it } from "vitest";
import type { EnergyFeatureValues } from "../src/domain.ts";
import { defaultForestKind } from "../src/ml/algorithms.ts";
import { fitBlendWeights, mixProbabilities } from "../src/ml/blend.ts";
import { pooledProbabilities, predictBlended, type PooledPopulation } from "../src/ml/energy-model.ts";
import { argmax, seededRandom, userFold } from "../src/ml/evaluation.ts";
import { loadBlendedUser, loadPopulation } from "../src/ml/loaded-model.ts";
import { DEFAULT_USER_MODEL_SETTINGS, pooledTrainingRows, trainPopulation, trainUserEnergy, type UserSamples } from "../src/ml/train-energy.ts";
import { addToStats, emptyStats, statsOf, USER_LEVEL_FEATURES, userLevelFeatures } from "../src/ml/user-stats.ts";

const FOREST = { nEstimators: 30, seed: 9 };

/** A user observed every few hours whose label comes from `labelAt`. */
function user(n: number, seed: number, labelAt: (f: EnergyFeatureValues, r: () => number) => number, userId?: string): UserSamples {
  const random = seededRandom(seed);
  const samples: EnergyFeatureValues[] = [];
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const f = {
      hour_of_day: Math.floor(random() * 24),
      day_of_week: Math.floor(random() * 7),
      tasks_completed_today: Math.floor(random() * 6),
      avg_energy_last_7_days: 1.5 + random(),
      sleep_quality: random() < 0.3 ? null : Math.round(random() * 100) / 100,
    };
    samples.push(f);
    labels.push(labelAt(f, random));
  }
  return { ...(userId === undefined ? {} : { userId }), samples, labels };
}

/** A user's blend fitted with no population model, as a user of a fresh service gets it. */
function fitWithoutPopulation(data: UserSamples) {
  return trainUserEnergy({
    kind: "energy-user",
    ...data,
    population: null,
    forestKind: defaultForestKind,
    options: FOREST,
    settings: DEFAULT_USER_MODEL_SETTINGS,
  });
}

const night = (f: EnergyFeatureValues) => (f.hour_of_day >= 21 || f.hour_of_day < 4 ? 2 : f.hour_of_day >= 8 && f.hour_of_day < 18 ? 0 : 1);

describe("blend weights", () => {
  it("give the candidate that explains the held-out labels nearly all the weight", () => {
    const labels = Array.from({ length: 60 }, (_, i) => i % 3);
    const right = labels.map((y) => [0, 1, 2].map((c) => (c === y ? 0.8 : 0.1)));
    const uniform = labels.map(() => [1 / 3, 1 / 3, 1 / 3]);
    const wrong = labels.map((y) => [0, 1, 2].map((c) => (c === (y + 1) % 3 ? 0.8 : 0.1)));
    const w = fitBlendWeights([uniform, right, wrong], labels, [1, 1, 1]);
    expect(w.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    expect(w[1]).toBeGreaterThan(0.9);
    expect(w[2]).toBeLessThan(0.05);
    // With no rows the prior decides.
    expect(fitBlendWeights([uniform, right], [], [3, 1])).toEqual([0.75, 0.25]);
    expect(fitBlendWeights([], [], [])).toEqual([]);
    expect(
      mixProbabilities(
        [0, 0],
        [
          [1, 0, 0],
          [0, 1, 0],
        ],
      ),
    ).toEqual([1 / 3, 1 / 3, 1 / 3]);
    expect(
      mixProbabilities(
        [1, 3],
        [
          [1, 0, 0],
          [0, 1, 0],
        ],
      ),
    ).toEqual([0.25, 0.75, 0]);
  });

  it("give the circadian prior little weight for a user whose data contradicts it (a night worker)", () => {
    const data = user(80, 1, night);
    const result = fitWithoutPopulation(data);
    const model = loadBlendedUser(result.modelData);
    expect(model.meta.weights.prior ?? 0).toBeLessThan(0.1);
    expect((model.meta.weights.spec ?? 0) + (model.meta.weights.own ?? 0)).toBeGreaterThan(0.7);
    const test = user(300, 2, night);
    const hits = test.samples.filter((f, i) => argmax(predictBlended(model, null, f)) === test.labels[i]).length;
    expect(hits / 300).toBeGreaterThan(0.85);
  });

  it("answer a user with no signal in the features with their most frequent label", () => {
    // 65% medium whatever the hour: the prior's morning highs and night lows are wrong for them.
    const flat = (_: EnergyFeatureValues, r: () => number) => (r() < 0.65 ? 1 : r() < 0.5 ? 0 : 2);
    const data = user(60, 3, flat);
    const result = fitWithoutPopulation(data);
    const model = loadBlendedUser(result.modelData);
    const w = model.meta.weights;
    expect((w.level ?? 0) + (w.profile ?? 0) + (w.weekday ?? 0)).toBeGreaterThan(0.5);
    const test = user(300, 4, flat);
    const medium = test.samples.filter((f) => argmax(predictBlended(model, null, f)) === 1).length;
    expect(medium / 300).toBeGreaterThan(0.9);
  });
});

describe("pooled population without leaks", () => {
  it("builds each row's user features from the user's other rows only", () => {
    // All high but one low row: the low row's history can only hold highs.
    const u = user(40, 5, (_, r) => (r() < 0 ? 0 : 2));
    const labels = u.labels.map((y, i) => (i === 7 ? 0 : y));
    const freq = [0.3, 0.4, 0.3];
    const { rows } = pooledTrainingRows([{ ...u, labels }], 2, freq, 11);
    const base = rows[0]!.length - USER_LEVEL_FEATURES.length;
    for (const [i, row] of rows.entries()) {
      const m = Math.round(Math.exp(row[base]!) - 1);
      expect(m).toBeLessThanOrEqual(39);
      const lowCount = row[base + 1]! * (m + 4) - 4 * freq[0]!;
      // the only low label is row 7's own, which its history never contains
      if (i === 7) expect(lowCount).toBeCloseTo(0, 9);
      else expect(lowCount).toBeGreaterThan(-1e-9);
    }
  });

  it("scores a user's rows with a forest that never saw them", () => {
    // One user whose rows nobody else has (99 tasks done) and who is always low.
    const odd = user(60, 6, () => 0, "odd-one");
    const oddRows = { ...odd, samples: odd.samples.map((f) => ({ ...f, tasks_completed_today: 99 })) };
    const others = Array.from({ length: 9 }, (_, i) => user(60, 10 + i, (f) => (f.hour_of_day < 12 ? 2 : 1), `other-${i}`));
    const result = trainPopulation({ kind: "energy-population", users: [oddRows, ...others], forestKind: defaultForestKind, options: FOREST });
    const pop = loadPopulation(result.modelData, "odd-one") as PooledPopulation;
    expect(pop.meta.folds).toBe(5);
    const fold = pop.honest!;
    expect(fold).not.toBe(pop.forest);
    // a user the population never trained on may be scored by the full forest
    const stranger = loadPopulation(result.modelData, "stranger") as PooledPopulation;
    expect(stranger.honest).toBe(stranger.forest);
    const f = oddRows.samples[0]!;
    const seen = pooledProbabilities(pop, emptyStats(), f);
    const unseen = pooledProbabilities(pop, emptyStats(), f, fold);
    // The full forest learned that 99 tasks means low; the fold's forest cannot have.
    expect(seen[0]!).toBeGreaterThan(0.4);
    expect(unseen[0]!).toBeLessThan(seen[0]! - 0.25);
    expect(userFold("odd-one", 5)).toBe(userFold("odd-one", 5));
    // folds are dealt so that none is empty, and stored
    expect(new Set(Object.values(pop.meta.userFolds ?? {}))).toEqual(new Set([0, 1, 2, 3, 4]));
  });

  it("meets the active population head to head on the rows it never saw", () => {
    const old = Array.from({ length: 4 }, (_, i) => user(40, 30 + i, night, `early-${i}`));
    const first = trainPopulation({ kind: "energy-population", users: old, forestKind: defaultForestKind, options: FOREST });
    const later = Array.from({ length: 4 }, (_, i) => ({ ...user(40, 40 + i, night, `late-${i}`), unseenFrom: 0 }));
    const all = [...old.map((u) => ({ ...u, unseenFrom: u.samples.length })), ...later];
    const active = { modelId: "p1", format: first.format, blob: first.modelData };
    const second = trainPopulation({ kind: "energy-population", users: all, forestKind: defaultForestKind, options: FOREST, active });
    expect(second.comparison?.samples).toBe(160);
    expect(second.comparison!.candidateAccuracy).toBeGreaterThan(0.5);
    expect(second.comparison!.activeAccuracy).toBeGreaterThan(0.5);
    expect(trainPopulation({ kind: "energy-population", users: old, forestKind: defaultForestKind, options: FOREST, active }).comparison).toBeUndefined();
  });
});

describe("user stats", () => {
  it("say how this user's level moves with the hour, the weekday, their sleep and their workload", () => {
    // High after good sleep, low after poor sleep, whatever the hour.
    const sleeper = user(200, 50, (f) => (f.sleep_quality === null ? 1 : f.sleep_quality >= 0.75 ? 2 : f.sleep_quality < 0.5 ? 0 : 1));
    const stats = statsOf(sleeper.samples, sleeper.labels);
    const freq = [1 / 3, 1 / 3, 1 / 3];
    const at = (sleep: number | null, tasks = 0) => ({
      hour_of_day: 10,
      day_of_week: 2,
      tasks_completed_today: tasks,
      avg_energy_last_7_days: 2,
      sleep_quality: sleep,
    });
    const col = (name: (typeof USER_LEVEL_FEATURES)[number]) => USER_LEVEL_FEATURES.indexOf(name);
    const good = userLevelFeatures(stats, at(0.9), freq);
    const poor = userLevelFeatures(stats, at(0.2), freq);
    expect(good[col("sleep_level")]!).toBeGreaterThan(1.6);
    expect(poor[col("sleep_level")]!).toBeLessThan(0.4);
    // the hour says little for this user: its level stays near their mean
    expect(Math.abs(good[col("hour_level")]! - good[col("level_mean")]!)).toBeLessThan(0.3);
    // a row taken out and put back leaves the same features
    addToStats(stats, sleeper.samples[0]!, sleeper.labels[0]!, -1);
    addToStats(stats, sleeper.samples[0]!, sleeper.labels[0]!, 1);
    expect(userLevelFeatures(stats, at(0.9), freq)).toEqual(good);
    // nobody: the population's level everywhere, history size 0
    const none = userLevelFeatures(emptyStats(), at(0.9, 7), freq);
    expect(none[col("history_size")]).toBe(0);
    expect(none[col("sleep_level")]).toBeCloseTo(1, 9);
    expect(none[col("load_level")]).toBeCloseTo(1, 9);
  });
});
