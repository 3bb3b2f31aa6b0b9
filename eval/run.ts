/**
 * npm run eval: how well the service learns, on seeded synthetic users whose
 * true probabilities are known.
 *
 * 1. Generalisation (eval/generalization.ts): learning curves at 10-200
 *    samples per user on seven generator families (eval/families.ts, written
 *    without looking at the model), each as generated, with 30% label noise,
 *    and with half the users never reporting sleep; fresh and established
 *    deployments; the spec's recipe and the user's majority label measured
 *    side by side with the production model on the same held-out rows.
 * 2. Cold start: Predict for users the service has never seen, through the
 *    RPC, against the population model's own evaluated accuracy.
 * 3. Pattern shifts: users whose day moves midway, streamed through
 *    Predict + Feedback; drift must trigger the retrain and accuracy recover.
 * 4. Task suggestions (eval/suggestions.ts): seven kinds of chooser through
 *    SuggestTasks + Feedback, two app modes, baselines on the same states.
 *
 * Writes eval/results.md and eval/learning-curves.svg. Options: --quick;
 * EVAL_ONLY=suggestions runs section 4 alone (eval/results-suggestions.md);
 * EVAL_ONLY=generalization runs section 1 alone; EVAL_SEED=777 draws other
 * users for section 1 (default 20261129); EVAL_FAMILIES=chronotype,weekday
 * runs section 1 on those families only. A run that is not the default
 * writes eval/results-<what>.md and no SVG, so it never overwrites the
 * committed figures.
 */
import { writeFileSync } from "node:fs";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { EnergyLevel, ModelSource, ModelType } from "../gen/ml/v1/ml_pb.ts";
import { DEFAULT_TRAINER_SETTINGS } from "../src/config.ts";
import { seededRandom } from "../src/ml/evaluation.ts";
import { syntheticSamples, syntheticUsers } from "../src/ml/synthetic.ts";
import { sampleMessages } from "../test/support/fixtures.ts";
import { startTestService, TEST_SETTINGS } from "../test/support/service.ts";
import { shiftRecovery, type RecoveryResult } from "./drift.ts";
import { FAMILIES } from "./families.ts";
import { evaluateSetting, MODES, VARIANTS, type GenPoint, type Mode } from "./generalization.ts";
import { EXPLORED_RANK } from "../src/service/suggester.ts";
import { CHOOSER_FAMILIES, hitRate, offPolicy, SECOND_RANKERS, suggestionEval } from "./suggestions.ts";
import { learningCurveSvg } from "./svg.ts";

const quick = process.argv.includes("--quick");
/** EVAL_ONLY=suggestions runs only the task-suggestion section (written to results-suggestions.md). */
const onlySuggestions = process.env["EVAL_ONLY"] === "suggestions";
/** EVAL_ONLY=generalization runs only section 1 (for comparing calibration changes across seeds). */
const onlyGeneralization = process.env["EVAL_ONLY"] === "generalization";
const DEFAULT_SEED = 20261129;
const seed = Number(process.env["EVAL_SEED"] ?? DEFAULT_SEED);
if (!Number.isInteger(seed)) throw new RangeError(`EVAL_SEED must be an integer, got ${process.env["EVAL_SEED"]}`);
const familyFilter = process.env["EVAL_FAMILIES"]
  ?.split(",")
  .map((x) => x.trim())
  .filter((x) => x !== "");
const familyIndices = FAMILIES.flatMap((f, i) => (familyFilter === undefined || familyFilter.includes(f.name) ? [i] : []));
if (familyIndices.length === 0) throw new RangeError(`EVAL_FAMILIES matches no family (${FAMILIES.map((f) => f.name).join(", ")})`);
const selectedFamilies = familyIndices.map((i) => FAMILIES[i]!);
const suffix = [
  onlySuggestions ? "suggestions" : "",
  onlyGeneralization ? "generalization" : "",
  seed === DEFAULT_SEED ? "" : `seed${seed}`,
  familyFilter === undefined ? "" : selectedFamilies.map((f) => f.name).join("+"),
  quick ? "quick" : "",
]
  .filter((x) => x !== "")
  .map((x) => `-${x}`)
  .join("");
