import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

/** Did every acknowledged prediction reach model_predictions? */
export interface PredictionCheck {
  /** Successful Predict + SuggestTasks responses the harness saw. */
  readonly successes: number;
  /** False for h2load runs: their warm-up calls are not reported, so rows can exceed successes. */
  readonly exact: boolean;
  /** Rows added to model_predictions meanwhile; null when the database cannot be read (embedded, running). */
  readonly rowsDelta: number | null;
}

/** One line of the results table. */
export interface ResultRow {
  readonly scenario: string;
  readonly tool: string;
  /** Successful calls in the measured window. */
  readonly calls: number;
  readonly callsPerS: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  /** Failed calls in the measured window (non-2xx, grpc-status != 0, stream errors). */
  readonly errors: number;
  readonly serverCpuUsPerCall: number | null;
  /** CPU of the PostgreSQL backends serving the service's database, per call. */
  readonly dbCpuUsPerCall: number | null;
  /** calls/s as a share of the raw node:http2 baseline. */
  readonly shareOfRaw: number | null;
  readonly predictions: PredictionCheck | null;
  readonly notes: readonly string[];
}

/** Everything one run produced, as written to results.json. */
export interface LoadReport {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly machine: { readonly cpus: number; readonly node: string; readonly h2load: string };
  readonly database: string;
  readonly options: unknown;
  readonly rows: readonly ResultRow[];
  readonly details: Readonly<Record<string, unknown>>;
  /** Acknowledged predictions missing from model_predictions, summed over the rows that could count them. */
  readonly lostPredictions: number | null;
  readonly h2loadCommands: readonly string[];
}

/** Acknowledged predictions missing from the table (0 when rows cover them). */
export function lost(check: PredictionCheck): number | null {
  return check.rowsDelta === null ? null : Math.max(0, check.successes - check.rowsDelta);
}

const fmt = (value: number | null, digits = 1) => (value === null || Number.isNaN(value) ? "–" : value.toFixed(digits));

function predictionCell(check: PredictionCheck | null): string {
  if (check === null) return "";
  if (check.rowsDelta === null) return `${check.successes} ok, rows n/a`;
  const missing = lost(check)!;
  const rows = check.exact ? `${check.rowsDelta} rows` : `${check.rowsDelta} rows incl. warm-up`;
  return `${check.successes} ok, ${rows}${missing > 0 ? ` — LOST ${check.exact ? "" : "≥"}${missing}` : ""}`;
}

/** The results as a markdown table, then the notes of each row. */
export function markdown(report: LoadReport): string {
  const header = [
    "scenario",
    "tool",
    "calls/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "errors",
    "server µs/call",
    "db µs/call",
    "% of raw",
    "predictions ok, rows added",
  ];
  const lines = [`| ${header.join(" | ")} |`, `|${header.map(() => " --- ").join("|")}|`];
  for (const r of report.rows) {
    lines.push(
      `| ${[
        r.scenario,
        r.tool,
        fmt(r.callsPerS, 0),
        fmt(r.p50Ms, 2),
        fmt(r.p95Ms, 2),
        fmt(r.p99Ms, 2),
        String(r.errors),
        fmt(r.serverCpuUsPerCall, 0),
        fmt(r.dbCpuUsPerCall, 0),
        r.shareOfRaw === null ? "–" : `${(r.shareOfRaw * 100).toFixed(1)}%`,
        predictionCell(r.predictions),
      ].join(" | ")} |`,
    );
  }
  lines.push("");
  for (const r of report.rows) for (const note of r.notes) lines.push(`- **${r.scenario}**: ${note}`);
  lines.push("", `lost predictions: ${report.lostPredictions ?? "n/a"}`);
  return lines.join("\n");
}

/** Writes results.json (creating its folder). */
export function writeJson(path: string, report: LoadReport): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(report, null, 2)}\n`);
}
