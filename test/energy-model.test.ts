import { describe, expect, it } from "vitest";
import { ENERGY_LABELS, type EnergyFeatureValues } from "../src/domain.ts";
import { applyCalibration, applyTemperature, fitCalibration, fitTemperature, logLoss } from "../src/ml/calibration.ts";
import { circadianPrior } from "../src/ml/circadian-prior.ts";
import { detectDrift } from "../src/ml/drift.ts";
import {
  decodeEnvelope,
  encodeEnvelope,
  energyModelRow,
  estimateShift,
  ENERGY_POOLED_FORMAT,
  ENERGY_POPULATION_FORMAT,
  ENERGY_USER_FORMAT,
  predictBlended,
  predictUser,
  wrapHour,
  type PooledPopulation,
  type PopulationModel,
} from "../src/ml/energy-model.ts";
import { argmax, score, seededRandom } from "../src/ml/evaluation.ts";
import { ForestFormatError } from "../src/ml/forest.ts";
import { loadModel } from "../src/ml/loaded-model.ts";
import { bestWindows } from "../src/ml/schedule.ts";
import { syntheticSamples, syntheticUsers, type SyntheticUser } from "../src/ml/synthetic.ts";
import { DEFAULT_USER_MODEL_SETTINGS, activePredictor, fitUserModel, trainPopulation, trainUserEnergy } from "../src/ml/train-energy.ts";
import { energyScorer, loadBlendedUser, loadPopulation, loadUserModel, populationIdOf, predictAnyPopulation } from "../src/ml/loaded-model.ts";
import { forestAlgorithm } from "../src/ml/algorithms.ts";
import { energyFeatureRow } from "../src/ml/features.ts";
import runTrainJob from "../src/ml/train-worker.ts";
import { defaultForestKind } from "../src/ml/algorithms.ts";
import { mlRandomForest } from "../src/ml/ml-random-forest.ts";

const FOREST = { nEstimators: 30, seed: 5 };
const label = (e: string) => ENERGY_LABELS.indexOf(e as never);
function data(user: SyntheticUser, n: number, seed: number) {
  const s = syntheticSamples(user, n, seed);
  return { samples: s.map((x) => x.features), labels: s.map((x) => label(x.energy)) };
}
const f = (hour: number): EnergyFeatureValues => ({
  hour_of_day: hour,
  day_of_week: 2,
  tasks_completed_today: 1,
  avg_energy_last_7_days: 2,
  sleep_quality: null,
});

