import http2 from "node:http2";
import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Service } from "../src/start.ts";
import { startServiceForTest, type StartedService } from "./support/started.ts";

/** A request whose body never completes is cancelled after REQUEST_READ_TIMEOUT_SECONDS, on HTTP/2 (both paths) and HTTP/1.1. */
let started: StartedService;
let service: Service;

beforeAll(async () => {
  started = await startServiceForTest({ REQUEST_READ_TIMEOUT_SECONDS: "1" });
  service = started.service;
});
afterAll(async () => {
  await started?.close();
});

describe("the read timeout", () => {
  for (const [name, headers] of [
    ["gRPC (lean path)", { "content-type": "application/grpc" }],
    ["gRPC-Web over HTTP/2 (connect-node)", { "content-type": "application/grpc-web+proto" }],
  ] as const) {
    it(`cancels a half-sent ${name} request`, async () => {
      const session = http2.connect(`http://127.0.0.1:${service.port}`);
      const stream = session.request({ ":method": "POST", ":path": "/ml.v1.MlService/Predict", ...headers });
      // A frame that promises 100 bytes, then 10 of them, then silence.
      stream.write(Buffer.from([0, 0, 0, 0, 100, ...new Array(10).fill(1)]));
      const started = Date.now();
      const closed = await new Promise<number>((resolve) => stream.on("close", () => resolve(stream.rstCode)));
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(closed).toBe(http2.constants.NGHTTP2_CANCEL);
      session.close();
    });
  }

  it("answers a half-sent HTTP/1.1 request with 408 and closes it", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({
        host: "127.0.0.1",
        port: service.port,
        method: "POST",
        path: "/ml.v1.MlService/Predict",
        headers: { "content-type": "application/json", "content-length": "100" },
      });
      req.on("response", (res) => resolve(res.statusCode ?? 0));
      req.on("error", reject);
      req.write("{");
    });
    expect(status).toBe(408);
  });
});
