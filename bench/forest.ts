/**
 * Random-forest bench: our forest (src/ml/own-forest.ts) against
 * ml-random-forest (up to --mlrf-max-rows rows, it is O(n^2) per node) and
 * scikit-learn (when /usr/bin/python3 can import sklearn), on the same rows.
 *
 *   node bench/forest.ts [--rows 1000,10000,100000] [--trees 100] [--runs 3]
 *                        [--csv path] [--test-rows 10000] [--seed 1]
 *                        [--mlrf-max-rows 1000] [--no-memory] [--no-parallel]
 *                        [--python /usr/bin/python3] [--sklearn-missing auto|impute]
 *                        [--min-samples-leaf 1]
 *
 * Data: seeded synthetic rows shaped like the service's features (see
 * bench/forest-data.ts), or a CSV (header; feature columns, label last;
 * empty/"nan" = missing) that is shuffled and split 80/20.
 * Fit times are the median of --runs runs, libraries alternating within each
 * run. Prints one markdown table.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { RandomForestClassifier } from "ml-random-forest";
import { Piscina } from "piscina";
import { loadOwnForest, mergeForests, ownForest, type ForestPart, type OwnForest, type OwnForestOptions } from "../src/ml/own-forest.ts";
import type { FitPartTask } from "./forest-worker.ts";
import { accuracy, brierScore, expectedCalibrationError, generateEnergyData, rng, toFloat64, type Dataset } from "./forest-data.ts";

const SELF = fileURLToPath(import.meta.url);
const SKLEARN_SCRIPT = fileURLToPath(new URL("./forest_sklearn.py", import.meta.url));
const WORKER = new URL("./forest-worker.ts", import.meta.url).href;
/** ml-cart cannot split on NaN: missing becomes -1, below every real value (as the service's wrapper does). */
const MISSING = -1;

const { values: args } = parseArgs({
  options: {
    rows: { type: "string", default: "1000,10000,100000" },
    trees: { type: "string", default: "100" },
    runs: { type: "string", default: "3" },
    csv: { type: "string" },
    "test-rows": { type: "string", default: "10000" },
    seed: { type: "string", default: "1" },
    "mlrf-max-rows": { type: "string", default: "1000" },
    "no-memory": { type: "boolean", default: false },
    "no-parallel": { type: "boolean", default: false },
    python: { type: "string", default: "/usr/bin/python3" },
    "sklearn-missing": { type: "string", default: "auto" },
    "min-samples-leaf": { type: "string", default: "1" },
    "child-mem": { type: "string" },
    "child-mlrf": { type: "string" },
  },
});

const TREES = Number(args.trees);
const RUNS = Math.max(1, Number(args.runs));
const SEED = Number(args.seed);
const TEST_ROWS = Number(args["test-rows"]);
const MLRF_MAX = Number(args["mlrf-max-rows"]);
/** Passed to ours and to scikit-learn (1 = fully grown trees, both libraries' default; the service fits 2 for users, 5 for the population). */
const MIN_SAMPLES_LEAF = Number(args["min-samples-leaf"]);
const OPTIONS: OwnForestOptions = { nEstimators: TREES, seed: SEED, minSamplesLeaf: MIN_SAMPLES_LEAF };
const PYTHON = args.python;

interface Split {
  readonly train: Dataset;
  readonly test: Dataset;
  readonly nClasses: number;
  readonly label: string;
}

function readCsv(path: string): { data: Dataset; nClasses: number } {
  const lines = readFileSync(path, "utf8")
    .split(/\r?\n/)
    .filter((l) => l.trim() !== "");
  const labels = new Map<string, number>();
  const X: number[][] = [];
  const y: number[] = [];
  for (const line of lines.slice(1)) {
    const cells = line.split(",");
    const raw = cells.pop()!.trim();
    const asNumber = Number(raw);
    let label = Number.isInteger(asNumber) && asNumber >= 0 ? asNumber : labels.get(raw);
    if (label === undefined) {
      label = labels.size;
      labels.set(raw, label);
    }
    y.push(label);
    X.push(cells.map((c) => (c.trim() === "" || c.trim().toLowerCase() === "nan" ? NaN : Number(c))));
  }
  return { data: { X, y }, nClasses: Math.max(...y) + 1 };
}

