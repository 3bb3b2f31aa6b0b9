/**
 * The fitted forest: compact trees (what is stored and merged) expanded into
 * flat arrays laid out for fast traversal: 4-byte nodes in the memory of a
 * WebAssembly kernel (kernel.ts) for forests of KERNEL_MIN_NODES nodes or
 * more that fit its layout, otherwise the 8-byte JavaScript layout below.
 *
 * Prediction works in bin space: a row's values are first mapped to bin codes
 * with the training edges (binary search, once per feature), then every split
 * is one integer comparison. To make the learned direction for missing values
 * branch-free, a row is expanded into an "extended row" of 2 * nFeatures + 1
 * ints, all biased by +32768: slot f holds bin(x) (-1 when missing), slot
 * nFeatures + f holds -bin(x) (-65536 when missing) and the last slot holds
 * the sentinel -65536. A node moves to the second child of its pair when
 * ext[slot] > thr, i.e. when (thr - ext[slot]) is negative:
 *  - missing go left:  slot f,      thr k;      pair (left, right): bin > k goes right, NaN (-1) stays left;
 *  - missing go right: slot nF + f, thr -k - 1; pair (right, left): -bin > -k-1 <=> bin <= k goes left,
 *    NaN (-65536) stays on the first child, the right one.
 * A leaf's word has slot -1 (and its leaf index in the low 16 bits) and its
 * child is itself: slot -1 reads the previous row's sentinel (or the pad
 * before row 0), the comparison is never true, so a finished walk stays put
 * and several walks can run in lockstep without branches.
 */

import type { Forest } from "../forest.ts";
import { binOf } from "./binning.ts";
import { encodePart } from "./format.ts";
import { OWN_FOREST_KIND, type ForestPart } from "./part.ts";
import { applyTopLabelMap, invalidTopLabelMap } from "./top-label.ts";
import { KERNEL_MAX_FEATURES, KERNEL_MAX_TREE_NODES, KernelForest } from "./kernel.ts";

/** How an OwnForest predicts (tests compare the two walks). */
export interface OwnForestRuntime {
  /** Use the WebAssembly kernel when the trees fit its layout (default true). */
  readonly kernel?: boolean;
  /**
   * Smallest forest (nodes) given a kernel (default KERNEL_MIN_NODES): a
   * kernel instance owns at least one 64 KB page of memory, and the
   * JavaScript walk of a small forest is already within a microsecond of it.
   */
  readonly kernelMinNodes?: number;
  /**
   * Smallest kernel forest (nodes) whose single rows walk 12 trees at a time
   * instead of 8 (default WIDE_SINGLE_MIN_NODES).
   */
  readonly wideSingleMinNodes?: number;
}

/** Default OwnForestRuntime.kernelMinNodes: 16,384 nodes fill the first 64 KB page. */
export const KERNEL_MIN_NODES = 16_384;
/**
 * Default OwnForestRuntime.wideSingleMinNodes: from 8 MB of nodes a single
 * row's walk waits on memory and 12 walks in flight beat 8 (measured: equal
 * at 1.5 M nodes, 12-14% faster at 4.8 M, 8% slower at 0.5 M).
 */
export const WIDE_SINGLE_MIN_NODES = 1 << 21;

/** Validation failure while expanding a part; the caller wraps it as needed. */
export class InvalidTreesError extends Error {
  override readonly name = "InvalidTreesError";
}

const BIAS = 32768;
const NAN_LOW = -65536 + BIAS;
const NAN_HIGH_SIDE = -1 + BIAS;
/** slot -1: negative (ends the walk); a leaf never moves (see the file comment). */
const LEAF_WORD = -1 << 16;
/** Leaf indices at or above this are kept in bigLeaf. */
const LEAF_INDEX_MAX = 0xffff;

