import { randomUUID } from "node:crypto";
import { EnergyLevel, ModelType, TaskStatus } from "../gen/ml/v1/ml_pb.ts";
import type { EnergyLabel, TaskRecord } from "../src/domain.ts";
import { seededRandom } from "../src/ml/evaluation.ts";
import { ruleScore } from "../src/ml/task-ranking.ts";
import type { TestService } from "../test/support/service.ts";

const CATEGORIES = ["writing", "email", "coding", "meetings"] as const;
const LEVELS: EnergyLabel[] = ["low", "medium", "high"];
const API_LEVEL = { low: EnergyLevel.LOW, medium: EnergyLevel.MEDIUM, high: EnergyLevel.HIGH } as const;

/** Top-3 hit rates of one user: the rules alone vs the service's learned ranking. */
export interface SuggestionResult {
  readonly userId: string;
  readonly ruleHitRate: number;
  readonly learnedHitRate: number;
}

/**
 * A user with a hidden taste for some categories of task: they pick the task
 * with the highest utility = rule fit + taste + noise. Thirty rounds of
 * SuggestTasks + Feedback(chosen_task_id) teach the service; then both
 * rankings are scored on the same fresh rounds.
 */
export async function suggestionLearning(
  s: TestService,
  userId: string,
  options: { seed: number; trainRounds: number; testRounds: number; now: number },
): Promise<SuggestionResult> {
  const random = seededRandom(options.seed);
  const taste = Object.fromEntries(CATEGORIES.map((c) => [c, 0])) as Record<string, number>;
  taste[CATEGORIES[Math.floor(random() * 4)]!] = 0.6;
  taste[CATEGORIES[Math.floor(random() * 4)]!] -= 0.4;
  const tasks: TaskRecord[] = CATEGORIES.flatMap((category) =>
    LEVELS.map((level) => ({
      taskId: randomUUID(),
      title: `${category} (${level})`,
      category,
      energyRequired: level,
      estimatedMinutes: 15 + Math.floor(random() * 90),
      priority: 2 + Math.floor(random() * 2),
      dueAt: null,
      status: "open" as const,
    })),
  );
  await s.client.upsertTasks({
    userId,
    tasks: tasks.map((t) => ({
      taskId: t.taskId,
      title: t.title,
      category: t.category,
      energyRequired: API_LEVEL[t.energyRequired],
      estimatedMinutes: t.estimatedMinutes,
      priority: t.priority,
      status: TaskStatus.OPEN,
    })),
  });
  const gumbel = () => -Math.log(-Math.log(Math.max(1e-12, random())));
  const choose = (energy: EnergyLabel) => {
    let best = tasks[0]!;
    let bestU = Number.NEGATIVE_INFINITY;
    for (const t of tasks) {
      const u = ruleScore(t, energy, options.now).score + taste[t.category]! + 0.15 * gumbel();
      if (u > bestU) {
        bestU = u;
        best = t;
      }
    }
    return best;
  };
  for (let round = 0; round < options.trainRounds; round++) {
    const energy = LEVELS[Math.floor(random() * 3)]!;
    const r = await s.client.suggestTasks({ userId, currentEnergy: API_LEVEL[energy], limit: tasks.length });
    await s.client.feedback({ predictionId: r.suggestionId, wasCorrect: true, chosenTaskId: choose(energy).taskId });
  }
  await s.app.trainer.idle();
  const models = await s.client.listModels({ userId, modelType: ModelType.TASK_SUGGESTER });
  if (!models.models.some((m) => m.isActive)) await s.client.train({ userId, modelType: ModelType.TASK_SUGGESTER });
  let ruleHits = 0;
  let learnedHits = 0;
  for (let round = 0; round < options.testRounds; round++) {
    const energy = LEVELS[Math.floor(random() * 3)]!;
    const chosen = choose(energy).taskId;
    const learned = await s.client.suggestTasks({ userId, currentEnergy: API_LEVEL[energy], limit: 3 });
    const rules = [...tasks].sort((a, b) => ruleScore(b, energy, options.now).score - ruleScore(a, energy, options.now).score).slice(0, 3);
    if (learned.suggestions.some((x) => x.taskId === chosen)) learnedHits++;
    if (rules.some((t) => t.taskId === chosen)) ruleHits++;
  }
  return { userId, ruleHitRate: ruleHits / options.testRounds, learnedHitRate: learnedHits / options.testRounds };
}
