import { RandomForestClassifier } from "ml-random-forest";
import { describe, expect, it } from "vitest";
import { accuracy, expectedCalibrationError, generateEnergyData, rng, toFloat64, trainTestSplit, type Dataset } from "../bench/forest-data.ts";
import { ForestFormatError } from "../src/ml/forest.ts";
import {
  fitOwnForest,
  fitTrees,
  FORMAT_VERSION,
  loadOwnForest,
  mergeForests,
  OWN_FOREST_KIND,
  ownForest,
  partTransferList,
  type ForestPart,
  type OwnForest,
} from "../src/ml/own-forest.ts";
import { decodePart, encodePart } from "../src/ml/own-forest/format.ts";
import { OwnForest as OwnForestClass } from "../src/ml/own-forest/model.ts";
import { compileKernel, KERNEL_PATH } from "../scripts/forest-kernel.ts";
import { readFileSync } from "node:fs";
import { loadedModelBytes, loadModel } from "../src/ml/loaded-model.ts";

const allProba = (forest: OwnForest, X: readonly number[][]): number[][] => X.map((row) => forest.predictProba(row));

function expectFormatError(blob: Uint8Array, message: RegExp): void {
  let caught: unknown;
  try {
    ownForest.load(blob);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ForestFormatError);
  expect((caught as Error).message).toMatch(message);
}

/** Rewrites the header checksum after tampering, so that deeper validation is reached. */
function withFixedChecksum(blob: Uint8Array): Uint8Array {
  const out = blob.slice();
  const words = new Int32Array(out.buffer, 64, (out.length - 64) / 4);
  let h = 0x811c9dc5 | 0;
  for (let i = 0; i < words.length; i++) {
    h = Math.imul(h ^ words[i]!, 0x01000193);
    h ^= h >>> 13;
  }
  new DataView(out.buffer).setUint32(12, h >>> 0, true);
  return out;
}

const energy = trainTestSplit(generateEnergyData(2500, 11), 0.2);

