import { createHandlerContext, createMethodImplSpec, createContextValues } from "@connectrpc/connect";
import { invokeUnaryImplementation } from "@connectrpc/connect/protocol";
import { randomUUID } from "node:crypto";
import { MlService, PredictResponseSchema } from "./gen/ml/v1/ml_pb.ts";
import { create } from "@bufbuild/protobuf";
import { createInterceptorChain } from "./src/server/interceptors.ts";
import { createJsonLogger } from "./src/logger.ts";

const method = MlService.method.predict;
const resp = create(PredictResponseSchema, {});
const spec = createMethodImplSpec(method, async () => resp);
const h = { ":method": "POST", ":path": "/ml.v1.MlService/Predict", ":authority": "127.0.0.1:1", ":scheme": "http", "content-type": "application/grpc", te: "trailers", "user-agent": "h2load nghttp2/1.52.0", "accept": "*/*" } as Record<string,string>;
function webHeaders(headers: Record<string,string>) { const out = new Headers(); for (const k in headers) { if (k.charCodeAt(0)===58) continue; out.append(k, headers[k]!);} return out; }
const N = 200_000;
async function time(name: string, f: () => unknown) {
  for (let i=0;i<20000;i++) await f();
  const t = performance.now();
  for (let i=0;i<N;i++) await f();
  console.log(name, ((performance.now()-t)*1000/N).toFixed(2), "µs");
}
const log = createJsonLogger({ level: "info", write: () => {} });
const chain0 = createInterceptorChain({ log, accessLog: { level: "debug", sampleRate: 1 } });
const chain1 = createInterceptorChain({ log, accessLog: { level: "info", sampleRate: 1 } });
const mk = () => createHandlerContext({ ...spec, service: MlService, requestMethod: "POST", protocolName: "grpc", requestSignal: new AbortController().signal, requestHeader: webHeaders(h), url: "http://x/y", responseHeader: {"content-type": "application/grpc+proto"}, responseTrailer: {"grpc-status": "0"} });
await time("noop", () => undefined);
await time("webHeaders", () => webHeaders(h));
await time("randomUUID", () => randomUUID());
await time("AbortController", () => new AbortController());
await time("createHandlerContext", mk);
await time("ctx+invoke no interceptors", () => invokeUnaryImplementation(spec as never, mk(), {} as never, []));
await time("ctx+invoke chain (no access)", () => invokeUnaryImplementation(spec as never, mk(), {} as never, chain0));
await time("ctx+invoke chain (access to noop)", () => invokeUnaryImplementation(spec as never, mk(), {} as never, chain1));
