/** One measured figure of a fault scenario, with its target and whether it was met. */
export interface FaultRow {
  readonly scenario: string;
  readonly figure: string;
  readonly value: string;
  /** What it must be; "" when the figure is only measured. */
  readonly target: string;
  /** null: measured only, no target. */
  readonly pass: boolean | null;
}

/** The rows as one markdown table. */
export function markdownTable(rows: readonly FaultRow[]): string {
  const cell = (s: string) => s.replaceAll("|", "\\|").replaceAll("\n", " ");
  const lines = ["| scenario | figure | value | target | verdict |", "| --- | --- | ---: | --- | --- |"];
  for (const r of rows) {
    const verdict = r.pass === null ? "measured" : r.pass ? "PASS" : "**FAIL**";
    lines.push(`| ${cell(r.scenario)} | ${cell(r.figure)} | ${cell(r.value)} | ${cell(r.target)} | ${verdict} |`);
  }
  return lines.join("\n");
}

/** Codes counted by name, as "OK 12, Unavailable 3". */
export function codeList(counts: ReadonlyMap<string, number>): string {
  if (counts.size === 0) return "none";
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([code, n]) => `${code} ${n}`)
    .join(", ");
}

/** Adds one to a code's count. */
export function count(counts: Map<string, number>, key: string, by = 1): void {
  counts.set(key, (counts.get(key) ?? 0) + by);
}

/** Progress on stderr, so stdout carries only the table. */
export function progress(message: string): void {
  process.stderr.write(`[faults ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}
