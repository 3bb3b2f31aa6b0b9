import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { sql } from "slonik";
import { z } from "zod";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnergyLevel, TaskStatus } from "../gen/ml/v1/ml_pb.ts";
import { seededRandom } from "../src/ml/evaluation.ts";
import { recentChoices } from "../src/db/task-choices.ts";
import { rankersFor, saveRanker } from "../src/db/task-rankers.ts";
import { CHOICE_DIMENSIONS, priorWeights } from "../src/ml/choice-model.ts";
import { exploreOrder } from "../src/service/suggester.ts";
import { createTaskRanker, DEFAULT_RANKER_SETTINGS } from "../src/service/task-ranker.ts";
import { silentLogger } from "../src/logger.ts";
import { codeOf } from "./support/calls.ts";
import { startTestService, type TestService } from "./support/service.ts";

const H = 3_600_000;
/** Monday 30 November 2026. */
const MONDAY = Date.UTC(2026, 10, 30);
const CATEGORIES = ["writing", "email", "coding", "admin", "errands"] as const;
const LEVELS = [EnergyLevel.LOW, EnergyLevel.MEDIUM, EnergyLevel.HIGH] as const;

interface SimTask {
  taskId: string;
  category: string;
  energyRequired: EnergyLevel;
  estimatedMinutes: number;
  priority: number;
  dueAt: number | null;
}

let s: TestService;
let now = MONDAY;
beforeAll(async () => {
  s = await startTestService({ clock: () => now });
});
afterAll(async () => {
  await s.close();
});

function taskMaker(seed: number) {
  const random = seededRandom(seed);
  const hex = () =>
    Math.floor(random() * 0x10000)
      .toString(16)
      .padStart(4, "0");
  return (at: number, over: Partial<SimTask> = {}): SimTask => ({
    taskId: `${hex()}${hex()}-${hex()}-4${hex().slice(1)}-8${hex().slice(1)}-${hex()}${hex()}${hex()}`,
    category: CATEGORIES[Math.floor(random() * CATEGORIES.length)]!,
    energyRequired: LEVELS[Math.floor(random() * 3)]!,
    estimatedMinutes: [10, 20, 30, 45, 60, 90][Math.floor(random() * 6)]!,
    priority: 1 + Math.floor(random() * 4),
    dueAt: random() < 0.5 ? at + Math.floor(random() * 200) * H : null,
    ...over,
  });
}

const toApi = (t: SimTask, status = TaskStatus.OPEN) => ({
  taskId: t.taskId,
  title: `${t.category} task`,
  category: t.category,
  energyRequired: t.energyRequired,
  estimatedMinutes: t.estimatedMinutes,
  priority: t.priority,
  status,
  ...(t.dueAt === null ? {} : { dueAt: timestampFromMs(t.dueAt) }),
});

/**
 * Runs a user for `steps` picks (five a day from 9:00, weekends included):
 * SuggestTasks, their pick, Feedback, the pick done and a new task in.
 * Returns what the service suggested at each step and what was picked.
 */
async function simulate(
  userId: string,
  options: { seed: number; steps: number; limit: number; pick: (open: readonly SimTask[], at: number) => SimTask; energy?: EnergyLevel },
) {
  const make = taskMaker(options.seed);
  now = MONDAY + 9 * H;
  const open = Array.from({ length: 14 }, () => make(now));
  await s.client.upsertTasks({ userId, tasks: open.map((t) => toApi(t)) });
  const log = [];
  for (let step = 0; step < options.steps; step++) {
    now = MONDAY + Math.floor(step / 5) * 24 * H + (9 + (step % 5) * 2.5) * H;
    const r = await s.client.suggestTasks({ userId, currentEnergy: options.energy ?? EnergyLevel.MEDIUM, limit: options.limit });
    const picked = options.pick(open, now);
    const fb = await s.client.feedback({ predictionId: r.suggestionId, wasCorrect: true, chosenTaskId: picked.taskId });
    log.push({ step, at: now, open: [...open], suggestions: r.suggestions, picked, fb });
    open.splice(open.indexOf(picked), 1);
    // A new task of the same category arrives, so the mix of categories stays as it was.
    const arrival = make(now, { category: picked.category });
    open.push(arrival);
    await s.client.upsertTasks({ userId, tasks: [toApi(picked, TaskStatus.DONE), toApi(arrival)] });
  }
  return { log, open };
}