function makeSplit(nRows: number): Split {
  if (args.csv !== undefined) {
    const { data, nClasses } = readCsv(args.csv);
    const order = data.X.map((_, i) => i);
    const rand = rng(SEED);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const nTrain = Math.min(nRows, Math.round(order.length * 0.8));
    const pick = (idx: number[]): Dataset => ({ X: idx.map((i) => data.X[i]!), y: idx.map((i) => data.y[i]!) });
    return { train: pick(order.slice(0, nTrain)), test: pick(order.slice(Math.round(order.length * 0.8))), nClasses, label: args.csv };
  }
  const all = generateEnergyData(nRows + TEST_ROWS, SEED);
  return {
    train: { X: all.X.slice(0, nRows), y: all.y.slice(0, nRows) },
    test: { X: all.X.slice(nRows), y: all.y.slice(nRows) },
    nClasses: 3,
    label: "synthetic",
  };
}

/**
 * Peak RSS of this process in MB. Linux's VmHWM is reset by exec; getrusage's
 * maxRSS (process.resourceUsage) is not: a spawned child starts with its
 * parent's RSS as its maximum, so it is only the fallback.
 */
function peakRssMB(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
    if (m !== null) return Number(m[1]) / 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS / 1024;
}

// ---- child process: peak RSS of one fit in a fresh process
if (args["child-mem"] !== undefined) {
  const { train, nClasses } = makeSplit(Number(args["child-mem"]));
  const before = peakRssMB();
  const forest = ownForest.fit(train.X, train.y, nClasses, OPTIONS);
  const peak = peakRssMB();
  console.log(JSON.stringify({ beforeFitMB: before, peakMB: peak, nodes: forest.nNodes }));
  process.exit(0);
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function writeCsv(path: string, data: Dataset): void {
  const nF = data.X[0]!.length;
  const head = [...Array.from({ length: nF }, (_, i) => `f${i}`), "label"].join(",");
  const body = data.X.map((row, i) => `${row.map((v) => (Number.isNaN(v) ? "nan" : String(v))).join(",")},${data.y[i]}`);
  writeFileSync(path, `${head}\n${body.join("\n")}\n`);
}

interface SklearnRun {
  version: string;
  native_nan: boolean;
  fit_s: number;
  predict_rows_per_s: number | null;
  pickle_bytes: number;
  max_rss_mb: number;
  proba: Float64Array;
}

function runSklearn(dir: string): SklearnRun {
  const out = join(dir, "proba.f64");
  const res = spawnSync(
    PYTHON,
    [SKLEARN_SCRIPT, join(dir, "train.csv"), join(dir, "test.csv"), String(TREES), String(SEED), out, args["sklearn-missing"], String(MIN_SAMPLES_LEAF)],
    {
      encoding: "utf8",
      maxBuffer: 1 << 24,
    },
  );
  if (res.status !== 0) throw new Error(`scikit-learn run failed: ${res.stderr}`);
  const info = JSON.parse(res.stdout.trim().split("\n").pop()!) as Omit<SklearnRun, "proba">;
  const bytes = readFileSync(out);
  const proba = new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return { ...info, proba };
}

const impute = (X: readonly (readonly number[])[]): number[][] => X.map((r) => r.map((v) => (Number.isNaN(v) ? MISSING : v)));

interface MlrfLike {
  train(X: number[][], y: number[]): void;
  toJSON(): unknown;
  predictionValues(X: number[][]): { rows: number; getRow(i: number): number[] };
}

/** Vote fractions per class (ml-cart trees predict a class each). */
function mlrfProba(model: MlrfLike, X: number[][], nClasses: number): Float64Array {
  const votes = model.predictionValues(X);
  const out = new Float64Array(X.length * nClasses);
  for (let i = 0; i < votes.rows; i++) {
    const row = votes.getRow(i);
    for (const v of row) out[i * nClasses + v]! += 1 / row.length;
  }
  return out;
}

function singleRowMicros(predict: (row: number[]) => unknown, rows: readonly number[][], n: number): number {
  for (let i = 0; i < Math.min(n, 5000); i++) predict(rows[i % rows.length]!);
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const row = rows[i % rows.length]!;
    const t0 = performance.now();
    predict(row);
    times.push(performance.now() - t0);
  }
  return median(times) * 1000;
}

