import { sensitiveHeaders, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import { create, isMessage, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { createMethodSerializationLookup, type MethodSerializationLookup } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, errorToJsonBytes, parseTimeout as parseConnectTimeout, trailerMux } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { IncomingHeaders } from "./incoming-headers.ts";
import { OutgoingHeaders } from "./outgoing-headers.ts";
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
 * writes the one answer straight on the HTTP/2 stream. In between it keeps
 * connect-node's rules: the same interceptors in the same order see the same
 * request, context values, headers and trailers (chainFor does what connect's
 * invokeUnaryImplementation does, with the chain applied once per method);
 * connect's serialization lookup applies the same read and write limits; and
 * connect's protocol helpers parse timeouts and turn errors into trailers,
 * HTTP statuses and JSON bodies. test/interceptor-chain.test.ts and
 * test/fast-path.test.ts hold both paths to the same answers.
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
  readonly method: DescMethod;
  readonly chain: Chained;
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
  const plain = headers instanceof OutgoingHeaders ? OutgoingHeaders.plainFields(headers) : undefined;
  if (plain !== undefined) Object.assign(into, plain);
  else
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

const CALL = Symbol("fast-path call");

type Chained = (req: UnaryRequest) => Promise<UnaryResponse>;

/**
 * One call on the fast path, and the HandlerContext its handler gets: the
 * fields connect-node's createHandlerContext gives (same values, response
 * header and trailer defaults), with one AbortController (that the stream's
 * close or the deadline aborts) instead of three linked ones, made when
 * someone reads the signal. The response header and trailer are made only
 * when someone touches them. A class, so the getters live on the prototype
 * and a call allocates one object rather than a set of closures.
 */
class FastCall {
  readonly requestMethod = "POST";
  readonly service: DescService;
  readonly method: DescMethod;
  readonly protocolName: Protocol;
  settled = false;
  timer: NodeJS.Timeout | undefined;
  /** The request the chain started with (see FastRequest). */
  request: UnaryRequest | undefined;
  #controller: AbortController | undefined;
  #abortReason: { reason: unknown } | undefined;
  #requestHeader: Headers | undefined;
  #responseHeader: Headers | undefined;
  #responseTrailer: Headers | undefined;
  #values: ContextValues | undefined;

  constructor(
    method: DescMethod,
    readonly protocol: Protocol,
    readonly binary: boolean,
    readonly stream: ServerHttp2Stream,
    readonly headers: IncomingHttpHeaders,
    readonly deadline: number | undefined,
  ) {
    this.method = method;
    this.service = method.parent;
    this.protocolName = protocol;
  }

  get url(): string {
    return `http://${this.headers[":authority"] ?? "localhost"}${this.headers[":path"]}`;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#abortReason !== undefined) this.#controller.abort(this.#abortReason.reason);
      // Only a call whose signal someone watches needs to hear that the client went away.
      else this.stream.once("close", () => this.settled || this.abort(new ConnectError("the client cancelled the call", Code.Canceled)));
    }
    return this.#controller.signal;
  }

  timeoutMs(): number | undefined {
    return this.deadline === undefined ? undefined : this.deadline - Date.now();
  }

  get requestHeader(): Headers {
    return (this.#requestHeader ??= new IncomingHeaders(this.headers));
  }

  get responseHeader(): Headers {
    if (this.#responseHeader === undefined) {
      this.#responseHeader = new OutgoingHeaders({ "content-type": contentTypeOf(this.protocol, this.binary) });
    }
    return this.#responseHeader;
  }

  get responseTrailer(): Headers {
    if (this.#responseTrailer === undefined) {
      this.#responseTrailer = new OutgoingHeaders(this.protocol === "grpc" ? { "grpc-status": "0" } : {});
    }
    return this.#responseTrailer;
  }

  get values(): ContextValues {
    return (this.#values ??= createContextValues());
  }

  abort(reason?: unknown): void {
    if (this.#abortReason !== undefined) return;
    this.#abortReason = { reason };
    this.#controller?.abort(reason);
  }

  /** The response headers to send, without making Headers nobody set. */
  headerFields(into: OutgoingHttpHeaders): OutgoingHttpHeaders {
    if (this.#responseHeader === undefined) into["content-type"] = contentTypeOf(this.protocol, this.binary);
    else nodeHeaders(this.#responseHeader, into);
    return into;
  }

  /** The trailers to send (gRPC) or to prefix with "trailer-" (Connect). */
  trailerFields(into: OutgoingHttpHeaders): OutgoingHttpHeaders {
    if (this.#responseTrailer === undefined) {
      if (this.protocol === "grpc") into["grpc-status"] = "0";
    } else nodeHeaders(this.#responseTrailer, into);
    return into;
  }

  /** Takes what interceptors answered in place of this call's own Headers, as invokeUnaryImplementation copies them. */
  adopt(res: Partial<UnaryResponse>): void {
    if (res instanceof FastResponse) return;
    // A spread copy of our response has no getters: what it lacks is still the call's own.
    if (res.header !== undefined) replaceAll(this.responseHeader, res.header);
    if (res.trailer !== undefined) replaceAll(this.responseTrailer, res.trailer);
  }
}

function contentTypeOf(protocol: Protocol, binary: boolean): string {
  return protocol === "grpc" ? "application/grpc+proto" : binary ? "application/proto" : "application/json";
}

function replaceAll(to: Headers, from: Headers): void {
  if (from === to) return;
  for (const key of [...to.keys()]) to.delete(key);
  from.forEach((value, key) => to.set(key, value));
}

/** What a request and a response of one call share: own fields, so an interceptor's spread copy keeps them. */
class FastMessage {
  readonly stream = false;
  readonly method: DescMethod;
  readonly service: DescService;
  readonly [CALL]: FastCall;

  constructor(
    call: FastCall,
    readonly message: unknown,
  ) {
    this[CALL] = call;
    this.method = call.method;
    this.service = call.service;
  }
}

/**
 * The request interceptors see, with the fields connect's unary handlers
 * give them. `header` and `contextValues`, which the chain reads on every
 * call, are plain own fields. `signal` and `url` are prototype getters: most
 * calls never read them, and the signal costs an AbortController and a close
 * listener on the stream. An interceptor that passes on a spread copy keeps
 * the own fields; the handler behind it still gets the call's signal and url
 * (see mergedContext), an interceptor behind it sees them undefined.
 */
class FastRequest extends FastMessage {
  readonly requestMethod = "POST";
  readonly header: Headers;
  readonly contextValues: ContextValues;

  constructor(call: FastCall, message: unknown) {
    super(call, message);
    this.header = call.requestHeader;
    this.contextValues = call.values;
  }

  get url(): string {
    return this[CALL].url;
  }

  get signal(): AbortSignal {
    return this[CALL].signal;
  }
}

/**
 * The response the innermost step answers: `header` and `trailer` are the
 * call's, made on first read (an interceptor that sets a header makes one
 * Headers; one that sets nothing makes none).
 */
class FastResponse extends FastMessage {
  get header(): Headers {
    return this[CALL].responseHeader;
  }

  get trailer(): Headers {
    return this[CALL].responseTrailer;
  }
}

/**
 * The innermost step of the chain for one method: what connect's
 * invokeUnaryImplementation does (the handler gets the context with the
 * request's service, headers, signal and values; its answer is normalised to
 * a message; the response carries the call's header and trailer), run with
 * interceptors applied once per method instead of once per call.
 */
function chainFor(method: DescMethod, handler: UnaryHandler, interceptors: readonly Interceptor[]): Chained {
  const output = method.output as DescMessage;
  const inner = async (req: UnaryRequest): Promise<UnaryResponse> => {
    const call = (req as { [CALL]?: FastCall })[CALL];
    if (call === undefined) throw new ConnectError("an interceptor replaced the fast path's request", Code.Internal);
    // The call is the context unless an interceptor passed on a request of its own.
    const context = req === call.request ? (call as unknown as HandlerContext) : mergedContext(call, req);
    const result = await handler(req.message as never, context);
    return new FastResponse(call, isMessage(result, output) ? result : create(output, result as never)) as unknown as UnaryResponse;
  };
  let next = inner as unknown as Chained;
  // First interceptor outermost, as connect's applyInterceptors orders them.
  for (const interceptor of [...interceptors].reverse()) next = interceptor(next as never) as unknown as Chained;
  return next;
}

function mergedContext(call: FastCall, req: Partial<UnaryRequest>): HandlerContext {
  return {
    method: call.method,
    service: req.service ?? call.service,
    requestMethod: call.requestMethod,
    protocolName: call.protocolName,
    url: call.url,
    signal: req.signal ?? call.signal,
    timeoutMs: () => call.timeoutMs(),
    requestHeader: req.header ?? call.requestHeader,
    responseHeader: call.responseHeader,
    responseTrailer: call.responseTrailer,
    values: req.contextValues ?? call.values,
  };
}

/** Builds the fast path for one service's unary methods, behind `options.interceptors`. */
export function createUnaryFastPath(routes: FastPathRoutes, options: FastPathOptions): FastPath {
  const { limits } = options;
  const methods = new Map<string, Route>();
  for (const method of routes.service.methods) {
    const handler = routes.handlers[method.localName];
    if (method.methodKind === "unary" && handler !== undefined) {
      methods.set(`/${routes.service.typeName}/${method.name}`, {
        method,
        chain: chainFor(method, handler, options.interceptors),
        serialization: createMethodSerializationLookup(method, undefined, undefined, limits),
      });
    }
  }

  function fail(call: FastCall, err: unknown): void {
    const { stream } = call;
    if (stream.destroyed || stream.closed) return;
    const error = err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err);
    if (call.protocol === "grpc") {
      // Trailers-only response: headers and status in one HEADERS frame, no body.
      const trailer = new Headers();
      setTrailerStatus(trailer, error);
      stream.respond(nodeHeaders(trailer, call.trailerFields(call.headerFields({ ":status": 200 }))), { endStream: true });
      return;
    }
    const header = call.responseHeader;
    header.set("content-type", "application/json");
    if (!error.isWireError) error.metadata.forEach((value, key) => header.set(key, value));
    const body = errorToJsonBytes(error, {});
    const headers = nodeHeaders(trailerMux(header, call.responseTrailer), { ":status": codeToHttpStatus(error.code) });
    headers["content-length"] = body.byteLength;
    stream.respond(headers);
    stream.end(body);
  }

  function reply(call: FastCall, payload: Uint8Array): void {
    const { stream } = call;
    if (stream.destroyed || stream.closed) return;
    if (call.protocol === "grpc") {
      stream.respond(call.headerFields({ ":status": 200 }), { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers(call.trailerFields({})));
      stream.end(grpcFrame(payload));
      return;
    }
    const headers = call.headerFields({ ":status": 200 });
    const trailers = call.trailerFields({});
    for (const key in trailers) headers[`trailer-${key}`] = trailers[key];
    headers["content-length"] = payload.byteLength;
    stream.respond(headers);
    // A Buffer view (no copy): http2 writes Buffers directly.
    stream.end(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength));
  }

  function finish(call: FastCall, route: Route, outcome: UnaryResponse | { error: unknown }): void {
    if (call.settled) return;
    call.settled = true;
    if (call.timer !== undefined) clearTimeout(call.timer);
    try {
      if ("error" in outcome) {
        fail(call, outcome.error);
        return;
      }
      call.adopt(outcome);
      reply(call, route.serialization.getO(call.binary).serialize(outcome.message));
    } catch (err) {
      fail(call, err);
    }
  }

  function serve(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, route: Route, protocol: Protocol, binary: boolean, body: Buffer, size: number): void {
    const timeout =
      protocol === "grpc"
        ? parseGrpcTimeout((headers["grpc-timeout"] as string | undefined) ?? null, limits.maxTimeoutMs)
        : parseConnectTimeout((headers["connect-timeout-ms"] as string | undefined) ?? null, limits.maxTimeoutMs);
    const deadline = timeout.timeoutMs === undefined ? undefined : Date.now() + timeout.timeoutMs;
    const call = new FastCall(route.method, protocol, binary, stream, headers, deadline);
    let input: unknown;
    try {
      if (timeout.error !== undefined) throw timeout.error;
      if (size > limits.readMaxBytes + 5) {
        throw new ConnectError(`message size ${size} is larger than configured readMaxBytes ${limits.readMaxBytes}`, Code.ResourceExhausted);
      }
      input = route.serialization.getI(binary).parse(protocol === "grpc" ? grpcMessage(body) : body);
    } catch (err) {
      finish(call, route, { error: err });
      return;
    }
    if (timeout.timeoutMs !== undefined) {
      // A deadline answers at once; the handler, told through ctx.signal, stops when it can.
      call.timer = setTimeout(() => {
        const error = new ConnectError("the operation timed out", Code.DeadlineExceeded);
        call.abort(error);
        finish(call, route, { error });
      }, timeout.timeoutMs);
    }
    let pending: Promise<UnaryResponse>;
    try {
      call.request = new FastRequest(call, input) as unknown as UnaryRequest;
      pending = route.chain(call.request);
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending.then(
      (res) => finish(call, route, res),
      (err: unknown) => finish(call, route, { error: err }),
    );
  }

  return (stream, headers) => {
    const path = headers[":path"];
    if (typeof path !== "string") return false;
    const route = methods.get(path);
    if (route === undefined) return false;
    const kind = protocolOf(headers);
    if (kind === null) return false;
    const chunks: Buffer[] = [];
    let size = 0;
    // A frame header may come on top of the message; anything beyond is refused when it ends.
    const readMax = limits.readMaxBytes + 5;
    stream.on("data", (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size <= readMax) chunks.push(chunk);
    });
    stream.on("error", () => undefined);
    stream.once("end", () =>
      serve(stream, headers, route, kind.protocol, kind.binary, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, Math.min(size, readMax)), size),
    );
    return true;
  };
}
