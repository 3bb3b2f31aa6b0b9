import { describe, expect, it } from "vitest";
import type { EnergyLabel, TaskRecord } from "../src/domain.ts";
import {
  categoryBucket,
  dueUrgency,
  energyFit,
  namedFeatureRow,
  reasoning,
  ruleScore,
  suggesterFeatures,
  SUGGESTER_FEATURE_NAMES,
} from "../src/ml/task-ranking.ts";

const NOW = Date.UTC(2026, 10, 26, 9);
const H = 3_600_000;
const task = (over: Partial<TaskRecord> = {}): TaskRecord => ({
  taskId: "t",
  title: "T",
  category: "deep work",
  energyRequired: "high",
  estimatedMinutes: 60,
  priority: 3,
  dueAt: null,
  status: "open",
  ...over,
});

describe("rule-based ranking", () => {
  it("fits demanding work to high energy and light work to low energy", () => {
    const levels: EnergyLabel[] = ["low", "medium", "high"];
    for (const e of levels) expect(energyFit(e, e)).toBe(1);
    expect(energyFit("low", "high")).toBeLessThan(energyFit("low", "low"));
    expect(energyFit("high", "low")).toBeLessThan(energyFit("high", "high"));
    expect(ruleScore(task(), "high", NOW).score).toBeGreaterThan(ruleScore(task(), "low", NOW).score);
    const light = task({ energyRequired: "low", estimatedMinutes: 10 });
    expect(ruleScore(light, "low", NOW).score).toBeGreaterThan(ruleScore(task(), "low", NOW).score);
  });

  it("weighs urgency by due date", () => {
    expect([null, NOW - H, NOW + 5 * H, NOW + 48 * H, NOW + 100 * H, NOW + 500 * H].map((d) => dueUrgency(d, NOW))).toEqual([0, 1, 0.9, 0.6, 0.3, 0.1]);
    expect(ruleScore(task({ dueAt: NOW - H }), "medium", NOW).score).toBeGreaterThan(ruleScore(task(), "medium", NOW).score);
  });

  it("explains itself in a sentence", () => {
    const at = (t: TaskRecord, e: EnergyLabel, note?: string) => reasoning(ruleScore(t, e, NOW), e, NOW, note);
    expect(at(task(), "high")).toBe("A high-energy deep work task (60 min) that matches your high energy.");
    expect(at(task(), "low")).toMatch(/hard going at low energy/);
    expect(at(task({ energyRequired: "low" }), "high")).toMatch(/could take on something more demanding/);
    expect(at(task({ energyRequired: "medium" }), "high")).toMatch(/manage well/);
    expect(at(task({ priority: 1, dueAt: NOW - H }), "high")).toMatch(/top priority and it is overdue\.$/);
    expect(at(task({ priority: 2, dueAt: NOW + 30 * H }), "high")).toMatch(/high priority and it is due in the next three days/);
    expect(at(task({ dueAt: NOW + 100 * H }), "high", "you often pick tasks like this")).toMatch(/due this week and you often pick/);
    expect(at(task({ dueAt: NOW + 1000 * H }), "high")).not.toMatch(/due/);
  });

  it("turns a shown task into suggester features", () => {
    const f = suggesterFeatures(task({ dueAt: NOW + 3 * H }), "medium", 14, NOW);
    expect(f).toMatchObject({ energy: 1, hour_of_day: 14, energy_required: 2, energy_gap: 1, hours_until_due: 3 });
    const row = namedFeatureRow(SUGGESTER_FEATURE_NAMES, { ...f, hours_until_due: null });
    expect(row).toHaveLength(SUGGESTER_FEATURE_NAMES.length);
    expect(Number.isNaN(row[6])).toBe(true);
    expect(categoryBucket(" Deep Work")).toBe(categoryBucket("deep work"));
    expect(categoryBucket("email")).not.toBe(categoryBucket("deep work"));
  });
});
