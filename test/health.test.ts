// grpc.health.v1 over a real HTTP/2 server, called as gRPC by Connect and grpc-js clients.
import { fromBinary, toBinary, create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { Health, HealthCheckRequestSchema, HealthCheckResponseSchema, HealthCheckResponse_ServingStatus as S } from "../gen/grpc/health/v1/health_pb.ts";
import { createHealthService, type HealthService } from "../src/server/health.ts";
import { serve, type Running } from "./support/serve.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(): Promise<{ health: HealthService; client: ReturnType<typeof healthClient>; srv: Running }> {
  const health = createHealthService();
  const srv = await serve((router) => health.register(router));
  cleanups.push(() => srv.close());
  return { health, client: healthClient(srv.url), srv };
}

function healthClient(baseUrl: string) {
  return createClient(Health, createGrpcTransport({ baseUrl }));
}

/** Pulls the next message off a stream, failing the test instead of hanging. */
async function next<T>(it: AsyncIterator<T>, ms = 2000): Promise<IteratorResult<T>> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no stream message within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([it.next(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe("Health.Check", () => {
  it("reports the whole server as SERVING by default", async () => {
    const { client } = await start();
    const res = await client.check({ service: "" });
    expect(res.status).toBe(S.SERVING);
  });

  it("answers NOT_FOUND for a service it does not know", async () => {
    const { client } = await start();
    const err = await client.check({ service: "no.such.Service" }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.NotFound);
    expect(err?.rawMessage).toContain("no.such.Service");
  });

  it("reflects setStatus for named services and for the server", async () => {
    const { client, health } = await start();
    health.setStatus("ml.v1.MlService", S.NOT_SERVING);
    expect((await client.check({ service: "ml.v1.MlService" })).status).toBe(S.NOT_SERVING);
    health.setStatus("ml.v1.MlService", S.SERVING);
    health.setStatus("", S.NOT_SERVING);
    expect((await client.check({ service: "ml.v1.MlService" })).status).toBe(S.SERVING);
    expect((await client.check({ service: "" })).status).toBe(S.NOT_SERVING);
    expect(health.getStatus("ml.v1.MlService")).toBe(S.SERVING);
  });

  it("keeps separate state per factory call", async () => {
    const a = createHealthService();
    const b = createHealthService({ initial: { "": S.NOT_SERVING } });
    a.setStatus("x", S.SERVING);
    expect(b.getStatus("x")).toBeUndefined();
    expect(a.getStatus("")).toBe(S.SERVING);
    expect(b.getStatus("")).toBe(S.NOT_SERVING);
  });

  it("is callable from @grpc/grpc-js", async () => {
    const { srv, health } = await start();
    health.setStatus("ml.v1.MlService", S.NOT_SERVING);
    const client = new grpc.Client(`127.0.0.1:${srv.port}`, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const check = (service: string) =>
      new Promise<{ status: S } | grpc.ServiceError>((resolve) => {
        client.makeUnaryRequest(
          "/grpc.health.v1.Health/Check",
          (req: { service: string }) => Buffer.from(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, req))),
          (buf: Buffer) => fromBinary(HealthCheckResponseSchema, buf),
          { service },
          (err, res) => resolve(err ?? res!),
        );
      });
    expect(await check("ml.v1.MlService")).toMatchObject({ status: S.NOT_SERVING });
    expect(await check("nope")).toMatchObject({ code: grpc.status.NOT_FOUND });
  });
});

describe("Health.List", () => {
  it("returns every known service", async () => {
    const { client, health } = await start();
    health.setStatus("ml.v1.MlService", S.NOT_SERVING);
    const res = await client.list({});
    expect(Object.fromEntries(Object.entries(res.statuses).map(([k, v]) => [k, v.status]))).toEqual({
      "": S.SERVING,
      "ml.v1.MlService": S.NOT_SERVING,
    });
  });
});

describe("Health.Watch", () => {
  it("sends the current status, then each change, skipping no-op sets", async () => {
    const { client, health } = await start();
    health.setStatus("ml.v1.MlService", S.SERVING);
    const abort = new AbortController();
    const stream = client.watch({ service: "ml.v1.MlService" }, { signal: abort.signal })[Symbol.asyncIterator]();
    expect((await next(stream)).value?.status).toBe(S.SERVING);
    health.setStatus("ml.v1.MlService", S.NOT_SERVING);
    expect((await next(stream)).value?.status).toBe(S.NOT_SERVING);
    health.setStatus("other", S.NOT_SERVING); // another service: no message
    health.setStatus("ml.v1.MlService", S.NOT_SERVING); // unchanged: no message
    health.setStatus("ml.v1.MlService", S.SERVING);
    expect((await next(stream)).value?.status).toBe(S.SERVING);
    abort.abort();
    const ended = await next(stream).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(ended?.code).toBe(Code.Canceled);
  });

  it("sends SERVICE_UNKNOWN for an unknown service and keeps watching", async () => {
    const { client, health } = await start();
    const abort = new AbortController();
    cleanups.push(() => abort.abort());
    const stream = client.watch({ service: "later.Service" }, { signal: abort.signal })[Symbol.asyncIterator]();
    expect((await next(stream)).value?.status).toBe(S.SERVICE_UNKNOWN);
    health.setStatus("later.Service", S.SERVING);
    expect((await next(stream)).value?.status).toBe(S.SERVING);
  });

  it("ends every stream with NOT_SERVING on shutdown, and ignores later setStatus", async () => {
    const { client, health } = await start();
    const a = client.watch({ service: "" })[Symbol.asyncIterator]();
    const b = client.watch({ service: "unknown.Service" })[Symbol.asyncIterator]();
    expect((await next(a)).value?.status).toBe(S.SERVING);
    expect((await next(b)).value?.status).toBe(S.SERVICE_UNKNOWN);
    health.shutdown();
    expect((await next(a)).value?.status).toBe(S.NOT_SERVING);
    expect((await next(a)).done).toBe(true);
    expect((await next(b)).done).toBe(true);
    health.setStatus("", S.SERVING);
    expect((await client.check({ service: "" })).status).toBe(S.NOT_SERVING);
    // A watch opened after shutdown reports the final status and ends at once.
    const c = client.watch({ service: "" })[Symbol.asyncIterator]();
    expect((await next(c)).value?.status).toBe(S.NOT_SERVING);
    expect((await next(c)).done).toBe(true);
  });

  it("keeps serving after a watching client cancels", async () => {
    const { client, health, srv } = await start();
    const abort = new AbortController();
    const stream = client.watch({ service: "" }, { signal: abort.signal })[Symbol.asyncIterator]();
    expect((await next(stream)).value?.status).toBe(S.SERVING);
    abort.abort();
    await next(stream).catch(() => undefined);
    health.setStatus("", S.NOT_SERVING);
    expect((await client.check({ service: "" })).status).toBe(S.NOT_SERVING);
    await srv.close();
  });
});
