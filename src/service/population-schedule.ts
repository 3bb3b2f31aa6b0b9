import { POPULATION } from "../domain.ts";
import type { DatabasePool } from "slonik";
import { populationCounts } from "../db/training-data.ts";
import type { Logger } from "../logger.ts";
import type { Trainer, TrainerSettings, Trigger } from "./trainer.ts";

/** When the population model refits itself; read from config (POPULATION_*), next to the trainer's settings. */
export interface PopulationScheduleSettings {
  /** Whether new data may start a fit ("first" and "growth"); the schedule and the Train RPC work either way. */
  readonly populationAutoTrain: boolean;
  /** Growth in qualifying users or in their samples since the last fit that makes a new fit due (0.2: 20%). */
  readonly populationGrowthFraction: number;
  /** Fewest milliseconds between a fit and the next fit started by growth or the schedule. */
  readonly populationMinIntervalMs: number;
  /** The interval after a fit is also at least this many times the fit's duration (see FIT_COST_FACTOR). */
  readonly populationFitCostFactor: number;
}

/** What the policy needs to know of the settings. */
export type PopulationPolicySettings = Pick<TrainerSettings, "minPopulationUsers"> &
  Pick<PopulationScheduleSettings, "populationGrowthFraction" | "populationMinIntervalMs">;

/** Users with at least the minimum of energy samples for a user's model, and how many samples those users have. */
export interface PopulationSize {
  readonly users: number;
  readonly samples: number;
}

/** The population's size when a fit ran, and when (ms, on the scheduler's clock). */
export interface PopulationFit extends PopulationSize {
  readonly at: number;
}

/** Everything the policy decides on; plain data, so tests and the offline evaluation can replay histories. */
export interface PopulationState {
  /** The population's size now. */
  readonly current: PopulationSize;
  /**
   * The newest stored population version, or null when no population model
   * exists. Active or not: a version that lost to the prior (or to the active
   * one) was fitted all the same, and refitting the same rows would lose again.
   */
  readonly lastFit: PopulationFit | null;
  /** A fit that failed since then (too little data after the caps, a worker error), or null. */
  readonly lastFailure: PopulationFit | null;
  /** The periodic schedule is asking (POPULATION_RETRAIN_HOURS), not new data. */
  readonly scheduled: boolean;
  readonly now: number;
}

/** The triggers the scheduler records in the activation log. */
export type PopulationTrigger = Extract<Trigger, "population:first" | "population:growth" | "schedule">;

/** Whether a population fit is due, and why (or why not) in words for the log. */
export type PopulationDecision =
  | { readonly due: true; readonly trigger: PopulationTrigger; readonly why: string }
  /** retryAt: when the same data would make a fit due, if only the minimum interval stands in the way; else null. */
  | { readonly due: false; readonly why: string; readonly retryAt: number | null };

function grown(now: number, then: number, fraction: number): boolean {
  return now > then && now >= then * (1 + fraction);
}

/**
 * Decides whether the population model should be refitted now.
 *
 * - "population:first": no population model exists and at least
 *   `minPopulationUsers` users have enough samples. No waiting: a fresh
 *   deployment gets its cold-start model as soon as it can have one.
 * - "population:growth": the qualifying users or their samples grew by
 *   `populationGrowthFraction` since the last fit, and `populationMinIntervalMs`
 *   have passed since it.
 * - "schedule": the periodic schedule asked and anything changed since the
 *   last fit; a refit on the same rows would give the same model.
 *
 * A failed fit counts as a fit for growth and the interval, so a failing fit
 * is not repeated on every new sample; the schedule compares with the last
 * stored version instead, so it retries a failure even when nothing grew.
 */
