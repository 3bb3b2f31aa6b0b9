import type { CommonQueryMethods, DatabasePool } from "slonik";
import { z } from "zod";
import { ENERGY_LABELS, type EnergyLabel, type ModelTypeName, POPULATION } from "../domain.ts";
import { InvalidInput, NotFound, PreconditionFailed } from "../errors.ts";
import { modelById, recentOutcomes, recordModelFeedback, type ModelRow } from "../db/models.ts";
import { detectDrift, DRIFT_WINDOWS } from "../ml/drift.ts";
import { lockPrediction, recordPredictionFeedback, type PredictionRow } from "../db/predictions.ts";
import { insertTaskChoice, type NewTaskChoice } from "../db/task-choices.ts";
import { openTasks } from "../db/tasks.ts";
import { insertTrainingSamples, type NewTrainingSample } from "../db/training-data.ts";
import type { PredictionLog } from "./prediction-log.ts";
import type { TaskRanker } from "./task-ranker.ts";
import type { BackgroundCallOptions, Trainer } from "./trainer.ts";

/** A Feedback request after validation. */
export interface FeedbackInput {
  readonly predictionId: string;
  readonly wasCorrect: boolean;
  readonly actualEnergy: EnergyLabel | null;
  readonly chosenTaskId: string | null;
}

/** What Feedback answers. */
export interface FeedbackOutcome {
  readonly recorded: boolean;
  readonly modelAccuracy: number;
  readonly trainingSampleAdded: boolean;
  readonly retrainScheduled: boolean;
  readonly driftDetected: boolean;
  /** Suggestions: the 1-based rank the chosen task was shown at (absent when it was not shown). */
  readonly chosenRank?: number;
}

/** Records answers to predictions and suggestions. */
export interface FeedbackRecorder {
  /** `call` names the request, so a retrain it schedules logs under the same request id. */
  record(input: FeedbackInput, call?: BackgroundCallOptions): Promise<FeedbackOutcome>;
}

/** Dependencies of the feedback recorder. */
export interface FeedbackDeps {
  readonly db: DatabasePool;
  readonly trainer: Trainer;
  readonly predictionLog: PredictionLog;
  /** Learns from every pick of a task. */
  readonly ranker: TaskRanker;
  /** Told after an answer became training samples, so the population model can refit itself (never waits, never throws). */
  readonly onTrainingSamplesAdded: (modelType: ModelTypeName) => void;
  /** Told of each new answer to an energy prediction, with the source that answered it (live-accuracy metrics). */
  readonly onEnergyAnswer?: (modelSource: string, correct: boolean) => void;
}

// Rows written by Predict and SuggestTasks; parsed because the database can change under the code.
const EnergyValue = z.object({
  predicted_energy: z.enum(ENERGY_LABELS),
  features: z.record(z.string(), z.union([z.number(), z.null()])),
  target_time: z.string(),
});
const SuggestionValue = z.object({
  energy: z.enum(ENERGY_LABELS),
  hour_of_day: z.number().int().min(0).max(23),
  // Absent from suggestions logged before picks were learned from: then the UTC weekday of `at`.
  weekend: z.boolean().optional(),
  at: z.string(),
  propensity: z.number().gt(0).max(1).optional(),
  suggestions: z.array(z.object({ task_id: z.string() })),
});
const StoredAnswer = z.object({
  was_correct: z.boolean(),
  actual_energy: z.enum(ENERGY_LABELS).nullable(),
  chosen_task_id: z.string().nullable(),
});

/** Which model answered a logged energy prediction (Predict logs it), for the live-accuracy metric. */
function sourceOf(row: PredictionRow): string | undefined {
  const source = (row.prediction_value as { model_source?: unknown } | null)?.model_source;
  return typeof source === "string" ? source : undefined;
}

interface Plan {
  readonly samples: NewTrainingSample[];
  readonly modelType: ModelTypeName;
}

function planEnergy(row: PredictionRow, input: FeedbackInput): Plan {
  const value = EnergyValue.parse(row.prediction_value);
  if (input.chosenTaskId !== null) throw new InvalidInput("chosen_task_id", "applies to task suggestions, not energy predictions");
  if (input.actualEnergy !== null) {
    const matches = input.actualEnergy === value.predicted_energy;
    if (matches !== input.wasCorrect) {
      throw new InvalidInput(
        "actual_energy",
        `"${input.actualEnergy}" contradicts was_correct=${input.wasCorrect} for a prediction of "${value.predicted_energy}"`,
      );
    }
  }
  const label = input.actualEnergy ?? (input.wasCorrect ? value.predicted_energy : null);
  const samples: NewTrainingSample[] =
    label === null
      ? []
      : [
          {
            userId: row.user_id,
            modelType: "energy_prediction",
            features: value.features,
            label,
            source: "feedback",
            predictionId: row.prediction_id,
            observedAt: Date.parse(value.target_time),
          },
        ];
  return { samples, modelType: "energy_prediction" };
}

/**
 * A pick becomes one stored choice: every open task of the user at the time
 * (the pick was made among all of them, shown or not), which one was picked,
 * and where it was shown. Any task of the user that is open (or already
 * marked done: the app may close it first) is accepted.
 */
