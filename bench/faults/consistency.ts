import type { FaultRow } from "./report.ts";
import { SAMPLES_PER_INGEST, type MixTally } from "./mix.ts";
import { sql, type DatabasePool } from "slonik";
import { z } from "zod";

const idRow = z.object({ id: z.string() });

/** Which of `ids` are rows of model_predictions (with feedback recorded, when `withFeedback`). */
export async function storedPredictions(pool: DatabasePool, ids: readonly string[], withFeedback = false): Promise<Set<string>> {
  const found = new Set<string>();
  for (let i = 0; i < ids.length; i += 5_000) {
    const slice = ids.slice(i, i + 5_000);
    const rows = await pool.any(sql.type(idRow)`
      SELECT prediction_id::text AS id FROM model_predictions
      WHERE prediction_id = ANY(${sql.array(slice, "uuid")}) AND (${!withFeedback} OR was_correct IS NOT NULL)`);
    for (const r of rows) found.add(r.id);
  }
  return found;
}

/** Polls until every id is stored or `timeoutMs` passes; the ids still missing. */
export async function waitForPredictions(pool: DatabasePool, ids: readonly string[], timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await storedPredictions(pool, ids);
    const missing = ids.filter((id) => !found.has(id));
    if (missing.length === 0 || Date.now() > deadline) return missing;
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

/** Training rows stored per user, for the given users. */
export async function samplesPerUser(pool: DatabasePool, users: readonly string[]): Promise<Map<string, number>> {
  const rows = await pool.any(sql.type(z.object({ user_id: z.string(), n: z.number() }))`
    SELECT user_id, count(*)::int AS n FROM training_data WHERE user_id = ANY(${sql.array(users, "text")}) GROUP BY user_id`);
  return new Map(rows.map((r) => [r.user_id, r.n]));
}

/** What must hold for stored models whatever happened: one active version per user and type, every version in the activation log. */
export interface ModelConsistency {
  readonly versions: number;
  /** "user/type: n active" for every (user, type) with versions and not exactly one active. */
  readonly activeNotOne: string[];
  /** Model ids with no model_activations row. */
  readonly unlogged: string[];
}

/** Checks ml_models against model_activations, for some users or all. */
export async function modelConsistency(pool: DatabasePool, users?: readonly string[]): Promise<ModelConsistency> {
  const filter = users === undefined ? sql.fragment`TRUE` : sql.fragment`m.user_id = ANY(${sql.array(users, "text")})`;
  const groups = await pool.any(sql.type(z.object({ user_id: z.string(), model_type: z.string(), versions: z.number(), active: z.number() }))`
    SELECT m.user_id, m.model_type, count(*)::int AS versions, count(*) FILTER (WHERE m.is_active)::int AS active
    FROM ml_models m WHERE ${filter} GROUP BY m.user_id, m.model_type`);
  const unlogged = await pool.anyFirst(sql.type(z.object({ id: z.string() }))`
    SELECT m.model_id::text AS id FROM ml_models m
    WHERE ${filter} AND NOT EXISTS (SELECT 1 FROM model_activations a WHERE a.model_id = m.model_id)`);
  return {
    versions: groups.reduce((n, g) => n + g.versions, 0),
    activeNotOne: groups.filter((g) => g.active !== 1).map((g) => `${g.user_id}/${g.model_type}: ${g.active} active of ${g.versions}`),
    unlogged: [...unlogged],
  };
}

/**
 * The three "acknowledged / stored" rows of a scenario that ran the mixed load
 * (predictions, feedbacks, samples): waits up to `waitMs` for the predictions
 * (a replay may still be under way), then counts what the database holds.
 */
export async function lossRows(
  pool: DatabasePool,
  scenario: string,
  tally: MixTally,
  waitMs: number,
  predictionsFigure = "predictions acknowledged / stored",
): Promise<FaultRow[]> {
  const missing = await waitForPredictions(pool, tally.predictionIds, waitMs);
  const fed = await storedPredictions(pool, tally.feedbackIds, true);
  const samples = await samplesPerUser(pool, tally.ingestUsers);
  const samplesStored = tally.ingestUsers.reduce((n, u) => n + Math.min(samples.get(u) ?? 0, SAMPLES_PER_INGEST), 0);
  const samplesAcked = tally.ingestUsers.length * SAMPLES_PER_INGEST;
  const row = (figure: string, acked: number, stored: number): FaultRow => ({
    scenario,
    figure,
    value: `${acked} / ${stored}`,
    target: "0 lost",
    pass: acked === stored,
  });
  return [
    row(predictionsFigure, tally.predictionIds.length, tally.predictionIds.length - missing.length),
    row("feedbacks acknowledged / stored", tally.feedbackIds.length, fed.size),
    row("samples acknowledged / stored", samplesAcked, samplesStored),
  ];
}
