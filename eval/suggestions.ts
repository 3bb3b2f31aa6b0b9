import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { sql } from "slonik";
import { z } from "zod";
import { EnergyLevel, TaskStatus } from "../gen/ml/v1/ml_pb.ts";
import type { EnergyLabel, TaskRecord } from "../src/domain.ts";
import { seededRandom } from "../src/ml/evaluation.ts";
import { ruleScore } from "../src/ml/task-ranking.ts";
import { EXPLORED_RANK } from "../src/service/suggester.ts";
import type { TestService } from "../test/support/service.ts";

/**
 * Task suggestions over many kinds of chooser, through the RPCs as an app
 * would call them: SuggestTasks, the user picks one of their open tasks by
 * their own rule (shown or not), Feedback(suggestion_id, chosen_task_id), the
 * picked task is marked done and new tasks arrive. The choosers were written
 * from how people describe picking work, not from the model's features, and
 * their picks never depend on what the service showed, so every ranking
 * (the service's and the baselines') is scored on the same states.
 */

const HOUR = 3_600_000;
const API_LEVEL = { low: EnergyLevel.LOW, medium: EnergyLevel.MEDIUM, high: EnergyLevel.HIGH } as const;
const LEVELS: readonly EnergyLabel[] = ["low", "medium", "high"];
const CATEGORY_POOL = ["writing", "email", "coding", "meetings", "admin", "reading", "design", "errands", "calls", "planning"] as const;
const MINUTES = [5, 10, 15, 20, 30, 45, 60, 90, 120, 180] as const;
/** Monday 30 November 2026, 00:00 UTC: the first day of every user's run. */
const START = Date.UTC(2026, 10, 30);

/** What a chooser sees when it picks: the state of the user's day. */
export interface ChoiceState {
  readonly tasks: readonly TaskRecord[];
  readonly now: number;
  readonly hour: number;
  readonly weekend: boolean;
  readonly energy: EnergyLabel;
}

/** A kind of user: how they pick from their open tasks. */
export interface ChooserFamily {
  readonly name: string;
  readonly description: string;
  /** Builds one user of the family; `random` is theirs alone. */
  make(
    random: () => number,
    categories: readonly string[],
  ): {
    /** The user's deterministic preference (higher first): their own rule, the ceiling. */
    utility(task: TaskRecord, state: ChoiceState): number;
    /** The pick, which may add noise to the rule. */
    pick(state: ChoiceState): TaskRecord;
  };
}

const dueHours = (t: TaskRecord, now: number) => (t.dueAt === null ? Number.POSITIVE_INFINITY : (t.dueAt - now) / HOUR);
const argmax = (tasks: readonly TaskRecord[], score: (t: TaskRecord) => number): TaskRecord => {
  let best = tasks[0]!;
  let bestScore = Number.NEGATIVE_INFINITY;
  for (const t of tasks) {
    const v = score(t);
    if (v > bestScore) {
      best = t;
      bestScore = v;
    }
  }
  return best;
};
/** A stable tie-break so equal utilities do not fall to list order (which is the service's storage order). */
const jitter = (t: TaskRecord) => (Number.parseInt(t.taskId.slice(0, 6), 16) / 0xffffff) * 1e-6;
const deterministic = (utility: (t: TaskRecord, s: ChoiceState) => number) => ({
  utility,
  pick: (s: ChoiceState) => argmax(s.tasks, (t) => utility(t, s) + jitter(t)),
});

