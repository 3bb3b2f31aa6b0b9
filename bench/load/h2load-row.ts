import type { H2loadResult } from "./h2load.ts";
import type { WindowCpu } from "./measure.ts";
import { perCallUs } from "./measure.ts";
import type { PredictionCheck, ResultRow } from "./report.ts";
import { percentiles } from "./stats.ts";

/** A results-table row from an h2load run and the CPU of its window. */
export function h2loadRow(
  scenario: string,
  tool: string,
  run: { result: H2loadResult } & WindowCpu,
  rawCallsPerS: number | null,
  predictions: PredictionCheck | null,
  notes: string[] = [],
): ResultRow {
  const { result } = run;
  const calls = result.status2xx;
  const callsPerS = calls / result.durationS;
  const p = percentiles(result.latenciesMs);
  const errors = result.non2xx + result.failed + result.errored + result.timeout;
  return {
    scenario,
    tool,
    calls,
    callsPerS,
    p50Ms: p.p50,
    p95Ms: p.p95,
    p99Ms: p.p99,
    errors,
    serverCpuUsPerCall: perCallUs(run.serviceCpuS, calls),
    dbCpuUsPerCall: perCallUs(run.dbCpuS, calls),
    shareOfRaw: rawCallsPerS === null ? null : callsPerS / rawCallsPerS,
    predictions,
    notes: result.unfinished > 0 ? [...notes, `${result.unfinished} streams still in flight when h2load stopped (not counted as errors)`] : notes,
  };
}
