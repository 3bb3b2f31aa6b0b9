import { POPULATION } from "../domain.ts";
import { setImmediate as nextTurn } from "node:timers/promises";
import type { DatabasePool } from "slonik";
import type { Logger } from "../logger.ts";
import { recentChoices, recentPopulationChoices, type StoredChoice } from "../db/task-choices.ts";
import { rankersFor, saveRanker } from "../db/task-rankers.ts";
import {
  choiceFeatures,
  CHOICE_DIMENSIONS,
  fitChoiceModel,
  fitChoiceModelInSlices,
  parseWeights,
  priorWeights,
  type ObservedChoice,
} from "../ml/choice-model.ts";

/** How the learned rankers are fitted. */
export interface RankerSettings {
  /** Ridge strength pulling a user's weights toward the population's. */
  readonly userLambda: number;
  /** Ridge strength pulling the population's weights toward the rules. */
  readonly populationLambda: number;
  /** A user's most recent picks read by each refit. */
  readonly userWindow: number;
  /** Newton steps per user refit (warm-started from the last weights). */
  readonly userIterations: number;
  /** Most recent picks (of all users) a population refit reads. */
  readonly populationWindow: number;
  /** At most this many of them from one user. */
  readonly populationPerUser: number;
  /** Picks recorded by this process after which the population ranker is refitted in the background. */
  readonly populationEvery: number;
  /** Chance that SuggestTasks explores at the fifth place (see exploreOrder in suggester.ts). */
  readonly explorationRate: number;
}

/** Defaults, chosen on the suggestions eval (eval/suggestions.ts). */
export const DEFAULT_RANKER_SETTINGS: RankerSettings = {
  userLambda: 0.3,
  populationLambda: 3,
  userWindow: 40,
  userIterations: 1,
  populationWindow: 2000,
  populationPerUser: 100,
  populationEvery: 50,
  explorationRate: 0.2,
};

/** The weights a user's suggestions are ranked with. */
export interface RankerWeights {
  readonly weights: Float64Array;
  /** True once the user has picks of their own. */
  readonly personal: boolean;
  readonly picks: number;
}

/** Learned task ranking: per-user weights over the population's, over the rules. */
export interface TaskRanker {
  /** The user's current weights (population + their offset; the rules when nothing was learned). */
  weightsFor(userId: string): Promise<RankerWeights>;
  /**
   * Refits the user's offset on their recent picks after a new one (already
   * stored; passing it lets a warm user's picks come from memory). Returns
   * the milliseconds the fit took.
   */
  learn(userId: string, pick?: StoredChoice): Promise<number>;
  /** Refits the population's weights on all users' recent picks. */
  refitPopulation(): Promise<void>;
  /** Resolves when no background population refit is running. */
  idle(): Promise<void>;
}

/** Rows of a stored pick, ready for the model. */
export function observedChoice(c: StoredChoice): ObservedChoice {
  const tasks = c.open_tasks.map(([category, energyRequired, estimatedMinutes, priority, dueAt]) => ({
    category,
    energyRequired,
    estimatedMinutes,
    priority,
    dueAt,
  }));
  return { rows: choiceFeatures(tasks, c.context), chosen: Math.min(c.chosen_index, tasks.length - 1) };
}

interface CachedRanker {
  readonly weights: Float64Array | null;
  readonly picks: number;
  readonly expires: number;
}

/**
 * Builds the ranker over the task_choices and task_rankers tables. Weights
 * read are remembered for `cacheTtlMs` (the same trust as the active-model
 * cache: this process's own refits apply at once, another instance's within
 * the TTL), so a warm user's SuggestTasks needs no query for them.
 */