/** The seven families of chooser. */
export const CHOOSER_FAMILIES: readonly ChooserFamily[] = [
  {
    name: "urgency",
    description: "always the task due soonest (overdue first); tasks without a due date last, by priority",
    make: () => deterministic((t, s) => (t.dueAt === null ? -1e6 - t.priority : -dueHours(t, s.now))),
  },
  {
    name: "priority",
    description: "strictly the stated priority; among equals the one due soonest",
    make: () => deterministic((t, s) => -t.priority * 1e4 - Math.min(dueHours(t, s.now), 5e3)),
  },
  {
    name: "energy",
    description: "a task whose demand matches how they feel now; among those the higher priority",
    make: () => deterministic((t, s) => -2 * Math.abs(LEVELS.indexOf(t.energyRequired) - LEVELS.indexOf(s.energy)) - 0.3 * t.priority),
  },
  {
    name: "time-of-day",
    description: "long work in the morning, mid-length in the afternoon, short tasks in the evening",
    make: () =>
      deterministic((t, s) => {
        const m = t.estimatedMinutes;
        if (s.hour < 12) return m;
        if (s.hour < 17) return -Math.abs(m - 40);
        return -m;
      }),
  },
  {
    name: "weekend-flip",
    description: "a ranking of categories on weekdays and a different one on weekends (what they favour at work, they avoid at home)",
    make: (random, categories) => {
      const weekday = Object.fromEntries(categories.map((c) => [c, random() * 2]));
      const order = [...categories].sort((a, b) => weekday[b]! - weekday[a]!);
      // Weekend: the weekday order reversed, so the weekday favourite comes last.
      const weekend = Object.fromEntries(order.map((c, i) => [c, (i / (order.length - 1)) * 2]));
      return deterministic((t, s) => (s.weekend ? weekend : weekday)[t.category]! - 0.1 * t.priority);
    },
  },
  {
    name: "noisy",
    description: "priority, then due date, as a rule; but 30% of picks are any open task at random",
    make: (random) => {
      const rule = (t: TaskRecord, s: ChoiceState) => -t.priority * 1e4 - Math.min(dueHours(t, s.now), 5e3);
      return {
        utility: rule,
        pick: (s) => (random() < 0.3 ? s.tasks[Math.floor(random() * s.tasks.length)]! : argmax(s.tasks, (t) => rule(t, s) + jitter(t))),
      };
    },
  },
  {
    name: "hidden-taste",
    description: "the service's own rules plus a hidden liking for one category and dislike of another, with noise (the previous eval's user)",
    make: (random, categories) => {
      const taste = Object.fromEntries(categories.map((c) => [c, 0]));
      taste[categories[Math.floor(random() * categories.length)]!] = 0.6;
      taste[categories[Math.floor(random() * categories.length)]!]! -= 0.4;
      const utility = (t: TaskRecord, s: ChoiceState) => ruleScore(t, s.energy, s.now).score + taste[t.category]!;
      const gumbel = () => -Math.log(-Math.log(Math.max(1e-12, random())));
      return { utility, pick: (s) => argmax(s.tasks, (t) => utility(t, s) + 0.15 * gumbel()) };
    },
  },
];

/** Rankings scored beside the service's, on the same states. */
export const BASELINES = ["random", "sort by due", "sort by priority", "rules only", "own rule (ceiling)"] as const;
/** How the app uses the ranking: every open task ranked, or only the top five shown. */
export const APP_MODES = ["all ranked", "five shown"] as const;
/** One row of results: a method's hits at ranks 1/3/5, per window of steps. */
export interface HitCounts {
  /** [window][k]: window 0 = steps 1-30, 1 = steps 31-80; k = 0,1,2 for top-1/3/5. */
  readonly hits: number[][];
  readonly steps: number[];
}
/** All results of one family. */
export interface FamilyResult {
  readonly family: string;
  readonly methods: Record<string, HitCounts>;
  /** Picks in five-shown mode that were not among the five shown. */
  unshownPicks: number;
  /** Feedback calls the service refused. */
  refusedFeedback: number;
  /** Mean match_score of the top suggestion in steps 1-5 and 76-80 (all-ranked mode). */
  readonly topScore: { early: number[]; late: number[] };
  /** Every five-shown step, for the off-policy estimates (offPolicy). */
  readonly logged: LoggedStep[];
}

/** Rankings valued off-policy from the five-shown logs. */
export const SECOND_RANKERS = ["rules only", "sort by priority", "sort by due"] as const;

/** What the eval remembers of a five-shown step: the pick, and the five each second ranker would have shown. */
export interface LoggedStep {
  readonly suggestionId: string;
  readonly chosen: string;
  readonly shown: readonly string[];
  readonly second: Record<(typeof SECOND_RANKERS)[number], readonly string[]>;
}

