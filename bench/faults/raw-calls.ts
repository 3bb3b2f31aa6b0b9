import http2 from "node:http2";
import net from "node:net";
import { Code } from "@connectrpc/connect";

/** How a raw call ended: the code it carried (a Code name), or what happened instead. */
export interface RawOutcome {
  /** HTTP status, when one came. */
  readonly status: number | null;
  /** The RPC code by name, "no answer" (nothing by the deadline), "reset" (stream or connection dropped), or "HTTP <status>". */
  readonly code: string;
  readonly ms: number;
}

const grpcCodeName = (raw: string | string[] | undefined): string | null => {
  const n = Number(Array.isArray(raw) ? raw[0] : raw);
  return raw === undefined || !Number.isInteger(n) ? null : (Code[n] ?? `grpc-status ${n}`);
};

/** Connect's error codes are snake_case names; Code's are PascalCase. */
const connectCodeName = (body: string): string | null => {
  const match = /"code"\s*:\s*"([a-z_]+)"/.exec(body);
  if (match === null) return null;
  return match[1]!
    .split("_")
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join("");
};

/**
 * One request on its own HTTP/2 connection, written as given: `body` chunks,
 * then END_STREAM unless `end` is false. Waits at most `waitMs` for the answer.
 */
export function h2Request(
  port: number,
  headers: http2.OutgoingHttpHeaders,
  body: readonly Buffer[],
  options: { end?: boolean; waitMs?: number } = {},
): Promise<RawOutcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => undefined);
    let status: number | null = null;
    let grpc: string | null = null;
    let text = "";
    let settled = false;
    const done = (code: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      resolve({ status, code, ms: performance.now() - started });
    };
    const timer = setTimeout(() => done("no answer"), options.waitMs ?? 30_000);
    const stream = session.request({ ":method": "POST", ...headers });
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      grpc = grpcCodeName(h["grpc-status"]);
    });
    stream.on("trailers", (t) => (grpc = grpcCodeName(t["grpc-status"]) ?? grpc));
    stream.on("data", (chunk: Buffer) => {
      if (text.length < 4_000) text += chunk.toString("latin1");
    });
    // Ended without a response head: the server reset the stream (RST_STREAM), as it does at its read deadline.
    stream.on("end", () =>
      done(status === null ? "reset" : (grpc ?? grpcWebCode(text) ?? connectCodeName(text) ?? (status === 200 ? "OK" : `HTTP ${status}`))),
    );
    stream.on("error", () => done(status === null ? "reset" : (grpc ?? `HTTP ${status}, reset`)));
    stream.on("close", () => done(grpc ?? (status === null ? "reset" : `HTTP ${status}`)));
    for (const chunk of body) stream.write(chunk);
    if (options.end !== false) stream.end();
  });
}

/** The grpc-status in a gRPC-Web trailer frame (or header block) of a response body. */
function grpcWebCode(text: string): string | null {
  const match = /grpc-status:\s*(\d+)/i.exec(text);
  return match === null ? null : grpcCodeName(match[1]);
}

/**
 * One HTTP/1.1 request on a raw socket: the head as given, then the body
 * chunks. Content-Length is whatever the caller puts in the head (so a body
 * can be shorter than announced). Waits at most `waitMs` for the server to answer.
 */
export function h1Request(port: number, head: string, body: readonly Buffer[], options: { waitMs?: number } = {}): Promise<RawOutcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    let text = "";
    let settled = false;
    const done = (fallback: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const statusMatch = /^HTTP\/1\.1 (\d{3})/.exec(text);
      const status = statusMatch === null ? null : Number(statusMatch[1]);
      const code = grpcWebCode(text) ?? connectCodeName(text) ?? (status === null ? fallback : status === 200 ? "OK" : `HTTP ${status}`);
      resolve({ status, code, ms: performance.now() - started });
    };
    const timer = setTimeout(() => done("no answer"), options.waitMs ?? 30_000);
    socket.on("error", () => done("reset"));
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString("latin1");
      // A complete answer: the head, and either a body of Content-Length or the last chunk.
      const headEnd = text.indexOf("\r\n\r\n");
      if (headEnd < 0) return;
      const length = /content-length:\s*(\d+)/i.exec(text.slice(0, headEnd));
      if (length !== null && text.length - headEnd - 4 >= Number(length[1])) done("OK");
      else if (/transfer-encoding:\s*chunked/i.test(text.slice(0, headEnd)) && text.endsWith("0\r\n\r\n")) done("OK");
    });
    socket.on("close", () => done("reset"));
    socket.write(head);
    for (const chunk of body) socket.write(chunk);
  });
}

/** An HTTP/1.1 POST head for a path, with the given headers and Content-Length. */
export function h1Head(path: string, headers: Record<string, string>, contentLength: number): string {
  const lines = [`POST ${path} HTTP/1.1`, "Host: 127.0.0.1", ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), `Content-Length: ${contentLength}`];
  return lines.join("\r\n") + "\r\n\r\n";
}
