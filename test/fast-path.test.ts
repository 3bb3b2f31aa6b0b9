import http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HandlerContext } from "@connectrpc/connect";
import { ListModelsRequestSchema, MlService, PredictRequestSchema, PredictResponseSchema, TrainRequestSchema } from "../gen/ml/v1/ml_pb.ts";
import { createApp } from "../src/app.ts";
import { silentLogger } from "../src/logger.ts";
import { readConfig } from "../src/config.ts";
import { createInterceptorChain } from "../src/server/interceptors.ts";
import { listen, type RunningServer } from "../src/server/listen.ts";
import { createTrainPool, type TrainPool } from "../src/service/train-pool.ts";
import { freshDatabase, type TestDatabase } from "./support/database.ts";
import { TEST_SETTINGS } from "./support/service.ts";

/** The lean unary path, spoken to in raw HTTP/2 so every protocol detail is visible. */
let db: TestDatabase;
let pool: TrainPool;
let server: RunningServer;
/** The same app with every call through connect-node, to compare answers with. */
let plainServer: RunningServer;
let app: ReturnType<typeof createApp>;
let session: http2.ClientHttp2Session;
let plainSession: http2.ClientHttp2Session;

beforeAll(async () => {
  db = await freshDatabase();
  pool = createTrainPool(1);
  app = createApp({ db: db.pool, runJob: (job, signal) => pool.run(job, signal), log: silentLogger, settings: TEST_SETTINGS });
  const config = readConfig({});
  const options = {
    routes: app.routes,
    interceptors: createInterceptorChain({ log: silentLogger, accessLog: config.accessLog }),
    limits: config.limits,
    port: 0,
  };
  server = await listen({ ...options, fastPath: app.unaryHandlers });
  plainServer = await listen(options);
  session = http2.connect(`http://127.0.0.1:${server.port}`);
  plainSession = http2.connect(`http://127.0.0.1:${plainServer.port}`);
});
afterAll(async () => {
  session?.close();
  plainSession?.close();
  await server?.close();
  await plainServer?.close();
  await app?.close();
  await pool?.close();
  await db?.close();
});

interface Reply {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
}

function call(
  path: string,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array | string,
  options: { cancelAfterMs?: number; plain?: boolean } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = (options.plain === true ? plainSession : session).request({ ":method": "POST", ":path": path, ...headers });
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on("response", (h) => (responseHeaders = h));
    req.on("trailers", (t) => (trailers = t));
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve({ headers: responseHeaders, trailers, body: Buffer.concat(chunks) }));
    req.on("error", reject);
    req.end(body);
    if (options.cancelAfterMs !== undefined) setTimeout(() => req.close(http2.constants.NGHTTP2_CANCEL), options.cancelAfterMs);
  });
}

const frame = (msg: Uint8Array) => {
  const b = Buffer.alloc(5 + msg.byteLength);
  b.writeUInt32BE(msg.byteLength, 1);
  b.set(msg, 5);
  return b;
};
const predict = toBinary(
  PredictRequestSchema,
  create(PredictRequestSchema, { userId: "fp", targetTime: timestampFromMs(Date.UTC(2026, 0, 1, 9)), recentActivity: { avgEnergyLast7Days: 2 } }),
);
const grpc = { "content-type": "application/grpc", te: "trailers" };
/** Field 1 (user_id) holding bytes that are not UTF-8: protobuf's string type refuses them. */
const invalidUtf8 = Buffer.from([0x0a, 0x03, 0xff, 0xfe, 0x41]);

