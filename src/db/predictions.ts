import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";

/** prediction_type values. */
export type PredictionType = "energy_prediction" | "task_suggestion";

/** A prediction or suggestion set to log. */
export interface NewPrediction {
  readonly predictionId: string;
  readonly modelId: string | null;
  readonly userId: string;
  readonly type: PredictionType;
  readonly value: Record<string, unknown>;
  readonly confidence: number | null;
  /** Epoch ms it was made, when not now (a row replayed from the spill file). */
  readonly createdAt?: number;
}

const PredictionRow = z.object({
  prediction_id: z.string().uuid(),
  model_id: z.string().uuid().nullable(),
  user_id: z.string(),
  prediction_type: z.enum(["energy_prediction", "task_suggestion"]),
  prediction_value: z.record(z.string(), z.unknown()),
  was_correct: z.boolean().nullable(),
  feedback: z.record(z.string(), z.unknown()).nullable(),
});
/** A logged prediction as Feedback reads it. */
export type PredictionRow = z.infer<typeof PredictionRow>;

/**
 * Logs many predictions in one statement. The batch travels as one JSON
 * parameter unpacked by json_to_recordset: one JSON.stringify in Node and
 * PostgreSQL's own parser, instead of escaping every value into array
 * literals (which showed in the Predict profile).
 */
export async function insertPredictions(db: CommonQueryMethods, rows: readonly NewPrediction[]): Promise<void> {
  if (rows.length === 0) return;
  const batch = JSON.stringify(
    rows.map((p) => ({
      prediction_id: p.predictionId,
      model_id: p.modelId,
      user_id: p.userId,
      prediction_type: p.type,
      prediction_value: p.value,
      confidence_score: p.confidence === null ? null : Math.round(p.confidence * 10_000) / 10_000,
      created_at: p.createdAt === undefined ? null : new Date(p.createdAt).toISOString(),
    })),
  );
  // A row already there is skipped: a batch may be written again after a commit whose answer was lost
  // (the log stamps created_at once per row, so the retry names the same row).
  await db.query(sql.unsafe`
    INSERT INTO model_predictions (prediction_id, model_id, user_id, prediction_type, prediction_value, confidence_score, created_at)
    SELECT prediction_id, model_id, user_id, prediction_type, prediction_value, confidence_score, coalesce(created_at, now())
    FROM json_to_recordset(${batch}::json) AS t(
      prediction_id uuid, model_id uuid, user_id text, prediction_type text, prediction_value jsonb, confidence_score numeric,
      created_at timestamptz
    )
    ON CONFLICT (prediction_id, created_at) DO NOTHING
  `);
}

/** Reads and row-locks a prediction so two feedbacks for it cannot race. */
export async function lockPrediction(db: CommonQueryMethods, predictionId: string): Promise<PredictionRow | null> {
  return db.maybeOne(sql.type(PredictionRow)`
    SELECT prediction_id, model_id, user_id, prediction_type, prediction_value, was_correct, feedback
    FROM model_predictions WHERE prediction_id = ${predictionId} FOR UPDATE
  `);
}

/** Stores the answer to a prediction. */
export async function recordPredictionFeedback(
  db: CommonQueryMethods,
  predictionId: string,
  wasCorrect: boolean,
  feedback: Record<string, unknown>,
): Promise<void> {
  await db.query(sql.unsafe`
    UPDATE model_predictions SET was_correct = ${wasCorrect}, feedback = ${sql.jsonb(feedback as never)}, feedback_at = now()
    WHERE prediction_id = ${predictionId}
  `);
}
