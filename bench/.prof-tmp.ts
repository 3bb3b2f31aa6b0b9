import { z } from "zod";
import { fitChoiceModel, priorWeights } from "../src/ml/choice-model.ts";
import { observedChoice } from "../src/service/task-ranker.ts";
import { seededRandom } from "../src/ml/evaluation.ts";
const r = seededRandom(1);
const lv = ["low", "medium", "high"] as const;
const rows = Array.from({ length: 60 }, (_, i) => ({
  user_id: "u",
  context: { energy: lv[i % 3]!, hour: 8 + (i % 12), weekend: i % 7 > 4, now: Date.UTC(2026, 10, 30) + i * 3_600_000 },
  open_tasks: Array.from({ length: 16 }, (_, j) => [["a", "b", "c", "d", "e"][j % 5]!, lv[j % 3]!, [10, 30, 60][j % 3]!, 1 + (j % 4), r() < 0.5 ? null : Date.UTC(2026, 11, 3)] as [string, "low"|"medium"|"high", number, number, number | null]),
  chosen_index: Math.floor(r() * 16),
}));
const StoredTask = z.tuple([z.string(), z.enum(lv), z.number().int().positive(), z.number().int().min(1).max(4), z.number().nullable()]);
const S = z.object({ user_id: z.string(), context: z.object({ energy: z.enum(lv), hour: z.number().int(), weekend: z.boolean(), now: z.number() }), open_tasks: z.array(StoredTask).min(1), chosen_index: z.number().int() });
const json = JSON.stringify(rows);
for (let rep = 0; rep < 3; rep++) {
  let t = (process.cpuUsage().user / 1000);
  for (let k = 0; k < 50; k++) JSON.parse(json);
  const tJson = ((process.cpuUsage().user / 1000) - t) / 50;
  t = (process.cpuUsage().user / 1000);
  for (let k = 0; k < 50; k++) S.array().parse(rows);
  const tZod = ((process.cpuUsage().user / 1000) - t) / 50;
  t = (process.cpuUsage().user / 1000);
  let obs;
  for (let k = 0; k < 50; k++) obs = rows.map(observedChoice);
  const tFeat = ((process.cpuUsage().user / 1000) - t) / 50;
  t = (process.cpuUsage().user / 1000);
  for (let k = 0; k < 50; k++) fitChoiceModel(obs!, { prior: priorWeights(), lambda: 0.3, iterations: 2 });
  const tFit = ((process.cpuUsage().user / 1000) - t) / 50;
  console.log({ tJson, tZod, tFeat, tFit });
}
