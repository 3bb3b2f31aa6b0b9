/**
 * Fault harness: `npm run faults -- [options]`. Starts the service as a child
 * process on a fresh PostgreSQL database (created and dropped per run) whose
 * only way in is a TCP proxy this harness controls, injects faults, prints one
 * markdown table of figures and verdicts and writes it to bench/faults-results.md.
 *
 * Options:
 *   --scenarios a,b       outage, kill, sigterm, fuzz, malformed, races, auth (default all)
 *   --outage-seconds S    database outage length (default 30; --quick 5)
 *   --fuzz-runs N         fuzzed requests per RPC and protocol (default 2000; --quick 100)
 *   --clients N           concurrent load clients (default 4)
 *   --half-open-seconds S how long half-sent bodies are held open (default 20; --quick 5)
 *   --bomb-mib N          inflated size of the gzip bomb, MiB (default 1024)
 *   --race-calls N        concurrent ActivateModel + Train calls for one user (default 100)
 *   --pg-server URL       PostgreSQL server to create the run's database on
 *                         (default postgres://postgres@127.0.0.1:5432/postgres, or env FAULTS_PG_SERVER)
 *   --seed N              fuzz seed (default 20261129)
 *   --quick               a short iteration run
 *   --out PATH            where the markdown table goes (default bench/faults-results.md)
 *
 * Exit code 0 when every target is met, 1 when one fails, 2 on a bad flag.
 */
import { writeFileSync } from "node:fs";
import { runFaults } from "./faults/run.ts";
import { parseFaultOptions, type FaultOptions } from "./faults/options.ts";

let options: FaultOptions;
try {
  options = parseFaultOptions(process.argv.slice(2));
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}
const { markdown, failed } = await runFaults(options);
writeFileSync(options.out, markdown + "\n");
console.log(markdown);
console.error(`results written to ${options.out}`);
process.exit(failed ? 1 : 0);
