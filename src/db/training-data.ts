import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import type { ModelTypeName } from "../domain.ts";

/** A row to store: what the model sees, and the outcome. */
export interface NewTrainingSample {
  readonly userId: string;
  readonly modelType: ModelTypeName;
  readonly features: Record<string, number | string | null>;
  readonly label: string;
  readonly source: "ingest" | "feedback";
  readonly predictionId: string | null;
  readonly observedAt: number | null;
}

const StoredSample = z.object({
  seq: z.bigint(),
  feature_vector: z.record(z.string(), z.union([z.number(), z.string(), z.null()])),
  label: z.string(),
});
/** A stored training sample, oldest first by seq. */
export type StoredSample = z.infer<typeof StoredSample>;

const Count = z.object({ count: z.number().int() });
const MaxSeq = z.object({ max_seq: z.bigint().nullable() });

/** Stores samples in one statement, so a batch lands whole or not at all. */
export async function insertTrainingSamples(db: CommonQueryMethods, samples: readonly NewTrainingSample[]): Promise<number> {
  if (samples.length === 0) return 0;
  const result = await db.query(sql.unsafe`
    INSERT INTO training_data (user_id, model_type, feature_vector, label, source, prediction_id, observed_at)
    SELECT user_id, model_type, feature_vector, label, source, prediction_id, observed_at
    FROM ${sql.unnest(
      samples.map((s) => [
        s.userId,
        s.modelType,
        JSON.stringify(s.features),
        s.label,
        s.source,
        s.predictionId,
        s.observedAt === null ? null : new Date(s.observedAt).toISOString(),
      ]),
      ["text", "text", "jsonb", "text", "text", "uuid", "timestamptz"],
    )} AS t(user_id, model_type, feature_vector, label, source, prediction_id, observed_at)
  `);
  return result.rowCount;
}

/** The newest `limit` samples of a user and model type with seq >= sinceSeq, returned oldest first. */
export async function trainingSamplesFor(
  db: CommonQueryMethods,
  userId: string,
  modelType: ModelTypeName,
  limit: number,
  sinceSeq = 0n,
): Promise<readonly StoredSample[]> {
  const rows = await db.any(sql.type(StoredSample)`
    SELECT seq, feature_vector, label FROM training_data
    WHERE user_id = ${userId} AND model_type = ${modelType} AND seq >= ${sinceSeq.toString()}::bigint
    ORDER BY seq DESC LIMIT ${limit}
  `);
  return [...rows].reverse();
}

/** The newest `limit` samples of a user and model type with seq < beforeSeq, returned oldest first. */
export async function trainingSamplesBefore(
  db: CommonQueryMethods,
  userId: string,
  modelType: ModelTypeName,
  limit: number,
  beforeSeq: bigint,
): Promise<readonly StoredSample[]> {
  const rows = await db.any(sql.type(StoredSample)`
    SELECT seq, feature_vector, label FROM training_data
    WHERE user_id = ${userId} AND model_type = ${modelType} AND seq < ${beforeSeq.toString()}::bigint
    ORDER BY seq DESC LIMIT ${limit}
  `);
  return [...rows].reverse();
}

const UserSample = StoredSample.extend({ user_id: z.string() });
/** A stored sample with its user, for the population model. */
export type UserSample = z.infer<typeof UserSample>;

/** The newest `limit` energy samples of all users, oldest first. */
export async function populationSamples(db: CommonQueryMethods, limit: number): Promise<readonly UserSample[]> {
  const rows = await db.any(sql.type(UserSample)`
    SELECT user_id, seq, feature_vector, label FROM training_data
    WHERE model_type = 'energy_prediction'
    ORDER BY seq DESC LIMIT ${limit}
  `);
  return [...rows].reverse();
}

/** How many samples a user has for a model type. */
export async function countTrainingSamples(db: CommonQueryMethods, userId: string, modelType: ModelTypeName): Promise<number> {
  return db.oneFirst(sql.type(Count)`
    SELECT count(*)::int AS count FROM training_data WHERE user_id = ${userId} AND model_type = ${modelType}
  `);
}

/** How many samples arrived after `seq`: the data a model trained up to `seq` has not seen. */
export async function countTrainingSamplesAfter(
  db: CommonQueryMethods,
  userId: string,
  modelType: ModelTypeName,
  seq: bigint,
): Promise<number> {
  return db.oneFirst(sql.type(Count)`
    SELECT count(*)::int AS count FROM training_data
    WHERE user_id = ${userId} AND model_type = ${modelType} AND seq > ${seq.toString()}::bigint
  `);
}

/** The newest seq of a user's samples, or 0 when there are none. */
export async function latestTrainingSeq(db: CommonQueryMethods, userId: string, modelType: ModelTypeName): Promise<bigint> {
  const max = await db.oneFirst(sql.type(MaxSeq)`
    SELECT max(seq) AS max_seq FROM training_data WHERE user_id = ${userId} AND model_type = ${modelType}
  `);
  return max ?? 0n;
}
