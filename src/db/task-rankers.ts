import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";

const RankerRow = z.object({
  user_id: z.string(),
  weights: z.array(z.number()),
  picks: z.number().int().min(0),
});
/** Stored weights of a learned ranker (a user's: their offset from the population's). */
export type RankerRow = z.infer<typeof RankerRow>;

/** The stored rankers of these users (the population is user ''). */
export async function rankersFor(db: CommonQueryMethods, userIds: readonly string[]): Promise<readonly RankerRow[]> {
  const rows = await db.any(sql.type(RankerRow)`
    SELECT user_id, weights, picks FROM task_rankers WHERE user_id = ANY(${sql.array(userIds, "text")})
  `);
  return RankerRow.array().parse(rows);
}

/** Replaces a ranker's weights. */
export async function saveRanker(db: CommonQueryMethods, userId: string, weights: readonly number[], picks: number): Promise<void> {
  await db.query(sql.unsafe`
    INSERT INTO task_rankers (user_id, weights, picks) VALUES (${userId}, ${sql.jsonb([...weights])}, ${picks})
    ON CONFLICT (user_id) DO UPDATE SET weights = excluded.weights, picks = excluded.picks, updated_at = now()
  `);
}