export function createTaskRanker({
  db,
  settings,
  log,
  cacheTtlMs = 60_000,
  maxCachedUsers = 100_000,
}: {
  db: DatabasePool;
  settings: RankerSettings;
  log: Logger;
  cacheTtlMs?: number;
  maxCachedUsers?: number;
}): TaskRanker {
  let sinceRefit = 0;
  let refitting: Promise<void> | null = null;
  const cache = new Map<string, CachedRanker>();
  // A user's recent picks as stored (about 1 KB each), so a warm user's refit reads no rows; bounded, oldest user out.
  const recentPicks = new Map<string, { picks: StoredChoice[]; expires: number }>();
  const maxUsersWithPicks = Math.max(1, Math.floor(maxCachedUsers / 100));

  async function picksFor(userId: string, pick: StoredChoice | undefined): Promise<StoredChoice[]> {
    const hit = recentPicks.get(userId);
    const now = Date.now();
    let picks: StoredChoice[];
    if (hit !== undefined && hit.expires > now && pick !== undefined) picks = [...hit.picks, pick].slice(-settings.userWindow);
    else picks = [...(await recentChoices(db, userId, settings.userWindow))];
    recentPicks.delete(userId);
    recentPicks.set(userId, { picks, expires: hit !== undefined && hit.expires > now ? hit.expires : now + cacheTtlMs });
    while (recentPicks.size > maxUsersWithPicks) recentPicks.delete(recentPicks.keys().next().value!);
    return picks;
  }

  function remember(userId: string, weights: Float64Array | null, picks: number): void {
    cache.delete(userId);
    cache.set(userId, { weights, picks, expires: Date.now() + cacheTtlMs });
    while (cache.size > maxCachedUsers) cache.delete(cache.keys().next().value!);
  }

  async function stored(userId: string): Promise<{ population: Float64Array; offset: Float64Array | null; picks: number }> {
    const now = Date.now();
    const fresh = (id: string) => {
      const hit = cache.get(id);
      return hit !== undefined && hit.expires > now ? hit : undefined;
    };
    const wanted = userId === POPULATION ? [POPULATION] : [userId, POPULATION];
    const missing = wanted.filter((id) => fresh(id) === undefined);
    if (missing.length > 0) {
      const rows = await rankersFor(db, missing);
      for (const id of missing) {
        const row = rows.find((r) => r.user_id === id);
        remember(id, row === undefined ? null : parseWeights(row.weights), row?.picks ?? 0);
      }
    }
    const pop = cache.get(POPULATION);
    const own = userId === POPULATION ? undefined : cache.get(userId);
    return { population: pop?.weights ?? priorWeights(), offset: own?.weights ?? null, picks: own?.picks ?? 0 };
  }

  async function refitPopulation(): Promise<void> {
    const choices = (await recentPopulationChoices(db, settings.populationWindow, settings.populationPerUser)).map(observedChoice);
    if (choices.length === 0) return;
    const { population } = await stored(POPULATION);
    // Slices of 50 picks (~1-2 ms each) keep serving responsive while thousands of picks are fitted.
    const w = await fitChoiceModelInSlices(choices, { prior: priorWeights(), lambda: settings.populationLambda, start: population, iterations: 3 }, 50, () =>
      nextTurn(),
    );
    await saveRanker(db, POPULATION, [...w], choices.length);
    remember(POPULATION, w, choices.length);
  }

  function scheduleRefit(): void {
    if (refitting !== null) return;
    sinceRefit = 0;
    refitting = refitPopulation()
      .catch((err: unknown) => log.error("population ranker refit failed", { error: err instanceof Error ? err.message : String(err) }))
      .finally(() => {
        refitting = null;
      });
  }

  return {
    async weightsFor(userId) {
      const s = await stored(userId);
      if (s.offset === null) return { weights: s.population, personal: false, picks: 0 };
      return { weights: s.population.map((v, i) => v + s.offset![i]!), personal: true, picks: s.picks };
    },
    async learn(userId, pick) {
      const [s, picks] = await Promise.all([stored(userId), picksFor(userId, pick)]);
      const started = performance.now();
      const choices = picks.map(observedChoice);
      const start = s.offset === null ? s.population : s.population.map((v, i) => v + s.offset![i]!);
      const w = fitChoiceModel(choices, { prior: s.population, lambda: settings.userLambda, start, iterations: settings.userIterations });
      const offset = Array.from({ length: CHOICE_DIMENSIONS }, (_, i) => w[i]! - s.population[i]!);
      const cpu = performance.now() - started;
      await saveRanker(db, userId, offset, s.picks + 1);
      remember(userId, Float64Array.from(offset), s.picks + 1);
      if (++sinceRefit >= settings.populationEvery) scheduleRefit();
      return cpu;
    },
    refitPopulation: async () => {
      scheduleRefit();
      await refitting;
    },
    async idle() {
      await refitting;
    },
  };
}
