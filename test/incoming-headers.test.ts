import type { IncomingHttpHeaders } from "node:http2";
import { describe, expect, it } from "vitest";
import { IncomingHeaders } from "../src/server/incoming-headers.ts";

/** The fast path's lazy request headers must answer exactly as a Headers built from the same fields. */
describe("IncomingHeaders", () => {
  const fields = {
    ":path": "/ml.v1.MlService/Predict",
    ":method": "POST",
    "content-type": "application/grpc",
    "x-request-id": "abc",
    accept: ["a", "b"],
    cookie: ["k=1", "v=2"],
  };
  /** As Node hands them over: a prototype-less object, repeated fields as arrays. */
  const raw = () => Object.assign(Object.create(null) as object, fields) as unknown as IncomingHttpHeaders;
  const reference = () => {
    const h = new Headers();
    for (const [k, v] of Object.entries(fields)) {
      if (k.startsWith(":")) continue;
      for (const item of Array.isArray(v) ? v : [v]) h.append(k, item);
    }
    return h;
  };

  it("reads Node's object for get and has, pseudo-headers and prototype names excluded", () => {
    const h = new IncomingHeaders(raw());
    const ref = reference();
    // Pseudo-headers are dropped, as connect-node drops them (a Headers would refuse the name).
    expect(h.get(":path")).toBeNull();
    expect(h.has(":method")).toBe(false);
    for (const name of ["Content-Type", "x-request-id", "accept", "cookie", "missing", "constructor", "toString"]) {
      expect([name, h.get(name)]).toEqual([name, ref.get(name)]);
      expect([name, h.has(name)]).toEqual([name, ref.has(name)]);
    }
  });

  it("becomes a full Headers once iterated or changed", () => {
    expect([...new IncomingHeaders(raw())]).toEqual([...reference()]);
    expect([...new IncomingHeaders(raw()).keys()]).toEqual([...reference().keys()]);
    expect([...new IncomingHeaders(raw()).values()]).toEqual([...reference().values()]);
    expect([...new IncomingHeaders(raw()).entries()]).toEqual([...reference().entries()]);
    const seen: string[] = [];
    new IncomingHeaders(raw()).forEach((v, k) => seen.push(`${k}=${v}`));
    expect(seen).toHaveLength(4);
    expect(new IncomingHeaders(raw()).getSetCookie()).toEqual([]);
    const changed = new IncomingHeaders(raw());
    changed.set("x-request-id", "def");
    changed.append("x-new", "1");
    changed.delete("accept");
    expect([changed.get("x-request-id"), changed.get("x-new"), changed.has("accept"), changed.get("content-type")]).toEqual([
      "def",
      "1",
      false,
      "application/grpc",
    ]);
    expect(new Headers(new IncomingHeaders(raw())).get("x-request-id")).toBe("abc");
  });
});