/** Offset in `leaf` of the distribution of the leaf with word w at nodes[i]. */
function leafOffset(w: number, i: number, C: number, bigLeaf: Int32Array): number {
  const index = w & 0xffff;
  return index !== LEAF_INDEX_MAX ? index * C : bigLeaf[i >> 1]!;
}
/** Rows per block in predictProbaBatch (a power of two; see the sort keys). */
const BLOCK = 65536;
/** Blocks smaller than this are walked in input order. */
const MIN_SORT = 64;
/** Sort keys stay below this (times BLOCK, plus the row) so they are exact doubles. */
const KEY_SPAN = 2 ** 53 / BLOCK;
/** Splits above this depth rank the features for the sort key (weight 2^-depth). */
const USAGE_DEPTH = 8;

export class OwnForest implements Forest {
  readonly kind = OWN_FOREST_KIND;
  readonly nClasses: number;
  readonly nFeatures: number;
  readonly nTrees: number;
  readonly nNodes: number;
  /** The compact trees this forest was built from (what serialize() writes). */
  readonly part: ForestPart;

  private readonly edges: Float64Array;
  private readonly edgeOffset: Int32Array;
  /** Root node of each tree; a tree's nodes are contiguous (pairs in depth-first order). */
  private readonly roots: Int32Array;
  /**
   * Two Int32 per node (one cache line holds a node and its sibling): the
   * word, slot << 16 | (thr + 32768) for a split or LEAF_WORD | leaf index for
   * a leaf, then the index in `nodes` of the first child of its pair (split)
   * or of itself (leaf). Leaf index l is the distribution at leaf[l * C];
   * 0xffff means "look it up in bigLeaf" (only when there are that many).
   */
  private readonly nodes: Int32Array;
  /** Per node (index / 2): offset in `leaf` of leaves whose index does not fit 16 bits. */
  private readonly bigLeaf: Int32Array;
  /** Leaf class distributions: C one-hot rows for pure leaves, then the mixed ones. */
  private readonly leaf: Float32Array;
  /** Scratch extended row for predictProba (pad + 2nF + sentinel). */
  private readonly ext: Int32Array;
  private readonly acc: Float64Array;
  /** Features most used near the roots, most used first: the batch sort key. */
  private readonly keyFeatures: Int32Array;
  /** Values a key feature's code takes (bins + 1 for missing): the radix of its key digit. */
  private readonly keyRadix: Int32Array;
  /** Top-label calibration knots (empty: none). */
  private readonly calibration: Float32Array;

  /** The WebAssembly walk of these trees, when they fit its layout. */
  private readonly kernel: KernelForest | undefined;

