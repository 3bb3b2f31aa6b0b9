/**
 * The fitted forest: compact trees (what is stored and merged) expanded into
 * flat typed arrays laid out for fast traversal.
 *
 * Prediction works in bin space: a row's values are first mapped to bin codes
 * with the training edges (binary search, once per feature), then every split
 * is an integer comparison. To make the learned direction for missing values
 * branch-free, each feature appears twice in an "extended row" of 2 * nFeatures
 * ints: slot f holds bin(x) (or -1 when missing) and slot nFeatures + f holds
 * -bin(x) (or -65536 when missing). A node always moves to the second child of
 * its pair when ext[feat] > thr:
 *  - missing go left:  feat = f,      thr = k;      pair (left, right): bin > k goes right, NaN (-1) stays left;
 *  - missing go right: feat = nF + f, thr = -k - 1; pair (right, left): -bin > -k-1 <=> bin <= k goes left,
 *    NaN (-65536) stays on the first child, the right one.
 */

import type { Forest } from "../forest.ts";
import { binOf } from "./binning.ts";
import { encodePart } from "./format.ts";
import { OWN_FOREST_KIND, type ForestPart } from "./part.ts";

/** Validation failure while expanding a part; the caller wraps it as needed. */
export class InvalidTreesError extends Error {
  override readonly name = "InvalidTreesError";
}

