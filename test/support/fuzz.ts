import { create, ScalarType, type DescField, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import fc from "fast-check";

/**
 * Random requests for any message, read from its descriptor (so a field added
 * to the .proto is fuzzed without touching this file): random values and the
 * edges that break services (NUL, control and astral characters, empty and
 * huge strings, almost-UUIDs, 0 and max integers, NaN and infinities,
 * timestamps at the ends of int64 and with bad nanos, enum numbers that do not
 * exist, long repeated fields).
 */

const UUID = "123e4567-e89b-42d3-a456-426614174000";
const edgeStrings = fc.constantFrom(
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "\u001b[31m",
  "😀",
  "\ud800",
  UUID,
  UUID.toUpperCase(),
  UUID.slice(1),
  "x".repeat(300),
  "Europe/Berlin",
  "Mars/Olympus",
  "UTC",
);
const strings = fc.oneof(
  { weight: 3, arbitrary: edgeStrings },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 20 }) },
  { weight: 1, arbitrary: fc.uuid() },
);
const doubles = fc.oneof(
  fc.constantFrom(0, -0, 1, 2, 3, -1, 0.5, 1e308, -1e308, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.MIN_VALUE),
  fc.double(),
);
const uint32 = fc.oneof(fc.constantFrom(0, 1, 2, 23, 24, 168, 500, 501, 1000, 2 ** 31, 2 ** 32 - 1), fc.nat());
const int32 = fc.oneof(fc.constantFrom(0, -1, 1, 2 ** 31 - 1, -(2 ** 31), 999_999_999, 1_000_000_000), fc.integer());
const int64 = fc.oneof(
  fc.constantFrom(0n, -1n, 1n, 1_800_000_000n, 7_258_118_400n, 253_402_300_800n, 10_000_000_000_000n, -62_167_219_200n, 2n ** 63n - 1n, -(2n ** 63n)),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
);

function scalar(type: ScalarType): fc.Arbitrary<unknown> {
  switch (type) {
    case ScalarType.STRING:
      return strings;
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return doubles;
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return uint32;
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return int32;
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 16 });
    default:
      return int64;
  }
}

function fieldValue(field: DescField, depth: number): fc.Arbitrary<unknown> {
  const one = (): fc.Arbitrary<unknown> => {
    if (field.fieldKind === "scalar" || (field.fieldKind === "list" && field.listKind === "scalar")) return scalar(field.scalar!);
    if (field.fieldKind === "enum" || (field.fieldKind === "list" && field.listKind === "enum")) {
      return fc.oneof(fc.constantFrom(...field.enum!.values.map((v) => v.number)), fc.constantFrom(-1, 99, 2 ** 31 - 1));
    }
    if (field.fieldKind === "map") return fc.constant(undefined);
    return messageInit(field.message!, depth + 1);
  };
  if (field.fieldKind === "list")
    return fc.oneof({ weight: 4, arbitrary: fc.array(one(), { maxLength: 4 }) }, { weight: 1, arbitrary: fc.array(one(), { minLength: 40, maxLength: 60 }) });
  if (field.fieldKind === "map") return fc.constant({});
  return one();
}

/** A random init object for `schema`, each field set or left out. */
function messageInit(schema: DescMessage, depth = 0): fc.Arbitrary<Record<string, unknown>> {
  if (depth > 3) return fc.constant({});
  const fields = schema.fields.filter((f) => f.fieldKind !== "map");
  return fc.record(Object.fromEntries(fields.map((f) => [f.localName, fieldValue(f, depth)])), { requiredKeys: [] }) as fc.Arbitrary<Record<string, unknown>>;
}

/** Random messages of `schema`, ready to send. */
export function arbitraryMessage<Desc extends DescMessage>(schema: Desc): fc.Arbitrary<MessageShape<Desc>> {
  return messageInit(schema).map((init) => create(schema, init as never));
}
