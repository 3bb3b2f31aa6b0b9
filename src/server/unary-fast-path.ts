import type { ServerHttp2Stream, IncomingHttpHeaders } from "node:http2";
import { create, fromBinary, fromJson, toBinary, toJson, type DescMethod, type DescService, type JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type HandlerContext } from "@connectrpc/connect";
import type { Logger } from "../logger.ts";
import { toConnectError } from "./errors.ts";

/**
 * A lean path for unary calls over HTTP/2, in the gRPC and Connect protocols,
 * that calls the same handler functions as connect-node.
 *
 * Why: profiling connect-node 2.3 under load showed most of a unary gRPC
 * call's CPU in its generic machinery (async-iterable plumbing, Headers
 * objects, an AbortController aborted with a DOMException at the end of every
 * call, envelope streams) rather than in our handlers; it served about 1,500
 * gRPC calls/s where node:http2 itself carries about 13,000. This path reads
 * the one message, calls the handler, and writes the one answer straight on
 * the HTTP/2 stream. Everything it does not handle (streaming RPCs, gRPC-Web,
 * compression, Connect GET, HTTP/1.1) goes to connect-node unchanged.
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

type Protocol = "grpc" | "connect-proto" | "connect-json";

/** Largest request message accepted, as connect-node's default readMaxBytes. */
const MAX_REQUEST_BYTES = 4 * 1024 * 1024;

const HTTP_STATUS: Partial<Record<Code, number>> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

const CODE_NAMES: Record<number, string> = {
  [Code.Canceled]: "canceled",
  [Code.Unknown]: "unknown",
  [Code.InvalidArgument]: "invalid_argument",
  [Code.DeadlineExceeded]: "deadline_exceeded",
  [Code.NotFound]: "not_found",
  [Code.AlreadyExists]: "already_exists",
  [Code.PermissionDenied]: "permission_denied",
  [Code.ResourceExhausted]: "resource_exhausted",
  [Code.FailedPrecondition]: "failed_precondition",
  [Code.Aborted]: "aborted",
  [Code.OutOfRange]: "out_of_range",
  [Code.Unimplemented]: "unimplemented",
  [Code.Internal]: "internal",
  [Code.Unavailable]: "unavailable",
  [Code.DataLoss]: "data_loss",
  [Code.Unauthenticated]: "unauthenticated",
};

/** Which protocol a request speaks, or null when this path should not take it. */
function protocolOf(headers: IncomingHttpHeaders): Protocol | null {
  if (headers[":method"] !== "POST") return null;
  const type = headers["content-type"];
  if (type === "application/grpc" || type === "application/grpc+proto") {
    const encoding = headers["grpc-encoding"];
    return encoding === undefined || encoding === "identity" ? "grpc" : null;
  }
  if (type === "application/proto" || type === "application/json" || type === "application/json; charset=utf-8") {
    const encoding = headers["content-encoding"];
    if (encoding !== undefined && encoding !== "identity") return null;
    const version = headers["connect-protocol-version"];
    if (version !== undefined && version !== "1") return null;
    return type === "application/proto" ? "connect-proto" : "connect-json";
  }
  return null;
}

/** A gRPC timeout header in milliseconds; undefined when absent, NaN when malformed. */
function grpcTimeoutMs(value: string | string[] | undefined): number | undefined {
  if (value === undefined || Array.isArray(value)) return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (m === null) return Number.NaN;
  const unit = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 }[m[2] as "H"];
  return Number(m[1]) * unit;
}

function connectTimeoutMs(value: string | string[] | undefined): number | undefined {
  if (value === undefined || Array.isArray(value)) return undefined;
  return /^\d{1,10}$/.test(value) ? Number(value) : Number.NaN;
}

/**
 * A HandlerContext whose costly parts (AbortController, Headers, the stream's
 * close listener) are made only when a handler asks for them; most of ours
 * never do. A class, so the getters live on the prototype and a call
 * allocates one small object rather than a set of closures.
 */
class LazyContext {
  readonly requestMethod = "POST";
  #controller: AbortController | undefined;
  #abortReason: { reason: unknown } | undefined;
  #requestHeader: Headers | undefined;
  #responseHeader: Headers | undefined;
  #responseTrailer: Headers | undefined;
  #values: ReturnType<typeof createContextValues> | undefined;
  settled = false;

