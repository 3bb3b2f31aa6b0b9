/**
 * Top-label calibration fitted on out-of-bag predictions.
 *
 * A fully grown forest on noisy labels is under-confident in the middle of
 * its range and over-confident near 1 (its trees agree on memorised noise).
 * We learn one monotone map g from the forest's top-class probability q to
 * the observed accuracy of that top class, from the out-of-bag votes every
 * bootstrap gives for free (no held-out data, no extra fit), and apply it at
 * prediction: the top class gets g(q) and the other classes share 1 - g(q)
 * in their original proportions. g is clamped so the top class stays on
 * top, so the predicted class (and the accuracy) never changes; only "how
 * sure" does.
 *
 * The map is stored as knots (x0, y0, x1, y1, ...) with increasing x and
 * non-decreasing y; between knots it is linear, outside it is flat.
 */

/** Out-of-bag rows per quantile bin of the map (fewer rows: fewer knots). */
const ROWS_PER_KNOT = 50;
/** Most knots a map has. */
const MAX_KNOTS = 20;

/**
 * Fits the knots from out-of-bag vote sums (nRows x nClasses, a row that was
 * never out of bag sums to 0) and the labels. Returns no knots (identity)
 * when fewer than 2 * ROWS_PER_KNOT rows have out-of-bag votes.
 */
export function fitTopLabelMap(oob: Float64Array, y: ArrayLike<number>, nClasses: number): Float32Array {
  const C = nClasses;
  const n = y.length;
  const conf: number[] = [];
  const hit: number[] = [];
  for (let r = 0; r < n; r++) {
    let sum = 0;
    let best = 0;
    for (let c = 0; c < C; c++) {
      const v = oob[r * C + c]!;
      sum += v;
      if (v > oob[r * C + best]!) best = c;
    }
    if (!(sum > 0)) continue;
    conf.push(oob[r * C + best]! / sum);
    hit.push(best === y[r] ? 1 : 0);
  }
  const m = conf.length;
  const nKnots = Math.min(MAX_KNOTS, Math.floor(m / ROWS_PER_KNOT));
  if (C < 2 || nKnots < 2) return new Float32Array(0);
  const order = Array.from({ length: m }, (_, i) => i).sort((a, b) => conf[a]! - conf[b]!);
  // equal-count bins by confidence, then pool adjacent violators (weighted)
  const sx: number[] = [];
  const sy: number[] = [];
  const sw: number[] = [];
  for (let b = 0; b < nKnots; b++) {
    const lo = Math.floor((b * m) / nKnots);
    const hi = Math.floor(((b + 1) * m) / nKnots);
    let x = 0;
    let h = 0;
    for (let k = lo; k < hi; k++) {
      x += conf[order[k]!]!;
      h += hit[order[k]!]!;
    }
    sx.push(x);
    sy.push(h);
    sw.push(hi - lo);
    while (sw.length > 1 && sy[sy.length - 2]! / sw[sw.length - 2]! >= sy[sy.length - 1]! / sw[sw.length - 1]!) {
      const w = sw.pop()!;
      const yy = sy.pop()!;
      const xx = sx.pop()!;
      sw[sw.length - 1]! += w;
      sy[sy.length - 1]! += yy;
      sx[sx.length - 1]! += xx;
    }
  }
  // bins of identical confidence (many rows at exactly 1) become one knot
  const xs: number[] = [];
  const ys: number[] = [];
  const ws: number[] = [];
  for (let k = 0; k < sw.length; k++) {
    const x = sx[k]! / sw[k]!;
    const last = xs.length - 1;
    if (last >= 0 && Math.fround(x) <= Math.fround(xs[last]!)) {
      const w = ws[last]! + sw[k]!;
      xs[last] = (xs[last]! * ws[last]! + sx[k]!) / w;
      ys[last] = (ys[last]! * ws[last]! + sy[k]!) / w;
      ws[last] = w;
    } else {
      xs.push(x);
      ys.push(sy[k]! / sw[k]!);
      ws.push(sw[k]!);
    }
  }
  const knots = new Float32Array(2 * xs.length);
  for (let k = 0; k < xs.length; k++) {
    knots[2 * k] = xs[k]!;
    knots[2 * k + 1] = Math.max(1 / C, ys[k]!);
  }
  return knots;
}

/** Checks knots read from a blob; returns a reason when they are unusable. */
export function invalidTopLabelMap(knots: Float32Array, nClasses: number): string | undefined {
  if (knots.length % 2 !== 0) return `${knots.length} calibration floats (pairs expected)`;
  if (knots.length > 0 && nClasses < 2) return "calibration on a single-class forest";
  for (let k = 0; k < knots.length; k += 2) {
    const x = knots[k]!;
    const y = knots[k + 1]!;
    if (!(x >= 0 && x <= 1 && y >= 0 && y <= 1)) return `calibration knot ${k / 2} (${x}, ${y}) is outside [0, 1]`;
    if (k > 0 && !(x > knots[k - 2]! && y >= knots[k - 1]!)) return `calibration knot ${k / 2} is not increasing`;
  }
  return undefined;
}

/**
 * Applies the map to the normalised probabilities p[o .. o + C) in place.
 * A no-op without knots.
 */
export function applyTopLabelMap(knots: Float32Array, p: Float64Array | number[], o: number, C: number): void {
  const nk = knots.length >> 1;
  if (nk === 0) return;
  let best = o;
  for (let c = o + 1; c < o + C; c++) if (p[c]! > p[best]!) best = c;
  const q = p[best]!;
  let g: number;
  if (q <= knots[0]!) g = knots[1]!;
  else if (q >= knots[2 * nk - 2]!) g = knots[2 * nk - 1]!;
  else {
    let k = 1;
    while (knots[2 * k]! < q) k++;
    const x0 = knots[2 * k - 2]!;
    const y0 = knots[2 * k - 1]!;
    g = y0 + ((q - x0) / (knots[2 * k]! - x0)) * (knots[2 * k + 1]! - y0);
  }
  // the top class stays on top: g >= q below 1/2, g >= 1/2 above
  g = Math.min(1, Math.max(g, q < 0.5 ? q : 0.5));
  if (q < 1) {
    const scale = (1 - g) / (1 - q);
    for (let c = o; c < o + C; c++) p[c] = c === best ? g : p[c]! * scale;
  } else {
    const rest = (1 - g) / (C - 1);
    for (let c = o; c < o + C; c++) p[c] = c === best ? g : rest;
  }
}
