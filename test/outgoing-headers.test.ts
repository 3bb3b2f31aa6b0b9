import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OutgoingHeaders } from "../src/server/outgoing-headers.ts";

type Op = ["set" | "append", string, string] | ["delete" | "get" | "has", string] | ["iterate"];

/** What a Headers holds and answers, as one comparable value (errors included: both must refuse the same input). */
function run(h: Headers, ops: readonly Op[]): unknown[] {
  const seen: unknown[] = [];
  for (const op of ops) {
    try {
      if (op[0] === "set") h.set(op[1], op[2]);
      else if (op[0] === "append") h.append(op[1], op[2]);
      else if (op[0] === "delete") h.delete(op[1]);
      else if (op[0] === "get") seen.push(h.get(op[1]));
      else if (op[0] === "has") seen.push(h.has(op[1]));
      else seen.push([...h.entries()]);
    } catch (err) {
      seen.push(`threw ${(err as Error).name}`);
    }
  }
  seen.push([...h.entries()]);
  return seen;
}

/** The fast path's response headers must behave exactly as a fetch Headers with the same start. */
describe("OutgoingHeaders", () => {
  it("answers every sequence of calls as Headers does (seeded property test)", () => {
    const name = fc.constantFrom("content-type", "X-Request-Id", "x-request-id", "grpc-status", "bad name", "", "trailer-x");
    const value = fc.constantFrom("abc", " padded ", "a\tb", "line\nbreak", "", "nul\0", "ünïcode", "0");
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.tuple(fc.constantFrom("set" as const, "append" as const), name, value),
      fc.tuple(fc.constantFrom("delete" as const, "get" as const, "has" as const), name),
      fc.constant(["iterate"] as Op),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 12 }), (ops) => {
        const start = { "content-type": "application/grpc+proto" };
        expect(run(new OutgoingHeaders({ ...start }), ops)).toEqual(run(new Headers(start), ops));
      }),
      { seed: 20261129, numRuns: 2_000 },
    );
  });

  it("keeps plain fields as a record for the fast path until something needs a real Headers", () => {
    const h = new OutgoingHeaders({ "content-type": "application/proto" });
    h.set("X-Request-Id", "id-1");
    expect(OutgoingHeaders.plainFields(h)).toEqual({ "content-type": "application/proto", "x-request-id": "id-1" });
    h.append("x-request-id", "id-2");
    expect(OutgoingHeaders.plainFields(h)).toBeUndefined();
    expect(h.get("x-request-id")).toBe("id-1, id-2");
  });
});
