// grpc.reflection.v1 (and v1alpha) over a real HTTP/2 server, called as gRPC by Connect and grpc-js clients.
import { create, createFileRegistry, type DescFile, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import {
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  file_google_protobuf_timestamp,
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
} from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  ServerReflection,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
} from "../gen/grpc/reflection/v1/reflection_pb.ts";
import { file_ml_v1_ml } from "../gen/ml/v1/ml_pb.ts";
import { createHealthService } from "../src/server/health.ts";
import { createReflectionService } from "../src/server/reflection.ts";
import { serve, type Running } from "./support/serve.ts";

type Req = MessageInitShape<typeof ServerReflectionRequestSchema>;

/**
 * A hand-built file with a proto2 message and an extension of it, because
 * nothing in gen/ declares extensions.
 */
function extensionFile(): DescFile {
  const proto = create(FileDescriptorProtoSchema, {
    name: "test/ext.proto",
    package: "test.ext",
    syntax: "proto2",
    dependency: ["google/protobuf/timestamp.proto"],
    messageType: [
      {
        name: "Base",
        field: [{ name: "id", number: 1, type: FieldDescriptorProto_Type.STRING, label: FieldDescriptorProto_Label.OPTIONAL }],
        extensionRange: [{ start: 100, end: 200 }],
      },
    ],
    extension: [
      { name: "extra", number: 150, extendee: ".test.ext.Base", type: FieldDescriptorProto_Type.INT32, label: FieldDescriptorProto_Label.OPTIONAL },
      {
        name: "when",
        number: 101,
        extendee: ".test.ext.Base",
        type: FieldDescriptorProto_Type.MESSAGE,
        typeName: ".google.protobuf.Timestamp",
        label: FieldDescriptorProto_Label.OPTIONAL,
      },
    ],
  });
  const file = createFileRegistry(proto, (name) => (name === file_google_protobuf_timestamp.proto.name ? file_google_protobuf_timestamp : undefined)).getFile(
    "test/ext.proto",
  );
  if (file === undefined) throw new Error("test/ext.proto did not build");
  return file;
}

let srv: Running;
const cleanups: (() => void)[] = [];
beforeEach(async () => {
  const health = createHealthService();
  const reflection = createReflectionService([file_ml_v1_ml, extensionFile()]);
  srv = await serve((router) => {
    health.register(router);
    reflection.register(router);
  });
});
afterEach(async () => {
  for (const c of cleanups.splice(0)) c();
  await srv.close();
});

/** Sends all requests on one Connect gRPC bidi stream and collects the answers. */
async function reflect(...requests: Req[]): Promise<ServerReflectionResponse[]> {
  const client = createClient(ServerReflection, createGrpcTransport({ baseUrl: srv.url }));
  async function* input() {
    for (const r of requests) yield r;
  }
  const out: ServerReflectionResponse[] = [];
  for await (const res of client.serverReflectionInfo(input(), { timeoutMs: 5000 })) out.push(res);
  return out;
}

/** The decoded FileDescriptorProtos of a file_descriptor_response, failing on anything else. */
function files(res: ServerReflectionResponse | undefined): FileDescriptorProto[] {
  if (res?.messageResponse.case !== "fileDescriptorResponse") {
    throw new Error(`expected file_descriptor_response, got ${res?.messageResponse.case} ${JSON.stringify(res?.messageResponse.value)}`);
  }
  return res.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
}

function error(res: ServerReflectionResponse | undefined): { code: number; message: string } {
  if (res?.messageResponse.case !== "errorResponse") {
    throw new Error(`expected error_response, got ${res?.messageResponse.case}`);
  }
  return { code: res.messageResponse.value.errorCode, message: res.messageResponse.value.errorMessage };
}

