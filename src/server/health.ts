/**
 * gRPC health checking (grpc.health.v1.Health) for connect-node, which ships
 * none: load balancers, Kubernetes gRPC probes and grpc_health_probe speak it.
 * Semantics follow grpc-go's health server: "" is the whole server and starts
 * SERVING, Check on an unknown name is NOT_FOUND, Watch sends the current
 * status and then every change, and shutdown() marks everything NOT_SERVING.
 */
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  Health,
  type HealthCheckRequest,
  type HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus,
  type HealthListResponseSchema,
} from "../../gen/grpc/health/v1/health_pb.ts";

/** The grpc.health.v1 status enum, re-exported so callers need not import gen/. */
export { HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.ts";
type ServingStatus = HealthCheckResponse_ServingStatus;
type CheckResponseInit = MessageInitShape<typeof HealthCheckResponseSchema>;

/** The name that stands for the server as a whole, per the gRPC health spec. */
export const OVERALL_HEALTH = "";

/** grpc.health.v1 caps List at 100 services; more is RESOURCE_EXHAUSTED. */
const MAX_LIST_SIZE = 100;

/** Options for createHealthService; every field is optional. */
export interface HealthServiceOptions {
  /** Initial statuses by service name; "" defaults to SERVING unless given here. */
  readonly initial?: Readonly<Record<string, ServingStatus>>;
}

/** The health server: register it on a router and drive it with setStatus/shutdown. */
export interface HealthService {
  /** Adds grpc.health.v1.Health (Check, List, Watch) to a Connect router. */
  register(router: ConnectRouter): void;
  /** Sets a service's status ("" = whole server) and wakes its watchers; ignored after shutdown(). */
  setStatus(service: string, status: ServingStatus): void;
  /** The current status of a service, or undefined when it was never set. */
  getStatus(service: string): ServingStatus | undefined;
  /** Marks every service NOT_SERVING, ends every Watch stream and freezes statuses; idempotent. */
  shutdown(): void;
}

/** One open Watch call, woken whenever a status may have changed. */
interface Watcher {
  readonly service: string;
  wake(): void;
}

/** Creates an independent health server; each call has its own status table. */
export function createHealthService(options: HealthServiceOptions = {}): HealthService {
  const statuses = new Map<string, ServingStatus>([[OVERALL_HEALTH, HealthCheckResponse_ServingStatus.SERVING], ...Object.entries(options.initial ?? {})]);
  const watchers = new Set<Watcher>();
  let isShutdown = false;

  function wakeWatchers(service: string | undefined): void {
    for (const w of watchers) {
      if (service === undefined || w.service === service) w.wake();
    }
  }

  function check(req: HealthCheckRequest): CheckResponseInit {
    const status = statuses.get(req.service);
    if (status === undefined) {
      throw new ConnectError(`unknown service ${JSON.stringify(req.service)}`, Code.NotFound);
    }
    return { status };
  }

  function list(): MessageInitShape<typeof HealthListResponseSchema> {
    if (statuses.size > MAX_LIST_SIZE) {
      throw new ConnectError(`${statuses.size} services exceed the List limit of ${MAX_LIST_SIZE}`, Code.ResourceExhausted);
    }
    const out: Record<string, { status: ServingStatus }> = {};
    for (const [name, status] of statuses) out[name] = { status };
    return { statuses: out };
  }

  async function* watch(req: HealthCheckRequest, ctx: HandlerContext): AsyncGenerator<CheckResponseInit> {
    // `dirty` is set by wake() while we are not waiting, so no change between
    // reading the status and starting to wait can be lost.
    let dirty = false;
    let resume: (() => void) | undefined;
    const watcher: Watcher = {
      service: req.service,
      wake() {
        dirty = true;
        resume?.();
      },
    };
    const onAbort = (): void => watcher.wake();
    watchers.add(watcher);
    ctx.signal.addEventListener("abort", onAbort);
    try {
      let lastSent: ServingStatus | undefined;
      for (;;) {
        dirty = false;
        const current = statuses.get(req.service) ?? HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN;
        if (current !== lastSent) {
          lastSent = current;
          yield { status: current };
        }
        if (isShutdown || ctx.signal.aborted) return;
        if (!dirty) {
          await new Promise<void>((resolve) => {
            resume = resolve;
          });
          resume = undefined;
          if (ctx.signal.aborted) return;
        }
      }
    } finally {
      watchers.delete(watcher);
      ctx.signal.removeEventListener("abort", onAbort);
    }
  }

  return {
    register(router) {
      router.service(Health, { check, list, watch });
    },
    setStatus(service, status) {
      if (isShutdown) return;
      statuses.set(service, status);
      wakeWatchers(service);
    },
    getStatus(service) {
      return statuses.get(service);
    },
    shutdown() {
      if (isShutdown) return;
      isShutdown = true;
      for (const name of statuses.keys()) {
        statuses.set(name, HealthCheckResponse_ServingStatus.NOT_SERVING);
      }
      wakeWatchers(undefined);
    },
  };
}
