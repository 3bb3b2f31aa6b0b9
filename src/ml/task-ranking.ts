import type { EnergyLabel, TaskRecord } from "../domain.ts";
import type { Factor } from "./choice-model.ts";

/**
 * Rule-based task ranking: what fits an energy level, weighed with priority
 * and due date, and a sentence that explains it. Pure: no I/O.
 */

const LEVEL: Record<EnergyLabel, number> = { low: 0, medium: 1, high: 2 };

/**
 * How well a task's demand suits an energy level (rows: energy, columns: the
 * task's requirement). High energy is best spent on demanding work but can do
 * anything; low energy should not start demanding work.
 */
const ENERGY_FIT: Record<EnergyLabel, Record<EnergyLabel, number>> = {
  high: { high: 1.0, medium: 0.6, low: 0.3 },
  medium: { high: 0.45, medium: 1.0, low: 0.7 },
  low: { high: 0.05, medium: 0.4, low: 1.0 },
};

const WEIGHTS = { energy: 0.55, priority: 0.25, due: 0.2 } as const;
const HOUR = 3_600_000;

/** Kinds of task that suit each energy level, for Predict's recommended_task_types. */
export const RECOMMENDED_TASK_TYPES: Record<EnergyLabel, readonly string[]> = {
  high: ["deep work", "creative work", "problem solving", "learning something new"],
  medium: ["meetings", "collaboration", "planning", "writing and reviewing"],
  low: ["email", "admin", "organizing", "routine chores"],
};

/** Urgency from the due date: overdue and due soon count most. */
export function dueUrgency(dueAt: number | null, now: number): number {
  if (dueAt === null) return 0;
  const hours = (dueAt - now) / HOUR;
  if (hours < 0) return 1;
  if (hours <= 24) return 0.9;
  if (hours <= 72) return 0.6;
  if (hours <= 168) return 0.3;
  return 0.1;
}

/** How well a task's energy demand fits the energy level, 0-1. */
export function energyFit(energy: EnergyLabel, required: EnergyLabel): number {
  return ENERGY_FIT[energy][required];
}

/** Signed distance between a task's demand and the energy level (-2..2). */
export function energyGap(energy: EnergyLabel, required: EnergyLabel): number {
  return LEVEL[required] - LEVEL[energy];
}

/** A task with its rule-based score and the parts of it. */
export interface RankedTask {
  readonly task: TaskRecord;
  readonly score: number;
  readonly fit: number;
  readonly urgency: number;
}

/** Scores a task for an energy level with the rules alone. */
export function ruleScore(task: TaskRecord, energy: EnergyLabel, now: number): RankedTask {
  return { task, score: ruleValue(task, energy, now), fit: energyFit(energy, task.energyRequired), urgency: dueUrgency(task.dueAt, now) };
}

/** The rule score alone (0-1), from the parts of a task it reads; the learned ranker's first feature. */
export function ruleValue(task: Pick<TaskRecord, "energyRequired" | "dueAt" | "priority" | "estimatedMinutes">, energy: EnergyLabel, now: number): number {
  const fit = energyFit(energy, task.energyRequired);
  const urgency = dueUrgency(task.dueAt, now);
  const priority = (5 - task.priority) / 4;
  // Low energy also favours short tasks: a long task at low energy loses a little more.
  const lengthPenalty = energy === "low" ? Math.min(0.1, task.estimatedMinutes / 1200) : 0;
  const score = WEIGHTS.energy * fit + WEIGHTS.priority * priority + WEIGHTS.due * urgency - lengthPenalty;
  return Math.max(0, Math.min(1, score));
}

function dueWords(dueAt: number | null, now: number): string | null {
  if (dueAt === null) return null;
  const hours = (dueAt - now) / HOUR;
  if (hours < 0) return "it is overdue";
  if (hours <= 24) return "it is due within a day";
  if (hours <= 72) return "it is due in the next three days";
  if (hours <= 168) return "it is due this week";
  return null;
}

