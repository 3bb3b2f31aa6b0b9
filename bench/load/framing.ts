/** gRPC message framing: a 5-byte prefix (compressed flag, big-endian length) before each message. */
export function grpcFrame(message: Uint8Array): Buffer {
  const framed = Buffer.alloc(5 + message.length);
  framed.writeUInt8(0, 0);
  framed.writeUInt32BE(message.length, 1);
  framed.set(message, 5);
  return framed;
}
