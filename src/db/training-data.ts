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

/**
 * The population model's training sample, oldest first: each user's newest
 * `perUser` energy samples, and of those the newest `limit`. The per-user
 * bound keeps a few prolific users from outweighing everyone else.
 */
export async function populationSamples(db: CommonQueryMethods, limit: number, perUser: number = limit): Promise<readonly UserSample[]> {
  const rows = await db.any(sql.type(UserSample)`
    SELECT user_id, seq, feature_vector, label FROM (
      SELECT user_id, seq, feature_vector, label, row_number() OVER (PARTITION BY user_id ORDER BY seq DESC) AS nth
      FROM training_data WHERE model_type = 'energy_prediction'
    ) AS ranked
    WHERE nth <= ${perUser}
    ORDER BY seq DESC LIMIT ${limit}
  `);
  return [...rows].reverse();
}

const PopulationCountsRow = z.object({
  users: z.number().int(),
  samples: z.number().int(),
  last_fit_model_id: z.string().uuid().nullable(),
  last_fit_users: z.number().int(),
  last_fit_samples: z.number().int(),
  last_fit_age_ms: z.number().nullable(),
});

/** Where the population's data stands now and stood at the last population fit. */
export interface PopulationCounts {
  /** Users with at least `minSamples` energy samples. */
  readonly users: number;
  /** The energy samples of those users. */
  readonly samples: number;
  /** The newest population version (active or not), counted the same way over the rows it could see; null when there is none. */
  readonly lastFit: { readonly modelId: string; readonly users: number; readonly samples: number; readonly ageMs: number } | null;
}

/**
 * Counts for the population schedule in one statement. The state at the last
 * fit is recounted from training_data up to that version's training_data_seq
 * rather than read from its training_samples: the fit's sample is capped, and
 * comparing a capped count with an uncapped one would look like growth forever.
 * The age comes from the database's clock, the same one that stamped trained_at.
 */
export async function populationCounts(db: CommonQueryMethods, populationUserId: string, minSamples: number): Promise<PopulationCounts> {
  const row = await db.one(sql.type(PopulationCountsRow)`
    WITH last_fit AS (
      SELECT model_id, training_data_seq, trained_at FROM ml_models
      WHERE user_id = ${populationUserId} AND model_type = 'energy_prediction'
      ORDER BY version_number DESC LIMIT 1
    ), per_user AS (
      SELECT count(*) AS n, count(*) FILTER (WHERE seq <= (SELECT training_data_seq FROM last_fit)) AS n_then
      FROM training_data WHERE model_type = 'energy_prediction'
      GROUP BY user_id
    )
    SELECT
      count(*) FILTER (WHERE n >= ${minSamples})::int AS users,
      coalesce(sum(n) FILTER (WHERE n >= ${minSamples}), 0)::float8 AS samples,
      (SELECT model_id FROM last_fit) AS last_fit_model_id,
      count(*) FILTER (WHERE n_then >= ${minSamples})::int AS last_fit_users,
      coalesce(sum(n_then) FILTER (WHERE n_then >= ${minSamples}), 0)::float8 AS last_fit_samples,
      (SELECT extract(epoch FROM now() - trained_at)::float8 * 1000 FROM last_fit) AS last_fit_age_ms
    FROM per_user
  `);
  return {
    users: row.users,
    samples: row.samples,
    lastFit:
      row.last_fit_model_id === null
        ? null
        : {
            modelId: row.last_fit_model_id,
            users: row.last_fit_users,
            samples: row.last_fit_samples,
            ageMs: Math.max(0, row.last_fit_age_ms ?? 0),
          },
  };
}

/** How many samples arrived after `seq`: the data a model trained up to `seq` has not seen. */
export async function countTrainingSamplesAfter(db: CommonQueryMethods, userId: string, modelType: ModelTypeName, seq: bigint): Promise<number> {
  return db.oneFirst(sql.type(Count)`
    SELECT count(*)::int AS count FROM training_data
    WHERE user_id = ${userId} AND model_type = ${modelType} AND seq > ${seq.toString()}::bigint
  `);
}
