/**
 * Feature binning, done once per fit. Every feature is mapped to at most 256
 * bin codes (Uint8). A feature with few distinct values (<= 256, or <= 255
 * when it also has missing values) gets one bin per value, so thresholds are
 * exact midpoints between neighbouring values, as in CART/scikit-learn.
 * Otherwise consecutive distinct values are grouped into quantile bins.
 *
 * Bin k of feature f holds the values x with edges[k-1] < x <= edges[k]
 * (edges are the split thresholds). Missing values (NaN) get the code
 * NAN_BIN = 255 in training; such a feature has at most 255 value bins.
 */

export const NAN_BIN = 255;
export const MAX_BINS = 256;

/** Binning of all features; plain typed arrays so it can cross worker boundaries. */
export interface Binning {
  readonly nFeatures: number;
  /** Number of value bins per feature (>= 1). */
  readonly nBins: Uint16Array;
  /** 1 when the feature had a missing value in training. */
  readonly hasNaN: Uint8Array;
  /** edges of feature f are edges[edgeOffset[f] .. edgeOffset[f + 1]); nBins[f] - 1 of them. */
  readonly edgeOffset: Int32Array;
  /** Split thresholds, strictly increasing within a feature. */
  readonly edges: Float64Array;
  /**
   * A representative value per bin (the value itself for exact bins, the
   * middle of the bin's training values for quantile bins), bins of feature f
   * at binValueOffset[f]; used to place a split between two bins at the
   * midpoint of the node's neighbouring values, as CART does.
   */
  readonly binValueOffset: Int32Array;
  readonly binValue: Float64Array;
}

/** Dense row-major matrix, the zero-copy input form (what workers receive). */
export interface DenseMatrix {
  readonly data: Float64Array;
  readonly nRows: number;
  readonly nFeatures: number;
}

/** Midpoint m of a < b with a <= m < b (so "x <= m" separates them exactly). */
function midpoint(a: number, b: number): number {
  let m = a / 2 + b / 2;
  if (!(m >= a && m < b)) m = a;
  return m;
}

/** Computes bin edges for one feature from its column (NaN = missing). */
function featureEdges(column: Float64Array): { edges: number[]; values: number[]; hasNaN: boolean } {
  let nValid = 0;
  const valid = new Float64Array(column.length);
  for (let i = 0; i < column.length; i++) {
    const x = column[i]!;
    if (x === x) valid[nValid++] = x;
  }
  const hasNaN = nValid < column.length;
  if (nValid === 0) return { edges: [], values: [0], hasNaN };
  const sorted = valid.subarray(0, nValid).sort();
  // distinct values and their counts
  const uniq: number[] = [];
  const counts: number[] = [];
  for (let i = 0; i < nValid; i++) {
    const v = sorted[i]!;
    if (uniq.length > 0 && uniq[uniq.length - 1] === v) counts[counts.length - 1]!++;
    else {
      uniq.push(v);
      counts.push(1);
    }
  }
  const maxBins = hasNaN ? MAX_BINS - 1 : MAX_BINS;
  const edges: number[] = [];
  if (uniq.length <= maxBins) {
    for (let i = 1; i < uniq.length; i++) edges.push(midpoint(uniq[i - 1]!, uniq[i]!));
    return { edges, values: uniq, hasNaN };
  }
  // Quantile bins: value i goes to group floor(rowsBefore(i) * maxBins / nValid);
  // groups are non-decreasing, so a boundary falls wherever the group changes.
  const values: number[] = [];
  let before = 0;
  let prevGroup = 0;
  let groupFirst = uniq[0]!;
  for (let i = 0; i < uniq.length; i++) {
    const group = Math.min(maxBins - 1, Math.floor((before * maxBins) / nValid));
    if (i > 0 && group !== prevGroup) {
      edges.push(midpoint(uniq[i - 1]!, uniq[i]!));
      values.push(midpoint(groupFirst, uniq[i - 1]!));
      groupFirst = uniq[i]!;
    }
    prevGroup = group;
    before += counts[i]!;
  }
  values.push(midpoint(groupFirst, uniq[uniq.length - 1]!));
  return { edges, values, hasNaN };
}

