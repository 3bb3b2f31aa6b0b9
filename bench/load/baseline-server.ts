/**
 * A baseline server in its own process, so its CPU is measured apart from the
 * load generator: `raw` answers every POST with a gRPC-shaped Predict reply
 * straight from node:http2 (Node's ceiling); `connect` serves a trivial
 * Predict handler through connectNodeAdapter (the framework's ceiling).
 * Prints `{"port":N}` on stdout once listening; exits on SIGTERM.
 */
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { MlService } from "../../gen/ml/v1/ml_pb.ts";
import { cannedPredictBytes, cannedPredictResponse } from "./canned.ts";
import { grpcFrame } from "./framing.ts";

const mode = process.argv[2];
if (mode !== "raw" && mode !== "connect") {
  console.error("usage: baseline-server.ts raw|connect");
  process.exit(2);
}

function rawServer(): http2.Http2Server {
  const body = grpcFrame(cannedPredictBytes());
  const server = http2.createServer();
  server.on("stream", (stream) => {
    stream.on("data", () => {});
    stream.once("end", () => {
      if (stream.destroyed) return;
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(body);
    });
    stream.on("error", () => {});
  });
  return server;
}

function connectServer(): http2.Http2Server {
  const reply = cannedPredictResponse();
  const handler = connectNodeAdapter({
    routes(router) {
      router.service(MlService, { predict: async () => reply });
    },
  });
  return http2.createServer({}, handler);
}

const server = mode === "raw" ? rawServer() : connectServer();
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.once("SIGTERM", () => {
  server.close();
  process.exit(0);
});