describe("own forest: fitting and predicting", () => {
  const forest = ownForest.fit(energy.train.X, energy.train.y, 3, { nEstimators: 60, seed: 5 });

  it("is the ForestAlgorithm the service stores models with", () => {
    expect(ownForest.kind).toBe(OWN_FOREST_KIND);
    expect(forest.kind).toBe(OWN_FOREST_KIND);
    expect(forest.nClasses).toBe(3);
    expect(forest.nTrees).toBe(60);
  });

  it("is reproducible with a seed and differs with another seed", () => {
    const again = ownForest.fit(energy.train.X, energy.train.y, 3, { nEstimators: 60, seed: 5 });
    expect(allProba(again, energy.test.X)).toEqual(allProba(forest, energy.test.X));
    expect(Buffer.from(again.serialize()).equals(Buffer.from(forest.serialize()))).toBe(true);
    const other = ownForest.fit(energy.train.X, energy.train.y, 3, { nEstimators: 60, seed: 6 });
    expect(allProba(other, energy.test.X)).not.toEqual(allProba(forest, energy.test.X));
  });

  it("returns probabilities that are non-negative and sum to 1", () => {
    for (const p of allProba(forest, energy.test.X)) {
      expect(p).toHaveLength(3);
      for (const v of p) expect(v).toBeGreaterThanOrEqual(0);
      expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    }
  });

  it("batch prediction gives exactly the single-row numbers", () => {
    const X = energy.test.X;
    const batch = forest.predictProbaBatch(toFloat64(X), X.length, 5);
    const single = allProba(forest, X).flat();
    expect(Array.from(batch)).toEqual(single);
    // a small batch (walked unsorted) and one spanning several blocks
    expect(Array.from(forest.predictProbaBatch(toFloat64(X.slice(0, 10)), 10, 5))).toEqual(single.slice(0, 30));
    const many = Array.from({ length: 9000 }, (_, i) => X[(i * 7) % X.length]!);
    const manyBatch = forest.predictProbaBatch(toFloat64(many), many.length, 5);
    expect(Array.from(manyBatch.subarray(8990 * 3))).toEqual(many.slice(8990).flatMap((r) => forest.predictProba(r)));
    expect(forest.predictProbaBatch(new Float64Array(0), 0, 5)).toHaveLength(0);
    expect(() => forest.predictProbaBatch(toFloat64(X), X.length, 4)).toThrow(RangeError);
    expect(() => forest.predictProbaBatch(new Float64Array(3), 2, 5)).toThrow(RangeError);
    expect(() => forest.predictProba([1, 2])).toThrow(RangeError);
  });

  it("learns the known pattern (accuracy on held-out rows)", () => {
    const data = trainTestSplit(generateEnergyData(6000, 3), 1 / 3);
    const f = ownForest.fit(data.train.X, data.train.y, 3, { nEstimators: 100, seed: 1 });
    const acc = accuracy(f.predictProbaBatch(toFloat64(data.test.X), data.test.X.length, 5), data.test.y, 3);
    // Bayes accuracy is below 85% (15% label noise); sklearn's forest reaches ~74% here.
    expect(acc).toBeGreaterThan(0.72);
    // and a shuffled-label control does not
    const shuffled = [...data.train.y];
    const rand = rng(9);
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }
    const noise = ownForest.fit(data.train.X, shuffled, 3, { nEstimators: 30, seed: 1 });
    expect(accuracy(noise.predictProbaBatch(toFloat64(data.test.X), data.test.X.length, 5), data.test.y, 3)).toBeLessThan(0.4);
  });

  it("is not less accurate than ml-random-forest (average over seeds, 300 training rows)", () => {
    const seeds = [1, 2, 3, 4, 5];
    let ours = 0;
    let theirs = 0;
    for (const seed of seeds) {
      const { train, test } = trainTestSplit(generateEnergyData(1300, 100 + seed), 1000 / 1300);
      const impute = (X: number[][]): number[][] => X.map((r) => r.map((v) => (Number.isNaN(v) ? -1 : v)));
      const ml = new RandomForestClassifier({ nEstimators: 40, seed, maxFeatures: 1.0, replacement: false, useSampleBagging: true, noOOB: true });
      ml.train(impute(train.X), train.y);
      const predicted = ml.predict(impute(test.X));
      theirs += predicted.filter((p, i) => p === test.y[i]).length / test.y.length;
      const f = ownForest.fit(train.X, train.y, 3, { nEstimators: 40, seed });
      ours += accuracy(f.predictProbaBatch(toFloat64(test.X), test.X.length, 5), test.y, 3);
    }
    ours /= seeds.length;
    theirs /= seeds.length;
    expect(ours).toBeGreaterThanOrEqual(theirs - 0.015);
  });

  it("fitTrees parts merged in any order equal a full fit with the same seed", () => {
    const options = { nEstimators: 25, seed: 42 };
    const full = fitOwnForest(energy.train.X, energy.train.y, 3, options);
    const a = fitTrees(energy.train.X, energy.train.y, 3, options, [0, 9]);
    const b = fitTrees(energy.train.X, energy.train.y, 3, options, [9, 17]);
    const dense = { data: toFloat64(energy.train.X), nRows: energy.train.X.length, nFeatures: 5 };
    const c = fitTrees(dense, Int32Array.from(energy.train.y), 3, options, [17, 25]);
    const merged = mergeForests([c, a, b], energy.train.y);
    expect(allProba(merged, energy.test.X)).toEqual(allProba(full, energy.test.X));
    expect(Buffer.from(merged.serialize()).equals(Buffer.from(full.serialize()))).toBe(true);
    // parts survive a structured clone (what a worker hands back)
    const cloned = structuredClone([a, b, c]) as ForestPart[];
    expect(allProba(mergeForests(cloned, energy.train.y), energy.test.X)).toEqual(allProba(full, energy.test.X));
    expect(partTransferList(a).length).toBeGreaterThan(0);
  });

  it("mergeForests refuses incomplete, overlapping or foreign parts", () => {
    const options = { nEstimators: 6, seed: 1 };
    const X = energy.train.X.slice(0, 300);
    const y = energy.train.y.slice(0, 300);
    const a = fitTrees(X, y, 3, options, [0, 3]);
    const b = fitTrees(X, y, 3, options, [3, 6]);
    expect(() => mergeForests([])).toThrow(/at least one part/);
    expect(() => mergeForests([a])).toThrow(/trees 3\.\.5 are missing/);
    expect(() => mergeForests([b])).toThrow(/trees 0\.\.2 are missing/);
    expect(() => mergeForests([a, a, b])).toThrow(/overlap/);
    const otherData = fitTrees(energy.train.X.slice(300, 600), energy.train.y.slice(300, 600), 3, options, [3, 6]);
    expect(() => mergeForests([a, otherData])).toThrow(/different data/);
    const otherSize = fitTrees(X, y, 3, { nEstimators: 7, seed: 1 }, [3, 7]);
    expect(() => mergeForests([a, otherSize])).toThrow(/different fits/);
    expect(() => mergeForests([{ ...a, format: "something-else" } as unknown as ForestPart, b])).toThrow(/not an own-random-forest part/);
    expect(() => mergeForests([{ ...a, treeEnd: 4 }, b])).toThrow(/holds 3 trees/);
  });
});