describe("calibration", () => {
  it("applies a temperature and fits one that lowers log loss", () => {
    expect(applyTemperature([0.2, 0.3, 0.5], 1)).toEqual([0.2, 0.3, 0.5]);
    const soft = applyTemperature([0.1, 0.1, 0.8], 3);
    expect(soft[2]).toBeLessThan(0.8);
    expect(soft.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    // Over-confident predictions right only 60% of the time: the fitted temperature softens them.
    const probs = Array.from({ length: 100 }, () => [0.02, 0.02, 0.96]);
    const labels = Array.from({ length: 100 }, (_, i) => (i % 5 < 3 ? 2 : 0));
    const t = fitTemperature(probs, labels);
    expect(t).toBeGreaterThan(1);
    expect(
      logLoss(
        probs.map((p) => applyTemperature(p, t)),
        labels,
      ),
    ).toBeLessThan(logLoss(probs, labels));
    expect(fitTemperature(probs.slice(0, 5), labels.slice(0, 5))).toBe(1);
    expect(logLoss([], [])).toBe(0);
  });

  it("fits a temperature and a floor that calibrate a linear pool on noisy labels where a temperature alone cannot", () => {
    // 30% of labels are random; the model is a linear pool of a forecast of the rest and a flat one: too flat
    // where its members disagree, yet more certain than any label can be where they agree. Its truth is a
    // sharpened forecast with a floor, which a temperature alone cannot reach.
    const random = seededRandom(42);
    const draw = (n: number) => {
      const probs: number[][] = [];
      const labels: number[] = [];
      for (let i = 0; i < n; i++) {
        const c = Math.floor(random() * 3);
        const strength = random();
        const clean = [0, 1, 2].map((k) => (k === c ? 0.2 + 0.8 * strength : (0.8 - 0.8 * strength) / 2));
        const pooled = clean.map((x) => 0.5 * x + 0.5 / 3);
        const truth = applyTemperature(pooled, 0.5).map((x) => 0.7 * x + 0.1);
        probs.push(pooled);
        const u = random();
        labels.push(u < truth[0]! ? 0 : u < truth[0]! + truth[1]! ? 1 : 2);
      }
      return { probs, labels };
    };
    const held = draw(300);
    const test = draw(20000);
    const t = fitTemperature(held.probs, held.labels);
    const calibration = fitCalibration(held.probs, held.labels)!;
    expect(calibration.temperature).toBeLessThan(1);
    expect(calibration.floor).toBeGreaterThan(0.1);
    const byTemperature = test.probs.map((p) => applyTemperature(p, t));
    const byCalibration = test.probs.map((p) => applyCalibration(p, calibration));
    expect(score(byCalibration, test.labels).ece).toBeLessThan(score(byTemperature, test.labels).ece);
    expect(logLoss(byCalibration, test.labels)).toBeLessThan(logLoss(byTemperature, test.labels));
    // The predicted class never changes; identity leaves p as it is; too few rows fit nothing.
    expect(byCalibration.every((p, i) => argmax(p) === argmax(test.probs[i]!))).toBe(true);
    expect(applyCalibration([0.2, 0.3, 0.5], { temperature: 1, floor: 0 })).toEqual([0.2, 0.3, 0.5]);
    expect(fitCalibration(held.probs.slice(0, 20), held.labels.slice(0, 20))).toBeNull();
  });
});

describe("circadian prior", () => {
  it("is a distribution at every hour, low at night and high in the morning", () => {
    for (let h = -3; h < 27; h += 0.5) expect(circadianPrior(h).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    expect(argmax(circadianPrior(3))).toBe(0);
    expect(argmax(circadianPrior(10))).toBe(2);
    expect(circadianPrior(25)).toEqual(circadianPrior(1));
  });
});

describe("drift detection", () => {
  it("stays quiet for a model right as often as it is sure, and flags a confident model turning wrong", () => {
    const good = Array.from({ length: 60 }, (_, i) => ({ correct: i % 3 !== 0, confidence: 0.66 }));
    expect(detectDrift(good).drifted).toBe(false);
    const bad = [...good.slice(0, 40), ...Array.from({ length: 20 }, () => ({ correct: false, confidence: 0.66 }))];
    const check = detectDrift(bad);
    expect(check.drifted).toBe(true);
    expect(check.window).toBe(15);
    expect(check.z).toBeLessThan(-2.33);
    expect(detectDrift(bad.slice(0, 10))).toMatchObject({ drifted: false, window: 0 });
    // Unsure predictions that miss are no evidence of drift.
    const unsure = Array.from({ length: 30 }, (_, i) => ({ correct: i % 3 === 0, confidence: 0.36 }));
    expect(detectDrift(unsure).drifted).toBe(false);
  });
});

describe("best windows", () => {
  it("picks non-overlapping high stretches, longer when nearly as good", () => {
    const p = [0.1, 0.2, 0.7, 0.72, 0.69, 0.2, 0.1, 0.9, 0.1, 0.5];
    const w = bestWindows(p);
    // The single 0.9 hour is clearly better than the 0.70 stretch; the stretch comes next, as one 3-hour window.
    expect(w[0]).toMatchObject({ start: 7, length: 1 });
    expect(w[1]).toMatchObject({ start: 2, length: 3 });
    const covered = w.flatMap((x) => Array.from({ length: x.length }, (_, i) => x.start + i));
    expect(new Set(covered).size).toBe(covered.length);
    expect(bestWindows([0.5], 3)).toEqual([{ start: 0, length: 1, meanHigh: 0.5 }]);
    // Adjacent picks become one window.
    const joined = bestWindows([0.1, 0.75, 0.88, 0.1, 0.1, 0.6], 3);
    expect(joined[0]).toMatchObject({ start: 1, length: 2 });
    expect(joined[0]!.meanHigh).toBeCloseTo(0.815, 9);
  });
});

describe("energy model pieces", () => {
  it("uses cyclical hours and wraps shifts around midnight", () => {
    expect(wrapHour(-1)).toBe(23);
    const row = energyModelRow(f(1), 2, 2);
    expect(row[2]).toBe(23);
    expect(row[0]).toBeCloseTo(Math.sin((2 * Math.PI * 23) / 24), 12);
    expect(Number.isNaN(row[7])).toBe(true);
  });

  it("places a user's day: a late chronotype gets a positive shift", () => {
    const late = syntheticUsers(1, 4, { chronotype: 3, sharpness: 8, labelNoise: 0 })[0]!;
    const d = data(late, 120, 2);
    expect(estimateShift(null, d.samples, d.labels)).toBeGreaterThanOrEqual(1.5);
    expect(estimateShift(null, [], [])).toBe(0);
  });

  it("round-trips envelopes and refuses foreign blobs", () => {
    const meta = { kind: "population" as const, meanAvg: 2, temperature: 1.2, forestKind: "x" };
    const bytes = encodeEnvelope(meta, new Uint8Array([9, 8]));
    expect(decodeEnvelope(bytes)).toEqual({ meta, forest: new Uint8Array([9, 8]), parts: [new Uint8Array([9, 8])] });
    // several parts, each 8-byte aligned, lengths in the header
    const multi = decodeEnvelope(encodeEnvelope(meta, [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array([4])]));
    expect(multi.parts).toEqual([new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array([4])]);
    expect(multi.parts.every((p) => p.byteOffset % 8 === 0)).toBe(true);
    const lying = encodeEnvelope({ ...meta, parts: [99] } as never, null);
    expect(() => decodeEnvelope(lying)).toThrow(/does not fit/);
    // the forest starts 8-byte aligned (its loader then reads it in place)
    expect(decodeEnvelope(bytes).forest!.byteOffset % 8).toBe(0);
    expect(decodeEnvelope(encodeEnvelope(meta, null)).forest).toBeNull();
    expect(() => decodeEnvelope(new Uint8Array([1, 2, 3]))).toThrow(ForestFormatError);
    const cut = bytes.slice(0, 10);
    expect(() => decodeEnvelope(cut)).toThrow(/header says/);
    const badJson = new Uint8Array([0x4d, 0x4c, 0x45, 0x31, 1, 0, 0, 0, 0x7b]);
    expect(() => decodeEnvelope(badJson)).toThrow(/not valid JSON/);
    const badKind = encodeEnvelope({ kind: "other" } as never, null);
    expect(() => decodeEnvelope(badKind)).toThrow(/unknown energy model kind/);
    expect(() => loadPopulation(encodeEnvelope({ ...meta, kind: "user" } as never, null))).toThrow(RangeError);
    expect(() => loadUserModel(bytes)).toThrow(RangeError);
  });
});

describe("training jobs", () => {
  const users = syntheticUsers(6, 40);
  const population = trainPopulation({
    kind: "energy-population",
    users: users.map((u, i) => ({ userId: `u${i}`, ...data(u, 150, 100 + i) })),
    forestKind: defaultForestKind,
    options: FOREST,
  });
  const pop = loadPopulation(population.modelData, "u1") as PooledPopulation;
  const stored = { modelId: "pop", format: population.format, blob: population.modelData };

  it("evaluates the pooled population on users it never saw, against the prior on the same rows", () => {
    expect(population.format).toBe(ENERGY_POOLED_FORMAT);
    expect(population.evaluation.method).toMatch(/leave-users-out cross-validation \(5 folds\) over 6 users, cold start/);
    expect(population.evaluation.accuracy).toBeGreaterThan(0.45);
    expect(population.baseline).toMatchObject({ name: "circadian prior", users: 6 });
    expect(population.baseline!.accuracy).toBeGreaterThan(0.4);
    expect(pop.meta.temperature).toBeGreaterThan(0);
    // one leave-fold-out forest per fold, each loaded only when asked for
    expect(pop.meta.folds).toBe(5);
    expect(pop.honest).toBeTruthy();
    expect(pop.honest).not.toBe(pop.forest);
    expect((loadPopulation(population.modelData) as PooledPopulation).honest).toBeUndefined();
    expect(Object.keys(pop.meta.userFolds ?? {})).toHaveLength(6);
    for (let h = 0; h < 24; h++) expect(predictAnyPopulation(pop, f(h)).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    expect(() => trainPopulation({ kind: "energy-population", users: [], forestKind: defaultForestKind, options: FOREST })).toThrow(RangeError);
    const single = trainPopulation({ kind: "energy-population", users: [data(users[0]!, 40, 1)], forestKind: defaultForestKind, options: FOREST });
    expect(single.evaluation.method).toMatch(/one user/);
  });

  it("blends by held-out weights, keeps the spec's recipe as a candidate, and beats it", () => {
    const user = syntheticUsers(1, 77)[0]!;
    const train = data(user, 40, 1);
    const test = data(user, 400, 2);
    const result = runTrainJob({
      kind: "energy-user",
      userId: "new",
      ...train,
      population: stored,
      forestKind: defaultForestKind,
      options: FOREST,
      settings: DEFAULT_USER_MODEL_SETTINGS,
    });
    const loaded = loadModel(result.format, result.modelData);
    expect(loaded.kind).toBe("blended");
    const model = loadBlendedUser(result.modelData);
    // Forests are stored exactly when they weigh something.
    expect(model.spec !== null).toBe((model.meta.weights.spec ?? 0) > 0);
    expect(model.own !== null).toBe((model.meta.weights.own ?? 0) > 0);
    const weights = Object.values(model.meta.weights);
    expect(weights.reduce((a, b) => a + b!, 0)).toBeCloseTo(1, 3);
    expect(Object.keys(model.meta.weights).sort()).toEqual(["level", "own", "pooled", "prior", "profile", "spec", "weekday"]);
    expect(result.evaluation.weights).toEqual(model.meta.weights);
    const ours = test.samples.filter((x, i) => argmax(predictBlended(model, pop, x)) === test.labels[i]).length / 400;
    const spec = mlRandomForest.fit(train.samples.map(energyFeatureRow), train.labels, 3, FOREST);
    const specAccuracy = test.samples.filter((x, i) => argmax(spec.predictProba(energyFeatureRow(x))) === test.labels[i]).length / 400;
    expect(ours).toBeGreaterThan(specAccuracy);
    expect(result.evaluation.samples).toBe(40);
    const s = score(
      test.samples.map((x) => predictBlended(model, pop, x)),
      test.labels,
    );
    expect(s.ece).toBeLessThan(0.15);
  });

  it("has no forests below the minimum, and works without any population", () => {
    const user = syntheticUsers(1, 78)[0]!;
    const few = runTrainJob({
      kind: "energy-user",
      ...data(user, 8, 1),
      population: null,
      forestKind: defaultForestKind,
      options: FOREST,
      settings: DEFAULT_USER_MODEL_SETTINGS,
    });
    const model = loadBlendedUser(few.modelData);
    expect(model.spec).toBeNull();
    expect(model.own).toBeNull();
    expect(model.meta.populationModelId).toBeNull();
    expect(Object.keys(model.meta.weights).sort()).toEqual(["level", "prior", "profile", "weekday"]);
    expect(predictBlended(model, null, f(10)).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    expect(() =>
      trainUserEnergy({
        kind: "energy-user",
        samples: [],
        labels: [],
        population: null,
        forestKind: defaultForestKind,
        options: FOREST,
        settings: DEFAULT_USER_MODEL_SETTINGS,
      }),
    ).toThrow(RangeError);
  });

  it("compares with the active model on rows it never saw, whatever its format", () => {
    const user = syntheticUsers(1, 79)[0]!;
    const all = data(user, 90, 3);
    const first = trainUserEnergy({
      kind: "energy-user",
      samples: all.samples.slice(0, 60),
      labels: all.labels.slice(0, 60),
      population: stored,
      forestKind: defaultForestKind,
      options: FOREST,
      settings: DEFAULT_USER_MODEL_SETTINGS,
    });
    const second = trainUserEnergy({
      kind: "energy-user",
      ...all,
      population: stored,
      forestKind: defaultForestKind,
      options: FOREST,
      settings: DEFAULT_USER_MODEL_SETTINGS,
      active: { model: { modelId: "a", format: first.format, blob: first.modelData }, population: stored, unseenFrom: 60 },
    });
    expect(second.comparison?.samples).toBe(30);
    const legacy = mlRandomForest.fit(all.samples.map(energyFeatureRow), all.labels, 3, FOREST);
    const p = activePredictor({ modelId: "l", format: legacy.kind, blob: legacy.serialize() }, null)(f(9));
    expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    expect(activePredictor({ modelId: "p", format: population.format, blob: population.modelData }, null)(f(9))).toEqual(predictAnyPopulation(pop, f(9)));
    expect(loadModel(population.format, population.modelData).kind).toBe("population");
    expect(loadModel(first.format, first.modelData).kind).toBe("blended");
    expect(loadModel(legacy.kind, legacy.serialize()).kind).toBe("forest");
  });

  it("still reads and predicts with v1 models stored before the blend", () => {
    const v1pop = { kind: "population" as const, meanAvg: 2, temperature: 1, forestKind: defaultForestKind };
    const rows = users.flatMap((u, i) => data(u, 40, 300 + i).samples);
    const labels = users.flatMap((u, i) => data(u, 40, 300 + i).labels);
    const forest = forestAlgorithm(defaultForestKind).fit(
      rows.map((x) => energyModelRow(x, 0, 2)),
      labels,
      3,
      FOREST,
    );
    const popBlob = encodeEnvelope(v1pop, forest.serialize());
    const v1 = loadModel(ENERGY_POPULATION_FORMAT, popBlob);
    expect(v1.kind).toBe("population");
    const { model } = fitUserModel(
      rows.slice(0, 40),
      labels.slice(0, 40),
      v1.kind === "population" ? (v1.model as never) : null,
      "p1",
      defaultForestKind,
      FOREST,
      DEFAULT_USER_MODEL_SETTINGS,
    );
    const userBlob = encodeEnvelope(model.meta, model.forest!.serialize());
    const user = loadModel(ENERGY_USER_FORMAT, userBlob);
    expect(user.kind).toBe("user");
    expect(populationIdOf(user)).toBe("p1");
    const p = energyScorer(user, v1.kind === "population" ? v1.model : null)(f(9));
    expect(p).toEqual(predictUser(loadUserModel(userBlob), (v1 as { model: PopulationModel }).model, f(9)));
    expect(energyScorer(v1, null)(f(9)).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    // a v1 population model is a candidate of the blend, at the user's shift
    const blended = trainUserEnergy({
      kind: "energy-user",
      samples: rows.slice(0, 40),
      labels: labels.slice(0, 40),
      population: { modelId: "p1", format: ENERGY_POPULATION_FORMAT, blob: popBlob },
      forestKind: defaultForestKind,
      options: FOREST,
      settings: DEFAULT_USER_MODEL_SETTINGS,
    });
    expect(Object.keys(loadBlendedUser(blended.modelData).meta.weights)).toContain("population");
  });
});

describe("pacing", () => {
  it("sleeps in proportion to the work so a worker keeps to its share of a core", async () => {
    const { createPacer } = await import("../src/ml/pace.ts");
    let clock = 0;
    const pace = createPacer(0.5, () => clock);
    clock = 20; // 20 ms of work
    const before = performance.now();
    pace();
    expect(performance.now() - before).toBeGreaterThanOrEqual(15);
    const free = createPacer(1);
    const t = performance.now();
    free();
    expect(performance.now() - t).toBeLessThan(5);
    // A paced job gives the same model as an unpaced one.
    const user = syntheticUsers(1, 81)[0]!;
    const d = data(user, 40, 1);
    const job = {
      kind: "energy-user" as const,
      ...d,
      population: null,
      forestKind: defaultForestKind,
      options: { nEstimators: 5, seed: 2 },
      settings: DEFAULT_USER_MODEL_SETTINGS,
    };
    expect(runTrainJob({ ...job, cpuShare: 0.9 }).modelData).toEqual(runTrainJob(job).modelData);
  });
});
