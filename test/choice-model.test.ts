import { describe, expect, it } from "vitest";
import type { EnergyLabel } from "../src/domain.ts";
import {
  choiceFeatures,
  choiceObjective,
  choiceProbabilities,
  CHOICE_DIMENSIONS,
  CHOICE_FEATURE_NAMES,
  factorContributions,
  fitChoiceModel,
  fitChoiceModelInSlices,
  parseWeights,
  priorWeights,
  solveSymmetric,
  type ChoiceContext,
  type ChoiceTask,
  type ObservedChoice,
} from "../src/ml/choice-model.ts";
import { seededRandom } from "../src/ml/evaluation.ts";
import { factorSentence, ruleScore } from "../src/ml/task-ranking.ts";

const NOW = Date.UTC(2026, 10, 30, 9);
const H = 3_600_000;
const ctx = (over: Partial<ChoiceContext> = {}): ChoiceContext => ({ energy: "medium", hour: 9, weekend: false, now: NOW, ...over });
const task = (over: Partial<ChoiceTask> = {}): ChoiceTask => ({
  category: "writing",
  energyRequired: "medium",
  estimatedMinutes: 40,
  priority: 3,
  dueAt: null,
  ...over,
});
const feature = (row: Float64Array, name: string) => row[CHOICE_FEATURE_NAMES.indexOf(name)]!;

function randomTasks(random: () => number, n: number): ChoiceTask[] {
  const levels: EnergyLabel[] = ["low", "medium", "high"];
  return Array.from({ length: n }, () => ({
    category: ["writing", "email", "coding", "admin"][Math.floor(random() * 4)]!,
    energyRequired: levels[Math.floor(random() * 3)]!,
    estimatedMinutes: [10, 30, 60, 120][Math.floor(random() * 4)]!,
    priority: 1 + Math.floor(random() * 4),
    dueAt: random() < 0.5 ? NOW + Math.floor(random() * 300 - 24) * H : null,
  }));
}

describe("choice features", () => {
  it("describe each open task against the others and the moment", () => {
    const tasks = [task({ dueAt: NOW + 5 * H, priority: 2 }), task({ dueAt: NOW - H, priority: 1 }), task({ category: "email", estimatedMinutes: 160 })];
    const rows = choiceFeatures(tasks, ctx());
    expect(rows).toHaveLength(3);
    for (const r of rows) expect(r).toHaveLength(CHOICE_DIMENSIONS);
    expect(feature(rows[1]!, "overdue")).toBe(1);
    expect(feature(rows[1]!, "soonest_due")).toBe(1);
    expect(feature(rows[0]!, "soonest_due")).toBe(0);
    expect(feature(rows[0]!, "due_within_day")).toBeCloseTo(Math.exp(-5 / 24));
    expect(feature(rows[2]!, "no_due_date")).toBe(1);
    expect(feature(rows[1]!, "top_priority_open")).toBe(1);
    expect(feature(rows[0]!, "top_priority_open")).toBe(0);
    expect(feature(rows[0]!, "priority")).toBe(2);
    expect(feature(rows[0]!, "demand_medium_at_medium")).toBe(1);
    expect(feature(rows[2]!, "length")).toBeCloseTo(1);
    expect(feature(rows[2]!, "length_x_morning")).toBeCloseTo(1);
    expect(feature(rows[2]!, "length_rank_x_morning")).toBe(1);
    expect(feature(rows[0]!, "length_rank_x_morning")).toBe(0);
    expect(feature(rows[2]!, "length_rank_x_evening")).toBe(0);
    expect(feature(rows[0]!, "rule_score")).toBeCloseTo(ruleScore({ ...tasks[0]!, taskId: "", title: "", status: "open" }, "medium", NOW).score);
    // Categories: two signed buckets each, and the weekend copy only on weekends.
    const categoryPart = (r: Float64Array) => [...r.slice(CHOICE_FEATURE_NAMES.indexOf("category_0"))];
    expect(categoryPart(rows[0]!).filter((v) => v !== 0)).toHaveLength(2);
    expect(categoryPart(rows[0]!)).not.toEqual(categoryPart(rows[2]!));
    const weekend = choiceFeatures(tasks, ctx({ weekend: true, hour: 20 }));
    expect(categoryPart(weekend[0]!).filter((v) => v !== 0)).toHaveLength(4);
    expect(feature(weekend[2]!, "length_x_evening")).toBeCloseTo(1);
    expect(feature(weekend[2]!, "length_x_weekend")).toBeCloseTo(1);
    expect(feature(weekend[2]!, "length_rank_x_evening")).toBe(1);
  });

  it("make the rules into probabilities before anything is learned", () => {
    const random = seededRandom(3);
    const tasks = randomTasks(random, 15);
    const rows = choiceFeatures(tasks, ctx());
    const p = choiceProbabilities(priorWeights(), rows);
    expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1);
    const byP = tasks.map((_, i) => i).sort((a, b) => p[b]! - p[a]!);
    const byRule = tasks.map((_, i) => i).sort((a, b) => rows[b]![0]! - rows[a]![0]!);
    expect(byP).toEqual(byRule);
  });
});

