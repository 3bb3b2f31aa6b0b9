import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ServiceProcess } from "../../test/support/process.ts";
import type { LoadOptions } from "./cli.ts";
import { exitSignal } from "./context.ts";
import { CONNECT_HEADERS, GRPC_HEADERS, type H2loadSpec } from "./h2load.ts";
import type { Protocol } from "./messages.ts";

/**
 * The h2load layout every h2load scenario uses, so baselines and service runs
 * are comparable: `connections` h2load processes, each with ONE connection
 * and `streams` concurrent streams, each posting its own body (h2load's -d
 * sends one body for all requests of a process). With one body per process,
 * Predict load is spread over `connections` different users. When the
 * service is running, h2load is stopped if it exits.
 */
export function h2loadLayout(
  ctx: { readonly options: LoadOptions; readonly tmp: string; readonly service?: ServiceProcess | null },
  name: string,
  port: number,
  path: string,
  protocol: Protocol,
  bodies: readonly Buffer[],
  timing: { durationS: number; warmupS: number; totalRate?: number; headers?: readonly string[] },
): H2loadSpec[] {
  const { connections, streams } = ctx.options;
  const signal = ctx.service == null ? undefined : exitSignal(ctx.service);
  return Array.from({ length: connections }, (_, i) => {
    const bodyFile = join(ctx.tmp, `${name}-${i}.bin`);
    writeFileSync(bodyFile, bodies[i % bodies.length]!);
    return {
      url: `http://127.0.0.1:${port}${path}`,
      bodyFile,
      headers: [...(protocol === "grpc" ? GRPC_HEADERS : CONNECT_HEADERS), ...(timing.headers ?? [])],
      clients: 1,
      streams,
      durationS: timing.durationS,
      warmupS: timing.warmupS,
      ...(timing.totalRate === undefined ? {} : { rpsPerClient: Math.max(1, Math.round(timing.totalRate / connections)) }),
      logFile: join(ctx.tmp, `${name}-${i}.log`),
      ...(signal === undefined ? {} : { signal }),
    };
  });
}
