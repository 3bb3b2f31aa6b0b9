import { sensitiveHeaders, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import type { DescMessage, DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, createMethodImplSpec, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { createMethodSerializationLookup, invokeUnaryImplementation, type MethodSerializationLookup } from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  errorToJsonBytes,
  parseTimeout as parseConnectTimeout,
  trailerMux,
} from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { IncomingHeaders } from "./incoming-headers.ts";
import type { ServerLimits } from "./limits.ts";
import { REQUEST_ID_HEADER } from "./request-id.ts";

/**
 * A lean path for unary calls over HTTP/2, in the gRPC and Connect protocols,
 * that runs the same handlers behind the same interceptors as connect-node.
 *
 * Why: profiling connect-node 2.3 under load showed most of a unary gRPC
 * call's CPU in its generic machinery (async-iterable plumbing, envelope
 * streams, an AbortController aborted with a DOMException at the end of every
 * call) rather than in our handlers. This path reads the one message and
 * writes the one answer straight on the HTTP/2 stream. What happens in
 * between is connect's own code where it matters: `invokeUnaryImplementation` runs the interceptor chain and the handler
 * (exactly what connect-node's unary handlers call), connect's serialization
 * lookup applies the read and write limits, and connect's protocol helpers
 * parse timeouts and turn errors into trailers, statuses and JSON bodies.
 * Everything it does not handle (streaming RPCs, gRPC-Web, compression,
 * Connect GET, HTTP/1.1) goes to connect-node unchanged.
 */

/** A unary handler as connect-node takes it. */
export type UnaryHandler = (request: never, context: HandlerContext) => Promise<unknown> | unknown;

/** The handlers served on the fast path: one service, its unary methods. */
export interface FastPathRoutes {
  readonly service: DescService;
  readonly handlers: Readonly<Record<string, UnaryHandler>>;
}

/** Serves a stream when it can; false means "not mine, give it to connect-node". */
export type FastPath = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => boolean;

/** What the fast path shares with connect-node: the interceptor chain and the limits. */
export interface FastPathOptions {
  readonly interceptors: readonly Interceptor[];
  readonly limits: ServerLimits;
}

type Protocol = "grpc" | "connect";

interface Route {
  readonly spec: ReturnType<typeof createMethodImplSpec>;
  readonly serialization: MethodSerializationLookup<DescMessage, DescMessage>;
}

/** Which protocol a request speaks and whether it is binary, or null when this path should not take it. */
function protocolOf(headers: IncomingHttpHeaders): { protocol: Protocol; binary: boolean } | null {
  if (headers[":method"] !== "POST") return null;
  const type = headers["content-type"];
  if (type === "application/grpc" || type === "application/grpc+proto") {
    const encoding = headers["grpc-encoding"];
    return encoding === undefined || encoding === "identity" ? { protocol: "grpc", binary: true } : null;
  }
  if (type === "application/proto" || type === "application/json" || type === "application/json; charset=utf-8") {
    const encoding = headers["content-encoding"];
    if (encoding !== undefined && encoding !== "identity") return null;
    const version = headers["connect-protocol-version"];
    if (version !== undefined && version !== "1") return null;
    return { protocol: "connect", binary: type === "application/proto" };
  }
  return null;
}

/**
 * Fields unique to each call. HPACK would add each value to the connection's
 * dynamic table and push out the fields every response repeats
 * (content-type, grpc-status), so that both ends encode those again and again:
 * that cost a third of Predict's calls/s under load. Never indexed instead.
 */
const NEVER_INDEXED = [REQUEST_ID_HEADER];

function nodeHeaders(headers: Headers, into: OutgoingHttpHeaders): OutgoingHttpHeaders {
  headers.forEach((value, key) => {
    into[key] = value;
  });
  (into as Record<symbol, unknown>)[sensitiveHeaders] = NEVER_INDEXED;
  return into;
}

/** A gRPC message frame: flag byte 0 (uncompressed), 4-byte length, the message. */
function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(5 + message.byteLength);
  frame[0] = 0;
  frame.writeUInt32BE(message.byteLength, 1);
  frame.set(message, 5);
  return frame;
}

/** The one gRPC message of a unary request body, checked as connect's envelope reader checks it. */
function grpcMessage(body: Buffer): Uint8Array {
  if (body.byteLength < 5) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  if (body[0] !== 0) throw new ConnectError("protocol error: received compressed envelope, but no compression was negotiated", Code.Internal);
  const length = body.readUInt32BE(1);
  if (length !== body.byteLength - 5) {
    throw new ConnectError(
      length > body.byteLength - 5 ? "protocol error: promised more data than received" : "protocol error: received extra input message for unary method",
      length > body.byteLength - 5 ? Code.InvalidArgument : Code.Unimplemented,
    );
  }
  return body.subarray(5);
}

/**
 * The HandlerContext connect-node's unary handlers make with
 * createHandlerContext (same fields, values and response headers), built for
 * one stream: one AbortController that the stream's close or the deadline
 * aborts, instead of three linked ones, and request headers read from Node's
 * object until someone needs a full Headers (see IncomingHeaders).
 */
function createContext(
  route: Route,
  protocol: Protocol,
  binary: boolean,
  path: string,
  headers: IncomingHttpHeaders,
  timeoutMs: number | undefined,
): HandlerContext & { abort(reason?: unknown): void } {
  const controller = new AbortController();
  const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
  const responseHeader = new Headers();
  responseHeader.set("content-type", protocol === "grpc" ? "application/grpc+proto" : binary ? "application/proto" : "application/json");
  const responseTrailer = new Headers();
  if (protocol === "grpc") responseTrailer.set("grpc-status", "0");
  return {
    method: route.spec.method,
    service: route.spec.method.parent,
    requestMethod: "POST",
    protocolName: protocol,
    url: `http://${headers[":authority"] ?? "localhost"}${path}`,
    signal: controller.signal,
    timeoutMs: deadline === undefined ? () => undefined : () => deadline - Date.now(),
    requestHeader: new IncomingHeaders(headers),
    responseHeader,
    responseTrailer,
    values: createContextValues(),
    abort(reason?: unknown) {
      controller.abort(reason);
    },
  };
}

