import type { DatabasePool } from "slonik";
import { z } from "zod";
import { ENERGY_LABELS, type EnergyLabel, type ModelTypeName } from "../domain.ts";
import { InvalidInput, NotFound, PreconditionFailed } from "../errors.ts";
import { modelById, recentOutcomes, recordModelFeedback, type ModelRow } from "../db/models.ts";
import { detectDrift, DRIFT_WINDOWS } from "../ml/drift.ts";
import { lockPrediction, recordPredictionFeedback, type PredictionRow } from "../db/predictions.ts";
import { insertTrainingSamples, type NewTrainingSample } from "../db/training-data.ts";
import type { PredictionLog } from "./prediction-log.ts";
import { POPULATION, type Trainer } from "./trainer.ts";

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
}

/** Records answers to predictions and suggestions. */
export interface FeedbackRecorder {
  record(input: FeedbackInput): Promise<FeedbackOutcome>;
}

/** Dependencies of the feedback recorder. */
export interface FeedbackDeps {
  readonly db: DatabasePool;
  readonly trainer: Trainer;
  readonly predictionLog: PredictionLog;
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
  suggestions: z.array(z.object({ task_id: z.string(), features: z.record(z.string(), z.union([z.number(), z.null()])) })),
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

function planSuggestion(row: PredictionRow, input: FeedbackInput): Plan {
  const value = SuggestionValue.parse(row.prediction_value);
  if (input.actualEnergy !== null) throw new InvalidInput("actual_energy", "applies to energy predictions, not task suggestions");
  if (input.chosenTaskId === null) return { samples: [], modelType: "task_suggester" };
  if (!value.suggestions.some((s) => s.task_id === input.chosenTaskId)) {
    throw new InvalidInput("chosen_task_id", `task ${input.chosenTaskId} was not among the ${value.suggestions.length} suggestions`);
  }
  // Every task shown becomes a sample: the chosen one "chosen", the others "skipped".
  const samples = value.suggestions.map(
    (s): NewTrainingSample => ({
      userId: row.user_id,
      modelType: "task_suggester",
      features: s.features,
      label: s.task_id === input.chosenTaskId ? "chosen" : "skipped",
      source: "feedback",
      predictionId: row.prediction_id,
      observedAt: null,
    }),
  );
  return { samples, modelType: "task_suggester" };
}

/** Builds the recorder: answers are stored once; the same answer again is a no-op, a different one an error. */
export function createFeedbackRecorder({ db, trainer, predictionLog, onTrainingSamplesAdded, onEnergyAnswer }: FeedbackDeps): FeedbackRecorder {
  /** How many recent answers show a user's active energy model doing much worse than promised (0: no drift). */
  async function drifted(model: ModelRow | null): Promise<number> {
    if (model === null || !model.is_active || model.user_id === POPULATION || model.model_type !== "energy_prediction") return 0;
    const answers = await recentOutcomes(db, model, DRIFT_WINDOWS.at(-1)!);
    const check = detectDrift(answers);
    return check.drifted ? check.window : 0;
  }
  return {
    async record(input) {
      const answer = { was_correct: input.wasCorrect, actual_energy: input.actualEnergy, chosen_task_id: input.chosenTaskId };
      // A prediction may still be in the log's buffer: write it first.
      await predictionLog.ensureWritten(input.predictionId);
      const outcome = await db.transaction(async (tx) => {
        const row = await lockPrediction(tx, input.predictionId);
        if (row === null) throw new NotFound(`no prediction or suggestion has id ${input.predictionId}`);
        const plan = row.prediction_type === "energy_prediction" ? planEnergy(row, input) : planSuggestion(row, input);
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
          return { recorded: false, modelAccuracy: model?.accuracy_score ?? 0, plan, userId: row.user_id, model, source: sourceOf(row) };
        }
        await recordPredictionFeedback(tx, input.predictionId, input.wasCorrect, answer);
        const updated = model === null ? null : await recordModelFeedback(tx, model.model_id, input.wasCorrect);
        await insertTrainingSamples(tx, plan.samples);
        return { recorded: true, modelAccuracy: updated?.accuracy_score ?? 0, plan, userId: row.user_id, model: updated, source: sourceOf(row) };
      });
      if (outcome.recorded && outcome.plan.modelType === "energy_prediction") onEnergyAnswer?.(outcome.source ?? "unknown", input.wasCorrect);
      const trainingSampleAdded = outcome.recorded && outcome.plan.samples.length > 0;
      if (trainingSampleAdded) onTrainingSamplesAdded(outcome.plan.modelType);
      const driftWindow = outcome.recorded ? await drifted(outcome.model) : 0;
      const driftDetected = driftWindow > 0;
      let retrainScheduled = false;
      if (driftDetected) {
        // Retrain on the samples since the drift began: older ones describe a pattern that no longer holds.
        retrainScheduled = await trainer.retrainAfterDrift(outcome.userId, outcome.plan.modelType, driftWindow);
      }
      if (!retrainScheduled && trainingSampleAdded) retrainScheduled = await trainer.maybeRetrain(outcome.userId, outcome.plan.modelType);
      return { recorded: outcome.recorded, modelAccuracy: outcome.modelAccuracy, trainingSampleAdded, retrainScheduled, driftDetected };
    },
  };
}
