/**
 * Tree growing on pre-binned data. Per node and candidate feature we build a
 * class histogram over the feature's bins in one pass over the node's rows
 * (or, for a node much smaller than the feature's bin count, sort the node's
 * bin codes instead), then evaluate every threshold and both directions for
 * missing values from cumulative counts: O(rows + bins) per feature, never a
 * rescan per threshold.
 *
 * Trees are grown depth-first (first child of a pair before the second) and
 * every split appends its two children as a consecutive pair, so the k-th
 * split in that order has its children at 1 + 2k. A tree is therefore fully
 * described, in that (pre-)order, by one Int16 code per node plus one Uint8
 * bin per split node, which is what we store; model.ts replays the order to
 * rebuild the child links. Depth-first pairs keep a root-to-leaf path in few
 * cache lines, which matters once a forest outgrows the CPU caches.
 *
 * Node code: c >= 0 is a split on feature c >> 1, missing values go right
 * when (c & 1) === 1; rows with bin <= k go left. The child pair is ordered
 * (left, right) when missing go left and (right, left) when missing go right
 * (see model.ts for why). c < 0 is a leaf: -1 - c < nClasses is a pure leaf
 * of that class; -1 - nClasses is a mixed leaf whose distribution is the
 * next nClasses floats of `mixed`.
 */

import { NAN_BIN, type Binning } from "./binning.ts";
import { Mulberry32, treeSeed } from "./rng.ts";

/** Rows at most that collect out-of-bag votes (evenly spaced). */
export const OOB_ROWS = 10_000;
/** Fixed-point scale of out-of-bag votes: integer sums are exact in any order. */
export const OOB_SCALE = 1 << 20;

/** Resolved hyper-parameters (see own-forest.ts for the public options). */
export interface TreeParams {
  readonly seed: number;
  readonly maxDepth: number;
  readonly minSamplesLeaf: number;
  readonly mtry: number;
  readonly bootstrap: boolean;
  /** Called after each tree, e.g. to give the CPU back to the event loop's process. */
  readonly afterTree?: () => void;
}

/** The trees [treeStart, treeEnd) in compact form. */
export interface CompactTrees {
  readonly treeNodeCounts: Int32Array;
  readonly codes: Int16Array;
  readonly bins: Uint8Array;
  readonly mixed: Float32Array;
}

