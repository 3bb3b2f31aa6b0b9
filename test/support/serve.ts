import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";

/** A bare connect-node HTTP/2 server on a free port, and how to stop it. */
export interface Running {
  readonly url: string;
  readonly port: number;
  /** Stops the server and drops its sessions; safe to call twice. */
  close(): Promise<void>;
}

/** Serves `routes` with connect-node alone (no app, no interceptors), for tests of one service such as health or reflection. */
export async function serve(routes: (router: ConnectRouter) => void): Promise<Running> {
  const server = http2.createServer(connectNodeAdapter({ routes }));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  let closed: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      (closed ??= new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        for (const s of sessions) s.destroy();
      })),
  };
}
