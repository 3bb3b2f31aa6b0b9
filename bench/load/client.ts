import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { MlService } from "../../gen/ml/v1/ml_pb.ts";
import type { Protocol } from "./messages.ts";

/** A typed MlService client: the "real client" used to prepare data and to check grpc-status. */
export type MlClient = Client<typeof MlService>;

/** A Connect-ES client over HTTP/2 to the service on loopback, speaking gRPC or Connect; `token` is sent as a bearer token on every call. */
export function mlClient(port: number, protocol: Protocol = "grpc", token?: string): MlClient {
  const interceptors: Interceptor[] =
    token === undefined
      ? []
      : [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${token}`);
            return next(req);
          },
        ];
  const options = { baseUrl: `http://127.0.0.1:${port}`, httpVersion: "2" as const, defaultTimeoutMs: 600_000, interceptors };
  return createClient(MlService, protocol === "grpc" ? createGrpcTransport(options) : createConnectTransport(options));
}
