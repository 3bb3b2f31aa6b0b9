import type { GeneratorResult } from "./generator.ts";
import { total } from "./generator.ts";
import type { WindowCpu } from "./measure.ts";
import { perCallUs } from "./measure.ts";
import type { ResultRow } from "./report.ts";
import { percentiles } from "./stats.ts";

/** Kinds of call that write a row to model_predictions. */
export const PREDICTION_KINDS = ["Predict", "SuggestTasks"] as const;

/** A results-table row from a generator run: all kinds together, per-kind p99 and errors in the notes. */
export function generatorRow(
  scenario: string,
  tool: string,
  run: { result: GeneratorResult } & WindowCpu,
  rawCallsPerS: number | null,
  rows: { before: number | null; after: number | null } | null,
  notes: string[] = [],
): ResultRow {
  const { result } = run;
  const calls = total(result, "measuredOk");
  const callsPerS = result.measuredS > 0 ? calls / result.measuredS : 0;
  const p = percentiles([...result.byKind.values()].flatMap((s) => s.latenciesMs));
  const perKind = [...result.byKind]
    .map(([kind, s]) => {
      const k = percentiles(s.latenciesMs);
      return `${kind} ${s.measuredOk} ok (p50 ${k.p50.toFixed(1)} / p99 ${k.p99.toFixed(1)} ms)${s.measuredErrors > 0 ? `, ${s.measuredErrors} errors` : ""}`;
    })
    .join("; ");
  const errorKinds = [...result.errorKinds].map(([e, n]) => `${e} ×${n}`).join(", ");
  return {
    scenario,
    tool,
    calls,
    callsPerS,
    p50Ms: p.p50,
    p95Ms: p.p95,
    p99Ms: p.p99,
    errors: total(result, "measuredErrors"),
    serverCpuUsPerCall: perCallUs(run.serviceCpuS, calls),
    dbCpuUsPerCall: perCallUs(run.dbCpuS, calls),
    shareOfRaw: rawCallsPerS === null ? null : callsPerS / rawCallsPerS,
    predictions:
      rows === null
        ? null
        : {
            successes: total(result, "ok", PREDICTION_KINDS),
            exact: true,
            rowsDelta: rows.before === null || rows.after === null ? null : rows.after - rows.before,
          },
    notes: [
      ...notes,
      `per kind (measured window): ${perKind}`,
      ...(errorKinds === "" ? [] : [`errors over the whole run: ${errorKinds}`]),
      `load generator CPU: ${((run.result.generatorCpuS * 1e6) / Math.max(1, total(result, "ok") + total(result, "errors"))).toFixed(0)} µs/call (harness process)`,
    ],
  };
}