const cfg = quick
  ? { users: 6, background: 12, backgroundSamples: 150, sizes: [25, 50, 200], test: 100, variants: ["base"] as const, shiftUsers: 2, suggestUsers: 2 }
  : { users: 12, background: 24, backgroundSamples: 200, sizes: [10, 25, 50, 100, 200], test: 300, variants: VARIANTS, shiftUsers: 8, suggestUsers: 6 };
const out: string[] = [];
const say = (line = "") => {
  out.push(line);
  console.log(line);
};
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const pts = (x: number) => `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}`;
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const started = performance.now();

if (!onlySuggestions) {
  // 1. Generalisation over families.
  const genConfig = {
    users: cfg.users,
    backgroundUsers: cfg.background,
    backgroundSamples: cfg.backgroundSamples,
    sizes: cfg.sizes,
    testSize: cfg.test,
    nEstimators: DEFAULT_TRAINER_SETTINGS.nEstimators,
    seed,
    minSamples: DEFAULT_TRAINER_SETTINGS.minSamples.energy_prediction,
    policy: DEFAULT_TRAINER_SETTINGS,
  };
  const points: GenPoint[] = [];
  for (const fi of familyIndices) {
    for (const variant of cfg.variants) {
      for (const mode of MODES) {
        const t = performance.now();
        points.push(...evaluateSetting(fi, variant, mode, genConfig));
        console.error(`  ${FAMILIES[fi]!.name}/${variant}/${mode}: ${((performance.now() - t) / 1000).toFixed(1)} s`);
      }
    }
  }
  const get = (family: string, variant: string, mode: Mode, n: number, method: GenPoint["method"]) =>
    points.find((p) => p.family === family && p.variant === variant && p.mode === mode && p.n === n && p.method === method)!;
  say(
    `# Evaluation (${quick ? "quick" : "full"} run${seed === DEFAULT_SEED ? "" : `, seed ${seed}`}${familyFilter === undefined ? "" : `, families ${selectedFamilies.map((f) => f.name).join(", ")}`})`,
  );
  say();
  say("## Generalisation: seven families of users, two deployments");
  say();
  say(
    `Each cell: ${cfg.users} users of the family, each trained on their first n samples and scored on their next ${cfg.test} ` +
      `(which no model saw). **fresh**: no population model at first, users arrive one by one and the population model trains itself ` +
      `by the service's policy; **established**: a population model was trained first on ${cfg.background} other users of the same family ` +
      `x ${cfg.backgroundSamples} samples. spec = the spec's recipe (a per-user forest, 100 trees, on the five raw features); ` +
      `prod = the production model; majority = the user's most frequent training label; Bayes from the generator's own probabilities ` +
      `(Bayes ECE: the ECE of those true probabilities on the same rows, i.e. the sampling noise floor of an ECE over ${cfg.users * cfg.test} rows; ` +
      `${cfg.test} test rows a user because at 100 that floor reached 0.045, too close to the 0.05 bound to tell a model's miscalibration from the draw). ` +
      `prod conf − acc: the production model's mean top-class probability minus its accuracy (below zero: under-confident). ` +
      `Variants: base; noise30 (30% of labels random); nosleep (half the users never report sleep).`,
  );
  const summary: { family: string; mode: Mode; diff50: number; worst: number; worstAt: string; ece200: number; floor200: number }[] = [];
  for (const family of selectedFamilies.map((f) => f.name)) {
    say();
    say(`### ${family}: ${FAMILIES.find((f) => f.name === family)!.description}`);
    say();
    say("| variant | mode | n | majority | spec | prod | prod − spec | Bayes | prod ECE | prod conf − acc | Bayes ECE | blend weights (mean) |");
    say("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for (const variant of cfg.variants) {
      for (const mode of MODES) {
        for (const n of cfg.sizes) {
          const prod = get(family, variant, mode, n, "production");
          const spec = get(family, variant, mode, n, "spec recipe");
          const w = Object.entries(prod.weights ?? {})
            .map(([k, v]) => `${k} ${v.toFixed(2)}`)
            .join(", ");
          say(
            `| ${variant} | ${mode} | ${n} | ${pct(get(family, variant, mode, n, "majority label").accuracy)} | ${pct(spec.accuracy)} | ${pct(prod.accuracy)} | ` +
              `${pts(prod.accuracy - spec.accuracy)} | ${pct(get(family, variant, mode, n, "bayes").accuracy)} | ${prod.ece.toFixed(3)} | ${pts(prod.confidence - prod.accuracy)} | ` +
              `${get(family, variant, mode, n, "bayes").ece.toFixed(3)} | ${w} |`,
          );
        }
      }
    }
    for (const mode of MODES) {
      const diffs = cfg.variants.flatMap((variant) =>
        cfg.sizes
          .filter((n) => n >= 50)
          .map((n) => ({
            at: `${variant} n=${n}`,
            d: get(family, variant, mode, n, "production").accuracy - get(family, variant, mode, n, "spec recipe").accuracy,
          })),
      );
      const worst = diffs.reduce((a, b) => (b.d < a.d ? b : a));
      summary.push({
        family,
        mode,
        diff50: get(family, "base", mode, 50, "production").accuracy - get(family, "base", mode, 50, "spec recipe").accuracy,
        worst: worst.d,
        worstAt: worst.at,
        ece200: Math.max(...cfg.variants.map((v) => get(family, v, mode, cfg.sizes.at(-1)!, "production").ece)),
        floor200: Math.max(...cfg.variants.map((v) => get(family, v, mode, cfg.sizes.at(-1)!, "bayes").ece)),
      });
    }
  }
  say();
  say("### Summary");
  say();
  say(
    `| family | mode | prod − spec at 50 (base) | worst prod − spec at n >= 50 (any variant) | worst ECE at ${cfg.sizes.at(-1)} | worst Bayes ECE (noise floor) |`,
  );
  say("| --- | --- | ---: | ---: | ---: | ---: |");
  for (const r of summary)
    say(`| ${r.family} | ${r.mode} | ${pts(r.diff50)} | ${pts(r.worst)} (${r.worstAt}) | ${r.ece200.toFixed(3)} | ${r.floor200.toFixed(3)} |`);
  for (const mode of MODES) {
    const rows = summary.filter((r) => r.mode === mode);
    const avgAll = mean(
      selectedFamilies.flatMap((f) =>
        cfg.variants.map((v) => get(f.name, v, mode, 50, "production").accuracy - get(f.name, v, mode, 50, "spec recipe").accuracy),
      ),
    );
    say();
    say(
      `**${mode}**: at 50 samples the production model is ${pts(mean(rows.map((r) => r.diff50)))} points above the spec's recipe averaged over the families ` +
        `(${pts(avgAll)} over every family and variant); worst cell at n >= 50: ${pts(Math.min(...rows.map((r) => r.worst)))}; ` +
        `worst ECE at ${cfg.sizes.at(-1)}: ${Math.max(...rows.map((r) => r.ece200)).toFixed(3)}.`,
    );
  }
  const curve = (mode: Mode, method: GenPoint["method"]) =>
    cfg.sizes.map((n) => ({ n, accuracy: mean(selectedFamilies.flatMap((f) => cfg.variants.map((v) => get(f.name, v, mode, n, method).accuracy))) }));
  const bayes = mean(curve("fresh", "bayes").map((p) => p.accuracy));
  if (suffix === "")
    writeFileSync(
      new URL("./learning-curves.svg", import.meta.url),
      learningCurveSvg(
        [
          { name: "production, established", color: "#e53935", points: curve("established", "production") },
          { name: "production, fresh", color: "#e53935", points: curve("fresh", "production"), dashed: true },
          { name: "spec recipe", color: "#1e88e5", points: curve("fresh", "spec recipe") },
          { name: "majority label", color: "#9e9e9e", points: curve("fresh", "majority label") },
        ],
        bayes,
        "Energy prediction: mean over seven families and their variants",
      ),
    );
}

