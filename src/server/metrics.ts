import { createServer, type Server } from "node:http";
import { Code, type Interceptor } from "@connectrpc/connect";
import type { Metrics } from "../metrics.ts";
import { toConnectError } from "./errors.ts";

/** The wire protocol of a call, from its content type (a Connect GET has none). */
export function protocolOf(contentType: string | null): "grpc" | "grpc-web" | "connect" {
  if (contentType === null) return "connect";
  if (contentType.startsWith("application/grpc-web")) return "grpc-web";
  if (contentType.startsWith("application/grpc")) return "grpc";
  return "connect";
}

/**
 * Times every call and counts it by RPC, protocol and code. Put it first in
 * the chain, so it sees the code callers get and the time every other
 * interceptor took.
 */
export function createMetricsInterceptor(metrics: Metrics): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const protocol = protocolOf(req.header.get("content-type"));
    try {
      const res = await next(req);
      metrics.observeRpc(req.method.name, protocol, "ok", (performance.now() - started) / 1000);
      return res;
    } catch (err) {
      const code = Code[toConnectError(err).code];
      metrics.observeRpc(req.method.name, protocol, code.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase(), (performance.now() - started) / 1000);
      throw err;
    }
  };
}

/** A started /metrics endpoint. */
export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Serves GET /metrics in Prometheus text on its own port, apart from the API (scrapers need no gRPC, callers no metrics). */
export async function serveMetrics(metrics: Metrics, port: number, host?: string): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "/").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("only GET /metrics here\n");
      return;
    }
    metrics.text().then(
      (body) => res.writeHead(200, { "content-type": metrics.registry.contentType }).end(body),
      (err: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`collecting metrics failed: ${(err as Error).message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === "object" && address !== null ? address.port : port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
