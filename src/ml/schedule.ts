/**
 * Picking the best hours for demanding work from an hourly forecast. Pure.
 */

/** A stretch of hours: index of the first, how many, and its mean P(high). */
export interface Window {
  readonly start: number;
  readonly length: number;
  readonly meanHigh: number;
}

/**
 * The best non-overlapping windows of 1-`maxLength` hours by mean P(high),
 * at most `count`, best first. A longer window wins over a shorter one
 * inside it unless the shorter is clearly better (by more than `preferLonger`),
 * because a two-hour block of focus is worth more than one hour.
 */
export function bestWindows(pHigh: readonly number[], count = 3, maxLength = 4, preferLonger = 0.03): Window[] {
  const candidates: (Window & { rank: number })[] = [];
  for (let length = 1; length <= Math.min(maxLength, pHigh.length); length++) {
    for (let start = 0; start + length <= pHigh.length; start++) {
      let sum = 0;
      for (let i = start; i < start + length; i++) sum += pHigh[i]!;
      const meanHigh = sum / length;
      candidates.push({ start, length, meanHigh, rank: meanHigh + preferLonger * (length - 1) });
    }
  }
  candidates.sort((a, b) => b.rank - a.rank || a.start - b.start);
  const taken = new Array<boolean>(pHigh.length).fill(false);
  const chosen: Window[] = [];
  for (const c of candidates) {
    if (chosen.length >= count) break;
    let free = true;
    for (let i = c.start; i < c.start + c.length; i++) if (taken[i]) free = false;
    if (!free) continue;
    for (let i = c.start; i < c.start + c.length; i++) taken[i] = true;
    chosen.push({ start: c.start, length: c.length, meanHigh: c.meanHigh });
  }
  // Two chosen windows that touch are one stretch to a person: join them while it stays within maxLength.
  const joined: Window[] = [];
  for (const w of [...chosen].sort((a, b) => a.start - b.start)) {
    const last = joined.at(-1);
    if (last !== undefined && last.start + last.length === w.start && last.length + w.length <= maxLength) {
      const length = last.length + w.length;
      joined[joined.length - 1] = { start: last.start, length, meanHigh: (last.meanHigh * last.length + w.meanHigh * w.length) / length };
    } else {
      joined.push(w);
    }
  }
  return joined.sort((a, b) => b.meanHigh - a.meanHigh || a.start - b.start);
}
