import * as grpc from "@grpc/grpc-js";
import { fromBinary, toBinary, type DescMessage, type DescService, type MessageInitShape, type MessageShape, create } from "@bufbuild/protobuf";

/** A unary call made with @grpc/grpc-js, the reference gRPC implementation. */
export type UnaryCall = <I extends DescMessage, O extends DescMessage>(
  method: { input: I; output: O; name: string },
  request: MessageInitShape<I>,
) => Promise<MessageShape<O>>;

/** A grpc-js client for any protobuf-es service (in the clear unless given TLS credentials): messages are encoded with the generated schemas. */
export function grpcJsClient(service: DescService, address: string, credentials = grpc.credentials.createInsecure()): { call: UnaryCall; close(): void } {
  const client = new grpc.Client(address, credentials);
  return {
    call(method, request) {
      const path = `/${service.typeName}/${method.name}`;
      return new Promise((resolve, reject) => {
        client.makeUnaryRequest(
          path,
          (msg: MessageShape<typeof method.input>) => Buffer.from(toBinary(method.input, msg)),
          (buf: Buffer) => fromBinary(method.output, buf),
          create(method.input, request),
          (err, value) => (err ? reject(err) : resolve(value!)),
        );
      });
    },
    close() {
      client.close();
    },
  };
}