describe("ServerReflectionInfo via a Connect client", () => {
  it("lists the given services, health and reflection itself", async () => {
    const [res] = await reflect({ host: "h", messageRequest: { case: "listServices", value: "*" } });
    expect(res?.validHost).toBe("h");
    expect(res?.originalRequest?.messageRequest).toEqual({ case: "listServices", value: "*" });
    if (res?.messageResponse.case !== "listServicesResponse") throw new Error(`got ${res?.messageResponse.case}`);
    expect(res.messageResponse.value.service.map((s) => s.name)).toEqual([
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "ml.v1.MlService",
    ]);
  });

  it("returns ml/v1/ml.proto and its timestamp import for ml.v1.MlService", async () => {
    const [res] = await reflect({ messageRequest: { case: "fileContainingSymbol", value: "ml.v1.MlService" } });
    const fds = files(res);
    expect(fds.map((f) => f.name)).toEqual(["ml/v1/ml.proto", "google/protobuf/timestamp.proto"]);
    const [ml, ts] = fds;
    expect(ml?.package).toBe("ml.v1");
    expect(ml?.dependency).toEqual(["google/protobuf/timestamp.proto"]);
    expect(ml?.service.map((s) => s.name)).toEqual(["MlService"]);
    expect(ml?.service[0]?.method.find((m) => m.name === "ListModels")?.inputType).toBe(".ml.v1.ListModelsRequest");
    expect(ts?.package).toBe("google.protobuf");
    expect(ts?.messageType.map((m) => m.name)).toEqual(["Timestamp"]);
    // The answer is self-contained: a client can build a working registry from it alone.
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: [...fds].reverse() }));
    const method = registry.getService("ml.v1.MlService")?.method["listModels"];
    expect(method?.input.typeName).toBe("ml.v1.ListModelsRequest");
    expect(registry.getMessage("ml.v1.ModelInfo")?.field["trainedAt"]?.message?.typeName).toBe("google.protobuf.Timestamp");
  });

  it("resolves methods, messages, nested and enum symbols, fields and enum values to their file", async () => {
    const symbols = [
      "ml.v1.MlService.ListModels",
      "ml.v1.ModelInfo",
      ".ml.v1.ModelInfo", // a leading dot is tolerated
      "ml.v1.EnergyLevel",
      "ml.v1.ENERGY_LEVEL_LOW",
      "ml.v1.ModelInfo.trained_at",
      "ml.v1.EnergyFeatures.sleep_quality",
      "grpc.health.v1.HealthCheckResponse.ServingStatus",
      "grpc.health.v1.HealthCheckResponse.SERVICE_UNKNOWN",
      "grpc.health.v1.HealthListResponse.StatusesEntry",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflectionRequest",
      "google.protobuf.Timestamp",
    ];
    const res = await reflect(...symbols.map((value): Req => ({ messageRequest: { case: "fileContainingSymbol", value } })));
    expect(res.map((r) => files(r)[0]?.name)).toEqual([
      "ml/v1/ml.proto",
      "ml/v1/ml.proto",
      "ml/v1/ml.proto",
      "ml/v1/ml.proto",
      "ml/v1/ml.proto",
      "ml/v1/ml.proto",
      "ml/v1/ml.proto",
      "grpc/health/v1/health.proto",
      "grpc/health/v1/health.proto",
      "grpc/health/v1/health.proto",
      "grpc/reflection/v1/reflection.proto",
      "grpc/reflection/v1alpha/reflection.proto",
      "google/protobuf/timestamp.proto",
    ]);
    expect(files(res.at(-1))).toHaveLength(1);
  });

  it("serves files by name, including imports", async () => {
    const res = await reflect(
      { messageRequest: { case: "fileByFilename", value: "google/protobuf/timestamp.proto" } },
      { messageRequest: { case: "fileByFilename", value: "ml/v1/ml.proto" } },
      { messageRequest: { case: "fileByFilename", value: "grpc/reflection/v1alpha/reflection.proto" } },
    );
    expect(res.map((r) => files(r).map((f) => f.name))).toEqual([
      ["google/protobuf/timestamp.proto"],
      ["ml/v1/ml.proto", "google/protobuf/timestamp.proto"],
      ["grpc/reflection/v1alpha/reflection.proto"],
    ]);
    const alpha = files(res[2])[0];
    expect(alpha?.package).toBe("grpc.reflection.v1alpha");
    expect(alpha?.service[0]?.method[0]?.inputType).toBe(".grpc.reflection.v1alpha.ServerReflectionRequest");
  });

  it("answers unknown names with NOT_FOUND on a stream that stays open", async () => {
    const res = await reflect(
      { messageRequest: { case: "fileContainingSymbol", value: "ml.v1.NoSuchThing" } },
      { messageRequest: { case: "fileByFilename", value: "nope.proto" } },
      { messageRequest: { case: "fileContainingExtension", value: { containingType: "ml.v1.ModelInfo", extensionNumber: 100 } } },
      { messageRequest: { case: "allExtensionNumbersOfType", value: "ml.v1.NoSuchThing" } },
      {},
      { messageRequest: { case: "fileContainingSymbol", value: "ml.v1.MlService" } },
    );
    expect(res).toHaveLength(6);
    expect(error(res[0])).toEqual({ code: 5, message: "symbol not found: ml.v1.NoSuchThing" });
    expect(error(res[1])).toEqual({ code: 5, message: "file not found: nope.proto" });
    expect(error(res[2])).toEqual({ code: 5, message: "extension 100 of ml.v1.ModelInfo not found" });
    expect(error(res[3])).toEqual({ code: 5, message: "message type not found: ml.v1.NoSuchThing" });
    expect(error(res[4]).code).toBe(3);
    expect(files(res[5])[0]?.name).toBe("ml/v1/ml.proto");
  });

  it("answers extension queries", async () => {
    const res = await reflect(
      { messageRequest: { case: "allExtensionNumbersOfType", value: "test.ext.Base" } },
      { messageRequest: { case: "allExtensionNumbersOfType", value: "ml.v1.ModelInfo" } },
      { messageRequest: { case: "fileContainingExtension", value: { containingType: "test.ext.Base", extensionNumber: 101 } } },
      { messageRequest: { case: "fileContainingSymbol", value: "test.ext.extra" } },
    );
    expect(res[0]?.messageResponse).toMatchObject({
      case: "allExtensionNumbersResponse",
      value: { baseTypeName: "test.ext.Base", extensionNumber: [101, 150] },
    });
    expect(res[1]?.messageResponse).toMatchObject({
      case: "allExtensionNumbersResponse",
      value: { baseTypeName: "ml.v1.ModelInfo", extensionNumber: [] },
    });
    expect(files(res[2]).map((f) => f.name)).toEqual(["test/ext.proto", "google/protobuf/timestamp.proto"]);
    expect(files(res[3])[0]?.name).toBe("test/ext.proto");
  });
});

