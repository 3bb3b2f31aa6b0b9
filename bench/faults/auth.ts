import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import type { CryptoKey } from "jose";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.ts";
import { MlService } from "../../gen/ml/v1/ml_pb.ts";
import { scopeFor, SCOPES, type Scope } from "../../src/server/auth.ts";
import { createTestIssuer } from "../../test/support/jwks.ts";
import { codeOf } from "./mix.ts";
import type { FaultOptions } from "./options.ts";
import { codeList, count, type FaultRow } from "./report.ts";
import type { FaultRig } from "./rig.ts";

/**
 * The service restarted with a JWKS file (a key pair made here, as
 * test/auth.test.ts does), then every unary RPC over every protocol: no
 * token or a token from another key is UNAUTHENTICATED, a token without the
 * RPC's scope PERMISSION_DENIED, a token with it gets past auth; health stays open.
 */
export async function runAuth(rig: FaultRig, _options: FaultOptions): Promise<FaultRow[]> {
  const dir = mkdtempSync(join(tmpdir(), "ml-faults-auth-"));
  try {
    const issuer = await createTestIssuer(dir, { issuer: "faults-issuer", kid: "faults" });
    await rig.terminate();
    const service = await rig.ensure(issuer.env);
    const baseUrl = `http://127.0.0.1:${service.port}`;
    const transports: [string, Transport][] = [
      ["gRPC", createGrpcTransport({ baseUrl })],
      ["gRPC-Web h1", createGrpcWebTransport({ baseUrl, httpVersion: "1.1" })],
      ["gRPC-Web h2", createGrpcWebTransport({ baseUrl, httpVersion: "2" })],
      ["Connect h1", createConnectTransport({ baseUrl, httpVersion: "1.1" })],
      ["Connect h2", createConnectTransport({ baseUrl, httpVersion: "2" })],
    ];
    const scopes = Object.keys(SCOPES) as Scope[];
    const bearer = async (scope: string, key?: CryptoKey) => ({ authorization: `Bearer ${await issuer.token(scope, key === undefined ? {} : { key })}` });
    const noScope = await bearer("ml.other");
    const wrongKey = await bearer(scopes.join(" "), issuer.untrustedKey);
    const byScope = new Map<Scope, Record<string, string>>();
    const allBut = new Map<Scope, Record<string, string>>();
    for (const s of scopes) {
      byScope.set(s, await bearer(s));
      allBut.set(s, await bearer(scopes.filter((x) => x !== s).join(" ")));
    }
    const tallies = {
      none: new Map<string, number>(),
      wrongKey: new Map<string, number>(),
      noScope: new Map<string, number>(),
      otherScopes: new Map<string, number>(),
      rightScope: new Map<string, number>(),
    };
    const wrong: string[] = [];
    let calls = 0;
    for (const [protocol, transport] of transports) {
      const client = createClient(MlService, transport) as unknown as Record<string, (req: unknown, options?: unknown) => Promise<unknown>>;
      for (const method of MlService.methods) {
        if (method.methodKind !== "unary") continue;
        const need = scopeFor(method.name);
        const call = (headers: Record<string, string>) =>
          client[method.localName]!(create(method.input), { headers, timeoutMs: 30_000 }).then(() => "OK", codeOf);
        const checks: [keyof typeof tallies, Record<string, string>, (code: string) => boolean][] = [
          ["none", {}, (c) => c === "Unauthenticated"],
          ["wrongKey", wrongKey, (c) => c === "Unauthenticated"],
          ["noScope", noScope, (c) => c === "PermissionDenied"],
          ["otherScopes", allBut.get(need)!, (c) => c === "PermissionDenied"],
          ["rightScope", byScope.get(need)!, (c) => c !== "Unauthenticated" && c !== "PermissionDenied" && c !== "Internal" && c !== "Unknown"],
        ];
        for (const [kind, headers, ok] of checks) {
          const code = await call(headers);
          calls++;
          count(tallies[kind], code);
          if (!ok(code)) wrong.push(`${protocol} ${method.name} ${kind}: ${code}`);
        }
      }
    }
    const health = createClient(Health, createGrpcTransport({ baseUrl }));
    const healthStatus = await health.check({ service: "" }).then((r) => HealthCheckResponse_ServingStatus[r.status], codeOf);
    const S = `auth (${transports.length} protocols x every RPC)`;
    const row = (figure: string, kind: keyof typeof tallies, target: string): FaultRow => ({
      scenario: S,
      figure,
      value: codeList(tallies[kind]),
      target,
      pass: !wrong.some((w) => w.includes(` ${kind}:`)),
    });
    const rows: FaultRow[] = [
      row("no token", "none", "all Unauthenticated"),
      row("token signed by another key", "wrongKey", "all Unauthenticated"),
      row("valid token, no ml scope", "noScope", "all PermissionDenied"),
      row("valid token, every scope but the RPC's", "otherScopes", "all PermissionDenied"),
      row("valid token with the RPC's scope (empty requests)", "rightScope", "past auth, no Internal/Unknown"),
      {
        scenario: S,
        figure: `health Check without a token; wrong answers of ${calls}`,
        value: `${healthStatus}; ${wrong.length === 0 ? "none" : wrong.slice(0, 5).join(", ")}`,
        target: "SERVING; none",
        pass: healthStatus === "SERVING" && wrong.length === 0,
      },
    ];
    await rig.terminate();
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
