import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { DatabasePool } from "slonik";
import { TaskStatus, UpsertTasksResponseSchema, type MlService } from "../../gen/ml/v1/ml_pb.ts";
import type { TaskRecord } from "../domain.ts";
import { InvalidInput } from "../errors.ts";
import { upsertTasks } from "../db/tasks.ts";
import * as v from "./validate.ts";

/** Largest number of tasks one call may upsert. */
export const MAX_TASKS_PER_CALL = 1000;

/** UpsertTasks: validates every task, then writes them in one statement. */
export function createUpsertTasksHandler({ db }: { db: DatabasePool }): ServiceImpl<typeof MlService>["upsertTasks"] {
  return async (req) => {
    const userId = v.userId(req.userId);
    if (req.tasks.length === 0) throw new InvalidInput("tasks", "is empty");
    if (req.tasks.length > MAX_TASKS_PER_CALL) throw new InvalidInput("tasks", `has ${req.tasks.length} tasks; at most ${MAX_TASKS_PER_CALL} per call`);
    const seen = new Set<string>();
    const tasks = req.tasks.map((t, i): TaskRecord => {
      const at = `tasks[${i}]`;
      const taskId = v.uuid(t.taskId, `${at}.task_id`);
      if (seen.has(taskId)) throw new InvalidInput(`${at}.task_id`, `${taskId} appears twice in this request`);
      seen.add(taskId);
      const title = v.text(t.title, `${at}.title`, 500);
      const category = v.text(t.category, `${at}.category`, 100);
      if (t.status !== TaskStatus.OPEN && t.status !== TaskStatus.DONE) throw new InvalidInput(`${at}.status`, "must be OPEN or DONE");
      return {
        taskId,
        title,
        category,
        energyRequired: v.energy(t.energyRequired, `${at}.energy_required`),
        estimatedMinutes: v.inRange(t.estimatedMinutes, 1, 10_080, `${at}.estimated_minutes`),
        priority: v.inRange(t.priority, 1, 4, `${at}.priority`),
        dueAt: t.dueAt === undefined ? null : v.timestamp(t.dueAt, `${at}.due_at`),
        status: t.status === TaskStatus.OPEN ? "open" : "done",
      };
    });
    const upserted = await upsertTasks(db, userId, tasks);
    return create(UpsertTasksResponseSchema, { upserted });
  };
}
