/** Prints measure/result pairs as one markdown table, the form the README quotes bench results in. */
export function printKeyValueTable(rows: readonly (readonly [string, string])[]): void {
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log(`| ${"measure".padEnd(width)} | result |`);
  console.log(`| ${"-".repeat(width)} | --- |`);
  for (const [k, v] of rows) console.log(`| ${k.padEnd(width)} | ${v} |`);
}