/** Learns the binning of a dense row-major matrix. */
export function learnBinning(X: DenseMatrix): Binning {
  const { data, nRows, nFeatures } = X;
  const nBins = new Uint16Array(nFeatures);
  const hasNaN = new Uint8Array(nFeatures);
  const edgeOffset = new Int32Array(nFeatures + 1);
  const binValueOffset = new Int32Array(nFeatures + 1);
  const all: number[] = [];
  const allValues: number[] = [];
  const column = new Float64Array(nRows);
  for (let f = 0; f < nFeatures; f++) {
    for (let r = 0; r < nRows; r++) column[r] = data[r * nFeatures + f]!;
    const { edges, values, hasNaN: nan } = featureEdges(column);
    nBins[f] = edges.length + 1;
    hasNaN[f] = nan ? 1 : 0;
    edgeOffset[f] = all.length;
    binValueOffset[f] = allValues.length;
    for (const e of edges) all.push(e);
    for (const v of values) allValues.push(v);
  }
  edgeOffset[nFeatures] = all.length;
  binValueOffset[nFeatures] = allValues.length;
  return {
    nFeatures,
    nBins,
    hasNaN,
    edgeOffset,
    edges: Float64Array.from(all),
    binValueOffset,
    binValue: Float64Array.from(allValues),
  };
}

/**
 * Bin code of a non-missing value x for the feature whose edges are
 * edges[lo..hi): the number of edges strictly below x.
 */
export function binOf(edges: Float64Array, lo: number, hi: number, x: number): number {
  // Branch-free: the answer stays in [base, base + n]; the number of halvings
  // depends on n only, and each step is a masked add, not a jump to mispredict.
  let base = lo;
  let n = hi - lo;
  if (n === 0) return 0;
  while (n > 1) {
    const half = n >>> 1;
    base += half & -+(edges[base + half - 1]! < x);
    n -= half;
  }
  return base - lo + +(edges[base]! < x);
}

/** Bins the training matrix into a column-major Uint8Array (NaN -> NAN_BIN). */
export function binMatrix(X: DenseMatrix, binning: Binning): Uint8Array {
  const { data, nRows, nFeatures } = X;
  const out = new Uint8Array(nRows * nFeatures);
  const { edges, edgeOffset } = binning;
  for (let f = 0; f < nFeatures; f++) {
    const lo = edgeOffset[f]!;
    const hi = edgeOffset[f + 1]!;
    const col = f * nRows;
    for (let r = 0; r < nRows; r++) {
      const x = data[r * nFeatures + f]!;
      out[col + r] = x === x ? binOf(edges, lo, hi, x) : NAN_BIN;
    }
  }
  return out;
}

/** Converts the public row-array input to a dense matrix, validating shape. */
export function toDense(X: readonly (readonly number[])[] | DenseMatrix): DenseMatrix {
  if (!Array.isArray(X)) {
    const m = X as DenseMatrix;
    if (!(m.data instanceof Float64Array) || m.data.length !== m.nRows * m.nFeatures) {
      throw new RangeError("DenseMatrix.data must be a Float64Array of nRows * nFeatures values");
    }
    return m;
  }
  const rows = X as readonly (readonly number[])[];
  const nRows = rows.length;
  if (nRows === 0) throw new RangeError("cannot fit a forest on zero rows");
  const nFeatures = rows[0]!.length;
  const data = new Float64Array(nRows * nFeatures);
  for (let r = 0; r < nRows; r++) {
    const row = rows[r]!;
    if (row.length !== nFeatures) {
      throw new RangeError(`row ${r} has ${row.length} features, expected ${nFeatures}`);
    }
    for (let f = 0; f < nFeatures; f++) {
      const v = row[f];
      data[r * nFeatures + f] = typeof v === "number" ? v : NaN;
    }
  }
  return { data, nRows, nFeatures };
}