  /** Expands and validates a part covering a whole forest; throws InvalidTreesError. */
  constructor(part: ForestPart, runtime: OwnForestRuntime = {}) {
    const C = part.nClasses;
    const nF = part.nFeatures;
    if (!(Number.isInteger(C) && C >= 1 && C <= 16383)) throw new InvalidTreesError(`invalid class count ${C}`);
    if (!(Number.isInteger(nF) && nF >= 1 && nF <= 16383)) throw new InvalidTreesError(`invalid feature count ${nF}`);
    if (part.nBins.length !== nF) throw new InvalidTreesError(`${part.nBins.length} bin counts for ${nF} features`);
    const edgeOffset = new Int32Array(nF + 1);
    for (let f = 0; f < nF; f++) {
      const nb = part.nBins[f]!;
      if (nb < 1 || nb > 256) throw new InvalidTreesError(`feature ${f} has ${nb} bins`);
      edgeOffset[f + 1] = edgeOffset[f]! + nb - 1;
    }
    if (edgeOffset[nF] !== part.edges.length) {
      throw new InvalidTreesError(`bin counts need ${edgeOffset[nF]} edges, found ${part.edges.length}`);
    }
    for (let f = 0; f < nF; f++) {
      for (let e = edgeOffset[f]! + 1; e < edgeOffset[f + 1]!; e++) {
        if (!(part.edges[e - 1]! < part.edges[e]!)) throw new InvalidTreesError(`edges of feature ${f} are not increasing`);
      }
    }
    const nTrees = part.treeNodeCounts.length;
    if (nTrees < 1) throw new InvalidTreesError("no trees");
    const codes = part.codes;
    const bins = part.bins;
    const nNodes = codes.length;
    const nMixed = part.mixed.length / C;
    if (!Number.isInteger(nMixed)) throw new InvalidTreesError(`mixed leaf data length ${part.mixed.length} is not a multiple of ${C}`);

    let maxCount = 0;
    for (let t = 0; t < nTrees; t++) maxCount = Math.max(maxCount, part.treeNodeCounts[t]!);
    // The kernel's 4-byte nodes when they fit (every offset fits a tree's
    // size), written straight into its memory; else the 8-byte JavaScript nodes.
    const kernel =
      runtime.kernel !== false && nF <= KERNEL_MAX_FEATURES && maxCount <= KERNEL_MAX_TREE_NODES && nNodes >= (runtime.kernelMinNodes ?? KERNEL_MIN_NODES)
        ? new KernelForest(nNodes, nTrees, C * C + part.mixed.length, nF, C, nNodes >= (runtime.wideSingleMinNodes ?? WIDE_SINGLE_MIN_NODES))
        : undefined;
    const words = kernel?.nodes() ?? new Int32Array(0);
    const roots = new Int32Array(nTrees);
    const nodes = new Int32Array(kernel === undefined ? 2 * nNodes : 0);
    const bigLeaf = new Int32Array(kernel === undefined && C + nMixed > LEAF_INDEX_MAX ? nNodes : 0);
    const leaf = kernel?.leaves() ?? new Float32Array(C * C + part.mixed.length);
    for (let c = 0; c < C; c++) leaf[c * C + c] = 1;
    leaf.set(part.mixed, C * C);

    const usage = new Float64Array(nF);
    // Replays the builder's depth-first order: codes come in that order, the
    // k-th split's children are the pair at 1 + 2k, first child visited first.
    const stack = new Int32Array(Math.min(maxCount, nNodes) + 2);
    const depthOf = new Int32Array(Math.min(maxCount, nNodes) + 2);
    let g = 0;
    let bi = 0;
    let mi = 0;
    for (let t = 0; t < nTrees; t++) {
      const count = part.treeNodeCounts[t]!;
      const base = g;
      if (!(count >= 1) || base + count > nNodes) throw new InvalidTreesError(`tree ${t} claims ${count} nodes, ${nNodes - base} left`);
      roots[t] = 2 * base;
      const end = base + count;
      let k = 0;
      let sp = 0;
      stack[sp] = base;
      depthOf[sp++] = 0;
      for (; g < end; g++) {
        if (sp === 0) throw new InvalidTreesError(`tree ${t} is complete after ${g - base} of its ${count} nodes`);
        const at = stack[--sp]!;
        const depth = depthOf[sp]!;
        const code = codes[g]!;
        if (code >= 0) {
          const f = code >> 1;
          if (f >= nF) throw new InvalidTreesError(`tree ${t} node ${g - base} splits on feature ${f} of ${nF}`);
          if (bi >= bins.length) throw new InvalidTreesError(`split bins end at node ${g - base} of tree ${t}`);
          const kb = bins[bi++]!;
          if (kb >= part.nBins[f]!) throw new InvalidTreesError(`tree ${t} node ${g - base} splits at bin ${kb} of ${part.nBins[f]}`);
          const pair = base + 1 + 2 * k++;
          if (pair + 1 >= end) throw new InvalidTreesError(`tree ${t} has more splits than its ${count} nodes allow`);
          if (kernel !== undefined) {
            // ext slot f holds bin + 1, slot nF + f holds 256 - bin (see kernel.ts)
            words[at] = (code & 1) === 1 ? ((nF + f) << 27) | ((255 - kb) << 18) | (pair - at) : (f << 27) | ((kb + 1) << 18) | (pair - at);
          } else {
            nodes[2 * at] = (code & 1) === 1 ? ((nF + f) << 16) | (-kb - 1 + BIAS) : (f << 16) | (kb + BIAS);
            nodes[2 * at + 1] = 2 * pair;
          }
          stack[sp] = pair + 1;
          depthOf[sp++] = depth + 1;
          stack[sp] = pair;
          depthOf[sp++] = depth + 1;
          if (depth < USAGE_DEPTH) usage[f]! += 1 / (1 << depth);
        } else {
          const lc = -1 - code;
          let index: number;
          if (lc < C) index = lc;
          else if (lc === C && mi < nMixed) index = C + mi++;
          else throw new InvalidTreesError(`tree ${t} node ${g - base} has leaf code ${code}`);
          if (kernel !== undefined) words[at] = KernelForest.leafWord(index);
          else {
            if (index < LEAF_INDEX_MAX) nodes[2 * at] = LEAF_WORD | index;
            else {
              nodes[2 * at] = LEAF_WORD | LEAF_INDEX_MAX;
              bigLeaf[at] = index * C;
            }
            nodes[2 * at + 1] = 2 * at;
          }
        }
      }
      if (sp !== 0) throw new InvalidTreesError(`tree ${t} has ${count} nodes but is incomplete`);
    }
    if (g !== nNodes) throw new InvalidTreesError(`${nNodes - g} nodes after the last tree`);
    if (bi !== bins.length) throw new InvalidTreesError(`${bins.length - bi} unused split bins`);
    if (mi !== nMixed) throw new InvalidTreesError(`${nMixed - mi} unused mixed leaves`);
    const badMap = invalidTopLabelMap(part.calibration, C);
    if (badMap !== undefined) throw new InvalidTreesError(badMap);

    this.nClasses = C;
    this.nFeatures = nF;
    this.nTrees = nTrees;
    this.nNodes = nNodes;
    this.part = part;
    this.edges = part.edges;
    this.edgeOffset = edgeOffset;
    this.roots = roots;
    this.kernel = kernel;
    if (kernel !== undefined) kernel.setRoots(Int32Array.from(roots, (r) => r >> 1));
    this.nodes = nodes;
    this.bigLeaf = bigLeaf;
    this.leaf = kernel === undefined ? leaf : new Float32Array(0);
    this.ext = new Int32Array(2 * nF + 2);
    this.acc = new Float64Array(C);
    const byUsage = Array.from({ length: nF }, (_, f) => f).sort((a, b) => usage[b]! - usage[a]! || a - b);
    // as many of them as fit an exact key, each digit in its own radix
    const keyFeatures: number[] = [];
    let span = 1;
    for (const f of byUsage) {
      const radix = part.nBins[f]! + 1;
      if (span * radix > KEY_SPAN) break;
      keyFeatures.push(f);
      span *= radix;
    }
    this.keyFeatures = Int32Array.from(keyFeatures);
    this.keyRadix = Int32Array.from(keyFeatures, (f) => part.nBins[f]! + 1);
    this.calibration = part.calibration;
  }