// 2-4 run through the service itself: an in-process app on a fresh embedded database.
if (onlyGeneralization) {
  say();
  say(`(eval took ${((performance.now() - started) / 1000).toFixed(0)} s)`);
  writeFileSync(new URL(`./results${suffix}.md`, import.meta.url), `${out.join("\n")}\n`);
  process.exit(0);
}
const NOW = Date.UTC(2026, 10, 26, 9);
let now = NOW;
/** RANKER_SETTINGS='{"userLambda":0.3}' overrides the learned ranker's settings (for choosing them on this eval). */
const ranker = { ...DEFAULT_TRAINER_SETTINGS.ranker, ...(JSON.parse(process.env["RANKER_SETTINGS"] ?? "{}") as object) };
const s = await startTestService({ settings: { nEstimators: TEST_SETTINGS.nEstimators * 4, ranker }, clock: () => now, random: seededRandom(14) });
try {
  if (!onlySuggestions) {
    // Family (a), as before this harness existed, so the figure compares with earlier runs.
    const background = syntheticUsers(quick ? 12 : 40, 101);
    const users = syntheticUsers(quick ? 6 : 20, 202);
    for (const [i, u] of background.entries()) {
      await s.client.ingestTrainingData({ samples: sampleMessages(`bg-${i}`, syntheticSamples(u, quick ? 150 : 300, 7 + i)) });
    }
    const pop = await s.client.train({ population: true, modelType: ModelType.ENERGY_PREDICTION });
    const level = { low: EnergyLevel.LOW, medium: EnergyLevel.MEDIUM, high: EnergyLevel.HIGH } as const;
    let hits = 0;
    let total = 0;
    let fromPopulation = 0;
    for (const [i, u] of users.entries()) {
      for (const x of syntheticSamples(u, 100, 9000 + i, Date.UTC(2027, 0, 4))) {
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
    const recoveries: RecoveryResult[] = [];
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
      say(
        `| ${r.userId} | ${pct(r.preShiftAccuracy)} | ${c(0)} / ${c(20)} / ${c(40)} / ${c(60)} | ${r.recoveredAfter ?? "not yet"} | ${r.triggers.join(", ") || "none"} |`,
      );
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
  }

  // 4. Task suggestions over seven kinds of chooser, two app modes, baselines on the same states.
  const suggestionResults = await suggestionEval(s, { usersPerFamily: cfg.suggestUsers, steps: 80, seed: 20261129, setNow: (t) => (now = t) });
  say();
  say(`## Task suggestions: seven kinds of chooser, through SuggestTasks + Feedback (${cfg.suggestUsers} users a family, 80 steps)`);
  say();
  say(
    "Each step: SuggestTasks (all open tasks ranked, or the top 5 shown), the user picks one of their 12-20 open tasks by their own rule " +
      "(shown or not), Feedback(suggestion_id, chosen_task_id), the task is done and 0-2 new ones arrive. Both app modes and every baseline " +
      "see the same states and picks. Hit rate = the pick was in the top k (in five-shown mode, of the five shown).",
  );
  for (const r of suggestionResults) {
    say();
    say(`### ${r.family}: ${CHOOSER_FAMILIES.find((f) => f.name === r.family)!.description}`);
    say();
    say("| method | top-1, steps 1-30 | top-3, 1-30 | top-5, 1-30 | top-1, steps 31-80 | top-3, 31-80 | top-5, 31-80 |");
    say("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (const [name, c] of Object.entries(r.methods)) {
      say(`| ${name} | ${[0, 1].flatMap((w) => [0, 1, 2].map((k) => pct(hitRate(c, w as 0 | 1, k as 0 | 1 | 2)))).join(" | ")} |`);
    }
    say();
    say(
      `Five-shown mode: ${r.unshownPicks} picks not among the five shown; Feedback refused ${r.refusedFeedback} answers. ` +
        `Top suggestion's match_score (all ranked): ${mean(r.topScore.early).toFixed(3)} in steps 1-5, ${mean(r.topScore.late).toFixed(3)} in steps 76-80.`,
    );
  }
  const top3 = (r: (typeof suggestionResults)[number], m: string) => hitRate(r.methods[m]!, 1, 1);
  const singles = ["random", "sort by due", "sort by priority", "rules only"];
  say();
  say("### Summary: top-3 hit rate, steps 31-80");
  say();
  const columns = [...singles, "learned, all ranked", "learned, five shown", "own rule (ceiling)"];
  say(`| family | ${columns.join(" | ")} | learned (all) − best single baseline |`);
  say(`| --- | ${columns.map(() => "---:").join(" | ")} | ---: |`);
  for (const r of suggestionResults) {
    const best = Math.max(...singles.map((m) => top3(r, m)));
    say(`| ${r.family} | ${columns.map((m) => pct(top3(r, m))).join(" | ")} | ${pts(top3(r, "learned, all ranked") - best)} |`);
  }
  const avg = (m: string) => mean(suggestionResults.map((r) => top3(r, m)));
  const bestOverall = Math.max(...singles.map(avg));
  say(`| **mean** | ${columns.map((m) => pct(avg(m))).join(" | ")} | ${pts(avg("learned, all ranked") - bestOverall)} (vs the best single baseline overall) |`);
  say();
  say(`### Exploration and off-policy estimates (five-shown mode, every step, exploration rate ${ranker.explorationRate} at rank ${EXPLORED_RANK})`);
  say();
  say(
    "Each SuggestTasks logs the greedy order with its probabilities and the exploration rate; from those logs alone, IPS (item-level inverse " +
      "propensities), SNIPS (self-normalised) and doubly robust (the model's probabilities as the reward model) estimate the top-5 hit rate " +
      "another ranker would have had, beside its measured value on the same steps. Exploration's cost: the lists shown against the greedy " +
      "lists at the same steps (the simulated users pick from all their tasks, whatever was shown).",
  );
  say();
  say("| family | steps | top-3 shown / greedy | top-5 shown / greedy | " + SECOND_RANKERS.map((r) => `${r}: measured / IPS / SNIPS / DR`).join(" | ") + " |");
  say(`| --- | ---: | ---: | ---: | ${SECOND_RANKERS.map(() => "---").join(" | ")} |`);
  const allLogged = suggestionResults.flatMap((r) => r.logged);
  for (const [name, logged] of [...suggestionResults.map((r) => [r.family, r.logged] as const), ["**all**", allLogged] as const]) {
    const o = await offPolicy(s, logged);
    say(
      `| ${name} | ${o.steps} | ${pct(o.shown[0])} / ${pct(o.greedy[0])} | ${pct(o.shown[1])} / ${pct(o.greedy[1])} | ` +
        SECOND_RANKERS.map((r) => {
          const e = o.rankers[r]!;
          return `${pct(e.measured)} / ${pct(e.ips)} / ${pct(e.snips)} / ${pct(e.dr)}`;
        }).join(" | ") +
        " |",
    );
  }
} finally {
  await s.close();
}
say();
say(`(eval took ${((performance.now() - started) / 1000).toFixed(0)} s)`);
writeFileSync(new URL(`./results${suffix}.md`, import.meta.url), `${out.join("\n")}\n`);