function batchRowsPerSecond(forest: OwnForest, X: Float64Array, nRows: number, nF: number): number {
  forest.predictProbaBatch(X, Math.min(nRows, 2000), nF);
  const rates: number[] = [];
  for (let k = 0; k < 3; k++) {
    const t0 = performance.now();
    forest.predictProbaBatch(X, nRows, nF);
    rates.push(nRows / ((performance.now() - t0) / 1000));
  }
  return median(rates);
}

function timeMs(fn: () => unknown, reps: number): number {
  fn();
  const times: number[] = [];
  for (let k = 0; k < reps; k++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return median(times);
}

// ---- child process: one ml-random-forest fit and its metrics, in a fresh
// process so its garbage never lands in our timings
interface MlrfResult {
  fitS: number;
  jsonBytes: number;
  loadMs: number;
  rowMicros: number;
  batchRps: number;
}
if (args["child-mlrf"] !== undefined) {
  const [rowsArg, probaOut] = args["child-mlrf"].split(":") as [string, string];
  const { train, test, nClasses } = makeSplit(Number(rowsArg));
  const model = new RandomForestClassifier({
    nEstimators: TREES,
    seed: SEED,
    maxFeatures: 1.0,
    replacement: false,
    useSampleBagging: true,
    noOOB: true,
  }) as unknown as MlrfLike;
  const rows = impute(train.X);
  const t0 = performance.now();
  model.train(rows, [...train.y]);
  const fitS = (performance.now() - t0) / 1000;
  const mlTest = impute(test.X);
  writeFileSync(probaOut, mlrfProba(model, mlTest, nClasses));
  const json = JSON.stringify(model.toJSON());
  const batchRows = mlTest.slice(0, 2000);
  const tb = performance.now();
  model.predictionValues(batchRows);
  const result: MlrfResult = {
    fitS,
    jsonBytes: Buffer.byteLength(json),
    batchRps: batchRows.length / ((performance.now() - tb) / 1000),
    rowMicros: singleRowMicros((r) => model.predictionValues([r]), mlTest, 300),
    loadMs: timeMs(() => RandomForestClassifier.load(JSON.parse(json) as never), 3),
  };
  console.log(JSON.stringify(result));
  process.exit(0);
}

function runMlrf(requested: number, dir: string): MlrfResult & { proba: Float64Array } {
  const out = join(dir, "mlrf-proba.f64");
  const childArgs = [SELF, "--child-mlrf", `${requested}:${out}`, "--trees", String(TREES), "--seed", String(SEED), "--test-rows", String(TEST_ROWS)];
  if (args.csv !== undefined) childArgs.push("--csv", args.csv);
  const res = spawnSync(process.execPath, childArgs, { encoding: "utf8", maxBuffer: 1 << 24 });
  if (res.status !== 0) throw new Error(`ml-random-forest run failed: ${res.stderr}`);
  const bytes = readFileSync(out);
  const proba = new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return { ...(JSON.parse(res.stdout.trim()) as MlrfResult), proba };
}

interface Row {
  rows: number;
  library: string;
  fitS: number | null;
  ratio: string;
  acc: number | null;
  ece: number | null;
  brier: number | null;
  rowMicros: number | null;
  batchRps: number | null;
  bytes: string;
  loadMs: number | null;
  peakMB: string;
  parallelS: string;
}

/** A library that did not run at this size: its row says why, every figure empty. */
function skippedRow(rows: number, library: string, why: string): Row {
  return {
    rows,
    library,
    fitS: null,
    ratio: why,
    acc: null,
    ece: null,
    brier: null,
    rowMicros: null,
    batchRps: null,
    bytes: "",
    loadMs: null,
    peakMB: "",
    parallelS: "",
  };
}

const sklearnOk = spawnSync(PYTHON, ["-c", "import sklearn"]).status === 0;
if (!sklearnOk) process.stderr.write(`scikit-learn: skipped (${PYTHON} -c 'import sklearn' failed)\n`);
const pool = args["no-parallel"] ? null : new Piscina<FitPartTask, ForestPart>({ filename: WORKER, minThreads: 2, maxThreads: 2, idleTimeout: 60_000 });

async function parallelFit(train: Dataset, nClasses: number): Promise<OwnForest> {
  const X = { data: toFloat64(train.X), nRows: train.X.length, nFeatures: train.X[0]!.length };
  const y = Int32Array.from(train.y);
  const half = Math.ceil(TREES / 2);
  const ranges: [number, number][] =
    TREES > 1
      ? [
          [0, half],
          [half, TREES],
        ]
      : [[0, TREES]];
  const parts = await Promise.all(ranges.map((range) => pool!.run({ X, y, nClasses, options: OPTIONS, range })));
  return mergeForests(parts, y);
}

const table: Row[] = [];
const notes: string[] = [];
const rowCounts = args.csv !== undefined ? [Number.MAX_SAFE_INTEGER] : args.rows.split(",").map(Number);
if (pool !== null) {
  // warm both workers (module load, JIT) outside the timings
  const warm = generateEnergyData(500, 99);
  await Promise.all([parallelFit(warm, 3), parallelFit(warm, 3)]);
}

for (const requested of rowCounts) {
  const { train, test, nClasses, label } = makeSplit(requested);
  const n = train.X.length;
  const nF = train.X[0]!.length;
  const testX = toFloat64(test.X);
  /** The quality columns of one library's held-out probabilities. */
  const quality = (p: ArrayLike<number>): Pick<Row, "acc" | "ece" | "brier"> => ({
    acc: accuracy(p, test.y, nClasses),
    ece: expectedCalibrationError(p, test.y, nClasses),
    brier: brierScore(p, test.y, nClasses),
  });
  const doMlrf = n <= MLRF_MAX;
  const dir = mkdtempSync(join(tmpdir(), "forest-bench-"));
  if (sklearnOk) {
    writeCsv(join(dir, "train.csv"), train);
    writeCsv(join(dir, "test.csv"), test);
  }
  process.stderr.write(`[${label}] ${n} train rows, ${test.X.length} test rows, ${nF} features, ${nClasses} classes\n`);

  const oursFit: number[] = [];
  const skFit: number[] = [];
  const mlFit: number[] = [];
  let ours: OwnForest | null = null;
  const calFit: number[] = [];
  let calibrated: OwnForest | null = null;
  let sk: SklearnRun | null = null;
  let ml: (MlrfResult & { proba: Float64Array }) | null = null;
  const libs = ["ours", "ours-cal", "sklearn", "ml-rf"] as const;
  for (let run = 0; run < RUNS; run++) {
    for (let k = 0; k < libs.length; k++) {
      const lib = libs[(k + run) % libs.length]!;
      if (lib === "ours") {
        const t0 = performance.now();
        ours = ownForest.fit(train.X, train.y, nClasses, OPTIONS);
        oursFit.push((performance.now() - t0) / 1000);
      } else if (lib === "ours-cal") {
        const t0 = performance.now();
        calibrated = ownForest.fit(train.X, train.y, nClasses, { ...OPTIONS, calibrate: true });
        calFit.push((performance.now() - t0) / 1000);
      } else if (lib === "sklearn" && sklearnOk) {
        sk = runSklearn(dir);
        skFit.push(sk.fit_s);
      } else if (lib === "ml-rf" && doMlrf) {
        ml = runMlrf(requested, dir);
        mlFit.push(ml.fitS);
      }
      process.stderr.write(".");
    }
  }
  process.stderr.write("\n");
  const secs = (xs: number[]): string => xs.map((x) => x.toFixed(3)).join(" ");
  process.stderr.write(`  fit s per run: ours ${secs(oursFit)} | calibrated ${secs(calFit)} | sklearn ${secs(skFit)} | ml-rf ${secs(mlFit)}\n`);

  // ---- ours: quality, prediction speed, size, load, memory, parallel fit
  const forest = ours!;
  const proba = forest.predictProbaBatch(testX, test.X.length, nF);
  const blob = forest.serialize();
  // batch speed on 100,000 fresh rows (a CSV's test rows are repeated instead)
  const bigRows = 100_000;
  let bigX: Float64Array;
  if (args.csv === undefined) bigX = toFloat64(generateEnergyData(bigRows, SEED + 1).X);
  else {
    bigX = new Float64Array(bigRows * nF);
    for (let r = 0; r < bigRows; r++) bigX.set(testX.subarray((r % test.X.length) * nF, ((r % test.X.length) + 1) * nF), r * nF);
  }
  const oursRow: Row = {
    rows: n,
    library: "ours",
    fitS: median(oursFit),
    ratio: skFit.length > 0 ? `${(median(oursFit) / median(skFit)).toFixed(3)}x sklearn` : "sklearn skipped",
    ...quality(proba),
    rowMicros: singleRowMicros((r) => forest.predictProba(r), test.X, 20_000),
    batchRps: batchRowsPerSecond(forest, bigX, bigRows, nF),
    bytes: String(blob.length),
    loadMs: timeMs(() => loadOwnForest(blob), 7),
    peakMB: "—",
    parallelS: "—",
  };
  if (!args["no-memory"]) {
    const childArgs = [
      SELF,
      "--child-mem",
      String(requested),
      "--trees",
      String(TREES),
      "--seed",
      String(SEED),
      "--test-rows",
      String(TEST_ROWS),
      "--min-samples-leaf",
      String(MIN_SAMPLES_LEAF),
    ];
    if (args.csv !== undefined) childArgs.push("--csv", args.csv);
    const res = spawnSync(process.execPath, childArgs, { encoding: "utf8" });
    if (res.status === 0) {
      const m = JSON.parse(res.stdout.trim()) as { beforeFitMB: number; peakMB: number };
      oursRow.peakMB = `${m.peakMB.toFixed(0)} (${m.beforeFitMB.toFixed(0)} before fit)`;
    } else {
      oursRow.peakMB = "failed";
      notes.push(`memory child failed at ${n} rows: ${res.stderr.slice(0, 300)}`);
    }
  }
  if (pool !== null) {
    const times: number[] = [];
    let par: OwnForest | null = null;
    for (let run = 0; run < RUNS; run++) {
      const t0 = performance.now();
      par = await parallelFit(train, nClasses);
      times.push((performance.now() - t0) / 1000);
    }
    const same = Buffer.from(par!.serialize()).equals(Buffer.from(blob));
    oursRow.parallelS = `${median(times).toFixed(3)} (${(median(oursFit) / median(times)).toFixed(2)}x${same ? ", same model" : ", DIFFERENT model"})`;
  }
  table.push(oursRow);

  // ---- ours with the out-of-bag top-label calibration (calibrate: true)
  const cal = calibrated!;
  const calProba = cal.predictProbaBatch(testX, test.X.length, nF);
  table.push({
    rows: n,
    library: "ours, calibrate: true",
    fitS: median(calFit),
    ratio: skFit.length > 0 ? `${(median(calFit) / median(skFit)).toFixed(3)}x sklearn` : "sklearn skipped",
    ...quality(calProba),
    rowMicros: singleRowMicros((r) => cal.predictProba(r), test.X, 20_000),
    batchRps: batchRowsPerSecond(cal, bigX, bigRows, nF),
    bytes: String(cal.serialize().length),
    loadMs: null,
    peakMB: "—",
    parallelS: "—",
  });

  // ---- scikit-learn
  if (sk !== null) {
    table.push({
      rows: n,
      library: `sklearn ${sk.version}`,
      fitS: median(skFit),
      ratio: "",
      ...quality(sk.proba),
      rowMicros: null,
      batchRps: sk.predict_rows_per_s,
      bytes: `${sk.pickle_bytes} (pickle)`,
      loadMs: null,
      peakMB: `${sk.max_rss_mb.toFixed(0)} (python, data + fit)`,
      parallelS: "—",
    });
    if (!notes.some((x) => x.startsWith("scikit-learn"))) {
      notes.push(
        sk.native_nan
          ? `scikit-learn ${sk.version} was given NaN for missing values (native support: learned direction per split, as ours).`
          : `scikit-learn ${sk.version} was given -1 for missing values (${args["sklearn-missing"] === "impute" ? "--sklearn-missing impute" : "no NaN support in its random forest before 1.4"}).`,
      );
    }
  } else {
    table.push(skippedRow(n, "sklearn", `skipped (no sklearn for ${PYTHON})`));
  }

  // ---- ml-random-forest
  if (ml !== null) {
    oursRow.bytes = `${blob.length} (${((100 * blob.length) / ml.jsonBytes).toFixed(1)}% of ml-rf JSON)`;
    table.push({
      rows: n,
      library: "ml-random-forest 2.1",
      fitS: median(mlFit),
      ratio: `${(median(mlFit) / median(oursFit)).toFixed(0)}x ours`,
      ...quality(ml.proba),
      rowMicros: ml.rowMicros,
      batchRps: ml.batchRps,
      bytes: `${ml.jsonBytes} (JSON)`,
      loadMs: ml.loadMs,
      peakMB: "—",
      parallelS: "—",
    });
  } else {
    table.push(skippedRow(n, "ml-random-forest 2.1", `skipped (> ${MLRF_MAX} rows)`));
  }
  rmSync(dir, { recursive: true, force: true });
}
await pool?.destroy();
if (MIN_SAMPLES_LEAF !== 1 && table.some((r) => r.library.startsWith("ml-random-forest") && r.fitS !== null)) {
  notes.push("ml-random-forest keeps the bench's fixed settings (its default minNumSamples 3); --min-samples-leaf applies to ours and scikit-learn.");
}

const fmt = (v: number | null, d: number): string => (v === null ? "" : v.toFixed(d));
const fmtInt = (v: number | null): string => (v === null ? "" : Math.round(v).toLocaleString("en-US"));
const header = [
  "train rows",
  "library",
  `fit s (median of ${RUNS})`,
  "ratio",
  "accuracy",
  "ECE",
  "Brier",
  "1-row predict µs",
  "batch rows/s",
  "model bytes",
  "load ms",
  "peak RSS MB",
  "2-worker fit s",
];
const lines = [
  `| ${header.join(" | ")} |`,
  `|${header.map(() => "---").join("|")}|`,
  ...table.map(
    (r) =>
      `| ${r.rows.toLocaleString("en-US")} | ${r.library} | ${fmt(r.fitS, 3)} | ${r.ratio} | ${fmt(r.acc === null ? null : 100 * r.acc, 2)} | ${fmt(r.ece, 4)} | ${fmt(r.brier, 4)} | ${fmt(r.rowMicros, 2)} | ${fmtInt(r.batchRps)} | ${r.bytes} | ${fmt(r.loadMs, 2)} | ${r.peakMB} | ${r.parallelS} |`,
  ),
];
console.log(
  `${TREES} trees, min_samples_leaf ${MIN_SAMPLES_LEAF}, seed ${SEED}, ${args.csv ?? `synthetic data (${TEST_ROWS} held-out rows)`}, node ${process.version}, ${RUNS} run(s)`,
);
console.log(lines.join("\n"));
for (const note of notes) console.log(`- ${note}`);
