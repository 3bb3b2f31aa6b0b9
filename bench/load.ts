/**
 * Load-test harness: `npm run load -- [--quick] [--scenarios a,b] ...`.
 * Runs h2load (and a node:http2 generator where h2load cannot) on loopback
 * against baselines and the real service, prints one markdown table and
 * writes it as JSON to bench/load/results.json. See bench/load/README.md.
 */
import { parseOptions, type LoadOptions } from "./load/cli.ts";
import { findH2load } from "./load/h2load.ts";
import { writeJson } from "./load/report.ts";
import { h2loadVersion, printable, runLoad } from "./load/run.ts";

let options: LoadOptions;
try {
  options = parseOptions(process.argv.slice(2));
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}
if (findH2load() === null) {
  console.error(
    "h2load is not installed (it is not on PATH). Install it with:\n" +
      "  apt-get update && apt-get install -y nghttp2-client\n" +
      "then run `npm run load` again.",
  );
  process.exit(1);
}
let result: Awaited<ReturnType<typeof runLoad>>;
try {
  result = await runLoad(options, h2loadVersion());
} catch (err) {
  console.error(`load run failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
const { report, ok } = result;
writeJson(options.out, report);
console.log(printable(report));
console.error(`results written to ${options.out}`);
if (!ok) {
  console.error(`some steps failed:\n${(report.details["failures"] as string[]).join("\n")}`);
  process.exit(1);
}
process.exit(0);
