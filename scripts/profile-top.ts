/**
 * Prints the functions with the most self time in a V8 .cpuprofile (from
 * `node --cpu-prof`), grouped by function and file, as a markdown table:
 * node --import tsx scripts/profile-top.ts FILE.cpuprofile [N]
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, n = "15"] = process.argv.slice(2);
if (file === undefined) {
  console.error("usage: profile-top.ts FILE.cpuprofile [N]");
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const selfTime = new Map<string, number>();
let total = 0;
profile.samples.forEach((id, i) => {
  const node = byId.get(id)!;
  const dt = profile.timeDeltas[i] ?? 0;
  const { functionName, url } = node.callFrame;
  const where = url
    .replace(/^.*node_modules\//, "")
    .replace(/^file:\/\/.*\/(src|gen)\//, "$1/")
    .replace(/^node:/, "node:");
  const key = `${functionName || "(anonymous)"} ${where || ""}`.trim();
  selfTime.set(key, (selfTime.get(key) ?? 0) + dt);
  total += dt;
});
console.log("| self time | function |");
console.log("| ---: | --- |");
for (const [key, t] of [...selfTime].sort((a, b) => b[1] - a[1]).slice(0, Number(n))) {
  console.log(`| ${((t / total) * 100).toFixed(1)}% | \`${key}\` |`);
}
