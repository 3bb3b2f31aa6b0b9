import { ENERGY_LABELS, type EnergyFeatureValues } from "../src/domain.ts";
import { defaultForestKind, forestAlgorithm } from "../src/ml/algorithms.ts";
import { circadianPrior } from "../src/ml/circadian-prior.ts";
import { applyTemperature } from "../src/ml/calibration.ts";
import { estimateShift, predictPopulation, type PopulationModel } from "../src/ml/energy-model.ts";
import { argmax, score } from "../src/ml/evaluation.ts";
import { energyFeatureRow } from "../src/ml/features.ts";
import { syntheticSamples, type SyntheticSample, type SyntheticUser } from "../src/ml/synthetic.ts";
import { DEFAULT_USER_MODEL_SETTINGS, loadPopulation, loadUserModel, trainPopulation, trainUserEnergy, type UserModelSettings } from "../src/ml/train-energy.ts";
import { predictUser } from "../src/ml/energy-model.ts";

/** Methods compared on every learning curve. */
export const METHODS = ["majority class", "circadian prior", "spec per-user forest", "population model", "production model"] as const;
/** One method's name. */
export type Method = (typeof METHODS)[number];

/** Scores of one method at one training size. */
export interface CurvePoint {
  readonly method: Method;
  readonly n: number;
  readonly accuracy: number;
  readonly shareAt60: number;
  readonly ece: number;
  readonly brier: number;
}

const label = (s: SyntheticSample) => ENERGY_LABELS.indexOf(s.energy);
// as the service fits them (src/service/trainer.ts: the model calibrates the blend itself)
const FOREST = { nEstimators: 100, calibrate: false };

/** Trains the population model on background users through the service's own job. */
export function trainBackgroundPopulation(users: readonly SyntheticUser[], samplesPerUser: number, seed: number) {
  const result = trainPopulation({
    kind: "energy-population",
    users: users.map((u, i) => {
      const s = syntheticSamples(u, samplesPerUser, seed + i);
      return { samples: s.map((x) => x.features), labels: s.map(label) };
    }),
    forestKind: defaultForestKind,
    options: { ...FOREST, seed },
  });
  return { result, model: loadPopulation(result.modelData) };
}

/** The predictor of each method after seeing `train`. */
function predictors(
  train: readonly SyntheticSample[],
  population: { model: PopulationModel; blob: Uint8Array },
  seed: number,
  settings: UserModelSettings,
): Record<Method, (f: EnergyFeatureValues) => number[]> {
  const features = train.map((s) => s.features);
  const labels = train.map(label);
  const counts = [1, 1, 1];
  for (const l of labels) counts[l]!++;
  const total = counts.reduce((a, b) => a + b, 0);
  const majority = counts.map((c) => c / total);
  const spec = forestAlgorithm(defaultForestKind).fit(train.map((s) => energyFeatureRow(s.features)), labels, 3, { ...FOREST, seed });
  const shift = estimateShift(population.model, features, labels);
  const production = trainUserEnergy({
    kind: "energy-user",
    samples: features,
    labels,
    population: { modelId: "population", format: "energy-population-v1", blob: population.blob },
    forestKind: defaultForestKind,
    options: { ...FOREST, seed },
    settings,
  });
  const user = loadUserModel(production.modelData);
  return {
    "majority class": () => majority,
    "circadian prior": (f) => circadianPrior(f.hour_of_day),
    "spec per-user forest": (f) => spec.predictProba(energyFeatureRow(f)),
    "population model": (f) => applyTemperature(predictPopulation(population.model, f, shift), 1),
    "production model": (f) => predictUser(user, population.model, f),
  };
}

/** Learning curves over `users` at the given training sizes, each scored on `testSize` fresh samples per user. */
export function learningCurves(
  users: readonly SyntheticUser[],
  sizes: readonly number[],
  population: { model: PopulationModel; blob: Uint8Array },
  options: { seed: number; testSize: number; settings?: UserModelSettings; methods?: readonly Method[] },
): { points: CurvePoint[]; bayes: number } {
  const methods = options.methods ?? METHODS;
  const settings = options.settings ?? DEFAULT_USER_MODEL_SETTINGS;
  const maxN = Math.max(...sizes);
  const streams = users.map((u, i) => syntheticSamples(u, maxN, options.seed + 1000 + i));
  const tests = users.map((u, i) => syntheticSamples(u, options.testSize, options.seed + 5000 + i, Date.UTC(2027, 0, 4)));
  const bayes = tests.flat().reduce((a, s) => a + Math.max(...s.probabilities), 0) / tests.flat().length;
  const points: CurvePoint[] = [];
  for (const n of sizes) {
    const perMethod = new Map<Method, { probs: number[][]; labels: number[]; accuracies: number[] }>(
      methods.map((m) => [m, { probs: [], labels: [], accuracies: [] }]),
    );
    users.forEach((_, ui) => {
      const predict = predictors(streams[ui]!.slice(0, n), population, options.seed + ui, settings);
      for (const m of methods) {
        const bucket = perMethod.get(m)!;
        let hits = 0;
        for (const s of tests[ui]!) {
          const p = predict[m](s.features);
          bucket.probs.push(p);
          bucket.labels.push(label(s));
          if (argmax(p) === label(s)) hits++;
        }
        bucket.accuracies.push(hits / tests[ui]!.length);
      }
    });
    for (const m of methods) {
      const b = perMethod.get(m)!;
      const s = score(b.probs, b.labels);
      points.push({
        method: m,
        n,
        accuracy: b.accuracies.reduce((a, x) => a + x, 0) / b.accuracies.length,
        shareAt60: b.accuracies.filter((a) => a >= 0.6).length / b.accuracies.length,
        ece: s.ece,
        brier: s.brier,
      });
    }
  }
  return { points, bayes };
}
