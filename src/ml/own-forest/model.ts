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
  private readonly roots: Int32Array;
  private readonly feat: Int16Array;
  private readonly thr: Int16Array;
  private readonly child: Int32Array;
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
    const feat = new Int16Array(nNodes);
    const thr = new Int16Array(nNodes);
    const child = new Int32Array(nNodes);
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
      roots[t] = base;
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
          if ((code & 1) === 1) {
            feat[g] = nF + f;
            thr[g] = -k - 1;
          } else {
            feat[g] = f;
            thr[g] = k;
          }
          child[g] = base + 1 + 2 * rank;
          rank++;
        } else {
          const lc = -1 - code;
          feat[g] = -1;
          if (lc < C) child[g] = lc * C;
          else if (lc === C && mi < nMixed) child[g] = C * C + C * mi++;
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
    this.feat = feat;
    this.thr = thr;
    this.child = child;
    this.leaf = leaf;
    this.ext = new Int32Array(2 * nF);
    this.acc = new Float64Array(C);
  }

  /** Class probabilities for one row (mean of the trees' leaf distributions). */
  predictProba(row: readonly number[]): number[] {
    const nF = this.nFeatures;
    if (row.length < nF) throw new RangeError(`row has ${row.length} features, expected ${nF}`);
    const ext = this.ext;
    const edges = this.edges;
    const eo = this.edgeOffset;
    for (let f = 0; f < nF; f++) {
      const x = row[f]!;
      if (x === x) {
        const b = binOf(edges, eo[f]!, eo[f + 1]!, x);
        ext[f] = b;
        ext[nF + f] = -b;
      } else {
        ext[f] = -1;
        ext[nF + f] = NAN_LOW;
      }
    }
    const C = this.nClasses;
    const acc = this.acc;
    acc.fill(0);
    const roots = this.roots;
    const feat = this.feat;
    const thr = this.thr;
    const child = this.child;
    const leaf = this.leaf;
    const nTrees = this.nTrees;
    for (let t = 0; t < nTrees; t++) {
      let i = roots[t]!;
      let fi = feat[i]!;
      while (fi >= 0) {
        i = child[i]! + (ext[fi]! > thr[i]! ? 1 : 0);
        fi = feat[i]!;
      }
      const o = child[i]!;
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
   */
  predictProbaBatch(X: Float64Array, nRows: number, nFeatures: number): Float64Array {
    const nF = this.nFeatures;
    if (nFeatures !== nF) throw new RangeError(`batch has ${nFeatures} features, expected ${nF}`);
    if (X.length < nRows * nF) throw new RangeError(`batch of ${nRows} rows needs ${nRows * nF} values, got ${X.length}`);
    const C = this.nClasses;
    const out = new Float64Array(nRows * C);
    const edges = this.edges;
    const eo = this.edgeOffset;
    const roots = this.roots;
    const feat = this.feat;
    const thr = this.thr;
    const child = this.child;
    const leaf = this.leaf;
    const nTrees = this.nTrees;
    const E = 2 * nF;
    const BLOCK = 256;
    const ext = new Int32Array(BLOCK * E);
    for (let r0 = 0; r0 < nRows; r0 += BLOCK) {
      const nb = Math.min(BLOCK, nRows - r0);
      for (let r = 0; r < nb; r++) {
        const xo = (r0 + r) * nF;
        const eoff = r * E;
        for (let f = 0; f < nF; f++) {
          const x = X[xo + f]!;
          if (x === x) {
            const b = binOf(edges, eo[f]!, eo[f + 1]!, x);
            ext[eoff + f] = b;
            ext[eoff + nF + f] = -b;
          } else {
            ext[eoff + f] = -1;
            ext[eoff + nF + f] = NAN_LOW;
          }
        }
      }
      for (let t = 0; t < nTrees; t++) {
        const root = roots[t]!;
        const rootFeat = feat[root]!;
        for (let r = 0; r < nb; r++) {
          const eoff = r * E;
          let i = root;
          let fi = rootFeat;
          while (fi >= 0) {
            i = child[i]! + (ext[eoff + fi]! > thr[i]! ? 1 : 0);
            fi = feat[i]!;
          }
          const o = child[i]!;
          const oo = (r0 + r) * C;
          for (let c = 0; c < C; c++) out[oo + c]! += leaf[o + c]!;
        }
      }
    }
    for (let r = 0; r < nRows; r++) {
      const oo = r * C;
      let sum = 0;
      for (let c = 0; c < C; c++) sum += out[oo + c]!;
      for (let c = 0; c < C; c++) out[oo + c] = out[oo + c]! / sum;
    }
    return out;
  }

  /** Compact binary blob (see format.ts). */
  serialize(): Uint8Array {
    return encodePart(this.part);
  }
}