const isWeekend = (at: number) => [0, 6].includes(new Date(at).getUTCDay());

describe("learning to rank from picks", () => {
  it("ranks an always-highest-priority user by priority within 30 picks", async () => {
    const byPriority = (open: readonly SimTask[]) =>
      [...open].sort((a, b) => a.priority - b.priority || (a.dueAt ?? Infinity) - (b.dueAt ?? Infinity) || a.taskId.localeCompare(b.taskId))[0]!;
    const { log } = await simulate("prioritiser", { seed: 1, steps: 40, limit: 20, pick: byPriority });
    const after = log.slice(30);
    // Every top suggestion after 30 picks is of the highest priority open, and the list is ordered by priority.
    const share = (open: readonly SimTask[], suggestions: readonly { taskId: string }[]) => {
      const priorityOf = (id: string) => open.find((t) => t.taskId === id)!.priority;
      let ordered = 0;
      let pairs = 0;
      for (let i = 0; i < suggestions.length; i++) {
        for (let j = i + 1; j < suggestions.length; j++) {
          const a = priorityOf(suggestions[i]!.taskId);
          const b = priorityOf(suggestions[j]!.taskId);
          if (a === b) continue;
          pairs++;
          if (a < b) ordered++;
        }
      }
      return ordered / pairs;
    };
    const shares = after.map(({ open, suggestions }) => share(open, suggestions));
    for (const { open, suggestions } of after) {
      expect(open.find((t) => t.taskId === suggestions[0]!.taskId)!.priority).toBe(Math.min(...open.map((t) => t.priority)));
    }
    // Pairs of tasks of different priority, in priority order: most of them, and far more than the rules alone manage.
    expect(Math.min(...shares)).toBeGreaterThan(0.8);
    expect(shares.reduce((a, b) => a + b, 0) / shares.length).toBeGreaterThan(0.88);
    const last = after.at(-1)!;
    await s.client.upsertTasks({ userId: "prioritiser-control", tasks: last.open.map((t) => toApi(t)) });
    const control = await s.client.suggestTasks({ userId: "prioritiser-control", currentEnergy: EnergyLevel.MEDIUM, limit: 20 });
    // The rules (a user with the same tasks and no picks) order about 0.7 of the pairs.
    expect(share(last.open, control.suggestions)).toBeLessThan(shares.reduce((a, b) => a + b, 0) / shares.length - 0.1);
    // The pick itself (the highest priority, then the soonest due) is in the top 3 after 30 picks.
    const inTop3 = (x: (typeof log)[number]) => x.suggestions.slice(0, 3).some((y) => y.taskId === x.picked.taskId);
    expect(after.filter(inTop3).length).toBeGreaterThanOrEqual(9);
  });

  it("learns a category preference that flips on weekends", async () => {
    // Writing on weekdays, errands on weekends; the other category avoided.
    const pick = (open: readonly SimTask[], at: number) => {
      const liked = isWeekend(at) ? "errands" : "writing";
      const disliked = isWeekend(at) ? "writing" : "errands";
      const score = (t: SimTask) => (t.category === liked ? 2 : t.category === disliked ? -2 : 0) - 0.1 * t.priority;
      return [...open].sort((a, b) => score(b) - score(a) || a.taskId.localeCompare(b.taskId))[0]!;
    };
    // 70 picks: 14 days, so four weekend days before the last week.
    const { log } = await simulate("weekender", { seed: 2, steps: 70, limit: 20, pick });
    const last = log.slice(40);
    const hits = (weekend: boolean) => {
      const steps = last.filter((x) => isWeekend(x.at) === weekend && x.open.some((t) => t.category === (weekend ? "errands" : "writing")));
      return {
        n: steps.length,
        top: steps.filter((x) => x.open.find((t) => t.taskId === x.suggestions[0]!.taskId)!.category === (weekend ? "errands" : "writing")).length,
      };
    };
    const weekday = hits(false);
    const weekend = hits(true);
    expect(weekday.n).toBeGreaterThan(10);
    expect(weekend.n).toBeGreaterThanOrEqual(5);
    expect(weekday.top / weekday.n).toBeGreaterThan(0.9);
    expect(weekend.top / weekend.n).toBeGreaterThan(0.8);
    // The reasons name the weekend taste on a weekend.
    const saturday = last.find((x) => isWeekend(x.at))!;
    expect(saturday.suggestions[0]!.reasoning).toMatch(/weekend taste for errands tasks/);
  });

  it("accepts picks that were not shown and learns from them", async () => {
    // Shown three; the user always does a low-priority errand, which the rules rank low.
    const pick = (open: readonly SimTask[]) =>
      [...open].sort(
        (a, b) => Number(b.category === "errands") - Number(a.category === "errands") || b.priority - a.priority || a.taskId.localeCompare(b.taskId),
      )[0]!;
    const { log, open } = await simulate("errand-runner", { seed: 3, steps: 25, limit: 3, pick });
    const unshown = log.filter((x) => !x.suggestions.some((y) => y.taskId === x.picked.taskId));
    expect(unshown.length).toBeGreaterThanOrEqual(2);
    for (const x of unshown) {
      expect(x.fb.recorded).toBe(true);
      expect(x.fb.chosenRank).toBeUndefined();
    }
    const shown = log.filter((x) => x.suggestions.some((y) => y.taskId === x.picked.taskId));
    for (const x of shown) expect(x.fb.chosenRank).toBe(x.suggestions.findIndex((y) => y.taskId === x.picked.taskId) + 1);
    // The picks were learned from: with every open task ranked, the user's next pick comes first, where a user
    // with the same tasks and no picks (the rules) has it far down.
    const next = pick(open);
    const learned = await s.client.suggestTasks({ userId: "errand-runner", currentEnergy: EnergyLevel.MEDIUM, limit: 20 });
    await s.client.upsertTasks({ userId: "errand-control", tasks: open.map((t) => toApi(t)) });
    const control = await s.client.suggestTasks({ userId: "errand-control", currentEnergy: EnergyLevel.MEDIUM, limit: 20 });
    const rankIn = (r: typeof learned) => r.suggestions.findIndex((x) => x.taskId === next.taskId);
    expect(rankIn(learned)).toBe(0);
    expect(rankIn(control)).toBeGreaterThan(4);
    const stored = await recentChoices(s.db.pool, "errand-runner", 100);
    expect(stored).toHaveLength(25);
    const rows = await s.db.pool.any(sql.type(z.object({ shown: z.boolean() }))`SELECT shown FROM task_choices WHERE user_id = 'errand-runner'`);
    expect(rows.filter((r) => !r.shown)).toHaveLength(unshown.length);
    // A task the user does not have is still refused.
    const r = await s.client.suggestTasks({ userId: "errand-runner", currentEnergy: EnergyLevel.LOW });
    const other = taskMaker(99)(now);
    expect(await codeOf(s.client.feedback({ predictionId: r.suggestionId, wasCorrect: true, chosenTaskId: other.taskId }))).toBe(Code.InvalidArgument);
  });

  it("keeps match_score a probability of the pick before and after the user's own model", async () => {
    const pick = (open: readonly SimTask[]) => [...open].sort((a, b) => a.estimatedMinutes - b.estimatedMinutes || a.taskId.localeCompare(b.taskId))[0]!;
    const { log } = await simulate("shortest-first", { seed: 4, steps: 40, limit: 20, pick });
    for (const x of [log[0]!, log.at(-1)!]) {
      const total = x.suggestions.reduce((a, y) => a + y.matchScore, 0);
      expect(total).toBeCloseTo(1, 2);
      expect(x.suggestions[0]!.matchScore).toBeLessThan(1);
    }
    // Calibration: over the last 20 steps, the mean probability given to the pick is close to how often the top one was picked.
    const late = log.slice(20);
    const topHit = late.filter((x) => x.suggestions[0]!.taskId === x.picked.taskId).length / late.length;
    const meanTop = late.reduce((a, x) => a + x.suggestions[0]!.matchScore, 0) / late.length;
    // For a user this strict the probabilities err low (shrinkage toward the population): 0.75 against 0.95 picked.
    expect(meanTop).toBeLessThanOrEqual(topHit + 0.05);
    expect(topHit - meanTop).toBeLessThan(0.25);
    // Before any pick the scores are the rules' probabilities, on the same 0-1 scale.
    expect(log[0]!.suggestions[0]!.matchScore).toBeGreaterThan(0.05);
  });

  it("refits the population ranker from every user's picks, which a new user then starts from", async () => {
    await s.app.ranker.idle();
    await s.app.ranker.refitPopulation();
    const [population] = await rankersFor(s.db.pool, [""]);
    expect(population!.picks).toBeGreaterThan(100);
    const fresh = await s.app.ranker.weightsFor("nobody-yet");
    expect(fresh.personal).toBe(false);
    expect([...fresh.weights]).toEqual(population!.weights);
    expect([...fresh.weights]).not.toEqual([...priorWeights()]);
    const own = await s.app.ranker.weightsFor("prioritiser");
    expect(own.personal).toBe(true);
    expect(own.picks).toBe(40);
  });
});