describe("unary fast path", () => {
  it("answers gRPC with a framed message and grpc-status 0 in the trailers", async () => {
    const r = await call("/ml.v1.MlService/Predict", grpc, frame(predict));
    expect(r.headers[":status"]).toBe(200);
    expect(r.trailers["grpc-status"]).toBe("0");
    expect(r.body.readUInt32BE(1)).toBe(r.body.byteLength - 5);
    const msg = fromBinary(PredictResponseSchema, r.body.subarray(5));
    expect(msg.probabilities).toHaveLength(3);
  });

  it("answers Connect binary and JSON", async () => {
    const bin = await call("/ml.v1.MlService/Predict", { "content-type": "application/proto", "connect-protocol-version": "1" }, predict);
    expect(bin.headers[":status"]).toBe(200);
    expect(fromBinary(PredictResponseSchema, bin.body).predictionId).toMatch(/-/);
    const json = await call(
      "/ml.v1.MlService/ListModels",
      { "content-type": "application/json" },
      JSON.stringify({ userId: "fp", modelType: "MODEL_TYPE_ENERGY_PREDICTION" }),
    );
    expect(json.headers[":status"]).toBe(200);
    expect(JSON.parse(json.body.toString())).toEqual({});
    const empty = await call("/ml.v1.MlService/ListModels", { "content-type": "application/json" }, "");
    expect(empty.headers[":status"]).toBe(400);
  });

  it("maps domain errors to gRPC trailers-only responses and Connect JSON errors", async () => {
    const bad = toBinary(ListModelsRequestSchema, create(ListModelsRequestSchema, { userId: "" }));
    const g = await call("/ml.v1.MlService/ListModels", grpc, frame(bad));
    expect(g.headers["grpc-status"]).toBe("3");
    expect(decodeURIComponent(String(g.headers["grpc-message"]))).toMatch(/model_type: must be/);
    const c = await call("/ml.v1.MlService/ListModels", { "content-type": "application/proto" }, bad);
    expect(c.headers[":status"]).toBe(400);
    expect(JSON.parse(c.body.toString())).toMatchObject({ code: "invalid_argument" });
    const train = toBinary(TrainRequestSchema, create(TrainRequestSchema, { userId: "nobody", modelType: 1 }));
    const pre = await call("/ml.v1.MlService/Train", { "content-type": "application/proto" }, train);
    expect(JSON.parse(pre.body.toString()).code).toBe("failed_precondition");
  });

  it("rejects malformed requests with the codes connect-node gives them", async () => {
    const proto = { "content-type": "application/proto" };
    const cases: [string, http2.OutgoingHttpHeaders, Uint8Array | string, string][] = [
      ["short frame", grpc, Buffer.from([0, 0, 0]), "3"],
      ["compressed flag without compression", grpc, Buffer.from([1, 0, 0, 0, 0]), "13"],
      ["frame longer than the body", grpc, Buffer.from([0, 0, 0, 0, 9, 1]), "3"],
      // A message that does not parse is the caller's bad input: InvalidArgument, as connect-go answers (patches/ makes connect-es agree).
      ["bad protobuf", grpc, frame(Buffer.from([0xff, 0xff, 0xff])), "3"],
      ["half a protobuf message", grpc, frame(predict.subarray(0, Math.floor(predict.byteLength / 2))), "3"],
      ["half a protobuf message over Connect", proto, predict.subarray(0, Math.floor(predict.byteLength / 2)), "400"],
      ["invalid UTF-8 in a string field", grpc, frame(invalidUtf8), "3"],
      ["invalid UTF-8 in a string field over Connect", proto, invalidUtf8, "400"],
      ["bad grpc-timeout", { ...grpc, "grpc-timeout": "soon" }, frame(predict), "3"],
      ["bad JSON", { "content-type": "application/json" }, "{not json", "400"],
      ["empty JSON", { "content-type": "application/json" }, "", "400"],
      ["bad connect-timeout-ms", { ...proto, "connect-timeout-ms": "x" }, predict, "400"],
      ["oversized message", proto, Buffer.alloc(5 * 1024 * 1024), "429"],
      ["oversized gRPC message", grpc, frame(Buffer.alloc(5 * 1024 * 1024)), "8"],
    ];
    const status = (r: Reply) => String(r.headers["grpc-status"] ?? r.trailers["grpc-status"] ?? r.headers[":status"]);
    for (const [what, headers, body, expected] of cases) {
      const fast = await call("/ml.v1.MlService/Predict", headers, body);
      const plain = await call("/ml.v1.MlService/Predict", headers, body, { plain: true });
      expect([what, status(fast)]).toEqual([what, expected]);
      expect([what, status(plain)]).toEqual([what, expected]);
      if (fast.headers["content-type"] === "application/json") {
        expect([what, JSON.parse(fast.body.toString()).code]).toEqual([what, JSON.parse(plain.body.toString()).code]);
      }
    }
  });

  it("leaves what it does not handle to connect-node", async () => {
    const unknown = await call("/ml.v1.MlService/Nope", grpc, frame(predict));
    expect(unknown.headers[":status"]).toBe(404);
    const compressed = await call("/ml.v1.MlService/Predict", { ...grpc, "grpc-encoding": "snappy" }, frame(predict));
    expect(compressed.headers["grpc-status"] ?? compressed.trailers["grpc-status"]).toBe("12");
    const web = await call("/ml.v1.MlService/Predict", { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" }, frame(predict));
    expect(web.headers[":status"]).toBe(200);
    const webBroken = await call("/ml.v1.MlService/Predict", { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" }, frame(invalidUtf8));
    expect(webBroken.body.toString()).toMatch(/grpc-status: ?3/);
    const oldVersion = await call("/ml.v1.MlService/Predict", { "content-type": "application/proto", "connect-protocol-version": "2" }, predict);
    // connect-node does not insist on the version header; what matters is that it, not the fast path, answered.
    expect(oldVersion.headers[":status"]).toBe(200);
  });

  it("answers deadline_exceeded when the deadline passes first, and survives cancelled calls", async () => {
    // A Predict that takes 300 ms unless its signal aborts: a 50 ms deadline must win, every time.
    let sawAbort = false;
    const slow = {
      service: MlService,
      handlers: {
        predict: async (_req: never, ctx: HandlerContext) => {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, 300);
            ctx.signal.addEventListener("abort", () => {
              sawAbort = true;
              clearTimeout(timer);
              resolve();
            });
          });
          return create(PredictResponseSchema, {});
        },
      },
    };
    const config = readConfig({});
    const slowServer = await listen({
      routes: (router) => router.service(MlService, slow.handlers as never),
      interceptors: createInterceptorChain({ log: silentLogger, accessLog: config.accessLog }),
      limits: config.limits,
      port: 0,
      fastPath: slow as never,
    });
    const slowSession = http2.connect(`http://127.0.0.1:${slowServer.port}`);
    try {
      const request = (headers: http2.OutgoingHttpHeaders) =>
        new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
          const req = slowSession.request({ ":method": "POST", ":path": "/ml.v1.MlService/Predict", ...grpc, ...headers });
          let status: http2.IncomingHttpHeaders = {};
          req.on("response", (h) => (status = h));
          req.on("trailers", (t) => (status = { ...status, ...t }));
          req.on("data", () => undefined);
          req.on("end", () => resolve(status));
          req.on("error", reject);
          req.end(frame(predict));
        });
      const late = await request({ "grpc-timeout": "50m" });
      expect(late["grpc-status"]).toBe("4");
      expect(sawAbort).toBe(true);
      const onTime = await request({ "grpc-timeout": "5S" });
      expect(onTime["grpc-status"]).toBe("0");
    } finally {
      slowSession.close();
      await slowServer.close();
    }
    await call("/ml.v1.MlService/Predict", grpc, frame(predict), { cancelAfterMs: 0 }).catch(() => undefined);
    const after = await call("/ml.v1.MlService/Predict", { ...grpc, "grpc-timeout": "5S" }, frame(predict));
    expect(after.trailers["grpc-status"]).toBe("0");
  });
});