describe("own forest: the WebAssembly kernel", () => {
  const jsWalk = (forest: OwnForest): OwnForest => new OwnForestClass(decodePart(forest.serialize()), { kernel: false });
  const kernelWalk = (forest: OwnForest): OwnForest => new OwnForestClass(decodePart(forest.serialize()), { kernelMinNodes: 0 });
  const wideWalk = (forest: OwnForest): OwnForest => new OwnForestClass(decodePart(forest.serialize()), { kernelMinNodes: 0, wideSingleMinNodes: 0 });

  it("kernel.wasm is what scripts/forest-kernel.ts compiles (run npm run build:kernel)", async () => {
    const bytes = await compileKernel();
    expect(Buffer.from(readFileSync(KERNEL_PATH)).equals(Buffer.from(bytes))).toBe(true);
  });

  it("gives exactly the JavaScript walk's probabilities, one row and in batches of every shape", () => {
    const data = generateEnergyData(3000, 31, { missingRate: 0.4 });
    for (const [nClasses, nEstimators] of [
      [3, 13],
      [2, 8],
      [5, 21],
    ] as const) {
      const y = data.y.map((v, i) => (nClasses === 3 ? v : (v + i) % nClasses));
      const forest = kernelWalk(ownForest.fit(data.X.slice(0, 2000), y.slice(0, 2000), nClasses, { nEstimators, seed: 3 }));
      const js = jsWalk(forest);
      expect(forest.usesKernel).toBe(true);
      expect(js.usesKernel).toBe(false);
      const rows = data.X.slice(2000);
      expect(allProba(forest, rows)).toEqual(allProba(js, rows));
      // single rows 12 trees at a time (13, 8 and 21 trees: partly filled lane groups)
      expect(allProba(wideWalk(forest), rows)).toEqual(allProba(js, rows));
      for (const n of [1, 7, 8, 9, 63, 64, 1000]) {
        const X = toFloat64(rows.slice(0, n));
        expect(Array.from(forest.predictProbaBatch(X, n, 5))).toEqual(Array.from(js.predictProbaBatch(X, n, 5)));
      }
    }
  });

  it("crosses batch blocks (65,536 rows) and keeps rows in input order", () => {
    const forest = kernelWalk(ownForest.fit(energy.train.X, energy.train.y, 3, { nEstimators: 8, seed: 4 }));
    expect(forest.usesKernel).toBe(true);
    const big = generateEnergyData(66_000, 5).X;
    const X = toFloat64(big);
    const batch = forest.predictProbaBatch(X, big.length, 5);
    expect(Array.from(batch)).toEqual(Array.from(jsWalk(forest).predictProbaBatch(X, big.length, 5)));
    for (const r of [0, 65_535, 65_536, 65_999]) expect(Array.from(batch.subarray(r * 3, r * 3 + 3))).toEqual(forest.predictProba(big[r]!));
  });

  it("is used from 16,384 nodes on, and its memory is reported", () => {
    const small = ownForest.fit(energy.train.X.slice(0, 100), energy.train.y.slice(0, 100), 3, { nEstimators: 10, seed: 1 });
    expect(small.nNodes).toBeLessThan(16_384);
    expect(small.usesKernel).toBe(false);
    const large = ownForest.fit(energy.train.X, energy.train.y, 3, { nEstimators: 40, seed: 1 });
    expect(large.nNodes).toBeGreaterThanOrEqual(16_384);
    expect(large.usesKernel).toBe(true);
    expect(large.memoryBytes).toBeGreaterThanOrEqual(4 * large.nNodes);
    expect(large.memoryBytes).toBeLessThan(8 * large.nNodes + 2 * 65_536);
    // what the model cache counts: the kernel's memory when it exceeds the blob
    const blob = large.serialize();
    const loaded = loadModel(OWN_FOREST_KIND, blob);
    expect(loadedModelBytes(loaded, blob.length)).toBe(Math.max(blob.length, (loaded.kind === "forest" && loaded.forest.memoryBytes) || 0));
    expect(loadedModelBytes(loaded, blob.length)).toBeGreaterThan(blob.length);
    const smallBlob = small.serialize();
    expect(loadedModelBytes(loadModel(OWN_FOREST_KIND, smallBlob), smallBlob.length)).toBeGreaterThanOrEqual(smallBlob.length);
  });

  it("leaves forests that do not fit its 4-byte node to the JavaScript walk", () => {
    const r = rng(9);
    const X = Array.from({ length: 300 }, () => Array.from({ length: 9 }, () => r()));
    const y = X.map((row) => (row[8]! > 0.5 ? 1 : 0));
    const wide = kernelWalk(ownForest.fit(X, y, 2, { nEstimators: 5, seed: 1 }));
    expect(wide.usesKernel).toBe(false);
    expect(wide.predictProba(X[0]!)[y[0]!]).toBeGreaterThan(0.5);
    expect(wide.memoryBytes).toBeGreaterThan(0);
  });
});

