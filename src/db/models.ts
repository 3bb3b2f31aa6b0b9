import { sql, type CommonQueryMethods, type DatabasePool, type DatabaseTransactionConnection } from "slonik";
import { z } from "zod";
import { MODEL_TYPES, type ModelTypeName } from "../domain.ts";
import { PreconditionFailed } from "../errors.ts";

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
  ece: z.number().nullable(),
  brier: z.number().nullable(),
  training_since_seq: z.bigint(),
});
/** A model version without its (large) serialized data. */
export type ModelRow = z.infer<typeof ModelRow>;

const ModelOwner = z.object({ user_id: z.string(), model_type: z.enum(MODEL_TYPES), version: z.string(), has_data: z.boolean() });

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
  training_samples, training_data_seq, feedback_count, feedback_correct, trained_at, is_active,
  ece::float8 AS ece, brier::float8 AS brier, training_since_seq`;

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
  /** First seq of the training window (0: all of the user's data). */
  readonly trainingSinceSeq: bigint;
  readonly ece: number;
  readonly brier: number;
}

/**
 * Users whose active energy model was fitted with another population model
 * than this one (or none, or before the id was recorded): those a new
 * population may improve. Fewest samples first, where borrowing helps most.
 */
export async function usersFittedWithoutPopulation(db: CommonQueryMethods, populationModelId: string, limit: number): Promise<readonly string[]> {
  const rows = await db.any(sql.type(z.object({ user_id: z.string() }))`
    SELECT user_id FROM ml_models
    WHERE model_type = 'energy_prediction' AND is_active AND user_id <> ''
      AND (evaluation->>'population_model_id') IS DISTINCT FROM ${populationModelId}
    ORDER BY training_samples ASC NULLS FIRST, user_id
    LIMIT ${limit}`);
  return rows.map((r) => r.user_id);
}

/** Stores a new, inactive version numbered one past the user's latest (storeVersion serializes concurrent ones). */
export async function insertModel(db: CommonQueryMethods, model: NewModel): Promise<ModelRow> {
  const accuracy = Math.round(model.trainingAccuracy * 10_000) / 10_000;
  return db.one(sql.type(ModelRow)`
    WITH next AS (
      SELECT coalesce(max(version_number), 0) + 1 AS n FROM ml_models
      WHERE user_id = ${model.userId} AND model_type = ${model.modelType}
    )
    INSERT INTO ml_models (user_id, model_type, version, version_number, model_format, model_data,
      accuracy_score, training_accuracy, evaluation, training_samples, training_data_seq, is_active,
      ece, brier, training_since_seq)
    SELECT ${model.userId}, ${model.modelType}, 'v' || next.n, next.n, ${model.format},
      ${sql.binary(Buffer.from(model.modelData.buffer, model.modelData.byteOffset, model.modelData.byteLength))},
      ${accuracy}, ${accuracy}, ${sql.jsonb(model.evaluation as never)}, ${model.trainingSamples},
      ${model.trainingDataSeq.toString()}::bigint, false,
      ${Math.round(model.ece * 100_000) / 100_000}, ${Math.round(model.brier * 100_000) / 100_000},
      ${model.trainingSinceSeq.toString()}::bigint
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

/** Why a version was (or was not) activated, for the activation log. */
export interface Decision {
  /** "train", "retrain:new-samples", "retrain:drift", "schedule", "population:first", "population:growth", "population:reblend" or "activate". */
  readonly trigger: string;
  readonly reason: string;
}

/**
 * Serializes every change to one user's versions of one model type (a new
 * version, an activation) across connections and replicas, until the
 * transaction ends: concurrent calls then succeed one after another instead
 * of racing on the unique indexes (version number, one active version).
 */
async function lockVersionsOf(tx: DatabaseTransactionConnection, userId: string, modelType: ModelTypeName): Promise<void> {
  await tx.query(sql.unsafe`SELECT pg_advisory_xact_lock(hashtextextended(${`${modelType}:${userId}`}, 0))`);
}

/** Inside a locked transaction: deactivates the others, activates this one, logs why. */
async function activateLocked(tx: DatabaseTransactionConnection, target: ModelRow, decision: Decision): Promise<ModelRow> {
  // Deactivating first and activating second keeps the partial unique index satisfied at every step.
  await tx.query(sql.unsafe`
    UPDATE ml_models SET is_active = false
    WHERE user_id = ${target.user_id} AND model_type = ${target.model_type} AND is_active AND model_id <> ${target.model_id}
  `);
  const row = await tx.one(sql.type(ModelRow)`
    UPDATE ml_models SET is_active = true WHERE model_id = ${target.model_id} RETURNING ${columns}
  `);
  await logDecision(tx, row, true, decision);
  // Delivered to every listening replica when (and only if) this transaction commits.
  await tx.query(
    sql.unsafe`SELECT pg_notify('ml_activation', ${JSON.stringify({ user_id: row.user_id, model_type: row.model_type, model_id: row.model_id })})`,
  );
  return row;
}

