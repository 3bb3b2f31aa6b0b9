import { randomUUID } from "node:crypto";
import type { DatabasePool } from "slonik";
import type { ActiveModels } from "./active-models.ts";
import type { PredictionLog } from "./prediction-log.ts";
import type { EnergyLabel } from "../domain.ts";
import { openTasks } from "../db/tasks.ts";
import { localHourAndWeekday } from "../ml/features.ts";
import {
  namedFeatureRow,
  reasoning,
  ruleScore,
  suggesterFeatures,
  SUGGESTER_FEATURE_NAMES,
} from "../ml/task-ranking.ts";
import type { ModelCache } from "./model-cache.ts";
import type { EnergyQuery, Predictor } from "./predictor.ts";

/** A SuggestTasks request after validation. */
export interface SuggestionQuery {
  readonly userId: string;
  /** When null, the energy is predicted for `now`. */
  readonly energy: EnergyLabel | null;
  readonly limit: number;
  readonly now: number;
  readonly prediction: Omit<EnergyQuery, "targetTime" | "userId">;
}

/** One ranked task. */
export interface Suggestion {
  readonly taskId: string;
  readonly title: string;
  readonly matchScore: number;
  readonly reasoning: string;
}

/** A logged suggestion set. */
export interface SuggestionSet {
  readonly suggestionId: string;
  readonly energy: EnergyLabel;
  readonly energyPredicted: boolean;
  readonly suggestions: readonly Suggestion[];
}

/** Ranks a user's open tasks for an energy level. */
export interface Suggester {
  suggest(query: SuggestionQuery): Promise<SuggestionSet>;
}

/** Dependencies of the suggester. */
export interface SuggesterDeps {
  readonly db: DatabasePool;
  readonly activeModels: ActiveModels;
  readonly cache: ModelCache;
  readonly predictor: Predictor;
  readonly predictionLog: PredictionLog;
}

/** Share of match_score that comes from the learned preferences once a suggester model is active. */
const LEARNED_WEIGHT = 0.4;

/** Builds the suggester: rules always, plus the user's learned preferences when a TASK_SUGGESTER model is active. */
export function createSuggester({ db, activeModels, cache, predictor, predictionLog }: SuggesterDeps): Suggester {
  return {
    async suggest(query) {
      let energy = query.energy;
      const energyPredicted = energy === null;
      if (energy === null) {
        energy = (await predictor.estimate({ ...query.prediction, userId: query.userId, targetTime: query.now })).energy;
      }
      const { hour } = localHourAndWeekday(query.now, query.prediction.timeZone);
      const [tasks, learnedModel] = await Promise.all([
        openTasks(db, query.userId),
        activeModels.get(query.userId, "task_suggester"),
      ]);
      const loaded = learnedModel === null ? null : await cache.get(learnedModel.model_id);
      const learned = loaded?.kind === "forest" ? loaded.forest : null;
      const scored = tasks.map((task) => {
        const rule = ruleScore(task, energy, query.now);
        const features = suggesterFeatures(task, energy, hour, query.now);
        if (learned === null) return { rule, features, score: rule.score, note: undefined };
        const chosen = learned.predictProba(namedFeatureRow(SUGGESTER_FEATURE_NAMES, features))[1] ?? 0;
        const note = chosen >= 0.5 ? "you often pick tasks like this at this time" : undefined;
        return { rule, features, score: (1 - LEARNED_WEIGHT) * rule.score + LEARNED_WEIGHT * chosen, note };
      });
      scored.sort((a, b) => b.score - a.score || a.rule.task.priority - b.rule.task.priority);
      const top = scored.slice(0, query.limit);
      const suggestions = top.map((s) => ({
        taskId: s.rule.task.taskId,
        title: s.rule.task.title,
        matchScore: Math.round(s.score * 10_000) / 10_000,
        reasoning: reasoning(s.rule, energy, query.now, s.note),
      }));
      const suggestionId = randomUUID();
      await predictionLog.append({
        predictionId: suggestionId,
        modelId: learnedModel?.model_id ?? null,
        userId: query.userId,
        type: "task_suggestion",
        value: {
          energy,
          energy_predicted: energyPredicted,
          hour_of_day: hour,
          at: new Date(query.now).toISOString(),
          suggestions: top.map((s, i) => ({ task_id: s.rule.task.taskId, match_score: suggestions[i]!.matchScore, features: s.features })),
        },
        confidence: top[0]?.score ?? null,
      });
      return { suggestionId, energy, energyPredicted, suggestions };
    },
  };
}