describe("own forest: out-of-bag top-label calibration", () => {
  const data = trainTestSplit(generateEnergyData(6000, 21), 0.5);
  const testX = toFloat64(data.test.X);
  const n = data.test.X.length;
  const raw = ownForest.fit(data.train.X, data.train.y, 3, { nEstimators: 60, seed: 2 });
  const cal = ownForest.fit(data.train.X, data.train.y, 3, { nEstimators: 60, seed: 2, calibrate: true });
  const pRaw = raw.predictProbaBatch(testX, n, 5);
  const pCal = cal.predictProbaBatch(testX, n, 5);

  it("is off by default (the mean of the leaves, as scikit-learn) and grows the same trees", () => {
    expect(cal.calibrated).toBe(true);
    expect(raw.calibrated).toBe(false);
    expect(cal.nNodes).toBe(raw.nNodes);
  });

  it("never changes the predicted class", () => {
    for (let r = 0; r < n; r++) {
      const top = (p: Float64Array): number => [0, 1, 2].reduce((b, c) => (p[r * 3 + c]! > p[r * 3 + b]! ? c : b), 0);
      expect(top(pCal)).toBe(top(pRaw));
      expect(pCal[r * 3]! + pCal[r * 3 + 1]! + pCal[r * 3 + 2]!).toBeCloseTo(1, 12);
    }
    expect(accuracy(pCal, data.test.y, 3)).toBe(accuracy(pRaw, data.test.y, 3));
  });

  it("at least halves the calibration error on held-out rows", () => {
    const eRaw = expectedCalibrationError(pRaw, data.test.y, 3);
    const eCal = expectedCalibrationError(pCal, data.test.y, 3);
    expect(eRaw).toBeGreaterThan(0.04);
    expect(eCal).toBeLessThan(eRaw / 2);
  });

  it("single rows, batches, saved models and merged parts all agree", () => {
    const rows = data.test.X.slice(0, 200);
    const single = rows.map((row) => cal.predictProba(row));
    expect(single.flat()).toEqual(Array.from(pCal.subarray(0, 600)));
    expect(allProba(ownForest.load(cal.serialize()), rows)).toEqual(single);
    const options = { nEstimators: 60, seed: 2, calibrate: true };
    const parts = [fitTrees(data.train.X, data.train.y, 3, options, [30, 60]), fitTrees(data.train.X, data.train.y, 3, options, [0, 30])];
    const merged = mergeForests(parts, data.train.y);
    expect(Buffer.from(merged.serialize()).equals(Buffer.from(cal.serialize()))).toBe(true);
    // without the labels there is nothing to fit: the votes as they are
    expect(allProba(mergeForests(parts), rows)).toEqual(allProba(raw, rows));
  });

  it("is skipped when the out-of-bag rows are too few or there is no bootstrap", () => {
    const few = ownForest.fit(data.train.X.slice(0, 80), data.train.y.slice(0, 80), 3, { nEstimators: 30, seed: 1, calibrate: true });
    expect(few.calibrated).toBe(false);
    const noBag = ownForest.fit(data.train.X, data.train.y, 3, { nEstimators: 10, seed: 1, bootstrap: false, calibrate: true });
    expect(noBag.calibrated).toBe(false);
  });

  it("refuses a blob whose calibration knots are not a monotone map in [0, 1]", () => {
    const blob = cal.serialize();
    const dv = new DataView(blob.buffer);
    const nCal = dv.getUint32(44, true);
    expect(nCal).toBeGreaterThanOrEqual(4);
    const at = blob.length - ((nCal * 4 + 7) & ~7);
    const swapped = blob.slice();
    new DataView(swapped.buffer).setFloat32(at, 0.99, true); // first x above the second
    expectFormatError(withFixedChecksum(swapped), /calibration knot 1 is not increasing/);
    const outside = blob.slice();
    new DataView(outside.buffer).setFloat32(at + 4, 1.5, true);
    expectFormatError(withFixedChecksum(outside), /calibration knot 0 .* is outside \[0, 1\]/);
  });
});