const NAN_LOW = -65536;
/** Leaf word: sign bit set (stops the walk), slot 2nF is filled in per forest, threshold 0. */
const LEAF_FLAG = 1 << 31;
const EXT_STRIDE_EXTRA = 1;

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
  /** Word offset (2 * node index) of each tree's root in `nodes`. */
  private readonly roots: Int32Array;
  /**
   * Two Int32 words per node. Split: [slot << 16 | (thr & 0xffff), 2 * firstChild];
   * leaf: [LEAF_WORD, 2 * itself] (a self-loop whose comparison never moves).
   */
  private readonly nodes: Int32Array;
  /** Per node: offset of its class distribution in `leaf` (leaves only). */
  private readonly leafOf: Int32Array;
  /** Leaf class distributions: C one-hot rows for pure leaves, then mixed ones. */
  private readonly leaf: Float32Array;
  private readonly ext: Int32Array;
  private readonly acc: Float64Array;

  /** Expands and validates a part covering trees [0, n); throws InvalidTreesError. */
  constructor(part: ForestPart) {
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

    const roots = new Int32Array(nTrees);
    const nodes = new Int32Array(2 * nNodes);
    const leafOf = new Int32Array(nNodes);
    const leafWord = LEAF_FLAG | ((2 * nF) << 16);
    const leaf = new Float32Array(C * C + part.mixed.length);
    for (let c = 0; c < C; c++) leaf[c * C + c] = 1;
    leaf.set(part.mixed, C * C);

    let g = 0;
    let bi = 0;
    let mi = 0;
    for (let t = 0; t < nTrees; t++) {
      const count = part.treeNodeCounts[t]!;
      const base = g;
      if (!(count >= 1) || base + count > nNodes) throw new InvalidTreesError(`tree ${t} claims ${count} nodes, ${nNodes - base} left`);
      roots[t] = 2 * base;
      let rank = 0;
      const end = base + count;
      for (; g < end; g++) {
        const code = codes[g]!;
        if (code >= 0) {
          const f = code >> 1;
          if (f >= nF) throw new InvalidTreesError(`tree ${t} node ${g - base} splits on feature ${f} of ${nF}`);
          if (bi >= bins.length) throw new InvalidTreesError(`split bins end at node ${g - base} of tree ${t}`);
          const k = bins[bi++]!;
          if (k >= part.nBins[f]!) throw new InvalidTreesError(`tree ${t} node ${g - base} splits at bin ${k} of ${part.nBins[f]}`);
          nodes[2 * g] = (code & 1) === 1 ? ((nF + f) << 16) | ((-k - 1) & 0xffff) : (f << 16) | k;
          nodes[2 * g + 1] = 2 * (base + 1 + 2 * rank);
          rank++;
        } else {
          const lc = -1 - code;
          nodes[2 * g] = leafWord;
          nodes[2 * g + 1] = 2 * g;
          if (lc < C) leafOf[g] = lc * C;
          else if (lc === C && mi < nMixed) leafOf[g] = C * C + C * mi++;
          else throw new InvalidTreesError(`tree ${t} node ${g - base} has leaf code ${code}`);
        }
      }
      if (count !== 1 + 2 * rank) throw new InvalidTreesError(`tree ${t} has ${count} nodes but ${rank} splits`);
    }
    if (g !== nNodes) throw new InvalidTreesError(`${nNodes - g} nodes after the last tree`);
    if (bi !== bins.length) throw new InvalidTreesError(`${bins.length - bi} unused split bins`);
    if (mi !== nMixed) throw new InvalidTreesError(`${nMixed - mi} unused mixed leaves`);

    this.nClasses = C;
    this.nFeatures = nF;
    this.nTrees = nTrees;
    this.nNodes = nNodes;
    this.part = part;
    this.edges = part.edges;
    this.edgeOffset = edgeOffset;
    this.roots = roots;
    this.nodes = nodes;
    this.leafOf = leafOf;
    this.leaf = leaf;
    this.ext = new Int32Array(EXT_STRIDE_EXTRA + 2 * nF);
    this.ext[2 * nF] = NAN_LOW;
    this.acc = new Float64Array(C);
  }

  /** Fills ext[o .. o + 2nF] with the extended bin row of X[xo .. xo + nF) (see the file comment). */
  private binRow(X: ArrayLike<number>, xo: number, ext: Int32Array, o: number): void {
    const nF = this.nFeatures;
    const edges = this.edges;
    const eo = this.edgeOffset;
    for (let f = 0; f < nF; f++) {
      const x = X[xo + f]!;
      if (x === x) {
        const b = binOf(edges, eo[f]!, eo[f + 1]!, x);
        ext[o + f] = b;
        ext[o + nF + f] = -b;
      } else {
        ext[o + f] = -1;
        ext[o + nF + f] = NAN_LOW;
      }
    }
    ext[o + 2 * nF] = NAN_LOW;
  }

  /** Class probabilities for one row (mean of the trees' leaf distributions). */
  predictProba(row: readonly number[]): number[] {
    const nF = this.nFeatures;
    if (row.length < nF) throw new RangeError(`row has ${row.length} features, expected ${nF}`);
    const ext = this.ext;
    this.binRow(row, 0, ext, 0);
    const C = this.nClasses;
    const acc = this.acc;
    acc.fill(0);
    const roots = this.roots;
    const nodes = this.nodes;
    const leafOf = this.leafOf;
    const leaf = this.leaf;
    const nTrees = this.nTrees;
    // Four trees at a time: independent walks overlap in the CPU.
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
        i0 = nodes[i0 + 1]! + (((((w0 << 16) >> 16) - ext[(w0 >>> 16) & 0x7fff]!) >>> 31) << 1);
        i1 = nodes[i1 + 1]! + (((((w1 << 16) >> 16) - ext[(w1 >>> 16) & 0x7fff]!) >>> 31) << 1);
        i2 = nodes[i2 + 1]! + (((((w2 << 16) >> 16) - ext[(w2 >>> 16) & 0x7fff]!) >>> 31) << 1);
        i3 = nodes[i3 + 1]! + (((((w3 << 16) >> 16) - ext[(w3 >>> 16) & 0x7fff]!) >>> 31) << 1);
        w0 = nodes[i0]!;
        w1 = nodes[i1]!;
        w2 = nodes[i2]!;
        w3 = nodes[i3]!;
      }
      const o0 = leafOf[i0 >> 1]!;
      const o1 = leafOf[i1 >> 1]!;
      const o2 = leafOf[i2 >> 1]!;
      const o3 = leafOf[i3 >> 1]!;
      for (let c = 0; c < C; c++) acc[c] = acc[c]! + leaf[o0 + c]! + leaf[o1 + c]! + leaf[o2 + c]! + leaf[o3 + c]!;
    }
    for (; t < nTrees; t++) {
      let i = roots[t]!;
      let w = nodes[i]!;
      while (w >= 0) {
        i = nodes[i + 1]! + (((((w << 16) >> 16) - ext[w >>> 16]!) >>> 31) << 1);
        w = nodes[i]!;
      }
      const o = leafOf[i >> 1]!;
      for (let c = 0; c < C; c++) acc[c]! += leaf[o + c]!;
    }
    let sum = 0;
    for (let c = 0; c < C; c++) sum += acc[c]!;
    const out = new Array<number>(C);
    for (let c = 0; c < C; c++) out[c] = acc[c]! / sum;
    return out;
  }

  /**
   * Class probabilities for nRows rows of a row-major Float64Array
   * (nRows x nFeatures, NaN = missing). Returns nRows x nClasses, row-major.
   * Same numbers as predictProba() row by row.
   */
  predictProbaBatch(X: Float64Array, nRows: number, nFeatures: number): Float64Array {
    const nF = this.nFeatures;
    if (nFeatures !== nF) throw new RangeError(`batch has ${nFeatures} features, expected ${nF}`);
    if (X.length < nRows * nF) throw new RangeError(`batch of ${nRows} rows needs ${nRows * nF} values, got ${X.length}`);
    const C = this.nClasses;
    const out = new Float64Array(nRows * C);
    const roots = this.roots;
    const nodes = this.nodes;
    const leafOf = this.leafOf;
    const leaf = this.leaf;
    const nTrees = this.nTrees;
    const E = 2 * nF + 1;
    const BLOCK = 512;
    const ext = new Int32Array(BLOCK * E);
    const acc = new Float64Array(BLOCK * C);
    for (let r0 = 0; r0 < nRows; r0 += BLOCK) {
      const nb = Math.min(BLOCK, nRows - r0);
      for (let r = 0; r < nb; r++) this.binRow(X, (r0 + r) * nF, ext, r * E);
      acc.fill(0);
      for (let t = 0; t < nTrees; t += 4) {
        const tEnd = Math.min(nTrees, t + 4);
        // Groups of four trees, one row at a time: four independent walks in flight,
        // and the leaves are summed in tree order, exactly as predictProba() does.
        if (tEnd - t === 4) {
          const rt0 = roots[t]!;
          const rt1 = roots[t + 1]!;
          const rt2 = roots[t + 2]!;
          const rt3 = roots[t + 3]!;
          const rw0 = nodes[rt0]!;
          const rw1 = nodes[rt1]!;
          const rw2 = nodes[rt2]!;
          const rw3 = nodes[rt3]!;
          for (let r = 0; r < nb; r++) {
            const e = r * E;
            let i0 = rt0;
            let i1 = rt1;
            let i2 = rt2;
            let i3 = rt3;
            let w0 = rw0;
            let w1 = rw1;
            let w2 = rw2;
            let w3 = rw3;
            while ((w0 & w1 & w2 & w3) >= 0) {
              i0 = nodes[i0 + 1]! + (((((w0 << 16) >> 16) - ext[e + ((w0 >>> 16) & 0x7fff)]!) >>> 31) << 1);
              i1 = nodes[i1 + 1]! + (((((w1 << 16) >> 16) - ext[e + ((w1 >>> 16) & 0x7fff)]!) >>> 31) << 1);
              i2 = nodes[i2 + 1]! + (((((w2 << 16) >> 16) - ext[e + ((w2 >>> 16) & 0x7fff)]!) >>> 31) << 1);
              i3 = nodes[i3 + 1]! + (((((w3 << 16) >> 16) - ext[e + ((w3 >>> 16) & 0x7fff)]!) >>> 31) << 1);
              w0 = nodes[i0]!;
              w1 = nodes[i1]!;
              w2 = nodes[i2]!;
              w3 = nodes[i3]!;
            }
            const o0 = leafOf[i0 >> 1]!;
            const o1 = leafOf[i1 >> 1]!;
            const o2 = leafOf[i2 >> 1]!;
            const o3 = leafOf[i3 >> 1]!;
            const a = r * C;
            for (let c = 0; c < C; c++) acc[a + c] = acc[a + c]! + leaf[o0 + c]! + leaf[o1 + c]! + leaf[o2 + c]! + leaf[o3 + c]!;
          }
        } else {
          for (let tt = t; tt < tEnd; tt++) {
            const root = roots[tt]!;
            const rootWord = nodes[root]!;
            for (let r = 0; r < nb; r++) {
              const e = r * E;
              let i = root;
              let w = rootWord;
              while (w >= 0) {
                i = nodes[i + 1]! + (((((w << 16) >> 16) - ext[e + (w >>> 16)]!) >>> 31) << 1);
                w = nodes[i]!;
              }
              const o = leafOf[i >> 1]!;
              const a = r * C;
              for (let c = 0; c < C; c++) acc[a + c]! += leaf[o + c]!;
            }
          }
        }
      }
      for (let r = 0; r < nb; r++) {
        const a = r * C;
        const oo = (r0 + r) * C;
        let sum = 0;
        for (let c = 0; c < C; c++) sum += acc[a + c]!;
        for (let c = 0; c < C; c++) out[oo + c] = acc[a + c]! / sum;
      }
    }
    return out;
  }

  /** Compact binary blob (see format.ts). */
  serialize(): Uint8Array {
    return encodePart(this.part);
  }
}
