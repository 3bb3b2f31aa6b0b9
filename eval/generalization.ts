/**
 * Learning that holds on users nobody tuned for: learning curves of the
 * production model against the spec's recipe on every generator family of
 * eval/families.ts (written without looking at the model), crossed with
 * label noise and missing sleep, in two deployment modes:
 *
 * - established: a population model was trained on other users of the same
 *   family before these users arrive;
 * - fresh: no population model at first; users arrive one by one and the
 *   population model trains itself when the service's own policy
 *   (src/service/population-schedule.ts) says so, on the users seen so far.
 *   Each user's model keeps the population it was fitted with.
 *
 * Every method is scored on the user's next observations, which no model
 * saw; Bayes accuracy comes from the generator's own probabilities. The same
 * job functions the service's workers run train every model here, so a
 * figure here is a figure of the service (the RPC path adds nothing to the
 * models; eval/run.ts checks that through Predict for cold start).
 */
import { ENERGY_LABELS } from "../src/domain.ts";
import { circadianPrior } from "../src/ml/circadian-prior.ts";
import { defaultForestKind, forestAlgorithm } from "../src/ml/algorithms.ts";
import type { AnyPopulation } from "../src/ml/energy-model.ts";
import { argmax, score } from "../src/ml/evaluation.ts";
import { energyFeatureRow } from "../src/ml/features.ts";
import { energyScorer, loadModel, loadPopulation } from "../src/ml/loaded-model.ts";
import type { SyntheticSample } from "../src/ml/synthetic.ts";
import { DEFAULT_USER_MODEL_SETTINGS, trainPopulation, trainUserEnergy, type UserSamples } from "../src/ml/train-energy.ts";
import type { TrainResult } from "../src/ml/train-model.ts";
import { decidePopulationFit, type PopulationPolicySettings } from "../src/service/population-schedule.ts";
import { bayesAccuracy, FAMILIES, withLabelNoise, withMissingSleep, type Family } from "./families.ts";

/** Crossings of every family: as generated, with 30% label noise, with half the users never reporting sleep. */
export const VARIANTS = ["base", "noise30", "nosleep"] as const;
/** One crossing. */
export type Variant = (typeof VARIANTS)[number];
/** Deployment modes. */
export const MODES = ["fresh", "established"] as const;
/** One mode. */
export type Mode = (typeof MODES)[number];
/** Methods scored side by side on the same test rows. */
export const GEN_METHODS = ["majority label", "spec recipe", "production"] as const;
/** One method. */
export type GenMethod = (typeof GEN_METHODS)[number];

/** How big a run is. */
export interface GeneralizationConfig {
  readonly users: number;
  readonly backgroundUsers: number;
  readonly backgroundSamples: number;
  readonly sizes: readonly number[];
  readonly testSize: number;
  readonly nEstimators: number;
  readonly seed: number;
  /** Fewest samples before the service trains a user (MIN_TRAINING_SAMPLES); below it Predict answers from the population or prior. */
  readonly minSamples: number;
  /** The service's population policy (its minimum interval is taken as passed: users arrive slower than that here). */
  readonly policy: PopulationPolicySettings;
}

/** One score. */
export interface GenPoint {
  readonly family: string;
  readonly variant: Variant;
  readonly mode: Mode;
  readonly n: number;
  readonly method: GenMethod | "bayes";
  readonly accuracy: number;
  readonly ece: number;
  readonly brier: number;
  /** Mean top-class probability: above the accuracy is over-confident, below it under-confident. */
  readonly confidence: number;
  /** Mean blend weights of the production models (production rows only). */
  readonly weights?: Record<string, number>;
  /** Population fits and activations in the fresh mode. */
  readonly populationFits?: number;
  readonly populationActive?: number;
  /** Users re-blended with the newest population model (fresh mode). */
  readonly reblended?: number;
}

/** The family with a variant applied. */
export function familyVariant(family: Family, variant: Variant): Family {
  if (variant === "noise30") return withLabelNoise(family, 0.3);
  if (variant === "nosleep") return withMissingSleep(family, 0.5);
  return family;
}

