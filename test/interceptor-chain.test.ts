import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { MlService } from "../gen/ml/v1/ml_pb.ts";
import { createApp } from "../src/app.ts";
import { readConfig } from "../src/config.ts";
import { createJsonLogger } from "../src/logger.ts";
import { createInterceptorChain } from "../src/server/interceptors.ts";
import { listen, type RunningServer } from "../src/server/listen.ts";
import { createTrainPool, type TrainPool } from "../src/service/train-pool.ts";
import { freshDatabase, type TestDatabase } from "./support/database.ts";
import { TEST_SETTINGS } from "./support/service.ts";

/**
 * Every RPC of the service, over every protocol, through a real listen() with
 * the lean path on and off: one counting interceptor in front of the chain
 * must see each call, headers and trailers it sets must reach the client, the
 * request id must come back, and both paths must answer the same code.
 */
let db: TestDatabase;
let pool: TrainPool;
let app: ReturnType<typeof createApp>;
const servers: Record<"fast" | "adapter", RunningServer | undefined> = { fast: undefined, adapter: undefined };
const lines: string[] = [];
/** Calls the counting interceptor saw, by server and request content-type. */
const seen: string[] = [];

/**
 * Counts every call; passes on a request and answers a response of its own
 * (spread copies with new Headers), as an interceptor may: the paths must
 * carry its request headers to the handler and its response headers to the wire.
 */
function countingInterceptor(server: string): Interceptor {
  return (next) => async (req) => {
    seen.push(`${server} ${req.method.name} ${req.header.get("content-type")}`);
    const add = (h: Headers) => h.set("x-counted", String(seen.length));
    const header = new Headers(req.header);
    header.set("x-seen-by", "counter");
    try {
      const res = await next({ ...req, header });
      const out = { ...res, header: new Headers(res.header), trailer: new Headers(res.trailer) };
      add(out.header);
      out.trailer.set("x-counted-trailer", "yes");
      return out;
    } catch (err) {
      if (err instanceof ConnectError) add(err.metadata);
      throw err;
    }
  };
}

beforeAll(async () => {
  db = await freshDatabase();
  pool = createTrainPool(1);
  const log = createJsonLogger({ write: (l) => lines.push(l) });
  app = createApp({ db: db.pool, runJob: (job, signal) => pool.run(job, signal), log, settings: TEST_SETTINGS });
  const config = readConfig({});
  for (const name of ["fast", "adapter"] as const) {
    servers[name] = await listen({
      routes: app.routes,
      interceptors: [countingInterceptor(name), ...createInterceptorChain({ log, accessLog: { ...config.accessLog, sampleRate: 1 } })],
      limits: config.limits,
      port: 0,
      ...(name === "fast" ? { fastPath: app.unaryHandlers } : {}),
    });
  }
});
afterAll(async () => {
  await servers.fast?.close();
  await servers.adapter?.close();
  await app?.close();
  await pool?.close();
  await db?.close();
});

const transports: Record<string, (baseUrl: string) => Transport> = {
  grpc: (baseUrl) => createGrpcTransport({ baseUrl }),
  "grpc-web h2": (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "2" }),
  "grpc-web h1": (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
  "connect proto h2": (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true }),
  "connect json h2": (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: false }),
  "connect json h1": (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }),
};

type AnyCall = (request: object, options: { headers?: Record<string, string>; onHeader(h: Headers): void; onTrailer(t: Headers): void }) => Promise<unknown>;

interface Outcome {
  code: Code | "ok";
  requestId: string | null;
  counted: boolean;
  countedTrailer: boolean;
}

async function callEach(server: "fast" | "adapter", transport: string): Promise<Map<string, Outcome>> {
  const t = transports[transport]!(`http://127.0.0.1:${servers[server]!.port}`);
  const ml = createClient(MlService, t) as unknown as Record<string, AnyCall>;
  const health = createClient(Health, t) as unknown as Record<string, AnyCall>;
  const calls: [string, AnyCall, object][] = MlService.methods.map((m) => [m.name, ml[m.localName]!, {}]);
  calls.push([
    "Predict (valid)",
    ml["predict"]!,
    { userId: "chain", targetTime: timestampFromMs(Date.UTC(2026, 0, 1, 9)), recentActivity: { avgEnergyLast7Days: 2 } },
  ]);
  calls.push(["Health.Check", health["check"]!, {}]);
  const out = new Map<string, Outcome>();
  for (const [name, fn, request] of calls) {
    const meta = new Headers();
    const trailer = new Headers();
    let code: Code | "ok" = "ok";
    try {
      await fn(request, {
        headers: name === "Predict (valid)" ? { "x-request-id": `given-${server}-${transport.replace(/ /g, "-")}` } : {},
        onHeader: (h) => h.forEach((v, k) => meta.set(k, v)),
        onTrailer: (h) => h.forEach((v, k) => trailer.set(k, v)),
      });
    } catch (err) {
      const e = ConnectError.from(err);
      code = e.code;
      e.metadata.forEach((v, k) => meta.set(k, v));
    }
    out.set(name, {
      code,
      requestId: meta.get("x-request-id") ?? trailer.get("x-request-id"),
      counted: (meta.get("x-counted") ?? trailer.get("x-counted")) !== null,
      countedTrailer: code !== "ok" || trailer.get("x-counted-trailer") === "yes",
    });
  }
  return out;
}

describe("one interceptor chain for every path", () => {
  it("runs every handler on every protocol, fast path on and off, behind the same chain", async () => {
    const results: Record<string, Map<string, Outcome>> = {};
    for (const server of ["fast", "adapter"] as const) {
      for (const transport of Object.keys(transports)) {
        const before = seen.length;
        const beforeLines = lines.length;
        const outcomes = await callEach(server, transport);
        results[`${server} ${transport}`] = outcomes;
        // Every call was seen once by the counting interceptor and written once by the access log.
        expect(seen.length - before).toBe(outcomes.size);
        const access = lines
          .slice(beforeLines)
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .filter((l) => l["message"] === "call");
        expect(access).toHaveLength(outcomes.size);
        for (const [name, o] of outcomes) {
          expect({ name, transport, server, counted: o.counted, trailer: o.countedTrailer }).toEqual({ name, transport, server, counted: true, trailer: true });
          expect(o.requestId, `${server} ${transport} ${name}`).toMatch(name === "Predict (valid)" ? /^given-/ : /^[0-9a-f-]{36}$/);
          expect(access.some((l) => l["requestId"] === o.requestId)).toBe(true);
        }
        expect(outcomes.get("Predict (valid)")!.code).toBe("ok");
        expect(outcomes.get("Health.Check")!.code).toBe("ok");
        expect(outcomes.get("Predict")!.code).toBe(Code.InvalidArgument);
      }
    }
    // Both paths answer every call with the same code.
    for (const transport of Object.keys(transports)) {
      const fast = [...results[`fast ${transport}`]!].map(([name, o]) => [name, o.code]);
      const adapter = [...results[`adapter ${transport}`]!].map(([name, o]) => [name, o.code]);
      expect(fast).toEqual(adapter);
    }
    // The counting interceptor saw gRPC and Connect calls on the fast-path server too, and gRPC-Web there as well.
    const types = new Set(seen.filter((s) => s.startsWith("fast ")).map((s) => s.split(" ").slice(2).join(" ")));
    expect(types).toEqual(new Set(["application/grpc+proto", "application/grpc-web+proto", "application/proto", "application/json"]));
  });
});
