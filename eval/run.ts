/**
 * npm run eval: how well the service learns, on seeded synthetic users whose
 * true probabilities are known (src/ml/synthetic.ts).
 *
 * 1. Learning curves at 10-500 samples per user for five methods, through the
 *    service's own training jobs, with the Bayes-optimal accuracy for scale.
 * 2. Cold start: Predict for users the service has never seen, through the
 *    RPC, against the population model's own evaluated accuracy.
 * 3. Pattern shifts: users whose day moves midway, streamed through
 *    Predict + Feedback; drift must trigger the retrain and accuracy recover.
 * 4. Task suggestions: users with a hidden taste for categories; the learned
 *    ranking against the rules after 30 feedbacks.
 *
 * Writes eval/results.md and eval/learning-curves.svg. Options: --quick.
 */
import { writeFileSync } from "node:fs";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { EnergyLevel, ModelSource, ModelType } from "../gen/ml/v1/ml_pb.ts";
import { syntheticSamples, syntheticUsers } from "../src/ml/synthetic.ts";
import { sampleMessages } from "../test/support/fixtures.ts";
import { startTestService, TEST_SETTINGS } from "../test/support/service.ts";
import { shiftRecovery } from "./drift.ts";
import { learningCurves, METHODS, trainBackgroundPopulation } from "./learning-curves.ts";
import { suggestionLearning } from "./suggestions.ts";
import { learningCurveSvg } from "./svg.ts";

const quick = process.argv.includes("--quick");
const cfg = quick
  ? { users: 6, background: 12, backgroundSamples: 150, sizes: [10, 50, 200], test: 200, shiftUsers: 2, suggestUsers: 3 }
  : { users: 20, background: 40, backgroundSamples: 300, sizes: [10, 25, 50, 100, 200, 500], test: 400, shiftUsers: 8, suggestUsers: 10 };
const out: string[] = [];
const say = (line = "") => {
  out.push(line);
  console.log(line);
};
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const started = performance.now();

// 1. Learning curves.
const background = syntheticUsers(cfg.background, 101);
const population = trainBackgroundPopulation(background, cfg.backgroundSamples, 7);
const users = syntheticUsers(cfg.users, 202);
const curves = learningCurves(users, cfg.sizes, { model: population.model, blob: population.result.modelData }, { seed: 3, testSize: cfg.test });
say(`# Evaluation (${quick ? "quick" : "full"} run)`);
say();
say(
  `${cfg.users} synthetic users (chronotypes -2.5 to +3.5 h, 15% label noise), each scored on ${cfg.test} fresh samples; ` +
    `population model from ${cfg.background} other users x ${cfg.backgroundSamples} samples. Bayes-optimal accuracy: **${pct(curves.bayes)}**.`,
);
say();
say("| samples/user | method | accuracy | users >= 60% | ECE | Brier |");
say("| ---: | --- | ---: | ---: | ---: | ---: |");
for (const n of cfg.sizes) {
  for (const m of METHODS) {
    const p = curves.points.find((x) => x.n === n && x.method === m)!;
    say(`| ${n} | ${m} | ${pct(p.accuracy)} | ${pct(p.shareAt60)} | ${p.ece.toFixed(3)} | ${p.brier.toFixed(3)} |`);
  }
}
writeFileSync(new URL("./learning-curves.svg", import.meta.url), learningCurveSvg(curves.points, curves.bayes, "Energy prediction: learning curves"));
const at = (n: number, m: (typeof METHODS)[number]) => curves.points.find((x) => x.n === n && x.method === m)?.accuracy ?? Number.NaN;
say();
if (cfg.sizes.includes(50)) {
  say(`At 50 samples: production ${pct(at(50, "production model"))} vs spec forest ${pct(at(50, "spec per-user forest"))} (${((at(50, "production model") - at(50, "spec per-user forest")) * 100).toFixed(1)} points).`);
}
const largest = cfg.sizes.at(-1)!;
say(`At ${largest} samples: production ${pct(at(largest, "production model"))} vs spec forest ${pct(at(largest, "spec per-user forest"))}.`);
if (cfg.sizes.includes(200)) say(`ECE of the production model at 200 samples: ${curves.points.find((x) => x.n === 200 && x.method === "production model")!.ece.toFixed(3)}.`);

