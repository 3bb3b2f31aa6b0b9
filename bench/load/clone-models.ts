import { sql, type DatabasePool } from "slonik";
import { z } from "zod";

const CHUNK = 1_000;

/** The columns of ml_models but `except`, as an insert list and as a select list from alias `m` (read from the table, so new columns come along). */
async function copiedColumns(pool: DatabasePool, except: readonly string[]) {
  const columns = await pool.anyFirst(sql.type(z.object({ column_name: z.string() }))`
    SELECT column_name::text FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = 'ml_models' ORDER BY ordinal_position`);
  const copied = columns.filter((c) => !except.includes(c));
  return {
    target: sql.join(
      copied.map((c) => sql.identifier([c])),
      sql.fragment`, `,
    ),
    source: sql.join(
      copied.map((c) => sql.identifier(["m", c])),
      sql.fragment`, `,
    ),
  };
}

/**
 * Gives every user in `userIds` its own copy of the template user's active
 * energy model (a new model_id, same blob), written straight into ml_models:
 * seconds instead of hours of Train calls for 10,000 users. Each copy is a
 * distinct model to the service, so each is loaded and cached on its own.
 * The column list is read from the table, so new columns are copied too.
 */
export async function cloneActiveModel(pool: DatabasePool, templateUserId: string, userIds: readonly string[]): Promise<void> {
  const { target, source } = await copiedColumns(pool, ["model_id", "user_id"]);
  let inserted = 0;
  for (let i = 0; i < userIds.length; i += CHUNK) {
    const chunk = userIds.slice(i, i + CHUNK);
    const result = await pool.query(sql.unsafe`
      INSERT INTO ml_models (user_id, ${target})
      SELECT u.user_id, ${source}
      FROM ml_models m CROSS JOIN unnest(${sql.array(chunk, "text")}) AS u(user_id)
      WHERE m.user_id = ${templateUserId} AND m.model_type = 'energy_prediction' AND m.is_active`);
    inserted += result.rowCount;
  }
  if (inserted !== userIds.length) {
    throw new Error(`cloned ${inserted} models for ${userIds.length} users: the template ${templateUserId} has no active energy model`);
  }
}

/**
 * Adds `count` inactive versions (copies of the active energy model, blob
 * included, numbered after the newest) to each of `userIds`: the surplus a
 * retention pass frees, without hours of Train calls.
 */
export async function cloneVersions(pool: DatabasePool, userIds: readonly string[], count: number): Promise<void> {
  const { target, source } = await copiedColumns(pool, ["model_id", "version", "version_number", "is_active"]);
  await pool.query(sql.unsafe`
    INSERT INTO ml_models (version, version_number, is_active, ${target})
    SELECT 'v' || (top.n + k), top.n + k, false, ${source}
    FROM ml_models m
    JOIN (SELECT user_id, max(version_number) AS n FROM ml_models WHERE model_type = 'energy_prediction' GROUP BY user_id) top USING (user_id)
    CROSS JOIN generate_series(1, ${count}) AS k
    WHERE m.user_id = ANY(${sql.array(userIds, "text")}) AND m.model_type = 'energy_prediction' AND m.is_active`);
}
