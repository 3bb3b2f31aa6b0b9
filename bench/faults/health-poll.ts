import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.ts";

/** One health answer: when (performance.now()), for which name, and what. */
export interface HealthSample {
  readonly t: number;
  readonly service: string;
  readonly status: string;
}

/** A running health poll. */
export interface HealthPoll {
  readonly samples: HealthSample[];
  stop(): Promise<void>;
}

/** Calls Check for each name every `intervalMs` (one call per name in flight at a time; each waits at most 1 s). */
export function pollHealth(port: number, services: readonly string[], intervalMs = 100): HealthPoll {
  const client = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
  const samples: HealthSample[] = [];
  const busy = new Set<string>();
  const running = new Set<Promise<void>>();
  const timer = setInterval(() => {
    for (const service of services) {
      if (busy.has(service)) continue;
      busy.add(service);
      const p = client
        .check({ service }, { timeoutMs: 1_000 })
        .then(
          (r) => HealthCheckResponse_ServingStatus[r.status],
          (e: unknown) => `error ${Code[ConnectError.from(e).code]}`,
        )
        .then((status) => {
          samples.push({ t: performance.now(), service, status: status ?? "?" });
          busy.delete(service);
        });
      running.add(p);
      void p.finally(() => running.delete(p));
    }
  }, intervalMs);
  return {
    samples,
    async stop() {
      clearInterval(timer);
      await Promise.all(running);
    },
  };
}

/** Seconds from `from` to the first sample of `service` at or after it with `status`; null when none came. */
export function firstAfter(samples: readonly HealthSample[], service: string, from: number, status: string): number | null {
  const hit = samples.find((s) => s.service === service && s.t >= from && s.status === status);
  return hit === undefined ? null : (hit.t - from) / 1000;
}
