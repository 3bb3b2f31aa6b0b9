/**
 * What the interceptor chain costs a unary call on the lean path over a real
 * loopback HTTP/2 connection: the fast path serves a canned Predict answer
 * with no interceptors, with only an interceptor that sets `x-request-id`,
 * and with the service's chain at its defaults; the client (32 concurrent
 * streams) runs in a child process, so the server's CPU per call is its own.
 * Rounds alternate; medians of µs per call:
 *   node --import tsx bench/chain-cost-http2.ts [rounds] [seconds]
 */
import { fork } from "node:child_process";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { MlService, PredictRequestSchema, PredictResponseSchema } from "../gen/ml/v1/ml_pb.ts";
import { readConfig } from "../src/config.ts";
import { createJsonLogger } from "../src/logger.ts";
import { createInterceptorChain } from "../src/server/interceptors.ts";
import { createUnaryFastPath, type FastPath } from "../src/server/unary-fast-path.ts";

const [role = "server", a = "5", b = "5"] = process.argv.slice(2);

if (role === "client") {
  // argv: client PORT SECONDS
  const message = toBinary(PredictRequestSchema, create(PredictRequestSchema, { userId: "bench", timeZone: "Europe/Berlin" }));
  const body = Buffer.alloc(5 + message.byteLength);
  body.writeUInt32BE(message.byteLength, 1);
  body.set(message, 5);
  const session = http2.connect(`http://127.0.0.1:${a}`);
  const warm = Date.now() + 1000;
  const end = warm + Number(b) * 1000;
  let counted = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const req = session.request({ ":method": "POST", ":path": "/ml.v1.MlService/Predict", "content-type": "application/grpc", te: "trailers" });
      req.on("data", () => undefined);
      req.on("end", () => resolve());
      req.end(body);
    });
  const loop = async () => {
    while (Date.now() < end) {
      await one();
      if (Date.now() >= warm) counted++;
    }
  };
  await Promise.all(Array.from({ length: 32 }, loop));
  process.send!({ calls: counted, seconds: Number(b) });
  session.close();
} else {
  const rounds = Number(a);
  const config = readConfig({});
  const answer = create(PredictResponseSchema, { predictionId: "5f0c7d1e-2b8a-4c3e-9d6f-1a2b3c4d5e6f", confidence: 0.52, modelSource: 1 });
  const routes = { service: MlService, handlers: { predict: async () => answer } };
  const onlyRequestIdHeader: Interceptor = (next) => (req) =>
    next(req).then((res) => {
      res.header.set("x-request-id", "5f0c7d1e-2b8a-4c3e-9d6f-1a2b3c4d5e6f");
      return res;
    });
  const variants: Record<string, FastPath> = {
    "no interceptors": createUnaryFastPath(routes, { interceptors: [], limits: config.limits }),
    "only x-request-id set": createUnaryFastPath(routes, { interceptors: [onlyRequestIdHeader], limits: config.limits }),
    "the chain, defaults": createUnaryFastPath(routes, {
      interceptors: createInterceptorChain({ log: createJsonLogger({ write: () => undefined }), accessLog: config.accessLog }),
      limits: config.limits,
    }),
  };
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  for (let round = 0; round < rounds; round++) {
    for (const [name, path] of Object.entries(variants)) {
      const server = http2.createServer();
      server.on("stream", (stream, headers) => {
        if (!path(stream, headers)) stream.respond({ ":status": 404 }, { endStream: true });
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const client = fork(fileURLToPath(import.meta.url), ["client", String((server.address() as AddressInfo).port), b], {
        execArgv: ["--import", "tsx"],
      });
      // CPU from the client's first call: the warm-up second counts, on every variant alike.
      const before = process.cpuUsage();
      const result = await new Promise<{ calls: number }>((resolve) => client.once("message", resolve as never));
      const cpu = process.cpuUsage(before);
      samples[name]!.push((cpu.user + cpu.system) / result.calls);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      client.kill();
    }
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  for (const [name, xs] of Object.entries(samples)) {
    console.log(`${name.padEnd(24)} ${median(xs).toFixed(1)} µs/call of server CPU (range ${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)})`);
  }
}
