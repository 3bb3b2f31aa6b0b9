import type { HealthService } from "../server/health.ts";
import { ServingStatus } from "../server/health.ts";

/** The health name that stays SERVING while the process itself is well (an orchestrator's liveness probe). */
export const LIVENESS = "liveness";

/** How often and how strictly the database is checked. */
export interface DatabaseWatchSettings {
  /** Between two checks. */
  readonly intervalMs: number;
  /** A check that has not answered by then failed. */
  readonly timeoutMs: number;
  /** Consecutive failed checks before the service says NOT_SERVING (hysteresis: one lost packet does not flap it). */
  readonly failAfter: number;
  /** Consecutive good checks before it says SERVING again. */
  readonly recoverAfter: number;
}

/** Detects an outage within about failAfter x interval + timeout (1.5 s here), and recovery within recoverAfter x interval. */
export const DEFAULT_DATABASE_WATCH: DatabaseWatchSettings = { intervalMs: 500, timeoutMs: 500, failAfter: 2, recoverAfter: 2 };

/** A running watch. */
export interface DatabaseWatch {
  /** Whether the last verdict was "reachable". */
  readonly reachable: boolean;
  /** Runs one check now (the timer calls it; tests call it directly). */
  check(): Promise<void>;
  /** Stops checking. */
  stop(): void;
}

/**
 * Readiness that tells the truth: every call but health needs the database,
 * so while it is unreachable the service and the whole server ("") say
 * NOT_SERVING (load balancers send calls elsewhere), and SERVING again once
 * it answers. LIVENESS stays SERVING throughout: a restart would not bring
 * the database back. `ping` is one cheap round trip (SELECT 1).
 */
export function watchDatabase(
  ping: () => Promise<unknown>,
  health: HealthService,
  services: readonly string[],
  settings = DEFAULT_DATABASE_WATCH,
): DatabaseWatch {
  let reachable = true;
  let failures = 0;
  let successes = 0;
  let running: Promise<void> | null = null;

  const verdict = (ok: boolean) => {
    failures = ok ? 0 : failures + 1;
    successes = ok ? successes + 1 : 0;
    const next = reachable ? failures < settings.failAfter : successes >= settings.recoverAfter;
    if (next === reachable) return;
    reachable = next;
    for (const name of services) health.setStatus(name, reachable ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);
  };

  async function checkOnce(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("database check timed out")), settings.timeoutMs);
    });
    try {
      await Promise.race([ping(), timeout]);
      verdict(true);
    } catch {
      verdict(false);
    } finally {
      clearTimeout(timer);
    }
  }

  const check = () => {
    // One check at a time: a hung one counts once, by its timeout.
    running ??= checkOnce().finally(() => (running = null));
    return running;
  };
  const interval = setInterval(() => void check(), settings.intervalMs);
  interval.unref();
  return {
    get reachable() {
      return reachable;
    },
    check,
    stop() {
      clearInterval(interval);
    },
  };
}