export function decidePopulationFit(state: PopulationState, settings: PopulationPolicySettings): PopulationDecision {
  const { current, lastFit, lastFailure, now } = state;
  const need = settings.minPopulationUsers;
  if (current.users < need) {
    return { due: false, why: `${current.users} user(s) have enough samples; the population model needs ${need}`, retryAt: null };
  }
  const newest = lastFailure !== null && (lastFit === null || lastFailure.at >= lastFit.at) ? lastFailure : lastFit;
  if (newest === null) {
    return { due: true, trigger: "population:first", why: `no population model yet, and ${current.users} users have enough samples` };
  }
  const g = settings.populationGrowthFraction;
  const sinceFit = now - newest.at;
  const tooSoon = sinceFit < settings.populationMinIntervalMs;
  const size = (s: PopulationSize) => `${s.users} users / ${s.samples} samples`;
  const failed = newest === lastFailure ? " (failed)" : "";
  if (grown(current.users, newest.users, g) || grown(current.samples, newest.samples, g)) {
    const what = `${size(current)} against ${size(newest)} at the last fit${failed}, a growth of at least ${Math.round(g * 100)}%`;
    if (tooSoon) {
      return {
        due: false,
        why: `${what}, but only ${Math.round(sinceFit / 1000)} s since that fit`,
        retryAt: newest.at + settings.populationMinIntervalMs,
      };
    }
    // After a failed first fit nothing is stored yet: the next one is still the first.
    return { due: true, trigger: lastFit === null ? "population:first" : "population:growth", why: what };
  }
  if (state.scheduled) {
    const base = lastFit ?? newest;
    const changed = lastFit === null || current.users !== base.users || current.samples !== base.samples;
    if (!changed) return { due: false, why: `nothing changed since the last fit (${size(base)})`, retryAt: null };
    if (tooSoon) return { due: false, why: `the last fit${failed} was only ${Math.round(sinceFit / 1000)} s ago`, retryAt: null };
    return { due: true, trigger: "schedule", why: `scheduled refit: ${size(current)} against ${size(base)} at the last fit` };
  }
  return {
    due: false,
    why: `${size(current)} against ${size(newest)} at the last fit${failed}: less than ${Math.round(g * 100)}% growth`,
    retryAt: null,
  };
}

/**
 * Default populationFitCostFactor: a fit of a few users (a second) may follow
 * the next growth within seconds, one of 50,000 rows (a minute) waits ten, so
 * population fits never take more than about a tenth of a training worker
 * however fast data grows.
 */
export const FIT_COST_FACTOR = 10;

/** Starts a one-shot timer and returns what cancels it; injected so tests control time. */
export type SetTimer = (run: () => void, delayMs: number) => () => void;

// setTimeout fires at once for delays above 2^31-1 ms (about 24.8 days); a long delay is waited for in steps.
const MAX_TIMEOUT_MS = 2_147_483_647;

/** Real timers that never keep the process alive. */
export const realTimer: SetTimer = (run, delayMs) => {
  let timer: NodeJS.Timeout;
  const arm = (left: number) => {
    timer = setTimeout(() => (left > MAX_TIMEOUT_MS ? arm(left - MAX_TIMEOUT_MS) : run()), Math.min(Math.max(left, 0), MAX_TIMEOUT_MS));
    timer.unref();
  };
  arm(delayMs);
  return () => clearTimeout(timer);
};

/** Fits the population model by itself when new data makes it worthwhile, one fit at a time. */
export interface PopulationScheduler {
  /** New data may have arrived: checks in the background and fits when due. Never throws; never waits. */
  poke(): void;
  /** Checks as the periodic schedule would (the timer of scheduleEvery calls this). */
  tick(): void;
  /** Calls tick every `intervalMs` until close. */
  scheduleEvery(intervalMs: number): void;
  /** Resolves when no check or fit is running or waiting (for shutdown and tests). */
  idle(): Promise<void>;
  /** Stops the timers, ignores later pokes, and waits for a running fit. */
  close(): Promise<void>;
}

