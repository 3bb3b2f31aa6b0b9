import { execFile } from "node:child_process";
import { copyFileSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MlService, ModelType } from "../gen/ml/v1/ml_pb.ts";
import { readConfig } from "../src/config.ts";
import { silentLogger } from "../src/logger.ts";
import { startService, type Service } from "../src/start.ts";
import { makeTestCerts, type TestCerts } from "./support/certs.ts";
import { freshDatabase, testServerUrl, type TestDatabase } from "./support/database.ts";
import { grpcJsClient } from "./support/grpc-client.ts";

/** TLS and mutual TLS on the one port: grpc-js, Connect (HTTP/2 and 1.1) and gRPC-Web; a renewed certificate is served without a restart. */
let certs: TestCerts;
let tlsService: Service;
let mtlsService: Service;
const databases: TestDatabase[] = [];
const E = ModelType.ENERGY_PREDICTION;
const execFileAsync = promisify(execFile);

async function start(extra: Record<string, string>): Promise<Service> {
  const base = { PORT: "0", TRAIN_THREADS: "1", PREDICTION_SPILL_DIR: join(certs.dir, `spill-${databases.length}`), ...extra };
  const db = await freshDatabase({ migrate: false });
  databases.push(db);
  return startService(
    readConfig(testServerUrl !== undefined ? { ...base, DATABASE_URL: db.url } : { ...base, DATA_DIR: join(certs.dir, `pglite-${databases.length}`) }),
    silentLogger,
  );
}

beforeAll(async () => {
  certs = makeTestCerts();
  // The certificate is served from copies, so the test can renew them in place.
  copyFileSync(certs.serverCert, join(certs.dir, "live.crt"));
  copyFileSync(certs.serverKey, join(certs.dir, "live.key"));
  tlsService = await start({ TLS_CERT_FILE: join(certs.dir, "live.crt"), TLS_KEY_FILE: join(certs.dir, "live.key") });
  mtlsService = await start({ TLS_CERT_FILE: certs.serverCert, TLS_KEY_FILE: certs.serverKey, TLS_CLIENT_CA_FILE: certs.caCert });
});
afterAll(async () => {
  await tlsService?.stop();
  await mtlsService?.stop();
  for (const db of databases) await db.close();
  rmSync(certs.dir, { recursive: true, force: true });
});

const ca = () => readFileSync(certs.caCert);

describe("TLS", () => {
  it("serves every protocol over TLS on one port", async () => {
    const grpcJs = grpcJsClient(MlService, `127.0.0.1:${tlsService.port}`, grpc.credentials.createSsl(ca()));
    const listed = await grpcJs.call(MlService.method.listModels, { userId: "nobody", modelType: E });
    expect(listed.models).toEqual([]);
    grpcJs.close();
    const baseUrl = `https://127.0.0.1:${tlsService.port}`;
    for (const transport of [
      createConnectTransport({ baseUrl, httpVersion: "2", nodeOptions: { ca: ca() } }),
      createConnectTransport({ baseUrl, httpVersion: "1.1", nodeOptions: { ca: ca() } }),
      createGrpcWebTransport({ baseUrl, httpVersion: "1.1", nodeOptions: { ca: ca() } }),
    ]) {
      expect((await createClient(MlService, transport).listModels({ userId: "nobody", modelType: E })).models).toEqual([]);
    }
  });

  it("asks for a client certificate with mutual TLS and refuses a caller without one", async () => {
    const withCert = grpcJsClient(
      MlService,
      `127.0.0.1:${mtlsService.port}`,
      grpc.credentials.createSsl(ca(), readFileSync(certs.clientKey), readFileSync(certs.clientCert)),
    );
    expect((await withCert.call(MlService.method.listModels, { userId: "nobody", modelType: E })).models).toEqual([]);
    withCert.close();
    const without = grpcJsClient(MlService, `127.0.0.1:${mtlsService.port}`, grpc.credentials.createSsl(ca()));
    const err = (await without.call(MlService.method.listModels, { userId: "nobody", modelType: E }).catch((e: unknown) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    without.close();
  });

  it("answers buf curl over TLS and mutual TLS (reflection included)", async () => {
    const buf = fileURLToPath(new URL("../node_modules/.bin/buf", import.meta.url));
    const curl = (port: number, extra: string[]) =>
      execFileAsync(buf, [
        "curl",
        "--protocol",
        "grpc",
        "--cacert",
        certs.caCert,
        ...extra,
        "-d",
        '{"user_id":"nobody","model_type":"MODEL_TYPE_ENERGY_PREDICTION"}',
        `https://127.0.0.1:${port}/ml.v1.MlService/ListModels`,
      ]);
    expect(JSON.parse((await curl(tlsService.port, [])).stdout)).toEqual({});
    expect(JSON.parse((await curl(mtlsService.port, ["--cert", certs.clientCert, "--key", certs.clientKey])).stdout)).toEqual({});
    await expect(curl(mtlsService.port, [])).rejects.toThrow();
  }, 60_000);

  it("serves a renewed certificate without a restart", async () => {
    const serial = () =>
      new Promise<string>((resolve, reject) => {
        const socket = tlsConnect({ host: "127.0.0.1", port: tlsService.port, ca: ca(), ALPNProtocols: ["h2"] }, () => {
          resolve(socket.getPeerCertificate().serialNumber);
          socket.end();
        });
        socket.on("error", reject);
      });
    const before = await serial();
    const renewed = certs.issueServer("renewed");
    copyFileSync(renewed.key, join(certs.dir, "live.key"));
    copyFileSync(renewed.cert, join(certs.dir, "live.crt"));
    let after = before;
    for (let i = 0; i < 60 && after === before; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await serial();
    }
    expect(after).not.toBe(before);
  });
});