const meanConfidence = (probs: readonly (readonly number[])[]) => probs.reduce((a, p) => a + Math.max(...p), 0) / Math.max(1, probs.length);
const label = (s: SyntheticSample) => ENERGY_LABELS.indexOf(s.energy);
const toUser = (userId: string, s: readonly SyntheticSample[]): UserSamples => ({ userId, samples: s.map((x) => x.features), labels: s.map(label) });

/** A population fit as the service decides it: activated if first and better than the prior, or not worse than the active one. */
function fitPopulationLikeService(users: readonly UserSamples[], cfg: GeneralizationConfig, active: TrainResult | null): TrainResult | null {
  const result = trainPopulation({
    kind: "energy-population",
    users,
    forestKind: defaultForestKind,
    options: { nEstimators: cfg.nEstimators, seed: cfg.seed, calibrate: false },
  });
  if (active === null) return result.baseline !== undefined && result.evaluation.accuracy >= result.baseline.accuracy ? result : null;
  return result.evaluation.accuracy >= active.evaluation.accuracy ? result : active;
}

/** Scores every method for one family, variant and mode, at every size. */
export function evaluateSetting(familyIndex: number, variant: Variant, mode: Mode, cfg: GeneralizationConfig): GenPoint[] {
  const family = familyVariant(FAMILIES[familyIndex]!, variant);
  const seed = cfg.seed + 1000 * familyIndex + 100 * VARIANTS.indexOf(variant);
  const users = family.users(cfg.users, seed);
  const maxN = Math.max(...cfg.sizes);
  const streams = users.map((u, i) => family.samples(u, maxN + cfg.testSize, seed + 17 * i + 1));
  let established: TrainResult | null = null;
  if (mode === "established") {
    const background = family.users(cfg.backgroundUsers, seed + 7);
    const data = background.map((u, i) => toUser(`bg-${i}`, family.samples(u, cfg.backgroundSamples, seed + 31 * i + 5)));
    established = fitPopulationLikeService(data, cfg, null);
  }
  const points: GenPoint[] = [];
  for (const n of cfg.sizes) {
    const perMethod = new Map<GenMethod, { probs: number[][]; labels: number[]; accuracies: number[] }>(
      GEN_METHODS.map((m) => [m, { probs: [], labels: [], accuracies: [] }]),
    );
    const weightSums: Record<string, number> = {};
    let trained = 0;
    let population: TrainResult | null = established;
    let fits = 0;
    let last: { users: number; samples: number } | null = null;
    const arrived: UserSamples[] = [];
    const bayes: SyntheticSample[] = [];
    // Arrivals: each user is trained with the population active when they arrive.
    const fitUser = (ui: number, mine: UserSamples, with_: TrainResult | null) =>
      trainUserEnergy({
        kind: "energy-user",
        userId: mine.userId!,
        samples: mine.samples,
        labels: mine.labels,
        population: with_ === null ? null : { modelId: "population", format: with_.format, blob: with_.modelData },
        forestKind: defaultForestKind,
        options: { nEstimators: cfg.nEstimators, seed: seed + ui, calibrate: false },
        settings: DEFAULT_USER_MODEL_SETTINGS,
      });
    const fitted: ({ result: TrainResult; population: TrainResult | null } | null)[] = users.map((_, ui) => {
      const mine = toUser(`user-${ui}`, streams[ui]!.slice(0, n));
      if (mode === "fresh") {
        arrived.push(mine);
        const eligible = arrived.filter((a) => a.samples.length >= cfg.minSamples);
        const current = { users: eligible.length, samples: eligible.reduce((a, x) => a + x.samples.length, 0) };
        const state = {
          current,
          lastFit: last === null ? null : { ...last, at: 0 },
          lastFailure: null,
          modelExists: population !== null,
          scheduled: false,
          now: Number.MAX_SAFE_INTEGER,
        };
        if (decidePopulationFit(state, cfg.policy).due) {
          fits++;
          last = current;
          population = fitPopulationLikeService(eligible, cfg, population);
        }
      }
      return n >= cfg.minSamples ? { result: fitUser(ui, mine, population), population } : null;
    });
    // After a population model activates, the service re-blends users fitted with an older one (or none), and keeps
    // the new version when it scores at least the old one on the same held-out rows (src/service/trainer.ts).
    let reblended = 0;
    fitted.forEach((f, ui) => {
      if (f === null || f.population === population) return;
      const again = fitUser(ui, toUser(`user-${ui}`, streams[ui]!.slice(0, n)), population);
      if (again.evaluation.accuracy >= f.result.evaluation.accuracy) {
        fitted[ui] = { result: again, population };
        reblended++;
      }
    });
    users.forEach((_, ui) => {
      const train = streams[ui]!.slice(0, n);
      const test = streams[ui]!.slice(maxN, maxN + cfg.testSize);
      bayes.push(...test);
      const mine = toUser(`user-${ui}`, train);
      let production: (f: SyntheticSample["features"]) => number[];
      const mineFitted = fitted[ui];
      if (mineFitted != null) {
        const loaded = loadModel(mineFitted.result.format, mineFitted.result.modelData);
        if (loaded.kind === "blended") {
          trained++;
          for (const [k, w] of Object.entries(loaded.model.meta.weights)) weightSums[k] = (weightSums[k] ?? 0) + (w ?? 0);
        }
        production = energyScorer(loaded, mineFitted.population === null ? null : loadPopulation(mineFitted.population.modelData));
      } else {
        // No user model yet: Predict answers from the active population model, or the prior.
        const pop: AnyPopulation | null = population === null ? null : loadPopulation(population.modelData);
        production = pop === null ? (f) => circadianPrior(f.hour_of_day) : energyScorer({ kind: "population", model: pop }, null);
      }
      const counts = [1, 1, 1];
      for (const l of mine.labels) counts[l]!++;
      const total = counts.reduce((a, b) => a + b, 0);
      const majority = counts.map((c) => c / total);
      const spec = forestAlgorithm(defaultForestKind).fit(
        train.map((s) => energyFeatureRow(s.features)),
        mine.labels,
        3,
        {
          nEstimators: cfg.nEstimators,
          seed: seed + ui,
          calibrate: false,
        },
      );
      const methods: Record<GenMethod, (f: SyntheticSample["features"]) => number[]> = {
        "majority label": () => majority,
        "spec recipe": (f) => spec.predictProba(energyFeatureRow(f)),
        production,
      };
      for (const m of GEN_METHODS) {
        const bucket = perMethod.get(m)!;
        let hits = 0;
        for (const s of test) {
          const p = methods[m](s.features);
          bucket.probs.push(p);
          bucket.labels.push(label(s));
          if (argmax(p) === label(s)) hits++;
        }
        bucket.accuracies.push(hits / test.length);
      }
    });
    const base = { family: FAMILIES[familyIndex]!.name, variant, mode, n };
    for (const m of GEN_METHODS) {
      const b = perMethod.get(m)!;
      const s = score(b.probs, b.labels);
      const accuracy = b.accuracies.reduce((a, x) => a + x, 0) / b.accuracies.length;
      const extra =
        m === "production"
          ? {
              weights: Object.fromEntries(Object.entries(weightSums).map(([k, w]) => [k, trained === 0 ? 0 : w / trained])),
              populationFits: fits,
              populationActive: population === null ? 0 : 1,
              reblended,
            }
          : {};
      points.push({ ...base, method: m, accuracy, ece: s.ece, brier: s.brier, confidence: meanConfidence(b.probs), ...extra });
    }
    // The generator's own probabilities on the same rows: their ECE is the sampling noise floor of every ECE here.
    const truth = score(
      bayes.map((s) => [...s.probabilities]),
      bayes.map(label),
    );
    points.push({
      ...base,
      method: "bayes",
      accuracy: bayesAccuracy(bayes),
      ece: truth.ece,
      brier: truth.brier,
      confidence: meanConfidence(bayes.map((s) => [...s.probabilities])),
    });
  }
  return points;
}