const KS = [1, 3, 5] as const;
const emptyCounts = (): HitCounts => ({
  hits: [
    [0, 0, 0],
    [0, 0, 0],
  ],
  steps: [0, 0],
});
function count(c: HitCounts, step: number, ranking: readonly string[], chosen: string): void {
  const w = step < 30 ? 0 : 1;
  c.steps[w]!++;
  const at = ranking.indexOf(chosen);
  KS.forEach((k, i) => {
    if (at >= 0 && at < k) c.hits[w]![i]!++;
  });
}

function newTask(random: () => number, categories: readonly string[], now: number): TaskRecord {
  const category = categories[Math.floor(random() * categories.length)]!;
  const r = random();
  const energyRequired: EnergyLabel = r < 0.33 ? "low" : r < 0.7 ? "medium" : "high";
  const hasDue = random() < 0.55;
  const hex = () =>
    Math.floor(random() * 0x10000)
      .toString(16)
      .padStart(4, "0");
  return {
    // Ids from the user's own random stream, so both app modes see the same tasks (ties break by id).
    taskId: `${hex()}${hex()}-${hex()}-4${hex().slice(1)}-8${hex().slice(1)}-${hex()}${hex()}${hex()}`,
    title: `${category} ${Math.floor(random() * 1000)}`,
    category,
    energyRequired,
    estimatedMinutes: MINUTES[Math.floor(random() * MINUTES.length)]!,
    priority: 1 + Math.floor(random() * 4),
    // Due anywhere from a day ago to two weeks ahead, on the hour.
    dueAt: hasDue ? Math.round((now + (-24 + random() * 14 * 24) * HOUR) / HOUR) * HOUR : null,
    status: "open",
  };
}

const toApi = (t: TaskRecord) => ({
  taskId: t.taskId,
  title: t.title,
  category: t.category,
  energyRequired: API_LEVEL[t.energyRequired],
  estimatedMinutes: t.estimatedMinutes,
  priority: t.priority,
  status: t.status === "open" ? TaskStatus.OPEN : TaskStatus.DONE,
  ...(t.dueAt === null ? {} : { dueAt: timestampFromMs(t.dueAt) }),
});

/** The user's energy now: a day shape of their own (early or late), with some days off. */
function energyAt(hour: number, peak: number, random: () => number): EnergyLabel {
  const d = Math.abs(hour - peak);
  const base = d < 2.5 ? 2 : d < 5.5 ? 1 : 0;
  const r = random();
  return LEVELS[Math.max(0, Math.min(2, base + (r < 0.15 ? -1 : r > 0.9 ? 1 : 0)))]!;
}

/** Options of one run. */
export interface SuggestionEvalOptions {
  readonly usersPerFamily: number;
  readonly steps: number;
  readonly seed: number;
  /** Sets the service's clock (SuggestTasks and Feedback read "now" from it). */
  readonly setNow: (now: number) => void;
}

/**
 * Runs every family: each user twice (once per app mode) on identical
 * states, since picks never depend on what was shown. Users of every family
 * share one service, as they would in production.
 */
