/** Energy levels in class-index order: the forest's label i is ENERGY_LABELS[i]. */
export const ENERGY_LABELS = ["low", "medium", "high"] as const;
/** One energy level as stored in the database. */
export type EnergyLabel = (typeof ENERGY_LABELS)[number];

/** Model types as stored in ml_models.model_type. */
export const MODEL_TYPES = ["energy_prediction", "task_suggester"] as const;
/** One model type as stored in the database. */
export type ModelTypeName = (typeof MODEL_TYPES)[number];

/** Labels of the task suggester: did the user pick the suggested task. */
export const SUGGESTER_LABELS = ["skipped", "chosen"] as const;

/** The inputs of the energy model, as the API and training_data.feature_vector carry them. */
export interface EnergyFeatureValues {
  readonly hour_of_day: number;
  readonly day_of_week: number;
  readonly tasks_completed_today: number;
  readonly avg_energy_last_7_days: number;
  readonly sleep_quality: number | null;
}

/** A task as SuggestTasks ranks it. */
export interface TaskRecord {
  readonly taskId: string;
  readonly title: string;
  readonly category: string;
  readonly energyRequired: EnergyLabel;
  readonly estimatedMinutes: number;
  readonly priority: number;
  readonly dueAt: number | null;
  readonly status: "open" | "done";
}

/** The user id under which the population model is stored: empty, which no caller's user id can be. */
export const POPULATION = "";