  constructor(
    readonly service: DescService,
    readonly method: DescMethod,
    readonly protocolName: string,
    readonly url: string,
    private readonly stream: ServerHttp2Stream,
    private readonly headers: IncomingHttpHeaders,
    private readonly deadline: number | undefined,
  ) {}

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#abortReason !== undefined) this.#controller.abort(this.#abortReason.reason);
      // Only a handler that watches the signal needs to hear about a cancelled call.
      else this.stream.once("close", () => !this.settled && this.abort(new ConnectError("the client cancelled the call", Code.Canceled)));
    }
    return this.#controller.signal;
  }

  timeoutMs(): number | undefined {
    return this.deadline === undefined ? undefined : this.deadline - Date.now();
  }

  get requestHeader(): Headers {
    if (this.#requestHeader === undefined) {
      this.#requestHeader = new Headers();
      for (const [k, v] of Object.entries(this.headers)) {
        if (k.startsWith(":") || v === undefined) continue;
        for (const item of Array.isArray(v) ? v : [v]) this.#requestHeader.append(k, item);
      }
    }
    return this.#requestHeader;
  }

  get responseHeader(): Headers {
    return (this.#responseHeader ??= new Headers());
  }

  get responseTrailer(): Headers {
    return (this.#responseTrailer ??= new Headers());
  }

  get values(): ReturnType<typeof createContextValues> {
    return (this.#values ??= createContextValues());
  }

  abort(reason: unknown): void {
    if (this.#abortReason !== undefined) return;
    this.#abortReason = { reason };
    this.#controller?.abort(reason);
  }
}

function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(5 + message.byteLength);
  frame[0] = 0;
  frame.writeUInt32BE(message.byteLength, 1);
  frame.set(message, 5);
  return frame;
}

/** Builds the fast path for one service's unary methods; `log` hears about what callers do not see. */
export function createUnaryFastPath(routes: FastPathRoutes, log: Logger): FastPath {
  const methods = new Map<string, { method: DescMethod; handler: UnaryHandler }>();
  for (const method of routes.service.methods) {
    const handler = routes.handlers[method.localName];
    if (method.methodKind === "unary" && handler !== undefined) {
      methods.set(`/${routes.service.typeName}/${method.name}`, { method, handler });
    }
  }

  function fail(stream: ServerHttp2Stream, protocol: Protocol, err: unknown, procedure: string): void {
    const error = toConnectError(err);
    if (error.code === Code.Internal || error.code === Code.Unavailable || error.code === Code.DataLoss) {
      log.error("call failed", { procedure, code: Code[error.code], error: err instanceof Error ? err.message : String(err) });
    }
    if (stream.destroyed || stream.closed) return;
    if (protocol === "grpc") {
      // Trailers-only response: status in the headers, no body.
      stream.respond(
        {
          ":status": 200,
          "content-type": "application/grpc",
          "grpc-status": String(error.code),
          "grpc-message": encodeURIComponent(error.rawMessage),
        },
        { endStream: true },
      );
      return;
    }
    const body = JSON.stringify({ code: CODE_NAMES[error.code] ?? "unknown", message: error.rawMessage });
    stream.respond({ ":status": HTTP_STATUS[error.code] ?? 500, "content-type": "application/json" });
    stream.end(body);
  }

  function reply(stream: ServerHttp2Stream, protocol: Protocol, method: DescMethod, result: unknown): void {
    if (stream.destroyed || stream.closed) return;
    // Handlers may return a message or its init shape, as connect-node allows; create() returns a message as it is.
    const message = create(method.output, result as never);
    if (protocol === "grpc") {
      const payload = toBinary(method.output, message);
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(grpcFrame(payload));
    } else if (protocol === "connect-proto") {
      stream.respond({ ":status": 200, "content-type": "application/proto" });
      const payload = toBinary(method.output, message);
      // A Buffer view (no copy): http2 writes Buffers directly.
      stream.end(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength));
    } else {
      stream.respond({ ":status": 200, "content-type": "application/json" });
      stream.end(JSON.stringify(toJson(method.output, message)));
    }
  }

  return (stream, headers) => {
    const path = headers[":path"];
    if (typeof path !== "string") return false;
    const route = methods.get(path);
    if (route === undefined) return false;
    const protocol = protocolOf(headers);
    if (protocol === null) return false;
    const { method, handler } = route;
    const timeout = protocol === "grpc" ? grpcTimeoutMs(headers["grpc-timeout"]) : connectTimeoutMs(headers["connect-timeout-ms"]);

    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    stream.on("data", (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size > MAX_REQUEST_BYTES + 5) tooBig = true;
      else chunks.push(chunk);
    });
    stream.on("error", () => undefined);
    stream.once("end", () => {
      if (Number.isNaN(timeout)) {
        fail(stream, protocol, new ConnectError("invalid timeout header", Code.InvalidArgument), path);
        return;
      }
      if (tooBig) {
        fail(stream, protocol, new ConnectError(`message larger than ${MAX_REQUEST_BYTES} bytes`, Code.ResourceExhausted), path);
        return;
      }
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      let request: unknown;
      try {
        if (protocol === "grpc") {
          if (body.byteLength < 5 || body[0] !== 0 || body.readUInt32BE(1) !== body.byteLength - 5) {
            throw new ConnectError("protocol error: expected exactly one uncompressed gRPC message", Code.InvalidArgument);
          }
          request = fromBinary(method.input, body.subarray(5));
        } else if (protocol === "connect-proto") {
          request = fromBinary(method.input, body);
        } else {
          request = fromJson(method.input, (body.byteLength === 0 ? {} : JSON.parse(body.toString("utf8"))) as JsonValue);
        }
      } catch (err) {
        fail(stream, protocol, err instanceof ConnectError ? err : new ConnectError(`cannot decode request: ${(err as Error).message}`, Code.InvalidArgument), path);
        return;
      }
      const deadline = timeout === undefined ? undefined : Date.now() + timeout;
      const ctx = new LazyContext(routes.service, method, protocol === "grpc" ? "grpc" : "connect", path, stream, headers, deadline);
      let timer: NodeJS.Timeout | undefined;
      if (deadline !== undefined) {
        timer = setTimeout(() => {
          if (ctx.settled) return;
          ctx.settled = true;
          const err = new ConnectError("the deadline was exceeded", Code.DeadlineExceeded);
          ctx.abort(err);
          fail(stream, protocol, err, path);
        }, Math.max(0, deadline - Date.now()));
      }
      let pending: Promise<unknown> | unknown;
      try {
        pending = handler(request as never, ctx as unknown as HandlerContext);
      } catch (err) {
        pending = Promise.reject(err);
      }
      Promise.resolve(pending).then(
        (result) => {
          if (ctx.settled) return;
          ctx.settled = true;
          if (timer !== undefined) clearTimeout(timer);
          try {
            reply(stream, protocol, method, result);
          } catch (err) {
            fail(stream, protocol, err, path);
          }
        },
        (err: unknown) => {
          if (ctx.settled) return;
          ctx.settled = true;
          if (timer !== undefined) clearTimeout(timer);
          fail(stream, protocol, err, path);
        },
      );
    });
    return true;
  };
}