  /** True when probabilities go through the out-of-bag top-label calibration. */
  get calibrated(): boolean {
    return this.calibration.length > 0;
  }

  /**
   * Writes the extended row of X[xo .. xo + nF) to ext[o .. o + 2nF]; ext[o - 1]
   * must be a sentinel (the pad or the previous row's last slot). Batch rows
   * only: single rows (plain arrays) have their own copy so that each stays
   * monomorphic.
   */
  private binBatchRow(X: Float64Array, xo: number, ext: Int32Array, o: number): void {
    const nF = this.nFeatures;
    const edges = this.edges;
    const eo = this.edgeOffset;
    for (let f = 0; f < nF; f++) {
      const x = X[xo + f]!;
      if (x === x) {
        const b = binOf(edges, eo[f]!, eo[f + 1]!, x);
        ext[o + f] = b + BIAS;
        ext[o + nF + f] = -b + BIAS;
      } else {
        ext[o + f] = NAN_HIGH_SIDE;
        ext[o + nF + f] = NAN_LOW;
      }
    }
    ext[o + 2 * nF] = NAN_LOW;
  }

  /** binBatchRow for one plain-array row, into the scratch row at offset 1. */
  private binSingleRow(row: readonly number[]): void {
    const nF = this.nFeatures;
    const edges = this.edges;
    const eo = this.edgeOffset;
    const ext = this.ext;
    ext[0] = NAN_LOW;
    for (let f = 0; f < nF; f++) {
      const x = row[f]!;
      if (x === x) {
        const b = binOf(edges, eo[f]!, eo[f + 1]!, x);
        ext[1 + f] = b + BIAS;
        ext[1 + nF + f] = -b + BIAS;
      } else {
        ext[1 + f] = NAN_HIGH_SIDE;
        ext[1 + nF + f] = NAN_LOW;
      }
    }
    ext[1 + 2 * nF] = NAN_LOW;
  }