/** Builds the fast path for one service's unary methods, behind `options.interceptors`. */
export function createUnaryFastPath(routes: FastPathRoutes, options: FastPathOptions): FastPath {
  const { limits } = options;
  const interceptors = [...options.interceptors];
  const methods = new Map<string, Route>();
  for (const method of routes.service.methods) {
    const handler = routes.handlers[method.localName];
    if (method.methodKind === "unary" && handler !== undefined) {
      methods.set(`/${routes.service.typeName}/${method.name}`, {
        spec: createMethodImplSpec(method as DescMethod & { methodKind: "unary" }, handler as never),
        serialization: createMethodSerializationLookup(method, undefined, undefined, limits),
      });
    }
  }

  function fail(stream: ServerHttp2Stream, protocol: Protocol, ctx: HandlerContext, err: unknown): void {
    if (stream.destroyed || stream.closed) return;
    const error = err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err);
    if (protocol === "grpc") {
      // Trailers-only response: headers and status in one HEADERS frame, no body.
      setTrailerStatus(ctx.responseTrailer, error);
      const headers = nodeHeaders(ctx.responseHeader, { ":status": 200 });
      stream.respond(nodeHeaders(ctx.responseTrailer, headers), { endStream: true });
      return;
    }
    ctx.responseHeader.set("content-type", "application/json");
    if (!error.isWireError) error.metadata.forEach((value, key) => ctx.responseHeader.set(key, value));
    const body = errorToJsonBytes(error, {});
    const headers = nodeHeaders(trailerMux(ctx.responseHeader, ctx.responseTrailer), { ":status": codeToHttpStatus(error.code) });
    headers["content-length"] = body.byteLength;
    stream.respond(headers);
    stream.end(body);
  }

  function reply(stream: ServerHttp2Stream, protocol: Protocol, ctx: HandlerContext, payload: Uint8Array): void {
    if (stream.destroyed || stream.closed) return;
    if (protocol === "grpc") {
      stream.respond(nodeHeaders(ctx.responseHeader, { ":status": 200 }), { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers(nodeHeaders(ctx.responseTrailer, {})));
      stream.end(grpcFrame(payload));
      return;
    }
    const headers = nodeHeaders(trailerMux(ctx.responseHeader, ctx.responseTrailer), { ":status": 200 });
    headers["content-length"] = payload.byteLength;
    stream.respond(headers);
    // A Buffer view (no copy): http2 writes Buffers directly.
    stream.end(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength));
  }

  return (stream, headers) => {
    const path = headers[":path"];
    if (typeof path !== "string") return false;
    const route = methods.get(path);
    if (route === undefined) return false;
    const kind = protocolOf(headers);
    if (kind === null) return false;
    const { protocol, binary } = kind;

    const chunks: Buffer[] = [];
    let size = 0;
    // A frame header may come on top of the message; anything beyond is refused when it ends.
    const readMax = limits.readMaxBytes + 5;
    stream.on("data", (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size <= readMax) chunks.push(chunk);
    });
    stream.on("error", () => undefined);
    stream.once("end", () => {
      const timeout =
        protocol === "grpc"
          ? parseGrpcTimeout((headers["grpc-timeout"] as string | undefined) ?? null, limits.maxTimeoutMs)
          : parseConnectTimeout((headers["connect-timeout-ms"] as string | undefined) ?? null, limits.maxTimeoutMs);
      const ctx = createContext(route, protocol, binary, path, headers, timeout.timeoutMs);
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (outcome: { payload: Uint8Array } | { error: unknown }) => {
        if (settled) return;
        settled = true;
        if (timer !== undefined) clearTimeout(timer);
        try {
          if ("payload" in outcome) reply(stream, protocol, ctx, outcome.payload);
          else fail(stream, protocol, ctx, outcome.error);
        } catch (err) {
          fail(stream, protocol, ctx, err);
        }
      };
      // A deadline answers at once; the handler, told through ctx.signal, stops when it can.
      if (timeout.timeoutMs !== undefined && timeout.error === undefined) {
        timer = setTimeout(() => {
          const error = new ConnectError("the operation timed out", Code.DeadlineExceeded);
          ctx.abort(error);
          finish({ error });
        }, timeout.timeoutMs);
      }
      // A cancelled call tells the handler; nobody is left to answer.
      stream.once("close", () => {
        if (!settled) {
          settled = true;
          if (timer !== undefined) clearTimeout(timer);
          ctx.abort(new ConnectError("the client cancelled the call", Code.Canceled));
        }
      });
      let input: unknown;
      try {
        if (timeout.error !== undefined) throw timeout.error;
        if (size > readMax) throw new ConnectError(`message size ${size} is larger than configured readMaxBytes ${limits.readMaxBytes}`, Code.ResourceExhausted);
        const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
        input = route.serialization.getI(binary).parse(protocol === "grpc" ? grpcMessage(body) : body);
      } catch (err) {
        finish({ error: err });
        return;
      }
      invokeUnaryImplementation(route.spec as never, ctx, input as never, interceptors).then(
        (output) => {
          let payload: Uint8Array;
          try {
            payload = route.serialization.getO(binary).serialize(output);
          } catch (err) {
            finish({ error: err });
            return;
          }
          finish({ payload });
        },
        (err: unknown) => finish({ error: err }),
      );
    });
    return true;
  };
}