async function planChoice(db: CommonQueryMethods, row: PredictionRow, input: FeedbackInput): Promise<NewTaskChoice | null> {
  const value = SuggestionValue.parse(row.prediction_value);
  if (input.actualEnergy !== null) throw new InvalidInput("actual_energy", "applies to energy predictions, not task suggestions");
  if (input.chosenTaskId === null) return null;
  const tasks = await openTasks(db, row.user_id, input.chosenTaskId);
  const chosenIndex = tasks.findIndex((t) => t.taskId === input.chosenTaskId);
  if (chosenIndex < 0) throw new InvalidInput("chosen_task_id", `task ${input.chosenTaskId} is not a task of user "${row.user_id}"`);
  const shown = value.suggestions.findIndex((s) => s.task_id === input.chosenTaskId);
  const now = Date.parse(value.at);
  const utcDay = new Date(now).getUTCDay();
  return {
    userId: row.user_id,
    suggestionId: row.prediction_id,
    chosenTaskId: input.chosenTaskId,
    shownRank: shown < 0 ? null : shown + 1,
    propensity: value.propensity ?? null,
    context: { energy: value.energy, hour: value.hour_of_day, weekend: value.weekend ?? (utcDay === 0 || utcDay === 6), now },
    openTasks: tasks.map((t) => [t.category, t.energyRequired, t.estimatedMinutes, t.priority, t.dueAt] as const),
    chosenIndex,
  };
}

/** Builds the recorder: answers are stored once; the same answer again is a no-op, a different one an error. */
export function createFeedbackRecorder({ db, trainer, predictionLog, ranker, onTrainingSamplesAdded, onEnergyAnswer }: FeedbackDeps): FeedbackRecorder {
  /** How many recent answers show a user's active energy model doing much worse than promised (0: no drift). */
  async function drifted(model: ModelRow | null): Promise<number> {
    if (model === null || !model.is_active || model.user_id === POPULATION || model.model_type !== "energy_prediction") return 0;
    const answers = await recentOutcomes(db, model, DRIFT_WINDOWS.at(-1)!);
    const check = detectDrift(answers);
    return check.drifted ? check.window : 0;
  }
  return {
    async record(input, call = {}) {
      const answer = { was_correct: input.wasCorrect, actual_energy: input.actualEnergy, chosen_task_id: input.chosenTaskId };
      // A prediction may still be in the log's buffer: write it first.
      await predictionLog.ensureWritten(input.predictionId);
      const outcome = await db.transaction(async (tx) => {
        const row = await lockPrediction(tx, input.predictionId);
        if (row === null) throw new NotFound(`no prediction or suggestion has id ${input.predictionId}`);
        const plan: Plan = row.prediction_type === "energy_prediction" ? planEnergy(row, input) : { samples: [], modelType: "task_suggester" };
        const choice = row.prediction_type === "energy_prediction" ? null : await planChoice(tx, row, input);
        const model = row.model_id === null ? null : await modelById(tx, row.model_id);
        if (row.was_correct !== null) {
          const previous = StoredAnswer.safeParse(row.feedback);
          const same =
            previous.success &&
            previous.data.was_correct === answer.was_correct &&
            previous.data.actual_energy === answer.actual_energy &&
            previous.data.chosen_task_id === answer.chosen_task_id;
          if (!same) {
            throw new PreconditionFailed(
              `prediction ${input.predictionId} already has a different answer (${JSON.stringify(row.feedback)}); feedback cannot be changed`,
            );
          }
          return { recorded: false, modelAccuracy: model?.accuracy_score ?? 0, plan, choice, userId: row.user_id, model, source: sourceOf(row) };
        }
        await recordPredictionFeedback(tx, input.predictionId, input.wasCorrect, answer);
        const updated = model === null ? null : await recordModelFeedback(tx, model.model_id, input.wasCorrect);
        await insertTrainingSamples(tx, plan.samples);
        if (choice !== null) await insertTaskChoice(tx, choice);
        return { recorded: true, modelAccuracy: updated?.accuracy_score ?? 0, plan, choice, userId: row.user_id, model: updated, source: sourceOf(row) };
      });
      if (outcome.recorded && outcome.plan.modelType === "energy_prediction") onEnergyAnswer?.(outcome.source ?? "unknown", input.wasCorrect);
      const chosenRank = outcome.choice?.shownRank ?? null;
      const rank = chosenRank === null ? {} : { chosenRank };
      if (outcome.choice !== null && outcome.recorded) {
        // Every pick updates the user's ranker at once: a refit on their recent picks, a few ms at most.
        const c = outcome.choice;
        await ranker.learn(outcome.userId, { user_id: c.userId, context: c.context, open_tasks: c.openTasks.map((t) => [...t]), chosen_index: c.chosenIndex });
        return { recorded: true, modelAccuracy: 0, trainingSampleAdded: true, retrainScheduled: false, driftDetected: false, ...rank };
      }
      const trainingSampleAdded = outcome.recorded && outcome.plan.samples.length > 0;
      if (trainingSampleAdded) onTrainingSamplesAdded(outcome.plan.modelType);
      const driftWindow = outcome.recorded ? await drifted(outcome.model) : 0;
      const driftDetected = driftWindow > 0;
      let retrainScheduled = false;
      if (driftDetected) {
        // Retrain on the samples since the drift began: older ones describe a pattern that no longer holds.
        retrainScheduled = await trainer.retrainAfterDrift(outcome.userId, outcome.plan.modelType, driftWindow, call);
      }
      if (!retrainScheduled && trainingSampleAdded) retrainScheduled = await trainer.maybeRetrain(outcome.userId, outcome.plan.modelType, call);
      return { recorded: outcome.recorded, modelAccuracy: outcome.modelAccuracy, trainingSampleAdded, retrainScheduled, driftDetected, ...rank };
    },
  };
}