class Int16Buf {
  a = new Int16Array(1024);
  n = 0;
  push(v: number): void {
    if (this.n === this.a.length) {
      const b = new Int16Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = v;
  }
  trim(): Int16Array {
    return this.a.slice(0, this.n);
  }
}

class Uint8Buf {
  a = new Uint8Array(1024);
  n = 0;
  push(v: number): void {
    if (this.n === this.a.length) {
      const b = new Uint8Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = v;
  }
  trim(): Uint8Array {
    return this.a.slice(0, this.n);
  }
}

class Float32Buf {
  a = new Float32Array(256);
  n = 0;
  push(v: number): void {
    if (this.n === this.a.length) {
      const b = new Float32Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = v;
  }
  trim(): Float32Array {
    return this.a.slice(0, this.n);
  }
}

/** Sorts keys[0..m) ascending (insertion sort for small m, native otherwise). */
function sortKeys(keys: Int32Array, m: number): void {
  if (m > 24) {
    keys.subarray(0, m).sort();
    return;
  }
  for (let i = 1; i < m; i++) {
    const k = keys[i]!;
    let j = i - 1;
    while (j >= 0 && keys[j]! > k) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = k;
  }
}

/** Where each record field lives: word index, bit shift and mask, per field. */
interface RecordLayout {
  /** Int32 words per record. */
  readonly K: number;
  /** Fields 0..nF-1 are the features' bin codes, nF the class, nF + 1 the weight. */
  readonly fieldWord: Int32Array;
  readonly fieldShift: Int32Array;
  readonly fieldMask: Int32Array;
  readonly maxWeight: number;
}

const bitsFor = (maxValue: number): number => Math.max(1, 32 - Math.clz32(maxValue));

/**
 * Packs the fields first-fit into 32-bit words without crossing a word. A
 * feature's codes are its value bins and, if it has missing values, one more
 * code for "missing"; the weight field gets at least 4 bits.
 */
function recordLayout(nBins: Uint16Array, hasNaN: Uint8Array, nClasses: number): RecordLayout {
  const nF = nBins.length;
  const widths: number[] = [];
  for (let f = 0; f < nF; f++) widths.push(bitsFor(hasNaN[f] === 1 ? nBins[f]! : nBins[f]! - 1));
  widths.push(bitsFor(nClasses - 1));
  const fieldWord = new Int32Array(nF + 2);
  const fieldShift = new Int32Array(nF + 2);
  const fieldMask = new Int32Array(nF + 2);
  const used: number[] = [];
  const place = (field: number, width: number): void => {
    let word = used.findIndex((u) => u + width <= 32);
    if (word < 0) {
      word = used.length;
      used.push(0);
    }
    fieldWord[field] = word;
    fieldShift[field] = used[word]!;
    fieldMask[field] = width === 32 ? -1 : (1 << width) - 1;
    used[word]! += width;
  };
  for (let f = 0; f <= nF; f++) place(f, widths[f]!);
  // the weight takes what is left of a word if that is at least 4 bits, else 8 bits
  const room = used.reduce((best, u) => Math.max(best, 32 - u), 0);
  const weightBits = room >= 4 ? Math.min(room, 16) : 8;
  place(nF + 1, weightBits);
  return { K: used.length, fieldWord, fieldShift, fieldMask, maxWeight: (1 << weightBits) - 1 };
}

/**
 * Grows trees [treeStart, treeEnd) on column-major bins Xb (nRows x nFeatures)
 * with labels y in 0..nClasses-1. With oobSums (nRows x nClasses), each tree
 * also adds its leaf distribution, times OOB_SCALE and rounded, to the rows
 * its bootstrap left out (every oobStride-th row, see OOB_ROWS): what the
 * calibration is fitted on.
 */
export function growTrees(
  Xb: Uint8Array,
  nRows: number,
  binning: Binning,
  y: Uint16Array,
  nClasses: number,
  params: TreeParams,
  treeStart: number,
  treeEnd: number,
  oobSums: Float64Array | null = null,
): CompactTrees {
  const n = nRows;
  const nF = binning.nFeatures;
  const C = nClasses;
  const nBins = binning.nBins;
  const hasNaN = binning.hasNaN;
  const binValueOffset = binning.binValueOffset;
  const binValue = binning.binValue;
  const { maxDepth, minSamplesLeaf: minLeaf, mtry, bootstrap } = params;
  const useMask = nF <= 31;

  // Rows of the current tree as records in node order, partitioned in place:
  // bit fields for the row's bin codes, its class and its bootstrap weight in
  // K Int32 words (one word for the service's 5 features). Sequential access
  // in the histogram and partition loops, no indirection, few bytes to move.
  const layout = recordLayout(nBins, hasNaN, C);
  const { K, fieldWord, fieldShift, fieldMask, maxWeight } = layout;
  const wC = fieldWord[nF]!;
  const sC = fieldShift[nF]!;
  const mC = fieldMask[nF]!;
  const wW = fieldWord[nF + 1]!;
  const sW = fieldShift[nF + 1]!;
  const mW = fieldMask[nF + 1]!;
  // every row's record without its weight, built once for all trees
  const base = new Int32Array(n * K);
  for (let r = 0; r < n; r++) {
    const o = r * K;
    for (let f = 0; f < nF; f++) {
      const raw = Xb[f * n + r]!;
      // missing values take the code just above the feature's value bins
      const code = raw === NAN_BIN && hasNaN[f] === 1 ? nBins[f]! : raw;
      base[o + fieldWord[f]!]! |= code << fieldShift[f]!;
    }
    base[o + wC]! |= y[r]! << sC;
  }
  const w = new Int32Array(n);
  let recCap = n;
  let xw = new Int32Array(recCap * K);
  // every leaf holds at least one record, so a tree has at most 2 * records - 1 nodes
  let cap = 2 * n + 1;
  let nodeLo = new Int32Array(cap);
  let nodeHi = new Int32Array(cap);
  let nodeDepth = new Int32Array(cap);
  let nodeMask = new Int32Array(cap);
  let stack = new Int32Array(cap);
  let nodeTot = new Float64Array(cap * C);
  // the tree as it grows, by node id, for the out-of-bag walk: split feature
  // (-1 for a leaf), bin, missing-goes-right flag and first child of the pair
  const oob = bootstrap && oobSums !== null ? oobSums : undefined;
  if (oob !== undefined && oob.length !== n * C) throw new RangeError(`out-of-bag sums need ${n * C} floats, got ${oob.length}`);
  let nodeF = new Int32Array(oob === undefined ? 0 : cap);
  let nodeInfo = new Int32Array(nodeF.length);
  let nodeChild = new Int32Array(nodeF.length);
  // out-of-bag votes for at most OOB_ROWS evenly spaced rows: enough to fit a calibration
  const oobStride = Math.max(1, Math.ceil(n / OOB_ROWS));

  const hist = new Int32Array(256 * C);
  const ub = new Int32Array(256);
  const uw = new Float64Array(256);
  const uh = new Float64Array(256 * C);
  const keys = new Int32Array(256);
  const N = new Float64Array(C);
  const L = new Float64Array(C);
  const T = new Float64Array(C);
  const bestL = new Float64Array(C);
  const perm = new Int32Array(nF);

  const codes = new Int16Buf();
  const bins = new Uint8Buf();
  const mixed = new Float32Buf();
  const treeNodeCounts = new Int32Array(treeEnd - treeStart);

  for (let t = treeStart; t < treeEnd; t++) {
    const rng = new Mulberry32(treeSeed(params.seed, t));
    if (bootstrap) {
      w.fill(0);
      for (let i = 0; i < n; i++) w[rng.nextInt(n)]! += 1;
    } else {
      w.fill(1);
    }
    let m0 = 0;
    for (let c = 0; c < C; c++) nodeTot[c] = 0;
    for (let r = 0; r < n; r++) {
      let wr = w[r]!;
      if (wr === 0) continue;
      nodeTot[y[r]!]! += wr;
      // a weight above the weight field's maximum (a row drawn that often:
      // not seen in practice) is split over several records
      while (wr > 0) {
        const take = wr > maxWeight ? maxWeight : wr;
        wr -= take;
        if (m0 === recCap) {
          recCap *= 2;
          const xw2 = new Int32Array(recCap * K);
          xw2.set(xw);
          xw = xw2;
        }
        const o = m0++ * K;
        const ob = r * K;
        for (let q = 0; q < K; q++) xw[o + q] = base[ob + q]!;
        xw[o + wW]! |= take << sW;
      }
    }
    if (2 * m0 + 1 > cap) {
      const rootTot = nodeTot.slice(0, C);
      cap = 2 * m0 + 1;
      nodeLo = new Int32Array(cap);
      nodeHi = new Int32Array(cap);
      nodeDepth = new Int32Array(cap);
      nodeMask = new Int32Array(cap);
      stack = new Int32Array(cap);
      nodeTot = new Float64Array(cap * C);
      nodeTot.set(rootTot);
      if (oob !== undefined) {
        nodeF = new Int32Array(cap);
        nodeInfo = new Int32Array(cap);
        nodeChild = new Int32Array(cap);
      }
    }
    nodeLo[0] = 0;
    nodeHi[0] = m0;
    nodeDepth[0] = 0;
    nodeMask[0] = 0;
    let nNodes = 1;
    let sp = 0;
    stack[sp++] = 0;

    while (sp > 0) {
      const node = stack[--sp]!;
      const lo = nodeLo[node]!;
      const hi = nodeHi[node]!;
      const depth = nodeDepth[node]!;
      const tOff = node * C;
      let nT = 0;
      let nonZero = 0;
      let anyClass = 0;
      for (let c = 0; c < C; c++) {
        const v = nodeTot[tOff + c]!;
        T[c] = v;
        nT += v;
        if (v > 0) {
          nonZero++;
          anyClass = c;
        }
      }

      let bestF = -1;
      let bestK = 0;
      let bestHiBin = -1;
      let bestNanRight = 0;
      let mask = nodeMask[node]!;
      if (nonZero > 1 && depth < maxDepth && nT >= 2 * minLeaf) {
        let bestScore = -Infinity;
        for (let j = 0; j < nF; j++) perm[j] = j;
        // As scikit-learn: draw up to mtry features (constant ones count),
        // and keep drawing past mtry only until one non-constant feature is found.
        let drawn = 0;
        let found = 0;
        for (let j = 0; j < nF && (drawn < mtry || found === 0); j++) {
          const pick = j + rng.nextInt(nF - j);
          const f = perm[pick]!;
          perm[pick] = perm[j]!;
          perm[j] = f;
          drawn++;
          if (useMask && ((mask >>> f) & 1) === 1) continue;

          // ---- class counts per non-empty value bin (ub/uw/uh) and for NaN (N)
          const m = hi - lo;
          const nbF = nBins[f]!;
          const nanBin = hasNaN[f] === 1 ? nbF : -1;
          const wf = fieldWord[f]!;
          const sf = fieldShift[f]!;
          const mf = fieldMask[f]!;
          let nu = 0;
          let nN = 0;
          for (let c = 0; c < C; c++) N[c] = 0;
          if (m * 2 < nbF) {
            for (let q = 0; q < m; q++) keys[q] = (((xw[(lo + q) * K + wf]! >>> sf) & mf) << 16) | q;
            sortKeys(keys, m);
            let prevB = -1;
            for (let q = 0; q < m; q++) {
              const key = keys[q]!;
              const b = key >>> 16;
              const o = (lo + (key & 0xffff)) * K;
              const wr = (xw[o + wW]! >>> sW) & mW;
              const c = (xw[o + wC]! >>> sC) & mC;
              if (b === nanBin) {
                N[c]! += wr;
                nN += wr;
                continue;
              }
              if (b !== prevB) {
                ub[nu] = b;
                uw[nu] = 0;
                const ou = nu * C;
                for (let cc = 0; cc < C; cc++) uh[ou + cc] = 0;
                nu++;
                prevB = b;
              }
              uw[nu - 1]! += wr;
              uh[(nu - 1) * C + c]! += wr;
            }
          } else {
            if (K === 1) {
              for (let p = lo; p < hi; p++) {
                const rec = xw[p]!;
                hist[((rec >>> sf) & mf) * C + ((rec >>> sC) & mC)]! += (rec >>> sW) & mW;
              }
            } else {
              for (let p = lo; p < hi; p++) {
                const o = p * K;
                hist[((xw[o + wf]! >>> sf) & mf) * C + ((xw[o + wC]! >>> sC) & mC)]! += (xw[o + wW]! >>> sW) & mW;
              }
            }
            if (nanBin >= 0) {
              const o = nanBin * C;
              for (let c = 0; c < C; c++) {
                const v = hist[o + c]!;
                N[c] = v;
                nN += v;
                hist[o + c] = 0;
              }
            }
            for (let b = 0; b < nbF; b++) {
              const o = b * C;
              let wb = 0;
              for (let c = 0; c < C; c++) wb += hist[o + c]!;
              if (wb === 0) continue;
              ub[nu] = b;
              uw[nu] = wb;
              const ou = nu * C;
              for (let c = 0; c < C; c++) {
                uh[ou + c] = hist[o + c]!;
                hist[o + c] = 0;
              }
              nu++;
            }
          }

          if (nu + (nN > 0 ? 1 : 0) <= 1) {
            if (useMask) mask |= 1 << f;
            continue;
          }
          found++;

          // ---- scan thresholds: left = bins <= ub[u], NaN left or right
          const nV = nT - nN;
          for (let c = 0; c < C; c++) L[c] = 0;
          let Lw = 0;
          for (let u = 0; u < nu; u++) {
            const ou = u * C;
            for (let c = 0; c < C; c++) L[c]! += uh[ou + c]!;
            Lw += uw[u]!;
            if (u < nu - 1) {
              // NaN left first, so that on a tie missing values go left (with the low values)
              if (nN > 0) {
                // NaN left: left = L + N, right = V - L
                const nL2 = Lw + nN;
                const nR2 = nV - Lw;
                if (nL2 >= minLeaf && nR2 >= minLeaf) {
                  let sL = 0;
                  let sR = 0;
                  for (let c = 0; c < C; c++) {
                    const l = L[c]! + N[c]!;
                    const r = T[c]! - l;
                    sL += l * l;
                    sR += r * r;
                  }
                  const s = sL / nL2 + sR / nR2;
                  if (s > bestScore) {
                    bestScore = s;
                    bestF = f;
                    bestK = ub[u]!;
                    bestHiBin = ub[u + 1]!;
                    bestNanRight = 0;
                    for (let c = 0; c < C; c++) bestL[c] = L[c]! + N[c]!;
                  }
                }
              }
              // NaN right (or no NaN in this node): left = L, right = T - L
              const nL = Lw;
              const nR = nT - Lw;
              if (nL >= minLeaf && nR >= minLeaf) {
                let sL = 0;
                let sR = 0;
                for (let c = 0; c < C; c++) {
                  const l = L[c]!;
                  const r = T[c]! - l;
                  sL += l * l;
                  sR += r * r;
                }
                const s = sL / nL + sR / nR;
                if (s > bestScore) {
                  bestScore = s;
                  bestF = f;
                  bestK = ub[u]!;
                  bestHiBin = ub[u + 1]!;
                  bestNanRight = nN > 0 ? 1 : nL < nR ? 1 : 0;
                  for (let c = 0; c < C; c++) bestL[c] = L[c]!;
                }
              }
            } else if (nN > 0 && nV >= minLeaf && nN >= minLeaf) {
              // every value left, NaN right
              let sL = 0;
              let sR = 0;
              for (let c = 0; c < C; c++) {
                const l = L[c]!;
                const r = N[c]!;
                sL += l * l;
                sR += r * r;
              }
              const s = sL / nV + sR / nN;
              if (s > bestScore) {
                bestScore = s;
                bestF = f;
                bestK = nbF - 1;
                bestHiBin = -1;
                bestNanRight = 1;
                for (let c = 0; c < C; c++) bestL[c] = L[c]!;
              }
            }
          }
        }
      }

      if (bestF < 0) {
        if (oob !== undefined) nodeF[node] = -1;
        if (nonZero <= 1) {
          codes.push(-1 - anyClass);
        } else {
          codes.push(-1 - C);
          for (let c = 0; c < C; c++) mixed.push(T[c]! / nT);
        }
        continue;
      }

      // ---- threshold: the node's neighbouring bins are bestK < bestHiBin; bins
      // in between (values absent from this node) go left up to the midpoint
      // of the two neighbouring values, as CART's midpoint thresholds do.
      if (bestHiBin > bestK + 1) {
        const vo = binValueOffset[bestF]!;
        const mid = binValue[vo + bestK]! / 2 + binValue[vo + bestHiBin]! / 2;
        let a = bestK;
        let z = bestHiBin - 1;
        while (a < z) {
          const m = (a + z + 1) >> 1;
          if (binValue[vo + m]! <= mid) a = m;
          else z = m - 1;
        }
        bestK = a;
      }

      // ---- partition records [lo, hi) in place: left rows first
      // 256 never matches a byte: no NaN bin
      const nanBin = hasNaN[bestF] === 1 ? nBins[bestF]! : 256;
      const wf = fieldWord[bestF]!;
      const sf = fieldShift[bestF]!;
      const mf = fieldMask[bestF]!;
      const leftIfNan = bestNanRight === 0 ? 1 : 0;
      // Branch-free Lomuto partition: [lo, i) is left, [i, p) is right; record p
      // is always swapped with record i (harmless when p is a right row, since
      // then both are right rows) and i advances only for a left row.
      let i = lo;
      if (K === 1) {
        for (let p = lo; p < hi; p++) {
          const rec = xw[p]!;
          const b = (rec >>> sf) & mf;
          const isLeft = (((bestK - b) >>> 31) ^ 1) | ((((b ^ nanBin) - 1) >>> 31) & leftIfNan);
          xw[p] = xw[i]!;
          xw[i] = rec;
          i += isLeft;
        }
      } else {
        for (let p = lo; p < hi; p++) {
          const b = (xw[p * K + wf]! >>> sf) & mf;
          const isLeft = (((bestK - b) >>> 31) ^ 1) | ((((b ^ nanBin) - 1) >>> 31) & leftIfNan);
          const op = p * K;
          const oi = i * K;
          for (let q = 0; q < K; q++) {
            const v = xw[op + q]!;
            xw[op + q] = xw[oi + q]!;
            xw[oi + q] = v;
          }
          i += isLeft;
        }
      }
      const a = nNodes;
      nNodes += 2;
      const leftNode = bestNanRight === 1 ? a + 1 : a;
      const rightNode = bestNanRight === 1 ? a : a + 1;
      nodeLo[leftNode] = lo;
      nodeHi[leftNode] = i;
      nodeLo[rightNode] = i;
      nodeHi[rightNode] = hi;
      nodeDepth[a] = nodeDepth[a + 1] = depth + 1;
      nodeMask[a] = nodeMask[a + 1] = mask;
      const lOff = leftNode * C;
      const rOff = rightNode * C;
      for (let c = 0; c < C; c++) {
        nodeTot[lOff + c] = bestL[c]!;
        nodeTot[rOff + c] = T[c]! - bestL[c]!;
      }
      codes.push(bestF * 2 + bestNanRight);
      bins.push(bestK);
      if (oob !== undefined) {
        // Branch-free routing of a bin code b: with add = 1 (missing values,
        // code NAN_BIN, go left) b + 1 wraps missing to 0; left iff
        // (b + add) & 255 <= bestK + add; the pair is (left, right) when missing
        // go left, else (right, left), so the child is a + (left ^ flip).
        const add = hasNaN[bestF] === 1 && bestNanRight === 0 ? 1 : 0;
        nodeF[node] = bestF;
        nodeInfo[node] = (bestK + add) | (add << 9) | ((bestNanRight ^ 1) << 10);
        nodeChild[node] = a;
      }
      stack[sp++] = a + 1;
      stack[sp++] = a;
    }
    treeNodeCounts[t - treeStart] = nNodes;
    if (oob !== undefined) {
      // the sampled rows this tree never saw walk it in bin space and collect
      // their leaf, in fixed point so that sums do not depend on tree order
      for (let r = 0; r < n; r += oobStride) {
        if (w[r] !== 0) continue;
        let node = 0;
        let f = nodeF[0]!;
        while (f >= 0) {
          const info = nodeInfo[node]!;
          const add = (info >>> 9) & 1;
          const b = (Xb[f * n + r]! + add) & 255;
          const left = (((info & 511) - b) >>> 31) ^ 1;
          node = nodeChild[node]! + (left ^ (info >>> 10));
          f = nodeF[node]!;
        }
        const o = node * C;
        let tot = 0;
        for (let c = 0; c < C; c++) tot += nodeTot[o + c]!;
        for (let c = 0; c < C; c++) oob[r * C + c]! += Math.round((nodeTot[o + c]! / tot) * OOB_SCALE);
      }
    }
    params.afterTree?.();
  }

  return { treeNodeCounts, codes: codes.trim(), bins: bins.trim(), mixed: mixed.trim() };
}