  /** True when predictions run in the WebAssembly kernel (the trees fit its layout). */
  get usesKernel(): boolean {
    return this.kernel !== undefined;
  }

  /** Bytes this forest holds for prediction (typed arrays or kernel memory). */
  get memoryBytes(): number {
    const js = this.nodes.byteLength + this.bigLeaf.byteLength + this.leaf.byteLength + this.edges.byteLength;
    return js + (this.kernel?.memoryBytes ?? 0);
  }

  /**
   * Writes the kernel ext row of X[xo .. xo + nF) to ext[o .. o + 2nF) (see
   * kernel.ts). One copy per encoding and input type on purpose: each stays
   * monomorphic (a shared one cost 30% of the batch, see binBatchRow).
   */
  private binKernelBatchRow(X: Float64Array, xo: number, ext: Int32Array, o: number): void {
    const nF = this.nFeatures;
    const edges = this.edges;
    const eo = this.edgeOffset;
    for (let f = 0; f < nF; f++) {
      const x = X[xo + f]!;
      if (x === x) {
        const b = binOf(edges, eo[f]!, eo[f + 1]!, x);
        ext[o + f] = b + 1;
        ext[o + nF + f] = 256 - b;
      } else {
        ext[o + f] = 0;
        ext[o + nF + f] = 0;
      }
    }
  }

  private predictKernel(kernel: KernelForest, row: readonly number[]): number[] {
    const nF = this.nFeatures;
    const edges = this.edges;
    const eo = this.edgeOffset;
    const ext = kernel.i32;
    const o = kernel.rowSlot;
    for (let f = 0; f < nF; f++) {
      const x = row[f]!;
      if (x === x) {
        const b = binOf(edges, eo[f]!, eo[f + 1]!, x);
        ext[o + f] = b + 1;
        ext[o + nF + f] = 256 - b;
      } else {
        ext[o + f] = 0;
        ext[o + nF + f] = 0;
      }
    }
    kernel.sumRow();
    const acc = kernel.f64;
    const a = kernel.rowSum;
    const C = this.nClasses;
    let sum = 0;
    for (let c = 0; c < C; c++) sum += acc[a + c]!;
    const out = new Array<number>(C);
    for (let c = 0; c < C; c++) out[c] = acc[a + c]! / sum;
    if (this.calibration.length > 0) applyTopLabelMap(this.calibration, out, 0, C);
    return out;
  }

