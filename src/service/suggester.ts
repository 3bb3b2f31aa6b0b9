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
  /** Chance that the fifth place shows a task from further down instead (0 turns exploration off). */
  readonly explorationRate: number;
  /** Uniform [0, 1) draws for exploration; seeded in tests and the eval. */
  readonly random: () => number;
}

/** The one place exploration touches: the fifth suggestion (the first four are always the best). */
export const EXPLORED_RANK = 5;

/** What exploration did to one ranking. */
export interface ExploredOrder {
  /** Indices into the tasks, in the order shown. */
  readonly order: number[];
  /** Probability that this policy showed this order. */
  readonly propensity: number;
  /** Per greedy rank: the probability that the task there is among the first EXPLORED_RANK shown. */
  readonly inclusion: number[];
}

/**
 * Exploration: with probability `rate` the task at EXPLORED_RANK swaps places
 * with one from below it, drawn half in proportion to the model's
 * probabilities and half uniformly (so a likely pick gets a fair chance to be
 * seen, and no task's chance is below rate / (2 x the tasks below)). Returns
 * the order shown, its propensity and every task's inclusion probability,
 * logged so picks can value another ranking off-policy (eval/suggestions.ts).
 */
export function exploreOrder(greedy: readonly number[], probabilities: readonly number[], limit: number, rate: number, random: () => number): ExploredOrder {
  const slot = EXPLORED_RANK - 1;
  const below = greedy.length - EXPLORED_RANK;
  const fixed = greedy.map((_, r) => (r < EXPLORED_RANK ? 1 : 0));
  if (rate <= 0 || limit < EXPLORED_RANK || below < 1) return { order: [...greedy], propensity: 1, inclusion: fixed };
  const tail = greedy.slice(EXPLORED_RANK).map((i) => probabilities[i]!);
  const tailMass = tail.reduce((a, b) => a + b, 0);
  const draw = tail.map((p) => 0.5 * (tailMass > 0 ? p / tailMass : 1 / below) + 0.5 / below);
  const inclusion = greedy.map((_, r) => (r < slot ? 1 : r === slot ? 1 - rate : rate * draw[r - EXPLORED_RANK]!));
  if (random() >= rate) return { order: [...greedy], propensity: 1 - rate, inclusion };
  let u = random();
  let k = 0;
  while (k < below - 1 && (u -= draw[k]!) > 0) k++;
  const order = [...greedy];
  [order[slot], order[EXPLORED_RANK + k]] = [order[EXPLORED_RANK + k]!, order[slot]!];
  return { order, propensity: rate * draw[k]!, inclusion };
}

/**
 * Builds the suggester: every open task gets the probability that the user
 * picks it now, from their learned ranker (the population's, or the rules,
 * until they have picks of their own). match_score is that probability, so
 * its scale does not change when a user's own weights appear.
 */
export function createSuggester({ db, ranker, predictor, predictionLog, explorationRate, random }: SuggesterDeps): Suggester {
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
      const greedy = tasks.map((_, i) => i).sort((a, b) => p[b]! - p[a]! || rows[b]![0]! - rows[a]![0]! || tasks[a]!.priority - tasks[b]!.priority);
      const { order, propensity, inclusion } = exploreOrder(greedy, p, query.limit, explorationRate, random);
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
          // The greedy order of every open task with its probability and its chance to be among the first five shown:
          // what off-policy estimates need.
          propensity,
          ranked: greedy.map((i) => tasks[i]!.taskId),
          probabilities: greedy.map((i) => Math.round(p[i]! * 10_000) / 10_000),
          inclusion: inclusion.map((q) => Number(q.toPrecision(6))),
        },
        confidence: top.length === 0 ? null : p[top[0]!]!,
      });
      return { suggestionId, energy, energyPredicted, suggestions };
    },
  };
}
