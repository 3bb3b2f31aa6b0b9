import { parseArgs } from "node:util";

/** Every scenario the harness knows, in the order it runs them (sigterm last: it stops the service). */
export const SCENARIOS = [
  "baselines",
  "predict-grpc",
  "predict-connect",
  "predict-auth",
  "mix",
  "predict-during-train",
  "soak",
  "many-users",
  "retention",
  "replicas",
  "sigterm",
] as const;
/** One scenario name. */
export type ScenarioName = (typeof SCENARIOS)[number];

/** What one run of the harness does; all durations in seconds. */
export interface LoadOptions {
  readonly scenarios: readonly ScenarioName[];
  readonly duration: number;
  readonly warmup: number;
  readonly connections: number;
  readonly streams: number;
  readonly soakSeconds: number;
  readonly manyUsers: number;
  /** "copy" clones one trained model per user in SQL (seconds); "train" calls Train per user (hours at 10,000). */
  readonly manyUsersPrep: "copy" | "train";
  readonly warmUsers: number;
  /** many-users stops loading models once the service's RSS passes this (MiB). */
  readonly maxRssMiB: number;
  readonly trainRows: number;
  /** A database the service uses as is; null makes a fresh one on pgServer (or embedded). */
  readonly databaseUrl: string | null;
  /** The PostgreSQL server on which a fresh database is created and dropped per run. */
  readonly pgServer: string;
  readonly embedded: boolean;
  readonly quick: boolean;
  readonly out: string;
}

const USAGE = `usage: npm run load -- [options]
  --scenarios a,b,c     any of ${SCENARIOS.join(", ")} (default all)
  --duration S          measured seconds per scenario (default 20; --quick 3)
  --warmup S            warm-up seconds before each measurement (default 5; --quick 1)
  --connections N       HTTP/2 connections (default 4)
  --streams N           concurrent streams per connection (default 16)
  --soak-seconds S      soak length (default 300; --quick 10)
  --many-users N        distinct users for many-users (default 10000; --quick 200)
  --many-users-prep M   copy (default: clone a trained model per user in SQL) or train (Train per user)
  --warm-users N        warm users with trained models (default 50; --quick 8)
  --max-rss-mib N       many-users stops once the service's RSS passes this (default 8192)
  --train-rows N        rows for predict-during-train (default 10000)
  --database-url URL    use this database as is (also env DATABASE_URL)
  --pg-server URL       create a fresh database per run on this server
                        (default postgres://postgres@127.0.0.1:5432/test)
  --embedded            use the service's embedded PGlite instead of PostgreSQL
  --quick               a smoke run in under ~2 minutes
  --out PATH            JSON results (default bench/load/results.json)`;

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`--${name} ${raw}: expected a positive number\n${USAGE}`);
  return value;
}

/** Parses argv (and DATABASE_URL) into options; throws a RangeError with the usage on a bad value. */
export function parseOptions(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): LoadOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      scenarios: { type: "string" },
      duration: { type: "string" },
      warmup: { type: "string" },
      connections: { type: "string" },
      streams: { type: "string" },
      "soak-seconds": { type: "string" },
      "many-users": { type: "string" },
      "many-users-prep": { type: "string" },
      "warm-users": { type: "string" },
      "max-rss-mib": { type: "string" },
      "train-rows": { type: "string" },
      "database-url": { type: "string" },
      "pg-server": { type: "string" },
      embedded: { type: "boolean", default: false },
      quick: { type: "boolean", default: false },
      out: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const quick = values.quick;
  const names = values.scenarios
    ?.split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "") ?? [...SCENARIOS];
  for (const name of names) {
    if (!(SCENARIOS as readonly string[]).includes(name)) throw new RangeError(`unknown scenario "${name}"\n${USAGE}`);
  }
  const prep = values["many-users-prep"] ?? "copy";
  if (prep !== "copy" && prep !== "train") throw new RangeError(`--many-users-prep ${prep}: expected copy or train\n${USAGE}`);
  const databaseUrl = values["database-url"] ?? (env["DATABASE_URL"] || null);
  if (values.embedded && databaseUrl !== null) throw new RangeError(`--embedded and a database URL exclude each other\n${USAGE}`);
  return {
    scenarios: SCENARIOS.filter((s) => names.includes(s)),
    duration: positive("duration", values.duration, quick ? 3 : 20),
    warmup: positive("warmup", values.warmup, quick ? 1 : 5),
    connections: Math.round(positive("connections", values.connections, 4)),
    streams: Math.round(positive("streams", values.streams, 16)),
    soakSeconds: positive("soak-seconds", values["soak-seconds"], quick ? 10 : 300),
    manyUsers: Math.round(positive("many-users", values["many-users"], quick ? 200 : 10_000)),
    manyUsersPrep: prep,
    warmUsers: Math.round(positive("warm-users", values["warm-users"], quick ? 8 : 50)),
    maxRssMiB: positive("max-rss-mib", values["max-rss-mib"], 8192),
    trainRows: Math.round(positive("train-rows", values["train-rows"], 10_000)),
    databaseUrl,
    pgServer: values["pg-server"] ?? "postgres://postgres@127.0.0.1:5432/test",
    embedded: values.embedded,
    quick,
    out: values.out ?? "bench/load/results.json",
  };
}
