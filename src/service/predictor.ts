import { randomUUID } from "node:crypto";
import { ENERGY_LABELS, type EnergyFeatureValues, type EnergyLabel, POPULATION } from "../domain.ts";
import type { ModelRow } from "../db/models.ts";
import { ModelLoadFailed } from "../errors.ts";
import { circadianPrior } from "../ml/circadian-prior.ts";
import type { AnyPopulation } from "../ml/energy-model.ts";
import { energyScorer, populationIdOf, predictAnyPopulation, type LoadedModel } from "../ml/loaded-model.ts";
import { argmax } from "../ml/evaluation.ts";
import { localHourAndWeekday } from "../ml/features.ts";
import type { ActiveModels } from "./active-models.ts";
import type { ModelCache } from "./model-cache.ts";
import type { PredictionLog } from "./prediction-log.ts";

/** What the caller knows about the user's recent days. */
export interface RecentActivity {
  readonly tasksCompletedToday: number;
  readonly avgEnergyLast7Days: number;
  readonly sleepQuality: number | null;
}

/** A Predict request after validation. */
export interface EnergyQuery {
  readonly userId: string;
  readonly targetTime: number;
  readonly timeZone: string;
  readonly activity: RecentActivity;
}

/** Which model answered: the user's own, the population's, or the built-in prior. */
export type ModelSourceName = "user" | "population" | "prior";

/** The model's answer, before logging. */
export interface EnergyEstimate {
  readonly energy: EnergyLabel;
  readonly probabilities: readonly number[];
  readonly confidence: number;
  readonly features: EnergyFeatureValues;
  /** Null when the circadian prior answered. */
  readonly model: ModelRow | null;
  readonly source: ModelSourceName;
}

/** A logged prediction. */
export interface EnergyPrediction extends EnergyEstimate {
  readonly predictionId: string;
}

/** Predicts energy for anyone: with the user's model, else the population's, else the circadian prior. */
export interface Predictor {
  /** Predicts without logging (SuggestTasks and ForecastEnergy use this). */
  estimate(query: EnergyQuery): Promise<EnergyEstimate>;
  /** Predicts many moments for one user with one model lookup. */
  estimateMany(userId: string, times: readonly number[], timeZone: string, activity: RecentActivity): Promise<EnergyEstimate[]>;
  /** Predicts and logs to model_predictions; the id is valid for Feedback on return. */
  predict(query: EnergyQuery): Promise<EnergyPrediction>;
}

/** Dependencies of the predictor. */
export interface PredictorDeps {
  readonly activeModels: ActiveModels;
  readonly cache: ModelCache;
  readonly predictionLog: PredictionLog;
}

type Scorer = (f: EnergyFeatureValues) => number[];
interface ModelChoice {
  readonly score: Scorer;
  readonly model: ModelRow | null;
  readonly source: ModelSourceName;
}

/** Builds the predictor. */
export function createPredictor({ activeModels, cache, predictionLog }: PredictorDeps): Predictor {
  async function population(modelId: string): Promise<AnyPopulation> {
    const loaded = await cache.get(modelId);
    if (loaded.kind !== "population") throw new ModelLoadFailed(modelId, `expected a population model, found a ${loaded.kind} model`);
    return loaded.model;
  }

  /** How a user's own model answers, with the population it was fitted with. */
  function userChoice(own: ModelRow, loaded: LoadedModel, pop: AnyPopulation | null): ModelChoice {
    return { score: energyScorer(loaded, pop), model: own, source: "user" };
  }

  /** The scorer from what is already in memory (no await on the hot path), or undefined when something must be loaded first. */
  function scorerNow(userId: string): ModelChoice | undefined {
    const own = activeModels.peek(userId, "energy_prediction");
    if (own === undefined || own === null) return undefined;
    const loaded = cache.peek(own.model_id);
    if (loaded === undefined) return undefined;
    const popId = populationIdOf(loaded);
    if (popId === null) return userChoice(own, loaded, null);
    const pop = cache.peek(popId);
    return pop?.kind === "population" ? userChoice(own, loaded, pop.model) : undefined;
  }

  /** Resolves the model that answers for a user, once per call (or per forecast), loading what is not in memory. */
  async function scorerFor(userId: string): Promise<ModelChoice> {
    const now = scorerNow(userId);
    if (now !== undefined) return now;
    const own = await activeModels.get(userId, "energy_prediction");
    if (own !== null) {
      const loaded = await cache.get(own.model_id);
      const popId = populationIdOf(loaded);
      return userChoice(own, loaded, popId === null ? null : await population(popId));
    }
    const pop = await activeModels.get(POPULATION, "energy_prediction");
    if (pop !== null) {
      const model = await population(pop.model_id);
      return { score: (f) => predictAnyPopulation(model, f), model: pop, source: "population" };
    }
    return { score: (f) => circadianPrior(f.hour_of_day), model: null, source: "prior" };
  }

  function features(time: number, timeZone: string, activity: RecentActivity): EnergyFeatureValues {
    const { hour, weekday } = localHourAndWeekday(time, timeZone);
    return {
      hour_of_day: hour,
      day_of_week: weekday,
      tasks_completed_today: activity.tasksCompletedToday,
      avg_energy_last_7_days: activity.avgEnergyLast7Days,
      sleep_quality: activity.sleepQuality,
    };
  }

  function answer(f: EnergyFeatureValues, scorer: ModelChoice): EnergyEstimate {
    const probabilities = scorer.score(f);
    const top = argmax(probabilities);
    return { energy: ENERGY_LABELS[top]!, probabilities, confidence: probabilities[top]!, features: f, model: scorer.model, source: scorer.source };
  }

  async function estimate(query: EnergyQuery): Promise<EnergyEstimate> {
    // Warm users (model and version known) are answered without waiting on anything.
    const scorer = scorerNow(query.userId) ?? (await scorerFor(query.userId));
    return answer(features(query.targetTime, query.timeZone, query.activity), scorer);
  }

  return {
    estimate,
    async estimateMany(userId, times, timeZone, activity) {
      const scorer = await scorerFor(userId);
      return times.map((t) => answer(features(t, timeZone, activity), scorer));
    },
    async predict(query) {
      const result = await estimate(query);
      const predictionId = randomUUID();
      await predictionLog.append({
        predictionId,
        modelId: result.model?.model_id ?? null,
        userId: query.userId,
        type: "energy_prediction",
        value: {
          predicted_energy: result.energy,
          // Four decimals are plenty for analysis and keep the logged row (and its insert) small.
          probabilities: {
            low: Math.round((result.probabilities[0] ?? 0) * 10_000) / 10_000,
            medium: Math.round((result.probabilities[1] ?? 0) * 10_000) / 10_000,
            high: Math.round((result.probabilities[2] ?? 0) * 10_000) / 10_000,
          },
          features: result.features,
          target_time: new Date(query.targetTime).toISOString(),
          time_zone: query.timeZone,
          model_source: result.source,
          model_version: result.model?.version ?? null,
        },
        confidence: result.confidence,
      });
      return { ...result, predictionId };
    },
  };
}
