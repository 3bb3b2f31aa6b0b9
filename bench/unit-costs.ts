// Unit costs for the capacity plan: Train CPU at 50/200/1000 samples, population fit at 10k/50k rows, blob sizes.
import { FAMILIES } from "../eval/families.ts";
import { ENERGY_LABELS } from "../src/domain.ts";
import { defaultForestKind } from "../src/ml/algorithms.ts";
import { DEFAULT_USER_MODEL_SETTINGS, trainPopulation, trainUserEnergy } from "../src/ml/train-energy.ts";
const fam = FAMILIES[0]!;
const lab = (s: { energy: string }) => ENERGY_LABELS.indexOf(s.energy as never);
const cpu = <T>(f: () => T) => {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const r = f();
  const c = process.cpuUsage(c0);
  return { r, cpuMs: (c.user + c.system) / 1000, wallMs: performance.now() - t0 };
};
const popUsers = (n: number, per: number) =>
  fam.users(n, 5).map((u, i) => {
    const s = fam.samples(u, per, 100 + i);
    return { userId: `p${i}`, samples: s.map((x) => x.features), labels: s.map(lab) };
  });
const out: Record<string, unknown> = {};
for (const [users, per] of [
  [20, 500],
  [100, 500],
] as const) {
  const { r, cpuMs } = cpu(() =>
    trainPopulation({
      kind: "energy-population",
      users: popUsers(users, per),
      forestKind: defaultForestKind,
      options: { nEstimators: 100, seed: 1, calibrate: false },
    }),
  );
  out[`population ${users * per} rows`] = { cpuS: (cpuMs / 1000).toFixed(1), blobMB: (r.modelData.byteLength / 1e6).toFixed(2) };
}
const pop = trainPopulation({
  kind: "energy-population",
  users: popUsers(24, 200),
  forestKind: defaultForestKind,
  options: { nEstimators: 100, seed: 1, calibrate: false },
});
for (const n of [50, 200, 1000]) {
  const runs = [];
  let bytes = 0;
  for (let k = 0; k < 3; k++) {
    const s = fam.samples(fam.users(1, 50 + k)[0]!, n, 7 + k);
    const { r, cpuMs } = cpu(() =>
      trainUserEnergy({
        kind: "energy-user",
        userId: `u${k}`,
        samples: s.map((x) => x.features),
        labels: s.map(lab),
        population: { modelId: "p", format: pop.format, blob: pop.modelData },
        forestKind: defaultForestKind,
        options: { nEstimators: 100, seed: k, calibrate: false },
        settings: DEFAULT_USER_MODEL_SETTINGS,
      }),
    );
    runs.push(cpuMs);
    bytes = r.modelData.byteLength;
  }
  out[`user Train ${n} samples`] = { cpuMs: runs.map((x) => x.toFixed(0)).join("/"), blobKB: (bytes / 1024).toFixed(0) };
}
console.log(JSON.stringify(out, null, 1));
