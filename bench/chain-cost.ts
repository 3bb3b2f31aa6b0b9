/**
 * What the interceptor chain costs a unary call on the lean path, without a
 * network or a database: the fast path serves a canned Predict answer to an
 * in-memory HTTP/2 stream stand-in, with no interceptors, with the service's
 * chain at its defaults, and with every call written to the access log.
 * Alternating rounds, median µs per call:
 *   node --import tsx bench/chain-cost.ts [calls-per-round] [rounds]
 */
import { EventEmitter } from "node:events";
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { MlService, PredictRequestSchema, PredictResponseSchema } from "../gen/ml/v1/ml_pb.ts";
import { readConfig } from "../src/config.ts";
import { createJsonLogger } from "../src/logger.ts";
import { createInterceptorChain } from "../src/server/interceptors.ts";
import { createUnaryFastPath, type FastPath } from "../src/server/unary-fast-path.ts";

const [perRound = 50_000, rounds = 7] = process.argv.slice(2).map(Number);
const config = readConfig({});
const answer = create(PredictResponseSchema, {
  predictionId: "5f0c7d1e-2b8a-4c3e-9d6f-1a2b3c4d5e6f",
  confidence: 0.52,
  probabilities: [
    { level: 1, probability: 0.12 },
    { level: 2, probability: 0.36 },
    { level: 3, probability: 0.52 },
  ],
  recommendedTaskTypes: ["deep work", "planning"],
  modelSource: 1,
});
const routes = { service: MlService, handlers: { predict: async () => answer } };
const message = toBinary(PredictRequestSchema, create(PredictRequestSchema, { userId: "bench", timeZone: "Europe/Berlin" }));
const body = Buffer.alloc(5 + message.byteLength);
body.writeUInt32BE(message.byteLength, 1);
body.set(message, 5);
const headers: IncomingHttpHeaders = Object.assign(Object.create(null) as IncomingHttpHeaders, {
  ":method": "POST",
  ":path": "/ml.v1.MlService/Predict",
  ":authority": "127.0.0.1:50051",
  ":scheme": "http",
  "content-type": "application/grpc",
  te: "trailers",
  "user-agent": "h2load nghttp2/1.52.0",
});

/** Just enough of a ServerHttp2Stream for the fast path: answers resolve `done`. */
class StreamStandIn extends EventEmitter {
  destroyed = false;
  closed = false;
  #wantTrailers = false;
  constructor(readonly done: () => void) {
    super();
  }
  respond(_headers: unknown, options?: { endStream?: boolean; waitForTrailers?: boolean }): void {
    this.#wantTrailers = options?.waitForTrailers === true;
    if (options?.endStream === true) this.done();
  }
  end(_body?: unknown): void {
    if (this.#wantTrailers) this.emit("wantTrailers");
    else this.done();
  }
  sendTrailers(_trailers: unknown): void {
    this.done();
  }
}

function call(path: FastPath): Promise<void> {
  return new Promise((resolve) => {
    const stream = new StreamStandIn(resolve);
    if (!path(stream as unknown as ServerHttp2Stream, headers)) throw new Error("the fast path declined the call");
    stream.emit("data", body);
    stream.emit("end");
  });
}

const discard = createJsonLogger({ write: () => undefined });
const variants: Record<string, FastPath> = {
  "no interceptors": createUnaryFastPath(routes, { interceptors: [], limits: config.limits }),
  "the chain, defaults": createUnaryFastPath(routes, {
    interceptors: createInterceptorChain({ log: discard, accessLog: config.accessLog }),
    limits: config.limits,
  }),
  "the chain, ACCESS_LOG_SAMPLE=1": createUnaryFastPath(routes, {
    interceptors: createInterceptorChain({ log: discard, accessLog: { ...config.accessLog, sampleRate: 1 } }),
    limits: config.limits,
  }),
};
const samples: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
for (let round = 0; round <= rounds; round++) {
  for (const [name, path] of Object.entries(variants)) {
    const started = performance.now();
    for (let i = 0; i < perRound; i++) await call(path);
    // Round 0 warms up.
    if (round > 0) samples[name]!.push(((performance.now() - started) * 1000) / perRound);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const base = median(samples["no interceptors"]!);
for (const [name, xs] of Object.entries(samples)) {
  const m = median(xs);
  console.log(`${name.padEnd(32)} ${m.toFixed(2)} µs/call (range ${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}), +${(m - base).toFixed(2)} µs`);
}
