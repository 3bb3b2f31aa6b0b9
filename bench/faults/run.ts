import { randomUUID } from "node:crypto";
import type { FaultOptions, FaultScenario } from "./options.ts";
import { markdownTable, progress, type FaultRow } from "./report.ts";
import { createFaultRig, type FaultRig } from "./rig.ts";
import { runOutage } from "./outage.ts";

type Scenario = (rig: FaultRig, options: FaultOptions, tag: string) => Promise<FaultRow[]>;

const SCENARIOS: Record<FaultScenario, () => Promise<Scenario>> = {
  outage: async () => runOutage,
  kill: async () => (await import("./kill.ts")).runKill,
  sigterm: async () => (await import("./kill.ts")).runSigterm,
  fuzz: async () => (await import("./fuzz.ts")).runFuzz,
  malformed: async () => (await import("./malformed.ts")).runMalformed,
  races: async () => (await import("./races.ts")).runRaces,
  auth: async () => (await import("./auth.ts")).runAuth,
};

/** Runs the chosen scenarios on one rig; a scenario that throws is a failed row, and the next one still runs. */
export async function runFaults(options: FaultOptions): Promise<{ markdown: string; failed: boolean }> {
  const tag = randomUUID().slice(0, 8);
  const rows: FaultRow[] = [];
  const rig = await createFaultRig(options.pgServer);
  let logsSeen = 0;
  try {
    for (const name of options.scenarios) {
      progress(`scenario ${name}`);
      const started = performance.now();
      try {
        rows.push(...(await (await SCENARIOS[name]())(rig, options, tag)));
      } catch (err) {
        const message = err instanceof Error ? err.message.split("\n").slice(0, 3).join(" ") : String(err);
        progress(`scenario ${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        rows.push({ scenario: name, figure: "scenario ran to the end", value: message.slice(0, 300), target: "no error", pass: false });
      }
      const bugLogs = rig.bugLogs();
      for (const line of bugLogs.slice(logsSeen)) progress(`${name}: service log: ${line.slice(0, 500)}`);
      logsSeen = bugLogs.length;
      progress(`scenario ${name} took ${((performance.now() - started) / 1000).toFixed(1)} s`);
    }
  } finally {
    await rig.close();
  }
  const params =
    `Parameters: scenarios ${options.scenarios.join(", ")}; outage ${options.outageSeconds} s; ${options.clients} load clients; ` +
    `fuzz ${options.fuzzRuns} requests per RPC and protocol (seed ${options.seed}); gzip bomb ${options.bombMiB} MiB; ` +
    `half-sent bodies held ${options.halfOpenSeconds} s; ${options.raceCalls} race calls; service TRAIN_THREADS=1 N_ESTIMATORS=30 ` +
    `POPULATION_AUTO_TRAIN=0; node ${process.version}; ${new Date().toISOString().slice(0, 16)}Z.`;
  const failed = rows.some((r) => r.pass === false);
  return { markdown: `${params}\n\n${markdownTable(rows)}`, failed };
}