describe("exploration", () => {
  const greedy = Array.from({ length: 12 }, (_, i) => i);
  const probabilities = greedy.map((i) => (12 - i) / 78);

  it("keeps the first four, and gives every task below a logged chance at fifth place", () => {
    const random = seededRandom(7);
    const counts = new Array<number>(12).fill(0);
    const runs = 20_000;
    let explored = 0;
    for (let n = 0; n < runs; n++) {
      const e = exploreOrder(greedy, probabilities, 5, 0.2, random);
      expect(e.order.slice(0, 4)).toEqual([0, 1, 2, 3]);
      expect(e.inclusion.reduce((a, b) => a + b, 0)).toBeCloseTo(5);
      const fifth = e.order[4]!;
      counts[fifth]!++;
      if (fifth !== 4) {
        explored++;
        expect(e.propensity).toBeCloseTo(e.inclusion[fifth]!);
      } else {
        expect(e.propensity).toBeCloseTo(0.8);
      }
    }
    expect(explored / runs).toBeCloseTo(0.2, 1);
    const { inclusion } = exploreOrder(greedy, probabilities, 5, 0.2, () => 0.99);
    for (let r = 4; r < 12; r++) expect(counts[r]! / runs).toBeCloseTo(inclusion[r]!, 2);
    // Half uniform: no task below falls under rate / (2 x the tasks below).
    expect(Math.min(...inclusion.slice(5))).toBeGreaterThanOrEqual(0.2 / 14 - 1e-9);
  });

  it("does nothing when off, when fewer than five are asked for, or when nothing is below fifth place", () => {
    for (const e of [
      exploreOrder(greedy, probabilities, 5, 0, Math.random),
      exploreOrder(greedy, probabilities, 3, 0.2, Math.random),
      exploreOrder([0, 1, 2, 3, 4], probabilities, 5, 0.2, Math.random),
    ]) {
      expect(e.propensity).toBe(1);
      expect(e.order).toEqual(e.order.map((_, i) => i));
    }
  });
});

describe("ranker weights cache", () => {
  it("trusts what it read for the TTL, so another instance's refit shows within it", async () => {
    const settings = DEFAULT_RANKER_SETTINGS;
    const offset = (v: number) => Array.from({ length: CHOICE_DIMENSIONS }, () => v);
    await saveRanker(s.db.pool, "elsewhere", offset(0.5), 3);
    const cached = createTaskRanker({ db: s.db.pool, settings, log: silentLogger, maxCachedUsers: 2 });
    const uncached = createTaskRanker({ db: s.db.pool, settings, log: silentLogger, cacheTtlMs: 0 });
    const before = await cached.weightsFor("elsewhere");
    expect(before.picks).toBe(3);
    await saveRanker(s.db.pool, "elsewhere", offset(1), 4);
    expect((await cached.weightsFor("elsewhere")).picks).toBe(3);
    expect((await uncached.weightsFor("elsewhere")).picks).toBe(4);
    // Two entries at most: the population and one user; reading another user pushes "elsewhere" out.
    await cached.weightsFor("someone-else");
    expect((await cached.weightsFor("elsewhere")).picks).toBe(4);
  });
});
