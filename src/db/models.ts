import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { MODEL_TYPES, type ModelTypeName } from "../domain.ts";

const ModelRow = z.object({
  model_id: z.string().uuid(),
  user_id: z.string(),
  model_type: z.enum(MODEL_TYPES),
  version: z.string(),
  version_number: z.number().int(),
  model_format: z.string(),
  accuracy_score: z.number().nullable(),
  training_accuracy: z.number().nullable(),
  evaluation: z.record(z.string(), z.unknown()),
  training_samples: z.number().int().nullable(),
  training_data_seq: z.bigint(),
  feedback_count: z.number().int(),
  feedback_correct: z.number().int(),
  trained_at: z.number(),
  is_active: z.boolean(),
});
/** A model version without its (large) serialized data. */
export type ModelRow = z.infer<typeof ModelRow>;

const ModelBlobRow = z.object({
  model_id: z.string().uuid(),
  version: z.string(),
  model_format: z.string(),
  model_data: z.instanceof(Buffer).nullable(),
});
/** What loading a model into memory needs. */
export type ModelBlobRow = z.infer<typeof ModelBlobRow>;

const columns = sql.fragment`model_id, user_id, model_type, version, version_number, model_format,
  accuracy_score::float8 AS accuracy_score, training_accuracy::float8 AS training_accuracy, evaluation,
  training_samples, training_data_seq, feedback_count, feedback_correct, trained_at, is_active`;

/**
 * How many pseudo-observations the training-time accuracy counts for when
 * feedback arrives: the live accuracy moves with feedback without jumping to
 * 0% or 100% on the first answer.
 */
export const TRAINING_ACCURACY_WEIGHT = 10;

/** A new model version to store. */
export interface NewModel {
  readonly userId: string;
  readonly modelType: ModelTypeName;
  readonly format: string;
  readonly modelData: Uint8Array;
  readonly trainingAccuracy: number;
  readonly evaluation: Record<string, unknown>;
  readonly trainingSamples: number;
  readonly trainingDataSeq: bigint;
}

/** Stores a new, inactive version numbered one past the user's latest. */
export async function insertModel(db: CommonQueryMethods, model: NewModel): Promise<ModelRow> {
  const accuracy = Math.round(model.trainingAccuracy * 10_000) / 10_000;
  return db.one(sql.type(ModelRow)`
    WITH next AS (
      SELECT coalesce(max(version_number), 0) + 1 AS n FROM ml_models
      WHERE user_id = ${model.userId} AND model_type = ${model.modelType}
    )
    INSERT INTO ml_models (user_id, model_type, version, version_number, model_format, model_data,
      accuracy_score, training_accuracy, evaluation, training_samples, training_data_seq, is_active)
    SELECT ${model.userId}, ${model.modelType}, 'v' || next.n, next.n, ${model.format},
      ${sql.binary(Buffer.from(model.modelData.buffer, model.modelData.byteOffset, model.modelData.byteLength))},
      ${accuracy}, ${accuracy}, ${sql.jsonb(model.evaluation as never)}, ${model.trainingSamples},
      ${model.trainingDataSeq.toString()}::bigint, false
    FROM next
    RETURNING ${columns}
  `);
}

/** The active version of a user's model, if any. */
export async function activeModel(db: CommonQueryMethods, userId: string, modelType: ModelTypeName): Promise<ModelRow | null> {
  return db.maybeOne(sql.type(ModelRow)`
    SELECT ${columns} FROM ml_models WHERE user_id = ${userId} AND model_type = ${modelType} AND is_active
  `);
}

/** One version by id, if it exists. */
export async function modelById(db: CommonQueryMethods, modelId: string): Promise<ModelRow | null> {
  return db.maybeOne(sql.type(ModelRow)`SELECT ${columns} FROM ml_models WHERE model_id = ${modelId}`);
}

/** The serialized model, read only when a version is first used. */
export async function modelBlob(db: CommonQueryMethods, modelId: string): Promise<ModelBlobRow | null> {
  return db.maybeOne(sql.type(ModelBlobRow)`
    SELECT model_id, version, model_format, model_data FROM ml_models WHERE model_id = ${modelId}
  `);
}

/** Every version of a user's model, newest first. */
export async function listModels(db: CommonQueryMethods, userId: string, modelType: ModelTypeName): Promise<readonly ModelRow[]> {
  return db.any(sql.type(ModelRow)`
    SELECT ${columns} FROM ml_models WHERE user_id = ${userId} AND model_type = ${modelType}
    ORDER BY version_number DESC
  `);
}

/**
 * Makes one version the active one. Deactivating first and activating second
 * in one transaction keeps the partial unique index satisfied at every step.
 */
export async function activateModel(db: CommonQueryMethods, modelId: string): Promise<ModelRow | null> {
  return db.transaction(async (tx) => {
    const target = await tx.maybeOne(sql.type(ModelRow)`
      SELECT ${columns} FROM ml_models WHERE model_id = ${modelId} FOR UPDATE
    `);
    if (target === null) return null;
    await tx.query(sql.unsafe`
      UPDATE ml_models SET is_active = false
      WHERE user_id = ${target.user_id} AND model_type = ${target.model_type} AND is_active AND model_id <> ${modelId}
    `);
    return tx.one(sql.type(ModelRow)`
      UPDATE ml_models SET is_active = true WHERE model_id = ${modelId} RETURNING ${columns}
    `);
  });
}

/** Counts one feedback answer and recomputes the live accuracy. */
export async function recordModelFeedback(db: CommonQueryMethods, modelId: string, correct: boolean): Promise<ModelRow> {
  return db.one(sql.type(ModelRow)`
    UPDATE ml_models SET
      feedback_count = feedback_count + 1,
      feedback_correct = feedback_correct + ${correct ? 1 : 0},
      accuracy_score = round(
        (coalesce(training_accuracy, 0) * ${TRAINING_ACCURACY_WEIGHT} + feedback_correct + ${correct ? 1 : 0})
        / (${TRAINING_ACCURACY_WEIGHT} + feedback_count + 1), 4)
    WHERE model_id = ${modelId}
    RETURNING ${columns}
  `);
}
