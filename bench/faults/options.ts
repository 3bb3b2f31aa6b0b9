import { parseArgs } from "node:util";

/** Every scenario, in the order they run. */
export const FAULT_SCENARIOS = ["outage", "kill", "sigterm", "fuzz", "malformed", "races", "auth"] as const;
/** One scenario name. */
export type FaultScenario = (typeof FAULT_SCENARIOS)[number];

/** What one run does; durations in seconds. */
export interface FaultOptions {
  readonly scenarios: readonly FaultScenario[];
  readonly outageSeconds: number;
  readonly fuzzRuns: number;
  readonly clients: number;
  readonly halfOpenSeconds: number;
  readonly bombMiB: number;
  readonly raceCalls: number;
  readonly pgServer: string;
  readonly seed: number;
  readonly out: string;
}

export const FAULTS_USAGE = `usage: npm run faults -- [options]
  --scenarios a,b       any of ${FAULT_SCENARIOS.join(", ")} (default all)
  --outage-seconds S    length of the database outage (default 30; --quick 5)
  --fuzz-runs N         fuzzed requests per RPC and protocol (default 2000; --quick 100)
  --clients N           concurrent load clients (default 4)
  --half-open-seconds S how long half-sent bodies are held open (default 20; --quick 5)
  --bomb-mib N          inflated size of the gzip bomb in MiB (default 1024)
  --race-calls N        concurrent ActivateModel + Train calls (default 100)
  --pg-server URL       PostgreSQL server; a fresh database is created and dropped per run
                        (default postgres://postgres@127.0.0.1:5432/postgres)
  --seed N              fuzz seed (default 20261129)
  --quick               short iteration run
  --out PATH            markdown results (default bench/faults-results.md)`;

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`--${name}=${raw} is not a positive number\n${FAULTS_USAGE}`);
  return value;
}

/** Parses the command line; a bad flag is a RangeError carrying the usage. */
export function parseFaultOptions(argv: readonly string[]): FaultOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      scenarios: { type: "string" },
      "outage-seconds": { type: "string" },
      "fuzz-runs": { type: "string" },
      clients: { type: "string" },
      "half-open-seconds": { type: "string" },
      "bomb-mib": { type: "string" },
      "race-calls": { type: "string" },
      "pg-server": { type: "string" },
      seed: { type: "string" },
      quick: { type: "boolean", default: false },
      out: { type: "string" },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) throw new RangeError(FAULTS_USAGE);
  const quick = values.quick === true;
  const scenarios = values.scenarios === undefined ? [...FAULT_SCENARIOS] : values.scenarios.split(",").map((s) => s.trim());
  for (const s of scenarios) {
    if (!(FAULT_SCENARIOS as readonly string[]).includes(s)) throw new RangeError(`unknown scenario ${s}\n${FAULTS_USAGE}`);
  }
  return {
    scenarios: FAULT_SCENARIOS.filter((s) => scenarios.includes(s)),
    outageSeconds: positive("outage-seconds", values["outage-seconds"], quick ? 5 : 30),
    fuzzRuns: Math.round(positive("fuzz-runs", values["fuzz-runs"], quick ? 100 : 2000)),
    clients: Math.round(positive("clients", values.clients, 4)),
    halfOpenSeconds: positive("half-open-seconds", values["half-open-seconds"], quick ? 5 : 20),
    bombMiB: Math.round(positive("bomb-mib", values["bomb-mib"], 1024)),
    raceCalls: Math.round(positive("race-calls", values["race-calls"], 100)),
    pgServer: values["pg-server"] ?? process.env["FAULTS_PG_SERVER"] ?? "postgres://postgres@127.0.0.1:5432/postgres",
    seed: Math.round(positive("seed", values.seed, 20261129)),
    out: values.out ?? "bench/faults-results.md",
  };
}