describe("fitting the conditional logit", () => {
  it("solves symmetric systems", () => {
    // [[4, 2], [2, 3]] x = [2, 5] -> x = [-0.5, 2]
    const x = solveSymmetric(Float64Array.from([4, 0, 2, 3]), Float64Array.from([2, 5]));
    expect(x[0]).toBeCloseTo(-0.5);
    expect(x[1]).toBeCloseTo(2);
  });

  it("recovers a chooser's weights from their picks (seeded)", () => {
    const random = seededRandom(11);
    const truth = new Float64Array(CHOICE_DIMENSIONS);
    truth[CHOICE_FEATURE_NAMES.indexOf("priority")] = 1;
    truth[CHOICE_FEATURE_NAMES.indexOf("length_x_morning")] = 2;
    truth[CHOICE_FEATURE_NAMES.indexOf("category_3")] = 1.5;
    const draw = (): ObservedChoice => {
      const rows = choiceFeatures(randomTasks(random, 12), ctx({ hour: 8 + Math.floor(random() * 12) }));
      const p = choiceProbabilities(truth, rows);
      let u = random();
      let chosen = 0;
      while (chosen < p.length - 1 && (u -= p[chosen]!) > 0) chosen++;
      return { rows, chosen };
    };
    const train = Array.from({ length: 150 }, draw);
    const test = Array.from({ length: 200 }, draw);
    const options = { prior: priorWeights(), lambda: 1, iterations: 6 };
    const w = fitChoiceModel(train, options);
    expect(choiceObjective(train, w, options)).toBeLessThan(choiceObjective(train, priorWeights(), options));
    // Held-out log-likelihood per pick: close to the true weights', far from the rules'.
    const none = { prior: new Float64Array(CHOICE_DIMENSIONS), lambda: 0 };
    const nll = (weights: Float64Array) => choiceObjective(test, weights, none) / test.length;
    expect(nll(w)).toBeLessThan(nll(truth) + 0.1);
    expect(nll(w)).toBeLessThan(nll(priorWeights()) - 0.3);
    expect(w[CHOICE_FEATURE_NAMES.indexOf("priority")]).toBeGreaterThan(0.5);
  });

  it("gives the same weights in slices as in one go", async () => {
    const random = seededRandom(5);
    const choices = Array.from({ length: 40 }, () => ({ rows: choiceFeatures(randomTasks(random, 10), ctx()), chosen: Math.floor(random() * 10) }));
    const options = { prior: priorWeights(), lambda: 2, iterations: 3 };
    const once = fitChoiceModel(choices, options);
    let pauses = 0;
    const sliced = await fitChoiceModelInSlices(choices, options, 7, async () => {
      pauses++;
    });
    expect(pauses).toBeGreaterThan(10);
    for (let i = 0; i < CHOICE_DIMENSIONS; i++) expect(sliced[i]).toBeCloseTo(once[i]!, 10);
  });

  it("refuses stored weights of another feature layout", () => {
    expect(parseWeights([...priorWeights()])).toEqual(priorWeights());
    expect(parseWeights([1, 2, 3])).toBeNull();
    expect(parseWeights([...priorWeights()].map((v, i) => (i === 0 ? Number.NaN : v)))).toBeNull();
  });
});

describe("reasons", () => {
  it("name the factors that moved the task, up and down", () => {
    const tasks = [task({ dueAt: NOW + 2 * H, estimatedMinutes: 180 }), task({ category: "email" }), task({ category: "admin" })];
    const rows = choiceFeatures(tasks, ctx({ hour: 20 }));
    const w = new Float64Array(CHOICE_DIMENSIONS);
    w[CHOICE_FEATURE_NAMES.indexOf("due_within_day")] = 3;
    w[CHOICE_FEATURE_NAMES.indexOf("length_x_evening")] = -2;
    const contributions = factorContributions(w, rows, 0);
    const record = { ...tasks[0]!, taskId: "t", title: "T", status: "open" as const };
    expect(factorSentence(contributions, record, false)).toBe("Ranked up by its due date; held back by its length (180 min) at this time of day.");
    expect(factorSentence(new Map(), record, false)).toBe("Ranked near the middle: no factor sets it apart.");
    expect(factorSentence(new Map([["weekend-category", -1]]), record, true)).toBe("Held back by your weekend taste for writing tasks.");
    expect(
      factorSentence(
        new Map([
          ["category", 1],
          ["energy", 0.5],
          ["rules", 0.3],
        ]),
        record,
        false,
      ),
    ).toBe("Ranked up by your liking for writing tasks and how its medium demand suits your energy now.");
  });
});