/** A sentence a person would accept for why the task is where it is. */
export function reasoning(ranked: RankedTask, energy: EnergyLabel, now: number, learned?: string): string {
  const { task, fit } = ranked;
  const demand = `${task.energyRequired}-energy ${task.category} task (${task.estimatedMinutes} min)`;
  let first: string;
  if (fit >= 0.95) first = `A ${demand} that matches your ${energy} energy`;
  else if (fit >= 0.55) first = `A ${demand} you can manage well at ${energy} energy`;
  else if (energyGap(energy, task.energyRequired) > 0) first = `A ${demand} that may be hard going at ${energy} energy`;
  else first = `A ${demand}; your ${energy} energy could take on something more demanding`;
  const extras: string[] = [];
  if (task.priority === 1) extras.push("it is top priority");
  else if (task.priority === 2) extras.push("it is high priority");
  const due = dueWords(task.dueAt, now);
  if (due !== null) extras.push(due);
  if (learned !== undefined) extras.push(learned);
  return extras.length === 0 ? `${first}.` : `${first}, and ${extras.join(" and ")}.`;
}

/** Named columns of a task-suggester row, also the keys of its feature_vector. */
export const SUGGESTER_FEATURE_NAMES = [
  "energy",
  "hour_of_day",
  "energy_required",
  "energy_gap",
  "priority",
  "estimated_minutes",
  "hours_until_due",
  "category_bucket",
] as const;

/** Stable 0-1 bucket of a category name, so the suggester can tell categories apart. */
export function categoryBucket(category: string): number {
  let h = 0x811c9dc5;
  for (const ch of category.trim().toLowerCase()) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 0x01000193);
  }
  return ((h >>> 0) % 1000) / 1000;
}

/** Features of showing `task` to a user at `energy` and `hour`. */
export function suggesterFeatures(task: TaskRecord, energy: EnergyLabel, hour: number, now: number): Record<string, number | null> {
  return {
    energy: LEVEL[energy],
    hour_of_day: hour,
    energy_required: LEVEL[task.energyRequired],
    energy_gap: energyGap(energy, task.energyRequired),
    priority: task.priority,
    estimated_minutes: task.estimatedMinutes,
    hours_until_due: task.dueAt === null ? null : Math.round((task.dueAt - now) / HOUR),
    category_bucket: categoryBucket(task.category),
  };
}

/** Turns a stored or fresh feature_vector into a forest row (null → NaN). */
export function namedFeatureRow(names: readonly string[], features: Record<string, unknown>): number[] {
  return names.map((name) => {
    const v = features[name];
    return typeof v === "number" && Number.isFinite(v) ? v : Number.NaN;
  });
}

/** How each factor of the learned ranker reads in a sentence. */
const FACTOR_WORDS: Record<Factor, (task: TaskRecord, weekend: boolean) => string> = {
  rules: () => "the general fit rules",
  due: () => "its due date",
  priority: () => "its priority",
  energy: (t) => `how its ${t.energyRequired} demand suits your energy now`,
  length: (t) => `its length (${t.estimatedMinutes} min) at this time of day`,
  category: (t) => `your liking for ${t.category} tasks`,
  "weekend-category": (t, weekend) => `your ${weekend ? "weekend" : "weekday"} taste for ${t.category} tasks`,
};

/** Smallest contribution (in log-odds against the average open task) worth naming. */
const NAMED_CONTRIBUTION = 0.15;

/**
 * The factors that actually placed a task where it is: the two that raised
 * it most against the average open task, and the one that held it back most.
 */
export function factorSentence(contributions: ReadonlyMap<Factor, number>, task: TaskRecord, weekend: boolean): string {
  const sorted = [...contributions].sort((a, b) => b[1] - a[1]);
  const up = sorted
    .filter(([, c]) => c >= NAMED_CONTRIBUTION)
    .slice(0, 2)
    .map(([f]) => FACTOR_WORDS[f](task, weekend));
  const down = sorted
    .filter(([, c]) => c <= -NAMED_CONTRIBUTION)
    .slice(-1)
    .map(([f]) => FACTOR_WORDS[f](task, weekend));
  const parts: string[] = [];
  if (up.length > 0) parts.push(`Ranked up by ${up.join(" and ")}`);
  if (down.length > 0) parts.push(`${up.length > 0 ? "held" : "Held"} back by ${down[0]}`);
  return parts.length === 0 ? "Ranked near the middle: no factor sets it apart." : `${parts.join("; ")}.`;
}
