/** One line of the chart. */
export interface Series {
  readonly name: string;
  readonly color: string;
  readonly points: readonly { readonly n: number; readonly accuracy: number }[];
  /** Dashed (e.g. the same method in another mode). */
  readonly dashed?: boolean;
}

/** The learning curves as a standalone SVG line chart (accuracy against samples per user, log scale). */
export function learningCurveSvg(series: readonly Series[], bayes: number, title: string): string {
  const points = series.flatMap((s) => s.points);
  const W = 760;
  const H = 440;
  const left = 60;
  const right = 210;
  const top = 40;
  const bottom = 50;
  const sizes = [...new Set(points.map((p) => p.n))].sort((a, b) => a - b);
  const lo = Math.log(sizes[0]!);
  const hi = Math.log(sizes.at(-1)!);
  const yMin = 0.3;
  const yMax = 0.8;
  const x = (n: number) => left + ((Math.log(n) - lo) / (hi - lo || 1)) * (W - left - right);
  const y = (a: number) => top + (1 - (a - yMin) / (yMax - yMin)) * (H - top - bottom);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="bold">${title}</text>`,
  ];
  for (let a = yMin; a <= yMax + 1e-9; a += 0.1) {
    parts.push(`<line x1="${left}" x2="${W - right}" y1="${y(a)}" y2="${y(a)}" stroke="#eee"/>`);
    parts.push(`<text x="${left - 8}" y="${y(a) + 4}" text-anchor="end">${Math.round(a * 100)}%</text>`);
  }
  for (const n of sizes) {
    parts.push(`<line x1="${x(n)}" x2="${x(n)}" y1="${top}" y2="${H - bottom}" stroke="#f3f3f3"/>`);
    parts.push(`<text x="${x(n)}" y="${H - bottom + 18}" text-anchor="middle">${n}</text>`);
  }
  parts.push(`<text x="${(left + W - right) / 2}" y="${H - 12}" text-anchor="middle">samples per user (log scale)</text>`);
  parts.push(`<text transform="translate(16 ${(top + H - bottom) / 2}) rotate(-90)" text-anchor="middle">held-out accuracy</text>`);
  parts.push(`<line x1="${left}" x2="${W - right}" y1="${y(bayes)}" y2="${y(bayes)}" stroke="black" stroke-dasharray="6 4"/>`);
  parts.push(`<text x="${W - right + 8}" y="${y(bayes) + 4}">Bayes ${(bayes * 100).toFixed(1)}%</text>`);
  parts.push(`<line x1="${left}" x2="${W - right}" y1="${y(0.6)}" y2="${y(0.6)}" stroke="#bbb" stroke-dasharray="2 3"/>`);
  let legendY = top + 40;
  for (const s of series) {
    const line = [...s.points].sort((a, b) => a.n - b.n);
    if (line.length === 0) continue;
    const dash = s.dashed === true ? ` stroke-dasharray="7 4"` : "";
    const d = line.map((p, i) => `${i === 0 ? "M" : "L"}${x(p.n).toFixed(1)},${y(p.accuracy).toFixed(1)}`).join(" ");
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2.5"${dash}/>`);
    for (const p of line) parts.push(`<circle cx="${x(p.n)}" cy="${y(p.accuracy)}" r="3.5" fill="${s.color}"/>`);
    parts.push(`<line x1="${W - right + 8}" x2="${W - right + 30}" y1="${legendY}" y2="${legendY}" stroke="${s.color}" stroke-width="3"${dash}/>`);
    parts.push(`<text x="${W - right + 36}" y="${legendY + 4}">${s.name}</text>`);
    legendY += 22;
  }
  parts.push("</svg>");
  return parts.join("\n");
}