export async function suggestionEval(s: TestService, options: SuggestionEvalOptions): Promise<FamilyResult[]> {
  const results: FamilyResult[] = [];
  for (const [fi, family] of CHOOSER_FAMILIES.entries()) {
    const methods: Record<string, HitCounts> = Object.fromEntries([...BASELINES, ...APP_MODES.map((m) => `learned, ${m}`)].map((m) => [m, emptyCounts()]));
    const result: FamilyResult = { family: family.name, methods, unshownPicks: 0, refusedFeedback: 0, topScore: { early: [], late: [] }, logged: [] };
    for (let u = 0; u < options.usersPerFamily; u++) {
      const seed = options.seed + 1000 * fi + u;
      for (const mode of APP_MODES) {
        // Same seed in both modes: the same user, tasks, days and picks.
        const world = seededRandom(seed);
        const chooserRandom = seededRandom(seed ^ 0x5bd1e995);
        const baselineRandom = seededRandom(seed + 77);
        const nCategories = 4 + Math.floor(world() * 3);
        const categories = [...CATEGORY_POOL].sort(() => world() - 0.5).slice(0, nCategories);
        const user = family.make(chooserRandom, categories);
        const peak = 8 + world() * 10;
        const userId = `${family.name}-${u}-${mode === "all ranked" ? "all" : "five"}`;
        let now = START + 8 * HOUR;
        const open: TaskRecord[] = Array.from({ length: 12 + Math.floor(world() * 9) }, () => newTask(world, categories, now));
        options.setNow(now);
        await s.client.upsertTasks({ userId, tasks: open.map(toApi) });
        for (let step = 0; step < options.steps; step++) {
          // Five picks a day between 8:00 and 22:00, days in a row (weekends included).
          const day = Math.floor(step / 5);
          const slot = step % 5;
          now = START + day * 24 * HOUR + (8 + slot * 2.8 + world() * 2) * HOUR;
          const date = new Date(now);
          const hour = date.getUTCHours();
          const weekend = date.getUTCDay() === 0 || date.getUTCDay() === 6;
          const energy = energyAt(hour + date.getUTCMinutes() / 60, peak, world);
          const state: ChoiceState = { tasks: open, now, hour, weekend, energy };
          const chosen = user.pick(state).taskId;
          options.setNow(now);
          const limit = mode === "all ranked" ? open.length : 5;
          const r = await s.client.suggestTasks({ userId, currentEnergy: API_LEVEL[energy], limit });
          const ranking = r.suggestions.map((x) => x.taskId);
          count(methods[`learned, ${mode}`]!, step, ranking, chosen);
          const sorted = (score: (t: TaskRecord) => number) =>
            [...open].sort((a, b) => score(b) - score(a) || a.taskId.localeCompare(b.taskId)).map((t) => t.taskId);
          const byDue = sorted((t) => -Math.min(dueHours(t, now), 1e6) - t.priority * 1e-3);
          const byPriority = sorted((t) => -t.priority - Math.min(dueHours(t, now), 1e4) * 1e-6);
          const byRules = sorted((t) => ruleScore(t, energy, now).score - t.priority * 1e-6);
          if (mode === "all ranked") {
            if (step < 5) result.topScore.early.push(r.suggestions[0]?.matchScore ?? 0);
            if (step >= options.steps - 5) result.topScore.late.push(r.suggestions[0]?.matchScore ?? 0);
            const randomOrder = [...open]
              .map((t) => ({ t, k: baselineRandom() }))
              .sort((a, b) => a.k - b.k)
              .map((x) => x.t.taskId);
            count(methods["random"]!, step, randomOrder, chosen);
            count(methods["sort by due"]!, step, byDue, chosen);
            count(methods["sort by priority"]!, step, byPriority, chosen);
            count(methods["rules only"]!, step, byRules, chosen);
            count(
              methods["own rule (ceiling)"]!,
              step,
              sorted((t) => user.utility(t, state) + jitter(t)),
              chosen,
            );
          } else {
            if (!ranking.includes(chosen)) result.unshownPicks++;
            result.logged.push({
              suggestionId: r.suggestionId,
              chosen,
              shown: ranking,
              second: { "rules only": byRules.slice(0, 5), "sort by priority": byPriority.slice(0, 5), "sort by due": byDue.slice(0, 5) },
            });
          }
          try {
            await s.client.feedback({ predictionId: r.suggestionId, wasCorrect: ranking.slice(0, 5).includes(chosen), chosenTaskId: chosen });
          } catch {
            result.refusedFeedback++;
          }
          // A population refit the feedback started finishes before the next step, so a run is the same every time.
          await s.app.ranker.idle();
          // The picked task is done; zero to two new ones arrive (12-20 stay open).
          const done = open.findIndex((t) => t.taskId === chosen);
          const [picked] = open.splice(done, 1);
          const arrivals: TaskRecord[] = [];
          let n = Math.floor(world() * 3);
          if (open.length + n < 12) n = 12 - open.length;
          if (open.length + n > 20) n = 20 - open.length;
          for (let i = 0; i < n; i++) arrivals.push(newTask(world, categories, now));
          open.push(...arrivals);
          await s.client.upsertTasks({ userId, tasks: [{ ...picked!, status: "done" as const }, ...arrivals].map(toApi) });
        }
      }
    }
    results.push(result);
    console.error(`  suggestions/${family.name}: done`);
  }
  return results;
}

