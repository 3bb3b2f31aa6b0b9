import { randomUUID } from "node:crypto";
import type { DatabasePool } from "slonik";
import type { PredictionLog } from "./prediction-log.ts";
import type { EnergyLabel } from "../domain.ts";
import { openTasks } from "../db/tasks.ts";
import { localHourAndWeekday } from "../ml/features.ts";
import { choiceFeatures, choiceProbabilities, factorContributions } from "../ml/choice-model.ts";
import { factorSentence, reasoning, ruleScore } from "../ml/task-ranking.ts";
import type { EnergyQuery, Predictor } from "./predictor.ts";
import type { TaskRanker } from "./task-ranker.ts";

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
  readonly ranker: TaskRanker;
  readonly predictor: Predictor;
  readonly predictionLog: PredictionLog;
}

/**
 * Builds the suggester: every open task gets the probability that the user
 * picks it now, from their learned ranker (the population's, or the rules,
 * until they have picks of their own). match_score is that probability, so
 * its scale does not change when a user's own weights appear.
 */
export function createSuggester({ db, ranker, predictor, predictionLog }: SuggesterDeps): Suggester {
  return {
    async suggest(query) {
      let energy = query.energy;
      const energyPredicted = energy === null;
      if (energy === null) {
        energy = (await predictor.estimate({ ...query.prediction, userId: query.userId, targetTime: query.now })).energy;
      }
      const { hour, weekday } = localHourAndWeekday(query.now, query.prediction.timeZone);
      const weekend = weekday >= 5;
      const [tasks, learned] = await Promise.all([openTasks(db, query.userId), ranker.weightsFor(query.userId)]);
      const rows = choiceFeatures(tasks, { energy, hour, weekend, now: query.now });
      const p = choiceProbabilities(learned.weights, rows);
      const order = tasks.map((_, i) => i).sort((a, b) => p[b]! - p[a]! || rows[b]![0]! - rows[a]![0]! || tasks[a]!.priority - tasks[b]!.priority);
      const top = order.slice(0, query.limit);
      const suggestions = top.map((i) => {
        const task = tasks[i]!;
        const base = reasoning(ruleScore(task, energy, query.now), energy, query.now);
        return {
          taskId: task.taskId,
          title: task.title,
          matchScore: Math.round(p[i]! * 10_000) / 10_000,
          reasoning: `${base} ${factorSentence(factorContributions(learned.weights, rows, i), task, weekend)}`,
        };
      });
      const suggestionId = randomUUID();
      await predictionLog.append({
        predictionId: suggestionId,
        modelId: null,
        userId: query.userId,
        type: "task_suggestion",
        value: {
          energy,
          energy_predicted: energyPredicted,
          hour_of_day: hour,
          weekend,
          at: new Date(query.now).toISOString(),
          personal: learned.personal,
          suggestions: suggestions.map((s) => ({ task_id: s.taskId, match_score: s.matchScore })),
        },
        confidence: top.length === 0 ? null : p[top[0]!]!,
      });
      return { suggestionId, energy, energyPredicted, suggestions };
    },
  };
}