/** Makes one version the active one and logs why; concurrent activations of one user's model run one at a time. */
export async function activateModel(db: DatabasePool, modelId: string, decision: Decision): Promise<ModelRow | null> {
  return db.transaction(async (tx) => {
    const owner = await tx.maybeOne(sql.type(ModelOwner)`
      SELECT user_id, model_type, version, model_data IS NOT NULL AS has_data FROM ml_models WHERE model_id = ${modelId}`);
    if (owner === null) return null;
    await lockVersionsOf(tx, owner.user_id, owner.model_type);
    // Checked under a row lock: retention may have freed the data since the first read.
    const hasData = await tx.oneFirst(sql.type(z.object({ has_data: z.boolean() }))`
      SELECT model_data IS NOT NULL AS has_data FROM ml_models WHERE model_id = ${modelId} FOR UPDATE`);
    if (!hasData) throw new PreconditionFailed(`version ${owner.version} was pruned by retention (its model data is gone); train a new version`);
    const target = await tx.one(sql.type(ModelRow)`SELECT ${columns} FROM ml_models WHERE model_id = ${modelId}`);
    return activateLocked(tx, target, decision);
  });
}

/**
 * Stores a new version and its activation-log entry in one transaction, so
 * no crash or race leaves a version without its entry. `decide` sees the
 * version active now (under the lock), which may differ from the one the
 * new version was measured against.
 */
export async function storeVersion(
  db: DatabasePool,
  model: NewModel,
  decide: (activeNow: ModelRow | null) => Decision & { readonly activate: boolean },
): Promise<{ model: ModelRow; activated: boolean; reason: string }> {
  return db.transaction(async (tx) => {
    await lockVersionsOf(tx, model.userId, model.modelType);
    const activeNow = await activeModel(tx, model.userId, model.modelType);
    const stored = await insertModel(tx, model);
    const { activate, ...decision } = decide(activeNow);
    if (!activate) {
      await logDecision(tx, stored, false, decision);
      return { model: stored, activated: false, reason: decision.reason };
    }
    return { model: await activateLocked(tx, stored, decision), activated: true, reason: decision.reason };
  });
}

/** Appends a decision about a version to the activation log. */
export async function logDecision(db: CommonQueryMethods, model: ModelRow, activated: boolean, decision: Decision): Promise<void> {
  await db.query(sql.unsafe`
    INSERT INTO model_activations (model_id, user_id, model_type, version, activated, trigger, reason)
    VALUES (${model.model_id}, ${model.user_id}, ${model.model_type}, ${model.version}, ${activated}, ${decision.trigger}, ${decision.reason})
  `);
}

const ActivationRow = z.object({
  model_id: z.string().uuid(),
  version: z.string(),
  activated: z.boolean(),
  trigger: z.string(),
  reason: z.string(),
  created_at: z.number(),
});
/** One entry of the activation log. */
export type ActivationRow = z.infer<typeof ActivationRow>;

/** The newest decisions about a user's versions. */
export async function listActivations(db: CommonQueryMethods, userId: string, modelType: ModelTypeName, limit: number): Promise<readonly ActivationRow[]> {
  return db.any(sql.type(ActivationRow)`
    SELECT model_id, version, activated, trigger, reason, created_at FROM model_activations
    WHERE user_id = ${userId} AND model_type = ${modelType}
    ORDER BY activation_id DESC LIMIT ${limit}
  `);
}

const Outcome = z.object({ was_correct: z.boolean(), confidence: z.number().nullable() });
/** One answered prediction: was it right, and how sure was the model. */
export type Outcome = { readonly correct: boolean; readonly confidence: number };

/**
 * Whether each of the most recent answered predictions of a user's model was
 * right, oldest first: across every version trained on the same data window
 * as `model`, so a routine retrain does not reset the evidence of a drift.
 */
export async function recentOutcomes(db: CommonQueryMethods, model: ModelRow, limit: number): Promise<Outcome[]> {
  const rows = await db.any(sql.type(Outcome)`
    SELECT p.was_correct, p.confidence_score::float8 AS confidence FROM model_predictions p JOIN ml_models m ON m.model_id = p.model_id
    WHERE p.user_id = ${model.user_id} AND p.prediction_type = 'energy_prediction' AND p.was_correct IS NOT NULL
      AND m.user_id = ${model.user_id} AND m.model_type = ${model.model_type}
      AND m.training_since_seq = ${model.training_since_seq.toString()}::bigint
    ORDER BY p.feedback_at DESC LIMIT ${limit}
  `);
  return rows.map((r) => ({ correct: r.was_correct, confidence: r.confidence ?? model.training_accuracy ?? 0.5 })).reverse();
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