/** Hit rate of a method in a window at k (0-1). */
export function hitRate(c: HitCounts, window: 0 | 1, k: 0 | 1 | 2): number {
  return c.hits[window]![k]! / Math.max(1, c.steps[window]!);
}

const LoggedSuggestion = z.object({
  prediction_id: z.string(),
  prediction_value: z.object({
    ranked: z.array(z.string()),
    probabilities: z.array(z.number()),
    inclusion: z.array(z.number()),
    propensity: z.number(),
  }),
});

/** Off-policy estimates of one second ranker against its measured value, and exploration's cost, over some logged steps. */
export interface OffPolicyResult {
  readonly steps: number;
  /** Top-3 / top-5 hit rates of the lists shown (exploration on) and of the greedy lists (off) at the same steps. */
  readonly shown: readonly [number, number];
  readonly greedy: readonly [number, number];
  /** Per second ranker: its measured top-5 hit rate and the IPS, SNIPS and doubly robust estimates from the logs. */
  readonly rankers: Record<string, { measured: number; ips: number; snips: number; dr: number }>;
}

/**
 * Values other rankings from the five-shown logs alone (what SuggestTasks
 * stored: the greedy order, the probabilities, the exploration rate), with
 * item-level inverse propensities (each task's logged chance to be among the
 * five shown: 1 for greedy ranks 1-4, 1 - rate for rank 5, some of the rate below).
 * Since these simulated users pick from all open tasks whatever was shown,
 * a list's value is the chance that the pick is in it.
 */
export async function offPolicy(s: TestService, logged: readonly LoggedStep[]): Promise<OffPolicyResult> {
  const values = new Map<string, z.infer<typeof LoggedSuggestion>["prediction_value"]>();
  for (let i = 0; i < logged.length; i += 500) {
    const ids = logged.slice(i, i + 500).map((l) => l.suggestionId);
    const rows = await s.db.pool.any(
      sql.type(LoggedSuggestion)`SELECT prediction_id, prediction_value FROM model_predictions WHERE prediction_id = ANY(${sql.array(ids, "uuid")})`,
    );
    for (const row of rows) values.set(row.prediction_id, LoggedSuggestion.parse(row).prediction_value);
  }
  const shownHits = [0, 0];
  const greedyHits = [0, 0];
  const sums = Object.fromEntries(SECOND_RANKERS.map((r) => [r, { measured: 0, ips: 0, weight: 0, dr: 0 }]));
  for (const step of logged) {
    const v = values.get(step.suggestionId)!;
    const rank = new Map(v.ranked.map((id, i) => [id, i]));
    const inclusion = (id: string) => v.inclusion[rank.get(id)!]!;
    const shown = new Set(step.shown.slice(0, EXPLORED_RANK));
    if (step.shown.slice(0, 3).includes(step.chosen)) shownHits[0]!++;
    if (shown.has(step.chosen)) shownHits[1]!++;
    if (v.ranked.slice(0, 3).includes(step.chosen)) greedyHits[0]!++;
    if (v.ranked.slice(0, 5).includes(step.chosen)) greedyHits[1]!++;
    for (const name of SECOND_RANKERS) {
      const acc = sums[name]!;
      const list = step.second[name];
      if (list.includes(step.chosen)) acc.measured++;
      for (const id of list) {
        const p = inclusion(id);
        const picked = id === step.chosen ? 1 : 0;
        const model = v.probabilities[rank.get(id)!]!;
        const w = shown.has(id) ? 1 / p : 0;
        acc.ips += w * picked;
        acc.weight += w;
        acc.dr += model + w * (picked - model);
      }
    }
  }
  const n = logged.length;
  return {
    steps: n,
    shown: [shownHits[0]! / n, shownHits[1]! / n],
    greedy: [greedyHits[0]! / n, greedyHits[1]! / n],
    rankers: Object.fromEntries(
      SECOND_RANKERS.map((name) => {
        const a = sums[name]!;
        // SNIPS: the weights of a list's five tasks average 5 per step under the logging policy; divide by what they did average.
        return [name, { measured: a.measured / n, ips: a.ips / n, snips: a.weight === 0 ? 0 : a.ips / (a.weight / 5), dr: a.dr / n }];
      }),
    ),
  };
}
