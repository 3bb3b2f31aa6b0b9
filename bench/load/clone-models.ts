import { sql, type DatabasePool } from "slonik";
import { z } from "zod";

const CHUNK = 1_000;

/**
 * Gives every user in `userIds` its own copy of the template user's active
 * energy model (a new model_id, same blob), written straight into ml_models:
 * seconds instead of hours of Train calls for 10,000 users. Each copy is a
 * distinct model to the service, so each is loaded and cached on its own.
 * The column list is read from the table, so new columns are copied too.
 */
export async function cloneActiveModel(pool: DatabasePool, templateUserId: string, userIds: readonly string[]): Promise<void> {
  const columns = await pool.anyFirst(sql.type(z.object({ column_name: z.string() }))`
    SELECT column_name::text FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = 'ml_models' ORDER BY ordinal_position`);
  const copied = columns.filter((c) => c !== "model_id" && c !== "user_id");
  const target = sql.join(
    copied.map((c) => sql.identifier([c])),
    sql.fragment`, `,
  );
  const source = sql.join(
    copied.map((c) => sql.identifier(["m", c])),
    sql.fragment`, `,
  );
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