  /** Class probabilities for one row: the mean of the trees' leaf distributions (then the calibration, if fitted). */
  predictProba(row: readonly number[]): number[] {
    const nF = this.nFeatures;
    if (row.length < nF) throw new RangeError(`row has ${row.length} features, expected ${nF}`);
    if (this.kernel !== undefined) return this.predictKernel(this.kernel, row);
    this.binSingleRow(row);
    const ext = this.ext;
    const C = this.nClasses;
    const acc = this.acc;
    acc.fill(0);
    const roots = this.roots;
    const nodes = this.nodes;
    const bigLeaf = this.bigLeaf;
    const leaf = this.leaf;
    const nTrees = this.nTrees;
    // Four trees in lockstep: independent walks overlap in the CPU.
    let t = 0;
    for (; t + 4 <= nTrees; t += 4) {
      let i0 = roots[t]!;
      let i1 = roots[t + 1]!;
      let i2 = roots[t + 2]!;
      let i3 = roots[t + 3]!;
      let w0 = nodes[i0]!;
      let w1 = nodes[i1]!;
      let w2 = nodes[i2]!;
      let w3 = nodes[i3]!;
      while ((w0 & w1 & w2 & w3) >= 0) {
        i0 = nodes[i0 + 1]! + ((((w0 & 0xffff) - ext[1 + (w0 >> 16)]!) >>> 31) << 1);
        i1 = nodes[i1 + 1]! + ((((w1 & 0xffff) - ext[1 + (w1 >> 16)]!) >>> 31) << 1);
        i2 = nodes[i2 + 1]! + ((((w2 & 0xffff) - ext[1 + (w2 >> 16)]!) >>> 31) << 1);
        i3 = nodes[i3 + 1]! + ((((w3 & 0xffff) - ext[1 + (w3 >> 16)]!) >>> 31) << 1);
        w0 = nodes[i0]!;
        w1 = nodes[i1]!;
        w2 = nodes[i2]!;
        w3 = nodes[i3]!;
      }
      const o0 = leafOffset(w0, i0, C, bigLeaf);
      const o1 = leafOffset(w1, i1, C, bigLeaf);
      const o2 = leafOffset(w2, i2, C, bigLeaf);
      const o3 = leafOffset(w3, i3, C, bigLeaf);
      for (let c = 0; c < C; c++) acc[c] = acc[c]! + leaf[o0 + c]! + leaf[o1 + c]! + leaf[o2 + c]! + leaf[o3 + c]!;
    }
    for (; t < nTrees; t++) {
      let i = roots[t]!;
      let w = nodes[i]!;
      while (w >= 0) {
        i = nodes[i + 1]! + ((((w & 0xffff) - ext[1 + (w >> 16)]!) >>> 31) << 1);
        w = nodes[i]!;
      }
      const o = leafOffset(w, i, C, bigLeaf);
      for (let c = 0; c < C; c++) acc[c]! += leaf[o + c]!;
    }
    let sum = 0;
    for (let c = 0; c < C; c++) sum += acc[c]!;
    const out = new Array<number>(C);
    for (let c = 0; c < C; c++) out[c] = acc[c]! / sum;
    if (this.calibration.length > 0) applyTopLabelMap(this.calibration, out, 0, C);
    return out;
  }

