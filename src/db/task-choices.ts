import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { ENERGY_LABELS } from "../domain.ts";

/** An open task as a pick stores it: [category, energy_required, estimated_minutes, priority, due_at ms or null]. */
const StoredTask = z.tuple([z.string(), z.enum(ENERGY_LABELS), z.number().int().positive(), z.number().int().min(1).max(4), z.number().nullable()]);
/** One open task of a stored pick. */
export type StoredChoiceTask = z.infer<typeof StoredTask>;

const ChoiceContextValue = z.object({
  energy: z.enum(ENERGY_LABELS),
  hour: z.number().int().min(0).max(23),
  weekend: z.boolean(),
  now: z.number(),
});

/** A pick to store. */
export interface NewTaskChoice {
  readonly userId: string;
  readonly suggestionId: string;
  readonly chosenTaskId: string;
  /** 1-based rank among the shown suggestions; null when the task was not shown. */
  readonly shownRank: number | null;
  /** Probability that the logged policy showed this list (exploration); null when none was logged. */
  readonly propensity: number | null;
  readonly context: z.infer<typeof ChoiceContextValue>;
  readonly openTasks: readonly StoredChoiceTask[];
  readonly chosenIndex: number;
}

const StoredChoice = z.object({
  user_id: z.string(),
  context: ChoiceContextValue,
  open_tasks: z.array(StoredTask).min(1),
  chosen_index: z.number().int().min(0),
});
/** A stored pick as the rankers read it. */
export type StoredChoice = z.infer<typeof StoredChoice>;

/** Stores one pick (the suggestion id is unique: one answer per suggestion). */
export async function insertTaskChoice(db: CommonQueryMethods, c: NewTaskChoice): Promise<void> {
  await db.query(sql.unsafe`
    INSERT INTO task_choices (user_id, suggestion_id, chosen_task_id, shown, shown_rank, propensity, context, open_tasks, chosen_index)
    VALUES (${c.userId}, ${c.suggestionId}, ${c.chosenTaskId}, ${c.shownRank !== null}, ${c.shownRank}, ${c.propensity},
      ${sql.jsonb(c.context)}, ${sql.jsonb(c.openTasks as never)}, ${c.chosenIndex})
  `);
}

/** A user's most recent picks, oldest first. */
export async function recentChoices(db: CommonQueryMethods, userId: string, limit: number): Promise<readonly StoredChoice[]> {
  const rows = await db.any(sql.type(StoredChoice)`
    SELECT user_id, context, open_tasks, chosen_index FROM task_choices
    WHERE user_id = ${userId} ORDER BY choice_id DESC LIMIT ${limit}
  `);
  // Parsed here: the pool has no result parser, and a pick that no longer parses must not reach the fit.
  return StoredChoice.array().parse(rows).reverse();
}

/** The most recent picks of all users (at most `perUser` each, so no one user dominates the population). */
export async function recentPopulationChoices(db: CommonQueryMethods, limit: number, perUser: number): Promise<readonly StoredChoice[]> {
  const rows = await db.any(sql.type(StoredChoice)`
    SELECT user_id, context, open_tasks, chosen_index FROM (
      SELECT user_id, context, open_tasks, chosen_index, choice_id,
        row_number() OVER (PARTITION BY user_id ORDER BY choice_id DESC) AS nth
      FROM (SELECT * FROM task_choices ORDER BY choice_id DESC LIMIT ${limit * 4}) AS newest
    ) AS ranked WHERE nth <= ${perUser} ORDER BY choice_id DESC LIMIT ${limit}
  `);
  return StoredChoice.array().parse(rows);
}