/** Dependencies of the population scheduler. */
export interface PopulationSchedulerDeps {
  readonly db: DatabasePool;
  readonly trainer: Pick<Trainer, "train">;
  readonly settings: Pick<TrainerSettings, "minSamples" | "minPopulationUsers"> & PopulationScheduleSettings;
  readonly clock: () => number;
  readonly log: Logger;
  /** Default: real, unref'd timers. */
  readonly setTimer?: SetTimer;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Builds the scheduler. Checks and fits run in one loop, so at most one
 * population fit runs at a time; a poke while the loop runs sets a flag that
 * the loop reads when the current check or fit ends, so pokes during a long
 * fit become one re-check, never a queue of fits and never lost.
 */
export function createPopulationScheduler(deps: PopulationSchedulerDeps): PopulationScheduler {
  const { db, trainer, settings, clock, log } = deps;
  const setTimer = deps.setTimer ?? realTimer;
  let running: Promise<void> | null = null;
  let pending = false;
  let pendingScheduled = false;
  let closed = false;
  // The last fit this process made, on its own clock; other versions are dated by their age in the database.
  let ownFit: { readonly modelId: string; readonly at: number } | null = null;
  let lastFailure: PopulationFit | null = null;
  // How long this process's last fit took: the interval grows with it, so fits stay a small share of a worker.
  let lastDurationMs = 0;
  let retry: { readonly at: number; readonly cancel: () => void } | null = null;
  let periodic: (() => void) | null = null;

  function armRetry(at: number): void {
    if (closed || (retry !== null && retry.at <= at)) return;
    retry?.cancel();
    const cancel = setTimer(() => {
      retry = null;
      request(false);
    }, at - clock());
    retry = { at, cancel };
  }

  async function check(scheduled: boolean): Promise<void> {
    const counts = await populationCounts(db, POPULATION, settings.minSamples.energy_prediction);
    const now = clock();
    const last = counts.lastFit;
    const lastFit: PopulationFit | null =
      last === null ? null : { users: last.users, samples: last.samples, at: ownFit?.modelId === last.modelId ? ownFit.at : now - last.ageMs };
    const current = { users: counts.users, samples: counts.samples };
    const interval = Math.max(settings.populationMinIntervalMs, settings.populationFitCostFactor * lastDurationMs);
    const decision = decidePopulationFit({ current, lastFit, lastFailure, scheduled, now }, { ...settings, populationMinIntervalMs: interval });
    if (!decision.due) {
      if (decision.retryAt !== null) armRetry(decision.retryAt);
      if (scheduled) log.info("population model not refitted", { reason: decision.why });
      return;
    }
    log.info("population fit started", { trigger: decision.trigger, reason: decision.why });
    const began = clock();
    try {
      const outcome = await trainer.train(POPULATION, "energy_prediction", decision.trigger);
      ownFit = { modelId: outcome.model.model_id, at: clock() };
      lastDurationMs = clock() - began;
      lastFailure = null;
      log.info("population model trained", {
        trigger: decision.trigger,
        version: outcome.model.version,
        activated: outcome.activated,
        reason: outcome.reason,
      });
    } catch (err) {
      lastFailure = { ...current, at: clock() };
      log.error("population fit failed", { trigger: decision.trigger, error: message(err) });
    }
  }

  async function drain(): Promise<void> {
    while (pending && !closed) {
      pending = false;
      const scheduled = pendingScheduled;
      pendingScheduled = false;
      try {
        await check(scheduled);
      } catch (err) {
        log.error("population check failed", { error: message(err) });
      }
    }
  }

  function start(): void {
    running = drain().finally(() => {
      running = null;
      // A poke between the loop's last look at the flag and this line.
      if (pending && !closed) start();
    });
  }

  function request(scheduled: boolean): void {
    if (closed || (!scheduled && !settings.populationAutoTrain)) return;
    pending = true;
    if (scheduled) pendingScheduled = true;
    if (running === null) start();
  }

  async function idle(): Promise<void> {
    while (running !== null) await running;
  }

  return {
    poke: () => request(false),
    tick: () => request(true),
    scheduleEvery(intervalMs) {
      periodic?.();
      const arm = () => {
        periodic = setTimer(() => {
          arm();
          request(true);
        }, intervalMs);
      };
      arm();
    },
    idle,
    async close() {
      closed = true;
      periodic?.();
      periodic = null;
      retry?.cancel();
      retry = null;
      await idle();
    },
  };
}
