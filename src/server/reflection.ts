/**
 * gRPC server reflection (grpc.reflection.v1) for connect-node, which ships
 * none: it lets grpcurl, buf curl, Postman and grpcui call the service without
 * a copy of its .proto files. Answers come from the protobuf-es descriptors
 * embedded in gen/, so they always match what the server really speaks.
 * Behaviour follows grpc-go: lookups that fail are an error_response with
 * NOT_FOUND on an open stream, never a failed stream.
 */
import {
  clone,
  create,
  createFileRegistry,
  type DescFile,
  type DescMessage,
  type DescMethodBiDiStreaming,
  fromBinary,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import { type DescriptorProto, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import { file_grpc_health_v1_health } from "../../gen/grpc/health/v1/health_pb.ts";
import {
  file_grpc_reflection_v1_reflection,
  ServerReflection,
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
} from "../../gen/grpc/reflection/v1/reflection_pb.ts";

/** Options for createReflectionService; every field is optional. */
export interface ReflectionServiceOptions {
  /** Also serve the deprecated grpc.reflection.v1alpha name older clients use (default true). */
  readonly v1alpha?: boolean;
  /** List and describe grpc.health.v1.Health, for servers that register it (default true). */
  readonly health?: boolean;
}

/** The reflection server: register it on the same router as the services it describes. */
export interface ReflectionService {
  /** Adds grpc.reflection.v1 (and, unless disabled, v1alpha) ServerReflection to a Connect router. */
  register(router: ConnectRouter): void;
  /** The fully qualified service names list_services answers with, sorted. */
  readonly serviceNames: readonly string[];
}

/** The package and file of the legacy reflection API, synthesised from v1 (they are wire-identical). */
const V1ALPHA_PACKAGE = "grpc.reflection.v1alpha";
const V1ALPHA_FILE = "grpc/reflection/v1alpha/reflection.proto";

/**
 * Creates a reflection server describing the services declared in `files`
 * (e.g. `[file_ml_v1_ml]` from gen/) plus its own and the health service;
 * imports such as google/protobuf/timestamp.proto are found through the files.
 */
export function createReflectionService(files: readonly DescFile[], options: ReflectionServiceOptions = {}): ReflectionService {
  const withV1alpha = options.v1alpha ?? true;
  const alpha = withV1alpha ? createV1alpha() : undefined;
  const ownFiles: DescFile[] = [file_grpc_reflection_v1_reflection];
  if (alpha !== undefined) ownFiles.push(alpha.file);
  if (options.health ?? true) ownFiles.push(file_grpc_health_v1_health);
  const index = buildIndex([...files, ...ownFiles]);

  const answer = (req: ServerReflectionRequest): ServerReflectionResponse =>
    create(ServerReflectionResponseSchema, {
      validHost: req.host,
      originalRequest: req,
      messageResponse: respond(index, req),
    });

  return {
    serviceNames: index.serviceNames,
    register(router) {
      router.service(ServerReflection, {
        async *serverReflectionInfo(requests) {
          for await (const req of requests) yield answer(req);
        },
      });
      if (alpha !== undefined) registerV1alpha(router, alpha.method, answer);
    },
  };
}

/** Everything a reflection request can ask about, precomputed from the files. */
interface Index {
  readonly serviceNames: readonly string[];
  readonly fileByName: ReadonlyMap<string, DescFile>;
  /** Every fully qualified symbol (type, method, field, oneof, enum value) to its file. */
  readonly fileBySymbol: ReadonlyMap<string, DescFile>;
  /** Message type names, for all_extension_numbers_of_type. */
  readonly messageNames: ReadonlySet<string>;
  /** Extendee type name → extension number → the file declaring the extension. */
  readonly extensions: ReadonlyMap<string, ReadonlyMap<number, DescFile>>;
  /** Serialised FileDescriptorProto of a file, cached. */
  bytesOf(file: DescFile): Uint8Array;
}

function buildIndex(roots: readonly DescFile[]): Index {
  const fileByName = new Map<string, DescFile>();
  const visit = (f: DescFile): void => {
    if (fileByName.has(f.proto.name)) return;
    fileByName.set(f.proto.name, f);
    f.dependencies.forEach(visit);
  };
  roots.forEach(visit);

  const services = new Set<string>();
  for (const f of roots) for (const s of f.services) services.add(s.typeName);

  const fileBySymbol = new Map<string, DescFile>();
  const messageNames = new Set<string>();
  const extensions = new Map<string, Map<number, DescFile>>();
  const add = (name: string, f: DescFile): void => {
    if (!fileBySymbol.has(name)) fileBySymbol.set(name, f);
  };
  for (const f of fileByName.values()) {
    const p = f.proto;
    const scope = p.package === "" ? "" : `${p.package}.`;
    // Walk the raw descriptor rather than protobuf-es' Desc tree so that
    // synthetic map-entry messages are found too.
    const walkMessage = (m: DescriptorProto, prefix: string): void => {
      const name = prefix + m.name;
      add(name, f);
      messageNames.add(name);
      for (const x of m.field) add(`${name}.${x.name}`, f);
      for (const x of m.oneofDecl) add(`${name}.${x.name}`, f);
      for (const x of m.extension) add(`${name}.${x.name}`, f);
      for (const e of m.enumType) {
        add(`${name}.${e.name}`, f);
        // Enum values are scoped like siblings of their enum.
        for (const v of e.value) add(`${name}.${v.name}`, f);
      }
      for (const n of m.nestedType) walkMessage(n, `${name}.`);
    };
    for (const m of p.messageType) walkMessage(m, scope);
    for (const e of p.enumType) {
      add(scope + e.name, f);
      for (const v of e.value) add(scope + v.name, f);
    }
    for (const x of p.extension) add(scope + x.name, f);
    for (const s of p.service) {
      add(scope + s.name, f);
      for (const m of s.method) add(`${scope}${s.name}.${m.name}`, f);
    }
  }
  for (const f of fileByName.values()) {
    const exts = [...f.extensions, ...f.messages.flatMap(nestedExtensions)];
    for (const x of exts) {
      let byNumber = extensions.get(x.extendee.typeName);
      if (byNumber === undefined) extensions.set(x.extendee.typeName, (byNumber = new Map()));
      if (!byNumber.has(x.number)) byNumber.set(x.number, f);
    }
  }

  const bytes = new Map<DescFile, Uint8Array>();
  return {
    serviceNames: [...services].sort(),
    fileByName,
    fileBySymbol,
    messageNames,
    extensions,
    bytesOf(file) {
      let b = bytes.get(file);
      if (b === undefined) bytes.set(file, (b = toBinary(FileDescriptorProtoSchema, file.proto)));
      return b;
    },
  };
}

function nestedExtensions(m: DescMessage): DescFile["extensions"] {
  return [...m.nestedExtensions, ...m.nestedMessages.flatMap(nestedExtensions)];
}

/** The message_response oneof answering one request. */
type Answer = NonNullable<MessageInitShape<typeof ServerReflectionResponseSchema>["messageResponse"]>;

function respond(index: Index, req: ServerReflectionRequest): Answer {
  const r = req.messageRequest;
  switch (r.case) {
    case "listServices":
      return {
        case: "listServicesResponse",
        value: { service: index.serviceNames.map((name) => ({ name })) },
      };
    case "fileByFilename": {
      const file = index.fileByName.get(r.value);
      return file === undefined ? notFound(`file not found: ${r.value}`) : filesResponse(index, file);
    }
    case "fileContainingSymbol": {
      const symbol = stripDot(r.value);
      const file = index.fileBySymbol.get(symbol);
      return file === undefined ? notFound(`symbol not found: ${symbol}`) : filesResponse(index, file);
    }
    case "fileContainingExtension": {
      const type = stripDot(r.value.containingType);
      const file = index.extensions.get(type)?.get(r.value.extensionNumber);
      return file === undefined ? notFound(`extension ${r.value.extensionNumber} of ${type} not found`) : filesResponse(index, file);
    }
    case "allExtensionNumbersOfType": {
      const type = stripDot(r.value);
      if (!index.messageNames.has(type)) return notFound(`message type not found: ${type}`);
      const numbers = [...(index.extensions.get(type)?.keys() ?? [])].sort((a, b) => a - b);
      return {
        case: "allExtensionNumbersResponse",
        value: { baseTypeName: type, extensionNumber: numbers },
      };
    }
    case undefined:
      return errorResponse(Code.InvalidArgument, "request sets no message_request");
  }
}

/** The requested file first, then its transitive imports, each once (breadth first, as grpc-go). */
function filesResponse(index: Index, file: DescFile): Answer {
  const order: DescFile[] = [file];
  const seen = new Set<DescFile>(order);
  for (let i = 0; i < order.length; i++) {
    for (const dep of order[i]!.dependencies) {
      if (!seen.has(dep)) {
        seen.add(dep);
        order.push(dep);
      }
    }
  }
  return {
    case: "fileDescriptorResponse",
    value: { fileDescriptorProto: order.map((f) => index.bytesOf(f)) },
  };
}

function notFound(message: string): Answer {
  return errorResponse(Code.NotFound, message);
}

function errorResponse(code: Code, message: string): Answer {
  // Connect's Code values are the gRPC status codes, so they go on the wire as is.
  return { case: "errorResponse", value: { errorCode: code, errorMessage: message } };
}

function stripDot(name: string): string {
  return name.startsWith(".") ? name.slice(1) : name;
}

/**
 * Builds grpc/reflection/v1alpha/reflection.proto from the v1 descriptor by
 * renaming its package: upstream's v1alpha file declares the same messages
 * with the same field numbers, so the two are wire-identical.
 */
function createV1alpha(): { file: DescFile; method: DescMethodBiDiStreaming } {
  const proto = clone(FileDescriptorProtoSchema, file_grpc_reflection_v1_reflection.proto);
  const from = `.${file_grpc_reflection_v1_reflection.proto.package}.`;
  const to = `.${V1ALPHA_PACKAGE}.`;
  const rename = (t: string): string => (t.startsWith(from) ? to + t.slice(from.length) : t);
  const renameFields = (m: DescriptorProto): void => {
    for (const f of m.field) f.typeName = rename(f.typeName);
    m.nestedType.forEach(renameFields);
  };
  proto.name = V1ALPHA_FILE;
  proto.package = V1ALPHA_PACKAGE;
  proto.messageType.forEach(renameFields);
  for (const s of proto.service) {
    for (const m of s.method) {
      m.inputType = rename(m.inputType);
      m.outputType = rename(m.outputType);
    }
  }
  const file = createFileRegistry(proto, () => undefined).getFile(V1ALPHA_FILE);
  const method = file?.services[0]?.methods[0];
  if (file === undefined || method?.methodKind !== "bidi_streaming") {
    throw new Error(`cannot build ${V1ALPHA_FILE}`);
  }
  // Checked just above; DescMethod's kind is not a discriminated union, so TS cannot narrow it.
  return { file, method: method as DescMethodBiDiStreaming };
}

/** Serves the v1alpha method by converting to and from v1 through the (identical) wire format. */
function registerV1alpha(router: ConnectRouter, method: DescMethodBiDiStreaming, answer: (req: ServerReflectionRequest) => ServerReflectionResponse): void {
  router.rpc(method, async function* (requests) {
    for await (const req of requests) {
      const v1 = fromBinary(ServerReflectionRequestSchema, toBinary(method.input, req));
      yield fromBinary(method.output, toBinary(ServerReflectionResponseSchema, answer(v1)));
    }
  });
}