// 2-4 run through the service itself: an in-process app on a fresh embedded database.
const NOW = Date.UTC(2026, 10, 26, 9);
const s = await startTestService({ settings: { nEstimators: TEST_SETTINGS.nEstimators * 4 }, clock: () => NOW });
try {
  for (const [i, u] of background.entries()) {
    await s.client.ingestTrainingData({ samples: sampleMessages(`bg-${i}`, syntheticSamples(u, cfg.backgroundSamples, 7 + i)) });
  }
  const pop = await s.client.train({ population: true, modelType: ModelType.ENERGY_PREDICTION });
  const level = { low: EnergyLevel.LOW, medium: EnergyLevel.MEDIUM, high: EnergyLevel.HIGH } as const;
  let hits = 0;
  let total = 0;
  let fromPopulation = 0;
  for (const [i, u] of users.entries()) {
    for (const x of syntheticSamples(u, Math.min(100, cfg.test), 9000 + i, Date.UTC(2027, 0, 4))) {
      const p = await s.client.predict({
        userId: `cold-${i}`,
        targetTime: timestampFromMs(x.observedAt),
        recentActivity: {
          tasksCompletedToday: x.features.tasks_completed_today,
          avgEnergyLast7Days: x.features.avg_energy_last_7_days,
          ...(x.features.sleep_quality === null ? {} : { sleepQuality: x.features.sleep_quality }),
        },
      });
      if (p.modelSource === ModelSource.POPULATION) fromPopulation++;
      if (p.predictedEnergy === level[x.energy]) hits++;
      total++;
    }
  }
  say();
  say("## Cold start (0 samples), through Predict");
  say();
  say(
    `${total} predictions for ${users.length} users the service had never seen: ${fromPopulation} answered by the population model, ` +
      `accuracy ${pct(hits / total)}; the population model's own evaluation (cross-validated over users, cold): ${pct(pop.model!.trainingAccuracy)}.`,
  );

  // 3. Pattern shifts.
  // A new job moves the day by 4 hours, later for early risers and earlier for late ones.
  const shifting = syntheticUsers(cfg.shiftUsers, 303).map((u) => ({ ...u, newChronotype: u.chronotype + (u.chronotype < 0.5 ? 4 : -4) }));
  const recoveries = [];
  for (const [i, u] of shifting.entries()) {
    recoveries.push(await shiftRecovery(s, u, { before: 300, feedbacks: quick ? 60 : 100, step: 10, testSize: quick ? 150 : 500, seed: 40 + i }));
  }
  say();
  say("## Pattern shift (the day moves by 4 h after 300 samples), through Predict + Feedback");
  say();
  say("| user | pre-shift accuracy | after 0 / 20 / 40 / 60 feedbacks | recovered (within 3 points) after | retrain triggers |");
  say("| --- | ---: | --- | ---: | --- |");
  for (const r of recoveries) {
    const c = (k: number) => pct(r.curve.find((x) => x.feedbacks === k)?.accuracy ?? Number.NaN);
    say(`| ${r.userId} | ${pct(r.preShiftAccuracy)} | ${c(0)} / ${c(20)} / ${c(40)} / ${c(60)} | ${r.recoveredAfter ?? "not yet"} | ${r.triggers.join(", ") || "none"} |`);
  }
  const within60 = recoveries.filter((r) => r.recoveredAfter !== null && r.recoveredAfter <= 60).length;
  const meanPre = recoveries.reduce((a, r) => a + r.preShiftAccuracy, 0) / recoveries.length;
  const meanAt = (k: number) => recoveries.reduce((a, r) => a + (r.curve.find((c) => c.feedbacks === k)?.accuracy ?? 0), 0) / recoveries.length;
  const steps = recoveries[0]!.curve.map((c) => c.feedbacks);
  const recoveredMean = steps.find((k) => meanAt(k) >= meanPre - 0.03);
  say();
  say(`Mean over users: pre-shift ${pct(meanPre)}; after ${steps.map((k) => `${k}: ${pct(meanAt(k))}`).join(", ")} feedbacks.`);
  say(
    `The mean is back within 3 points of the pre-shift level after ${recoveredMean ?? "more than " + steps.at(-1)} feedbacks; ` +
      `${within60} of ${recoveries.length} users individually within 60 (each measured on ${quick ? 150 : 500} fresh samples, ` +
      `so one user's figure carries about ±${quick ? 4 : 2} points of sampling noise).`,
  );

  // 4. Task suggestions.
  const results = [];
  for (let i = 0; i < cfg.suggestUsers; i++) results.push(await suggestionLearning(s, `taste-${i}`, { seed: 500 + i, trainRounds: 30, testRounds: 50, now: NOW }));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  say();
  say("## Task suggestions after 30 feedbacks (hidden category preferences)");
  say();
  say(`Top-3 hit rate over ${results.length} users x 50 rounds: rules ${pct(mean(results.map((r) => r.ruleHitRate)))}, learned ${pct(mean(results.map((r) => r.learnedHitRate)))}.`);
} finally {
  await s.close();
}
say();
say(`(eval took ${((performance.now() - started) / 1000).toFixed(0)} s)`);
writeFileSync(new URL(`./results${quick ? "-quick" : ""}.md`, import.meta.url), `${out.join("\n")}\n`);