describe("own forest: edge cases", () => {
  it("handles a single-class training set", () => {
    const X = [
      [1, 2],
      [3, 4],
      [5, 6],
    ];
    const f = ownForest.fit(X, [2, 2, 2], 3, { nEstimators: 5, seed: 1 });
    expect(f.predictProba([1, 2])).toEqual([0, 0, 1]);
    expect(f.predictProba([NaN, 100])).toEqual([0, 0, 1]);
    const one = ownForest.fit(X, [0, 0, 0], 1, { nEstimators: 3, seed: 1 });
    expect(one.predictProba([0, 0])).toEqual([1]);
    expect(ownForest.load(one.serialize()).predictProba([0, 0])).toEqual([1]);
  });

  it("handles duplicate rows with conflicting labels (mixed leaves)", () => {
    const X = Array.from({ length: 40 }, (_, i) => (i < 20 ? [1, 1] : [2, 2]));
    const y = X.map((_, i) => (i < 20 ? (i % 4 === 0 ? 1 : 0) : 2));
    const f = ownForest.fit(X, y, 3, { nEstimators: 50, seed: 3 });
    const p = f.predictProba([1, 1]);
    expect(p[0]).toBeGreaterThan(0.6);
    expect(p[1]).toBeGreaterThan(0.1);
    expect(p[2]).toBe(0);
    expect(f.predictProba([2, 2])).toEqual([0, 0, 1]);
    expect(ownForest.load(f.serialize()).predictProba([1, 1])).toEqual(p);
  });

  it("routes missing values by a learned direction, in training and prediction", () => {
    // class 1 exactly when feature 0 is missing; feature 1 is noise
    const rand = rng(4);
    const X: number[][] = [];
    const y: number[] = [];
    for (let i = 0; i < 400; i++) {
      const missing = rand() < 0.4;
      X.push([missing ? NaN : Math.floor(rand() * 10), Math.floor(rand() * 5)]);
      y.push(missing ? 1 : 0);
    }
    const f = ownForest.fit(X, y, 2, { nEstimators: 30, seed: 2 });
    expect(f.predictProba([NaN, 2])[1]).toBeGreaterThan(0.95);
    expect(f.predictProba([3, 2])[0]).toBeGreaterThan(0.95);
    expect(f.predictProba([9, 2])[0]).toBeGreaterThan(0.95);
    // missing values with the high values: class 1 for x >= 5 or missing
    const y2 = X.map((r) => (Number.isNaN(r[0]!) || r[0]! >= 5 ? 1 : 0));
    const g = ownForest.fit(X, y2, 2, { nEstimators: 30, seed: 2, maxFeatures: "all" });
    expect(g.predictProba([NaN, 0])[1]).toBeGreaterThan(0.95);
    expect(g.predictProba([7, 0])[1]).toBeGreaterThan(0.95);
    expect(g.predictProba([1, 0])[0]).toBeGreaterThan(0.95);
    // and missing with the low values
    const y3 = X.map((r) => (Number.isNaN(r[0]!) || r[0]! < 5 ? 1 : 0));
    const h = ownForest.fit(X, y3, 2, { nEstimators: 30, seed: 2, maxFeatures: "all" });
    expect(h.predictProba([NaN, 0])[1]).toBeGreaterThan(0.95);
    expect(h.predictProba([2, 0])[1]).toBeGreaterThan(0.95);
    expect(h.predictProba([8, 0])[0]).toBeGreaterThan(0.95);
    // a feature never missing in training still accepts NaN at prediction time
    const k = ownForest.fit(
      X.map((r) => [r[1]!, r[1]! * 2]),
      X.map((r) => (r[1]! >= 2 ? 1 : 0)),
      2,
      { nEstimators: 10, seed: 1 },
    );
    const p = k.predictProba([NaN, NaN]);
    expect(p[0]! + p[1]!).toBeCloseTo(1, 12);
  });

  it("handles a constant feature and all-constant data", () => {
    const rand = rng(5);
    const X = Array.from({ length: 200 }, () => [7, Math.floor(rand() * 10)]);
    const y = X.map((r) => (r[1]! < 5 ? 0 : 1));
    const f = ownForest.fit(X, y, 2, { nEstimators: 20, seed: 1, maxFeatures: 1 });
    expect(f.predictProba([7, 2])[0]).toBeGreaterThan(0.95);
    expect(f.predictProba([123, 8])[1]).toBeGreaterThan(0.95);
    const flat = ownForest.fit(
      X.map(() => [1, 1]),
      y,
      2,
      { nEstimators: 10, seed: 1 },
    );
    const p = flat.predictProba([1, 1]);
    expect(p[0]).toBeGreaterThan(0.3);
    expect(p[1]).toBeGreaterThan(0.3);
    expect(flat.nNodes).toBe(10);
    const allMissing = ownForest.fit(
      X.map((r) => [NaN, r[1]!]),
      y,
      2,
      { nEstimators: 10, seed: 1, maxFeatures: "all" },
    );
    expect(allMissing.predictProba([NaN, 1])[0]).toBeGreaterThan(0.95);
  });

  it("bins a feature with many distinct values into quantile bins", () => {
    const rand = rng(8);
    const X = Array.from({ length: 3000 }, () => [rand() * 1000, rand()]);
    const y = X.map((r) => (r[0]! > 613.5 ? 1 : 0));
    const f = ownForest.fit(X, y, 2, { nEstimators: 20, seed: 1, maxFeatures: "all" });
    expect(f.part.nBins[0]).toBe(256);
    expect(f.predictProba([100, 0.5])[0]).toBeGreaterThan(0.95);
    expect(f.predictProba([900, 0.5])[1]).toBeGreaterThan(0.95);
    const withNaN = ownForest.fit(
      X.map((r, i) => (i % 10 === 0 ? [NaN, r[1]!] : r)),
      y,
      2,
      { nEstimators: 5, seed: 1 },
    );
    expect(withNaN.part.nBins[0]).toBe(255);
  });

  it("handles many features (records of several words)", () => {
    const rand = rng(12);
    const X = Array.from({ length: 1500 }, () => Array.from({ length: 12 }, (_, j) => (j === 3 && rand() < 0.2 ? NaN : Math.floor(rand() * 200))));
    const y = X.map((r) => ((r[0]! > 100 ? 1 : 0) + (r[7]! > 50 ? 1 : 0)) % 3);
    const f = ownForest.fit(X, y, 3, { nEstimators: 30, seed: 2, maxFeatures: 6 });
    const probe = [150, 0, 0, NaN, 0, 0, 0, 20, 0, 0, 0, 0];
    expect(f.predictProba(probe)[1]).toBeGreaterThan(0.8);
    expect(Array.from(f.predictProbaBatch(toFloat64([probe]), 1, 12))).toEqual(f.predictProba(probe));
  });

  it("keeps leaf distributions beyond 65,535 mixed leaves", () => {
    // one caterpillar tree: split, mixed leaf, split, mixed leaf, ..., two last leaves
    const splits = 70_000;
    const codes = new Int16Array(2 * splits + 1);
    const mixed = new Float32Array(2 * (splits + 1));
    for (let k = 0; k < splits; k++) {
      codes[2 * k] = 0; // feature 0, missing go left; rows with bin 0 go left (the first child)
      codes[2 * k + 1] = -3; // mixed leaf (nClasses = 2)
    }
    codes[2 * splits] = -3;
    for (let k = 0; k <= splits; k++) {
      mixed[2 * k] = k / (splits + 1);
      mixed[2 * k + 1] = 1 - k / (splits + 1);
    }
    const part: ForestPart = {
      format: "own-random-forest-part/1",
      nClasses: 2,
      nFeatures: 1,
      treeStart: 0,
      treeEnd: 1,
      totalTrees: 1,
      nBins: Uint16Array.of(2),
      edges: Float64Array.of(0.5),
      treeNodeCounts: Int32Array.of(2 * splits + 1),
      codes,
      bins: new Uint8Array(splits),
      mixed,
      calibration: new Float32Array(0),
    };
    const forest = loadOwnForest(encodePart(part));
    // x = 0 stops at the first leaf; x = 1 walks every split to the last leaf
    expect(forest.predictProba([0])[0]).toBeCloseTo(0, 6);
    const last = forest.predictProba([1]);
    expect(last[0]).toBeCloseTo(mixed[2 * splits]!, 6);
    expect(Array.from(forest.predictProbaBatch(Float64Array.of(1, 0), 2, 1))).toEqual([...last, ...forest.predictProba([0])]);
  });

  it("respects maxDepth, minSamplesLeaf, maxFeatures and bootstrap", () => {
    const { X, y } = energy.train;
    const stumps = ownForest.fit(X, y, 3, { nEstimators: 10, seed: 1, maxDepth: 1 });
    expect(stumps.nNodes).toBe(30);
    const roots = ownForest.fit(X, y, 3, { nEstimators: 4, seed: 1, maxDepth: 0 });
    expect(roots.nNodes).toBe(4);
    const full = ownForest.fit(X, y, 3, { nEstimators: 10, seed: 1 });
    const leafy = ownForest.fit(X, y, 3, { nEstimators: 10, seed: 1, minSamplesLeaf: 20 });
    expect(leafy.nNodes).toBeLessThan(full.nNodes / 5);
    for (const maxFeatures of ["sqrt", "log2", "all", 3, 0.5] as const) {
      const f = ownForest.fit(X, y, 3, { nEstimators: 3, seed: 1, maxFeatures });
      expect(f.predictProba(X[0]!).reduce((a, b) => a + b)).toBeCloseTo(1, 12);
    }
    // without bagging, fully grown trees fit every (non-duplicate) training row
    const noBag = ownForest.fit(X, y, 3, { nEstimators: 5, seed: 1, bootstrap: false });
    expect(accuracy(noBag.predictProbaBatch(toFloat64(X), X.length, 5), y, 3)).toBeGreaterThan(0.99);
    const bag = ownForest.fit(X, y, 3, { nEstimators: 5, seed: 1 });
    expect(allProba(bag, X.slice(0, 50))).not.toEqual(allProba(noBag, X.slice(0, 50)));
  });

  it("rejects invalid input", () => {
    const X = [
      [1, 2],
      [3, 4],
    ];
    expect(() => ownForest.fit([], [], 2, { nEstimators: 1, seed: 1 })).toThrow(/zero rows/);
    expect(() => ownForest.fit(X, [0], 2, { nEstimators: 1, seed: 1 })).toThrow(/1 labels for 2 rows/);
    expect(() => ownForest.fit(X, [0, 2], 2, { nEstimators: 1, seed: 1 })).toThrow(/label 2/);
    expect(() => ownForest.fit([[1, 2], [3]], [0, 1], 2, { nEstimators: 1, seed: 1 })).toThrow(/row 1 has 1 features/);
    expect(() => ownForest.fit(X, [0, 1], 0, { nEstimators: 1, seed: 1 })).toThrow(/nClasses/);
    expect(() => ownForest.fit(X, [0, 1], 2, { nEstimators: 0, seed: 1 })).toThrow(/nEstimators/);
    expect(() => ownForest.fit(X, [0, 1], 2, { nEstimators: 1, seed: NaN })).toThrow(/seed/);
    expect(() => ownForest.fit(X, [0, 1], 2, { nEstimators: 1, seed: 1, maxDepth: -1 })).toThrow(/maxDepth/);
    expect(() => ownForest.fit(X, [0, 1], 2, { nEstimators: 1, seed: 1, minSamplesLeaf: 0 })).toThrow(/minSamplesLeaf/);
    expect(() => fitOwnForest(X, [0, 1], 2, { nEstimators: 1, seed: 1, maxFeatures: 1.5 })).toThrow(/maxFeatures/);
    expect(() => fitTrees(X, [0, 1], 2, { nEstimators: 4, seed: 1 }, [2, 6])).toThrow(/tree range/);
    expect(() => fitTrees({ data: new Float64Array(3), nRows: 2, nFeatures: 2 }, [0, 1], 2, { nEstimators: 1, seed: 1 }, [0, 1])).toThrow(/DenseMatrix/);
  });
});