describe("ServerReflectionInfo via @grpc/grpc-js", () => {
  /** One raw grpc-js bidi call; the v1 schema serialises v1alpha too (same wire format). */
  function grpcJsReflect(path: string, requests: Req[]): Promise<ServerReflectionResponse[]> {
    const client = new grpc.Client(`127.0.0.1:${srv.port}`, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const call = client.makeBidiStreamRequest(
      path,
      (r: Req) => Buffer.from(toBinary(ServerReflectionRequestSchema, create(ServerReflectionRequestSchema, r))),
      (b: Buffer) => fromBinary(ServerReflectionResponseSchema, b),
      new grpc.Metadata(),
      { deadline: Date.now() + 5000 },
    );
    const out: ServerReflectionResponse[] = [];
    return new Promise((resolve, reject) => {
      call.on("data", (r: ServerReflectionResponse) => out.push(r));
      call.on("error", reject);
      call.on("end", () => resolve(out));
      for (const r of requests) call.write(r);
      call.end();
    });
  }

  for (const version of ["v1", "v1alpha"]) {
    it(`serves grpc.reflection.${version}`, async () => {
      const res = await grpcJsReflect(`/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`, [
        { messageRequest: { case: "listServices", value: "" } },
        { messageRequest: { case: "fileContainingSymbol", value: "ml.v1.PredictRequest" } },
        { messageRequest: { case: "fileContainingSymbol", value: "ml.v1.Missing" } },
      ]);
      expect(res).toHaveLength(3);
      const list = res[0]?.messageResponse;
      if (list?.case !== "listServicesResponse") throw new Error(`got ${list?.case}`);
      expect(list.value.service.map((s) => s.name)).toContain("ml.v1.MlService");
      expect(files(res[1]).map((f) => f.name)).toEqual(["ml/v1/ml.proto", "google/protobuf/timestamp.proto"]);
      expect(error(res[2]).code).toBe(grpc.status.NOT_FOUND);
    });
  }
});

describe("createReflectionService options", () => {
  it("can leave out v1alpha and health", () => {
    const r = createReflectionService([file_ml_v1_ml], { v1alpha: false, health: false });
    expect(r.serviceNames).toEqual(["grpc.reflection.v1.ServerReflection", "ml.v1.MlService"]);
  });
});