  /**
   * Class probabilities for nRows rows of a row-major Float64Array
   * (nRows x nFeatures, NaN = missing). Returns nRows x nClasses, row-major.
   * Same numbers as predictProba() row by row (leaves are summed in the same
   * order).
   */
  predictProbaBatch(X: Float64Array, nRows: number, nFeatures: number): Float64Array {
    const nF = this.nFeatures;
    if (nFeatures !== nF) throw new RangeError(`batch has ${nFeatures} features, expected ${nF}`);
    if (!(Number.isInteger(nRows) && nRows >= 0) || X.length < nRows * nF) {
      throw new RangeError(`batch of ${nRows} rows needs ${nRows * nF} values, got ${X.length}`);
    }
    const C = this.nClasses;
    const out = new Float64Array(nRows * C);
    if (this.kernel !== undefined) {
      this.predictBatchKernel(this.kernel, X, nRows, out);
      return out;
    }
    const roots = this.roots;
    const nodes = this.nodes;
    const bigLeaf = this.bigLeaf;
    const leaf = this.leaf;
    const nTrees = this.nTrees;
    const E = 2 * nF + 1;
    const blockRows = Math.min(BLOCK, nRows);
    const raw = new Int32Array(1 + blockRows * E);
    let ext = raw;
    const sorted = nRows >= MIN_SORT ? new Int32Array(1 + blockRows * E) : raw;
    raw[0] = NAN_LOW;
    sorted[0] = NAN_LOW;
    const keys = new Float64Array(blockRows);
    const order = new Int32Array(blockRows);
    const acc = new Float64Array(blockRows * C);
    for (let r0 = 0; r0 < nRows; r0 += BLOCK) {
      const nb = Math.min(BLOCK, nRows - r0);
      for (let r = 0; r < nb; r++) this.binBatchRow(X, (r0 + r) * nF, raw, 1 + r * E);
      if (nb >= MIN_SORT) {
        // Walk rows sorted by their bins of the most used features: neighbouring
        // rows then share most of their paths, so the eight lockstep walks end
        // at about the same depth and touch the same nodes.
        this.blockOrder(raw, 1, E, NAN_HIGH_SIDE, nb, keys, order);
        for (let p = 0; p < nb; p++) {
          const r = order[p]!;
          sorted.set(raw.subarray(1 + r * E, 1 + (r + 1) * E), 1 + p * E);
        }
        ext = sorted;
      } else {
        for (let p = 0; p < nb; p++) order[p] = p;
        ext = raw;
      }
      acc.fill(0);
      // Each tree walks the block's rows eight at a time in lockstep (the tree
      // stays in cache, eight independent walks in flight). Leaves are added
      // per row in tree order, as predictProba() does, so the sums are identical.
      for (let t = 0; t < nTrees; t++) {
        const root = roots[t]!;
        const rw = nodes[root]!;
        let r = 0;
        for (; r + 8 <= nb; r += 8) {
          const e0 = 1 + r * E;
          const e1 = e0 + E;
          const e2 = e1 + E;
          const e3 = e2 + E;
          const e4 = e3 + E;
          const e5 = e4 + E;
          const e6 = e5 + E;
          const e7 = e6 + E;
          let i0 = root;
          let i1 = root;
          let i2 = root;
          let i3 = root;
          let i4 = root;
          let i5 = root;
          let i6 = root;
          let i7 = root;
          let w0 = rw;
          let w1 = rw;
          let w2 = rw;
          let w3 = rw;
          let w4 = rw;
          let w5 = rw;
          let w6 = rw;
          let w7 = rw;
          while ((w0 & w1 & w2 & w3 & w4 & w5 & w6 & w7) >= 0) {
            i0 = nodes[i0 + 1]! + ((((w0 & 0xffff) - ext[e0 + (w0 >> 16)]!) >>> 31) << 1);
            i1 = nodes[i1 + 1]! + ((((w1 & 0xffff) - ext[e1 + (w1 >> 16)]!) >>> 31) << 1);
            i2 = nodes[i2 + 1]! + ((((w2 & 0xffff) - ext[e2 + (w2 >> 16)]!) >>> 31) << 1);
            i3 = nodes[i3 + 1]! + ((((w3 & 0xffff) - ext[e3 + (w3 >> 16)]!) >>> 31) << 1);
            i4 = nodes[i4 + 1]! + ((((w4 & 0xffff) - ext[e4 + (w4 >> 16)]!) >>> 31) << 1);
            i5 = nodes[i5 + 1]! + ((((w5 & 0xffff) - ext[e5 + (w5 >> 16)]!) >>> 31) << 1);
            i6 = nodes[i6 + 1]! + ((((w6 & 0xffff) - ext[e6 + (w6 >> 16)]!) >>> 31) << 1);
            i7 = nodes[i7 + 1]! + ((((w7 & 0xffff) - ext[e7 + (w7 >> 16)]!) >>> 31) << 1);
            w0 = nodes[i0]!;
            w1 = nodes[i1]!;
            w2 = nodes[i2]!;
            w3 = nodes[i3]!;
            w4 = nodes[i4]!;
            w5 = nodes[i5]!;
            w6 = nodes[i6]!;
            w7 = nodes[i7]!;
          }
          let a = r * C;
          const o0 = leafOffset(w0, i0, C, bigLeaf);
          for (let c = 0; c < C; c++) acc[a + c]! += leaf[o0 + c]!;
          a += C;
          const o1 = leafOffset(w1, i1, C, bigLeaf);
          for (let c = 0; c < C; c++) acc[a + c]! += leaf[o1 + c]!;
          a += C;
          const o2 = leafOffset(w2, i2, C, bigLeaf);
          for (let c = 0; c < C; c++) acc[a + c]! += leaf[o2 + c]!;
          a += C;
          const o3 = leafOffset(w3, i3, C, bigLeaf);
          for (let c = 0; c < C; c++) acc[a + c]! += leaf[o3 + c]!;
          a += C;
          const o4 = leafOffset(w4, i4, C, bigLeaf);
          for (let c = 0; c < C; c++) acc[a + c]! += leaf[o4 + c]!;
          a += C;
          const o5 = leafOffset(w5, i5, C, bigLeaf);
          for (let c = 0; c < C; c++) acc[a + c]! += leaf[o5 + c]!;
          a += C;
          const o6 = leafOffset(w6, i6, C, bigLeaf);
          for (let c = 0; c < C; c++) acc[a + c]! += leaf[o6 + c]!;
          a += C;
          const o7 = leafOffset(w7, i7, C, bigLeaf);
          for (let c = 0; c < C; c++) acc[a + c]! += leaf[o7 + c]!;
        }
        for (; r < nb; r++) {
          const e = 1 + r * E;
          let i = root;
          let w = rw;
          while (w >= 0) {
            i = nodes[i + 1]! + ((((w & 0xffff) - ext[e + (w >> 16)]!) >>> 31) << 1);
            w = nodes[i]!;
          }
          const o = leafOffset(w, i, C, bigLeaf);
          const a = r * C;
          for (let c = 0; c < C; c++) acc[a + c]! += leaf[o + c]!;
        }
      }
      this.writeBlock(acc, nb, order, r0, out);
    }
    return out;
  }

