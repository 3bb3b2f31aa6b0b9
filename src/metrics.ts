import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * What operators scrape: one prom-client registry per service instance (no
 * global default registry, so tests and two services in one process do not
 * share counters). Parts of the service report events through the observe*
 * methods; gauges of state (queues, caches, the pool) are read at scrape time
 * from the sources given to watch(), so the hot paths pay nothing for them.
 */

/** What the model cache reports. */
export interface CacheStats {
  readonly size: number;
  readonly bytes?: number;
  readonly hits: number;
  readonly misses: number;
}

/** State read at scrape time; each source is optional (a test service may have no worker pool). */
export interface MetricSources {
  readonly modelCache?: CacheStats;
  readonly activeModels?: CacheStats;
  readonly predictionLog?: { readonly pending: number };
  readonly trainQueue?: () => { readonly waiting: number; readonly running: number };
  readonly dbPool?: () => { readonly acquiredConnections: number; readonly idleConnections: number; readonly waitingClients: number };
}

/** The service's metrics: event hooks, and the text a scrape gets. */
export interface Metrics {
  readonly registry: Registry;
  /** One finished call: which RPC, over which protocol, with which code. */
  observeRpc(method: string, protocol: string, code: string, seconds: number): void;
  /** One finished training job: its kind ("energy-user", "energy-population", "forest"), and whether it succeeded. */
  observeTraining(kind: string, outcome: "ok" | "error", seconds: number): void;
  /** One batch of predictions written to model_predictions (or failed after its retries). */
  observePredictionWrite(rows: number, outcome: "ok" | "error", seconds: number): void;
  /** One answer to Feedback about an energy prediction: which source answered, and whether it was right. */
  observeFeedback(source: string, correct: boolean): void;
  /** Registers the gauges read from the service's parts at scrape time. */
  watch(sources: MetricSources): void;
  /** Prometheus text exposition of every series. */
  text(): Promise<string>;
}

/** Latency buckets (seconds) from 0.1 ms: a warm Predict takes well under a millisecond, a Train up to seconds. */
const RPC_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const JOB_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** Builds the registry with every series, and the Node runtime's own (event-loop lag, heap, GC). */
export function createMetrics(options: { prefix?: string } = {}): Metrics {
  const p = options.prefix ?? "ml_";
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
  const rpc = new Histogram({
    name: `${p}rpc_duration_seconds`,
    help: "Time from a call's arrival to its answer, by RPC, protocol (grpc, grpc-web, connect) and code",
    labelNames: ["method", "protocol", "code"],
    buckets: RPC_BUCKETS,
    registers: [registry],
  });
  const training = new Histogram({
    name: `${p}training_job_duration_seconds`,
    help: "Time a training job spent in the worker pool (queued and fitting), by kind and outcome",
    labelNames: ["kind", "outcome"],
    buckets: JOB_BUCKETS,
    registers: [registry],
  });
  const writes = new Histogram({
    name: `${p}prediction_log_flush_seconds`,
    help: "Time to write one batch of logged predictions, retries included, by outcome",
    labelNames: ["outcome"],
    buckets: RPC_BUCKETS,
    registers: [registry],
  });
  const written = new Counter({
    name: `${p}prediction_log_rows_total`,
    help: "Logged predictions written (ok) or given up after retries (error)",
    labelNames: ["outcome"],
    registers: [registry],
  });
  const feedback = new Counter({
    name: `${p}feedback_total`,
    help: "Feedback on energy predictions, by the source that answered (user, population, prior) and whether it was right",
    labelNames: ["model_source", "correct"],
    registers: [registry],
  });
  const liveAccuracy = new Gauge({
    name: `${p}live_accuracy`,
    help: "Share of energy predictions that feedback called right since start, by model source",
    labelNames: ["model_source"],
    registers: [registry],
  });
  const tally = new Map<string, { right: number; all: number }>();

  return {
    registry,
    observeRpc(method, protocol, code, seconds) {
      rpc.observe({ method, protocol, code }, seconds);
    },
    observeTraining(kind, outcome, seconds) {
      training.observe({ kind, outcome }, seconds);
    },
    observePredictionWrite(rows, outcome, seconds) {
      writes.observe({ outcome }, seconds);
      written.inc({ outcome }, rows);
    },
    observeFeedback(source, correct) {
      feedback.inc({ model_source: source, correct: correct ? "true" : "false" });
      const t = tally.get(source) ?? { right: 0, all: 0 };
      t.all++;
      if (correct) t.right++;
      tally.set(source, t);
      liveAccuracy.set({ model_source: source }, t.right / t.all);
    },
    watch(sources) {
      const gauge = (name: string, help: string, labelNames: string[], collect: (g: Gauge) => void) =>
        new Gauge({
          name: `${p}${name}`,
          help,
          labelNames,
          registers: [registry],
          collect() {
            collect(this);
          },
        });
      for (const [which, cache] of [
        ["model", sources.modelCache],
        ["active_version", sources.activeModels],
      ] as const) {
        if (cache === undefined) continue;
        gauge(`${which}_cache_entries`, `Entries in the ${which.replace("_", " ")} cache`, [], (g) => g.set(cache.size));
        // A counter read from the cache's own tallies at scrape time (rate() of hits over all lookups is the hit rate).
        new Counter({
          name: `${p}${which}_cache_lookups_total`,
          help: `Lookups of the ${which.replace("_", " ")} cache since start, by result`,
          labelNames: ["result"],
          registers: [registry],
          collect() {
            this.reset();
            this.inc({ result: "hit" }, cache.hits);
            this.inc({ result: "miss" }, cache.misses);
          },
        });
        if (cache.bytes !== undefined) gauge(`${which}_cache_bytes`, `Memory the ${which.replace("_", " ")} cache holds`, [], (g) => g.set(cache.bytes ?? 0));
      }
      const log = sources.predictionLog;
      if (log !== undefined) gauge("prediction_log_pending_rows", "Predictions answered but not yet written to the database", [], (g) => g.set(log.pending));
      const queue = sources.trainQueue;
      if (queue !== undefined) {
        gauge("training_jobs", "Training jobs in the worker pool, by state", ["state"], (g) => {
          const q = queue();
          g.set({ state: "waiting" }, q.waiting);
          g.set({ state: "running" }, q.running);
        });
      }
      const pool = sources.dbPool;
      if (pool !== undefined) {
        gauge("db_pool_connections", "Database pool connections, by state (acquired, idle) and callers waiting for one", ["state"], (g) => {
          const s = pool();
          g.set({ state: "acquired" }, s.acquiredConnections);
          g.set({ state: "idle" }, s.idleConnections);
          g.set({ state: "waiting" }, s.waitingClients);
        });
      }
    },
    text() {
      return registry.metrics();
    },
  };
}
