import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { ServerLimits } from "./limits.ts";
import { readTls, watchTls, type TlsSettings } from "./tls.ts";
import { createUnaryFastPath, type FastPathRoutes } from "./unary-fast-path.ts";

/** What to serve, behind which interceptors and limits, where. */
export interface ListenOptions {
  readonly routes: (router: ConnectRouter) => void;
  /** The one chain: connect-node and the lean unary path both run it, in this order. */
  readonly interceptors: readonly Interceptor[];
  readonly limits: ServerLimits;
  readonly port: number;
  readonly host?: string;
  /** Unary handlers to serve on the lean HTTP/2 path (src/server/unary-fast-path.ts); absent sends every call through connect-node. */
  readonly fastPath?: FastPathRoutes;
  /** Serve over TLS (ALPN h2 and http/1.1 on the same port; mutual TLS with a client CA), reloading the files when they change. */
  readonly tls?: TlsSettings;
  /** Told when a changed certificate could not be loaded (the server keeps the one it has). */
  readonly onTlsError?: (err: unknown) => void;
  /** A request whose body has not fully arrived within this long is cancelled (a half-sent body must not hold a stream forever). */
  readonly readTimeoutMs?: number;
}

/** A listening server and how to stop it. */
export interface RunningServer {
  readonly port: number;
  close(): Promise<void>;
}

const HTTP2_PREFACE = "PRI * HTTP/2.0";

/**
 * Serves gRPC, gRPC-Web and Connect on one port, for HTTP/2 with prior
 * knowledge (gRPC clients, `buf curl --http2-prior-knowledge`) and for
 * HTTP/1.1 (plain curl with Connect JSON): the first bytes of each
 * connection tell the two apart.
 */
export async function listen(options: ListenOptions): Promise<RunningServer> {
  const { routes, limits, port, host = "127.0.0.1" } = options;
  const interceptors = [...options.interceptors];
  const handler = connectNodeAdapter({ routes, interceptors, ...limits });
  const tlsOptions = options.tls === undefined ? null : readTls(options.tls);
  // Over TLS, ALPN tells HTTP/2 from HTTP/1.1 and one secure server takes both; in the clear, the first bytes do (below).
  const h2 =
    tlsOptions === null
      ? http2.createServer({}, handler)
      : http2.createSecureServer({ ...tlsOptions, allowHTTP1: true, ALPNProtocols: ["h2", "http/1.1"] }, handler);
  const readTimeoutMs = options.readTimeoutMs ?? 30_000;
  const fastPath = options.fastPath === undefined ? undefined : createUnaryFastPath(options.fastPath, { interceptors, limits });
  // Node's compatibility layer turns every "stream" event into a request for
  // connect-node; streams the fast path takes must not reach it. Every stream,
  // on either path, must have its whole request within readTimeoutMs (only the
  // request: a long Train that answers late is not cut).
  const readWatch = createReadWatch(readTimeoutMs);
  const emit = h2.emit.bind(h2) as (event: string | symbol, ...args: unknown[]) => boolean;
  h2.emit = ((event: string | symbol, ...args: unknown[]) => {
    if (event === "stream") {
      const stream = args[0] as http2.ServerHttp2Stream;
      readWatch.add(stream);
      if (fastPath?.(stream, args[1] as http2.IncomingHttpHeaders)) return true;
    }
    return emit(event, ...args);
  }) as typeof h2.emit;
  const h1 = http.createServer(handler);
  // HTTP/1.1: Node's own requestTimeout needs a server that listens itself (this one is handed sockets), so a timer here.
  h1.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const timer = setTimeout(() => {
      if (!res.headersSent) res.writeHead(408, { connection: "close", "content-type": "text/plain" }).end("the request did not arrive in time\n");
      req.socket.destroySoon();
    }, readTimeoutMs);
    timer.unref();
    const done = () => clearTimeout(timer);
    req.once("end", done);
    res.once("close", done);
  });
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  if (tlsOptions !== null && options.tls !== undefined) {
    const secure = h2 as http2.Http2SecureServer;
    const stopWatching = watchTls(secure, options.tls, options.onTlsError ?? (() => undefined));
    secure.on("connection", (socket: net.Socket) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      secure.once("error", reject);
      secure.listen(port, host, () => resolve());
    });
    const address = secure.address() as net.AddressInfo;
    return {
      port: address.port,
      close: () =>
        new Promise<void>((resolve) => {
          stopWatching();
          readWatch.stop();
          secure.close(() => resolve());
          for (const session of sessions) session.close();
          setTimeout(() => {
            for (const s of sockets) s.destroy();
          }, 5_000).unref();
        }),
    };
  }
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.once("readable", () => {
      const head = (socket.read(HTTP2_PREFACE.length) as Buffer | null) ?? (socket.read() as Buffer | null);
      if (head === null) return;
      socket.unshift(head);
      const isHttp2 = head.toString("latin1").startsWith(HTTP2_PREFACE.slice(0, head.length));
      (isHttp2 ? h2 : h1).emit("connection", socket);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as net.AddressInfo;
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        // Stop accepting, let in-flight calls finish (GOAWAY for HTTP/2), then drop what is left.
        readWatch.stop();
        server.close(() => resolve());
        for (const session of sessions) session.close();
        h1.closeIdleConnections();
        setTimeout(() => {
          for (const s of sockets) s.destroy();
        }, 5_000).unref();
      }),
  };
}

/**
 * HTTP/2 streams whose request has not fully arrived, checked by one timer
 * for the whole server rather than a timer, a closure and two once-listeners
 * per stream (which showed in Predict's CPU and allocations under load). A
 * stream leaves on "end" (its request is in) or "close"; one still waiting
 * more than readTimeoutMs after it began is cancelled, at most one tick late.
 */
function createReadWatch(readTimeoutMs: number): { add(stream: http2.ServerHttp2Stream): void; stop(): void } {
  const tickMs = Math.max(10, Math.min(1_000, Math.floor(readTimeoutMs / 4)));
  // Insertion order is arrival order: the sweep stops at the first stream still in time.
  const waiting = new Map<http2.ServerHttp2Stream, number>();
  // A clock that moves once a tick: reading the time per stream would cost more than the precision is worth.
  let now = performance.now();
  function settled(this: http2.ServerHttp2Stream): void {
    waiting.delete(this);
  }
  const timer = setInterval(() => {
    now = performance.now();
    for (const [stream, began] of waiting) {
      // `began` may be up to a tick before the stream really began: wait one tick more, never cut early.
      if (now - began <= readTimeoutMs + tickMs) break;
      waiting.delete(stream);
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
    }
  }, tickMs);
  timer.unref();
  return {
    add(stream) {
      waiting.set(stream, now);
      stream.on("end", settled);
      stream.on("close", settled);
    },
    stop() {
      clearInterval(timer);
      waiting.clear();
    },
  };
}
