import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.ts";
import { MlService, ModelType } from "../gen/ml/v1/ml_pb.ts";
import { readConfig } from "../src/config.ts";
import { scopeFor } from "../src/server/auth.ts";
import type { Service } from "../src/start.ts";
import { createTestIssuer, type TestIssuer } from "./support/jwks.ts";
import { startServiceForTest, type StartedService } from "./support/started.ts";

/** Bearer tokens with scopes, checked on every RPC over every protocol a started service speaks. */
let started: StartedService;
let service: Service;
const dir = mkdtempSync(join(tmpdir(), "ml-auth-"));
let issuer: TestIssuer;
const token: TestIssuer["token"] = (scope, options) => issuer.token(scope, options);

beforeAll(async () => {
  issuer = await createTestIssuer(dir);
  started = await startServiceForTest(issuer.env, dir);
  service = started.service;
});
afterAll(async () => {
  await started?.close();
});

const transports = (): [string, Transport][] => {
  const baseUrl = `http://127.0.0.1:${service.port}`;
  return [
    ["grpc", createGrpcTransport({ baseUrl })],
    ["grpc-web h2", createGrpcWebTransport({ baseUrl, httpVersion: "2" })],
    ["connect h2", createConnectTransport({ baseUrl, httpVersion: "2" })],
    ["connect h1", createConnectTransport({ baseUrl, httpVersion: "1.1" })],
  ];
};

/** One call of every RPC (valid enough to pass auth; what happens after does not matter here). */
const everyRpc = (client: ReturnType<typeof createClient<typeof MlService>>, headers: Record<string, string>) => {
  const at = timestampFromMs(Date.UTC(2026, 10, 26, 9));
  const E = ModelType.ENERGY_PREDICTION;
  return {
    Predict: () => client.predict({ userId: "a", targetTime: at, recentActivity: { avgEnergyLast7Days: 2 } }, { headers }),
    ForecastEnergy: () => client.forecastEnergy({ userId: "a", from: at, hours: 2 }, { headers }),
    SuggestTasks: () => client.suggestTasks({ userId: "a" }, { headers }),
    Feedback: () => client.feedback({ predictionId: "00000000-0000-4000-8000-000000000000", wasCorrect: true }, { headers }),
    IngestTrainingData: () => client.ingestTrainingData({ samples: [] }, { headers }),
    UpsertTasks: () => client.upsertTasks({ userId: "a", tasks: [] }, { headers }),
    Train: () => client.train({ userId: "a", modelType: E }, { headers }),
    ActivateModel: () => client.activateModel({ modelId: "00000000-0000-4000-8000-000000000000" }, { headers }),
    ListModels: () => client.listModels({ userId: "a", modelType: E }, { headers }),
    ListActivations: () => client.listActivations({ userId: "a", modelType: E }, { headers }),
  };
};
const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => "ok" as const,
    (e: unknown) => Code[ConnectError.from(e).code],
  );

describe("authentication and scopes", () => {
  it("answers UNAUTHENTICATED without a valid token and PERMISSION_DENIED without the scope, on every RPC and protocol", async () => {
    const bad = {
      none: {},
      malformed: { authorization: "Bearer not.a.jwt" },
      wrongKey: { authorization: `Bearer ${await token("ml.predict ml.ingest ml.admin", { key: issuer.untrustedKey })}` },
      wrongIssuer: { authorization: `Bearer ${await token("ml.admin", { issuer: "someone" })}` },
      wrongAudience: { authorization: `Bearer ${await token("ml.admin", { audience: "other" })}` },
      expired: { authorization: `Bearer ${await token("ml.admin", { expires: "-5m" })}` },
    };
    const scoped = Object.fromEntries(
      await Promise.all(["ml.predict", "ml.ingest", "ml.admin"].map(async (s) => [s, { authorization: `Bearer ${await token(s)}` }] as const)),
    );
    for (const [name, transport] of transports()) {
      const client = createClient(MlService, transport);
      for (const [why, headers] of Object.entries(bad)) {
        for (const [rpc, call] of Object.entries(everyRpc(client, headers))) expect(await codeOf(call()), `${name} ${why} ${rpc}`).toBe("Unauthenticated");
      }
      for (const [scope, headers] of Object.entries(scoped)) {
        for (const [rpc, call] of Object.entries(everyRpc(client, headers))) {
          const code = await codeOf(call());
          if (scopeFor(rpc) === scope) expect(["Unauthenticated", "PermissionDenied"], `${name} ${scope} ${rpc}`).not.toContain(code);
          else expect(code, `${name} ${scope} ${rpc}`).toBe("PermissionDenied");
        }
      }
    }
  });

  it("leaves health open and lets a scoped caller work", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${service.port}` }));
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    const client = createClient(MlService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${service.port}` }));
    const headers = { authorization: `Bearer ${await token("ml.predict")}` };
    const answer = await client.predict(
      { userId: "a", targetTime: timestampFromMs(Date.UTC(2026, 10, 26, 9)), recentActivity: { avgEnergyLast7Days: 2 } },
      { headers },
    );
    expect(answer.predictionId).not.toBe("");
  });

  it("refuses to start open on a public address unless told to", () => {
    expect(() => readConfig({ HOST: "0.0.0.0" })).toThrow(/ALLOW_UNAUTHENTICATED=1/);
    expect(readConfig({ HOST: "0.0.0.0", ALLOW_UNAUTHENTICATED: "1" }).auth).toBeNull();
    expect(readConfig({ HOST: "127.0.0.1" }).auth).toBeNull();
    expect(() => readConfig({ AUTH_JWKS_FILE: "x.json" })).toThrow(/AUTH_ISSUER/);
    expect(readConfig({ HOST: "0.0.0.0", AUTH_JWKS_URL: "https://idp/jwks", AUTH_ISSUER: "i", AUTH_AUDIENCE: "a" }).auth?.jwks).toEqual({
      url: "https://idp/jwks",
    });
  });
});