  /**
   * Fills order[0 .. nb) with the block's rows sorted by their codes of the
   * key features (row r's slots start at raw[first + r * stride]; code = slot
   * value - bias, 0 for missing). Neighbouring rows then share most of their
   * paths, so walks in lockstep end at about the same depth.
   */
  private blockOrder(raw: Int32Array, first: number, stride: number, bias: number, nb: number, keys: Float64Array, order: Int32Array): void {
    const keyFeatures = this.keyFeatures;
    const keyRadix = this.keyRadix;
    const nKey = keyFeatures.length;
    for (let r = 0; r < nb; r++) {
      const o = first + r * stride;
      let key = 0;
      for (let q = 0; q < nKey; q++) key = key * keyRadix[q]! + (raw[o + keyFeatures[q]!]! - bias);
      keys[r] = key * BLOCK + r;
    }
    const ks = keys.subarray(0, nb).sort();
    for (let p = 0; p < nb; p++) order[p] = ks[p]! % BLOCK;
  }

  /** Normalises the block's class sums (row p of acc is input row r0 + order[p]) into out, then calibrates. */
  private writeBlock(acc: Float64Array, nb: number, order: Int32Array, r0: number, out: Float64Array): void {
    const C = this.nClasses;
    const calibrated = this.calibration.length > 0;
    for (let p = 0; p < nb; p++) {
      const a = p * C;
      const oo = (r0 + order[p]!) * C;
      let sum = 0;
      for (let c = 0; c < C; c++) sum += acc[a + c]!;
      for (let c = 0; c < C; c++) out[oo + c] = acc[a + c]! / sum;
      if (calibrated) applyTopLabelMap(this.calibration, out, oo, C);
    }
  }

  /** predictProbaBatch in the kernel: blocks of rows binned, sorted as in the JavaScript walk, walked tree by tree. */
  private predictBatchKernel(kernel: KernelForest, X: Float64Array, nRows: number, out: Float64Array): void {
    const nF = this.nFeatures;
    const E = 2 * nF;
    const blockRows = Math.min(BLOCK, nRows);
    const raw = new Int32Array(blockRows * E);
    const keys = new Float64Array(blockRows);
    const order = new Int32Array(blockRows);
    for (let r0 = 0; r0 < nRows; r0 += BLOCK) {
      const nb = Math.min(BLOCK, nRows - r0);
      for (let r = 0; r < nb; r++) this.binKernelBatchRow(X, (r0 + r) * nF, raw, r * E);
      const dst = kernel.blockSlots(blockRows);
      if (nb >= MIN_SORT) {
        this.blockOrder(raw, 0, E, 0, nb, keys, order);
        for (let p = 0; p < nb; p++) {
          const r = order[p]!;
          dst.set(raw.subarray(r * E, (r + 1) * E), p * E);
        }
      } else {
        for (let p = 0; p < nb; p++) order[p] = p;
        dst.set(raw.subarray(0, nb * E));
      }
      this.writeBlock(kernel.sumBlock(nb), nb, order, r0, out);
    }
  }

  /** Compact binary blob (see format.ts). */
  serialize(): Uint8Array {
    return encodePart(this.part);
  }
}