describe("own forest: binary format", () => {
  const small: Dataset = { X: energy.train.X.slice(0, 400), y: energy.train.y.slice(0, 400) };
  const forest = ownForest.fit(small.X, small.y, 3, { nEstimators: 20, seed: 8 });
  const blob = forest.serialize();

  it("round-trips to identical probabilities", () => {
    const loaded = ownForest.load(blob);
    expect(loaded.kind).toBe(OWN_FOREST_KIND);
    expect(allProba(loaded, energy.test.X)).toEqual(allProba(forest, energy.test.X));
    expect(Buffer.from(loaded.serialize()).equals(Buffer.from(blob))).toBe(true);
    // from an unaligned view, as a database driver may hand it over
    const padded = new Uint8Array(blob.length + 3);
    padded.set(blob, 3);
    expect(allProba(loadOwnForest(padded.subarray(3)), energy.test.X.slice(0, 50))).toEqual(allProba(forest, energy.test.X.slice(0, 50)));
    // from an aligned view inside a larger buffer (read in place, not copied)
    const framed = new Uint8Array(blob.length + 24).fill(0xee);
    framed.set(blob, 8);
    const inPlace = loadOwnForest(framed.subarray(8, 8 + blob.length));
    expect(allProba(inPlace, energy.test.X.slice(0, 50))).toEqual(allProba(forest, energy.test.X.slice(0, 50)));
    expect(Buffer.from(inPlace.serialize()).equals(Buffer.from(blob))).toBe(true);
  });

  it("starts with a magic header and format version", () => {
    expect(new TextDecoder().decode(blob.subarray(0, 4))).toBe("ORFB");
    expect(blob[4]! | (blob[5]! << 8)).toBe(FORMAT_VERSION);
  });

  it("refuses random bytes", () => {
    const rand = rng(1);
    const junk = Uint8Array.from({ length: 500 }, () => Math.floor(rand() * 256));
    expectFormatError(junk, /not an own-random-forest blob: expected magic "ORFB".*found/);
    expectFormatError(new Uint8Array(0), /empty/);
  });

  it("refuses an ml-random-forest JSON model", () => {
    const ml = new RandomForestClassifier({ nEstimators: 2, seed: 1, noOOB: true });
    ml.train(
      small.X.slice(0, 30).map((r) => r.map((v) => (Number.isNaN(v) ? -1 : v))),
      small.y.slice(0, 30),
    );
    const json = new TextEncoder().encode(JSON.stringify(ml.toJSON()));
    expectFormatError(json, /expected magic "ORFB" \(4f 52 46 42\), found 7b 22/);
  });

  it("refuses another format version", () => {
    expect(FORMAT_VERSION).toBe(3);
    const v1 = blob.slice();
    v1[4] = 1; // the early breadth-first layout
    expectFormatError(v1, /unsupported own-random-forest format version 1 \(this build reads versions 2 to 3\)/);
    const v4 = blob.slice();
    v4[4] = 4;
    expectFormatError(v4, /unsupported own-random-forest format version 4 \(this build reads versions 2 to 3\)/);
  });

  it("reads a version 2 blob (no calibration section) as the uncalibrated forest", () => {
    const plain = ownForest.fit(small.X, small.y, 3, { nEstimators: 20, seed: 8 });
    const v2 = plain.serialize();
    expect(new DataView(v2.buffer).getUint32(44, true)).toBe(0);
    v2[4] = 2;
    const loaded = ownForest.load(v2);
    expect(loaded.calibrated).toBe(false);
    expect(allProba(loaded, energy.test.X)).toEqual(allProba(plain, energy.test.X));
    // a version 2 header cannot announce calibration data
    const calibrated = ownForest.fit(small.X, small.y, 3, { nEstimators: 20, seed: 8, calibrate: true });
    expect(calibrated.calibrated).toBe(true);
    const bad = calibrated.serialize();
    bad[4] = 2;
    expectFormatError(bad, /version 2 with calibration data/);
  });

  it("refuses truncated and corrupt blobs", () => {
    expectFormatError(blob.subarray(0, blob.length - 10), new RegExp(`truncated .*header says ${blob.length} bytes, got ${blob.length - 10}`));
    expectFormatError(blob.subarray(0, 40), /truncated own-random-forest blob: 40 bytes/);
    expectFormatError(blob.subarray(0, 6), /truncated own-random-forest blob: 6 bytes/);
    const longer = new Uint8Array(blob.length + 8);
    longer.set(blob);
    expectFormatError(longer, /trailing data/);
    const flipped = blob.slice();
    flipped[blob.length - 20]! ^= 0x10;
    expectFormatError(flipped, /checksum .* does not match/);
    const badHeader = blob.slice();
    new DataView(badHeader.buffer).setUint16(6, 32, true);
    expectFormatError(badHeader, /header size 32/);
    const badCounts = blob.slice();
    new DataView(badCounts.buffer).setUint32(24, 21, true);
    expectFormatError(badCounts, /counts .* need \d+ bytes/);
  });

  it("refuses structurally invalid trees even with a valid checksum", () => {
    const part = forest.part;
    const tamper = (change: Partial<ForestPart>): Uint8Array => withFixedChecksum(encodePart({ ...part, ...change }));
    const codes = part.codes.slice();
    const firstSplit = codes.findIndex((c) => c >= 0);
    codes[firstSplit] = 2 * 9; // feature 9 of 5
    expectFormatError(tamper({ codes }), /corrupt own-random-forest blob: tree 0 node 0 splits on feature 9 of 5/);
    const leafCodes = part.codes.slice();
    leafCodes[leafCodes.findIndex((c) => c < 0)] = -20;
    expectFormatError(tamper({ codes: leafCodes }), /has leaf code -20/);
    const bins = part.bins.slice();
    bins[0] = 255;
    expectFormatError(tamper({ bins }), /splits at bin 255/);
    const cyclic = part.codes.slice();
    cyclic[0] = -1; // root becomes a leaf: the tree ends after one node
    expectFormatError(tamper({ codes: cyclic }), /tree 0 is complete after 1 of its \d+ nodes/);
    const counts = part.treeNodeCounts.slice();
    counts[0] = counts[0]! + 2;
    counts[1] = counts[1]! - 2;
    expectFormatError(
      tamper({ treeNodeCounts: counts }),
      /corrupt own-random-forest blob: tree \d+ (is complete after|has more splits than|has \d+ nodes but is incomplete)/,
    );
    const edges = part.edges.slice();
    edges[1] = edges[0]!;
    expectFormatError(tamper({ edges }), /not increasing/);
  });
});
