import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { ENERGY_LABELS, type TaskRecord } from "../domain.ts";

const TaskRow = z.object({
  task_id: z.string().uuid(),
  title: z.string(),
  category: z.string(),
  energy_required: z.enum(ENERGY_LABELS),
  estimated_minutes: z.number().int(),
  priority: z.number().int().min(1).max(4),
  due_at: z.number().nullable(),
  status: z.enum(["open", "done"]),
});
type TaskRowShape = z.infer<typeof TaskRow>;

/** Most open tasks SuggestTasks ranks; beyond this, the most urgent are kept. */
export const OPEN_TASKS_LIMIT = 500;

/** Inserts or replaces a user's tasks in one statement. */
export async function upsertTasks(db: CommonQueryMethods, userId: string, tasks: readonly TaskRecord[]): Promise<number> {
  if (tasks.length === 0) return 0;
  const result = await db.query(sql.unsafe`
    INSERT INTO tasks (user_id, task_id, title, category, energy_required, estimated_minutes, priority, due_at, status)
    SELECT ${userId}, task_id, title, category, energy_required, estimated_minutes, priority, due_at, status
    FROM ${sql.unnest(
      tasks.map((t) => [
        t.taskId,
        t.title,
        t.category,
        t.energyRequired,
        t.estimatedMinutes,
        t.priority,
        t.dueAt === null ? null : new Date(t.dueAt).toISOString(),
        t.status,
      ]),
      ["uuid", "text", "text", "text", "int4", "int2", "timestamptz", "text"],
    )} AS t(task_id, title, category, energy_required, estimated_minutes, priority, due_at, status)
    ON CONFLICT (user_id, task_id) DO UPDATE SET
      title = excluded.title, category = excluded.category, energy_required = excluded.energy_required,
      estimated_minutes = excluded.estimated_minutes, priority = excluded.priority, due_at = excluded.due_at,
      status = excluded.status, updated_at = now()
  `);
  return result.rowCount;
}

/**
 * A user's open tasks, most urgent first; with `alsoTaskId`, that task too
 * whatever its status (Feedback's pick may already be marked done).
 */
export async function openTasks(db: CommonQueryMethods, userId: string, alsoTaskId?: string): Promise<readonly TaskRecord[]> {
  const rows = await db.any(sql.type(TaskRow)`
    SELECT task_id, title, category, energy_required, estimated_minutes, priority, due_at, status
    FROM tasks WHERE user_id = ${userId} AND (status = 'open' ${alsoTaskId === undefined ? sql.fragment`` : sql.fragment`OR task_id = ${alsoTaskId}`})
    ORDER BY priority, due_at NULLS LAST, task_id
    LIMIT ${OPEN_TASKS_LIMIT}
  `);
  // Past the limit the pick may not be among the most urgent: it is added, so a real pick is never refused.
  if (alsoTaskId !== undefined && !rows.some((r) => r.task_id === alsoTaskId)) {
    const chosen = await db.maybeOne(sql.type(TaskRow)`
      SELECT task_id, title, category, energy_required, estimated_minutes, priority, due_at, status
      FROM tasks WHERE user_id = ${userId} AND task_id = ${alsoTaskId}`);
    if (chosen !== null) return [...rows.slice(0, OPEN_TASKS_LIMIT - 1), chosen].map(toRecord);
  }
  return rows.map(toRecord);
}

function toRecord(r: TaskRowShape): TaskRecord {
  return {
    taskId: r.task_id,
    title: r.title,
    category: r.category,
    energyRequired: r.energy_required,
    estimatedMinutes: r.estimated_minutes,
    priority: r.priority,
    dueAt: r.due_at,
    status: r.status,
  };
}
