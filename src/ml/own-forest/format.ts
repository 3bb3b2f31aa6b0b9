/**
 * Binary model format ("ORFB", version 3; version 2 still reads). Little-endian, 64-byte header,
 * then sections each padded to a multiple of 8 bytes:
 *
 *   offset size  field
 *   0      4     magic "ORFB"
 *   4      2     format version (3)
 *   6      2     header size (64)
 *   8      4     total blob size in bytes
 *   12     4     checksum of bytes [64, total) (32-bit words, see checksum())
 *   16     4     nClasses
 *   20     4     nFeatures
 *   24     4     nTrees
 *   28     4     nNodes (all trees)
 *   32     4     nSplits (split nodes, all trees)
 *   36     4     nMixedFloats (mixed-leaf distribution floats)
 *   40     4     nEdges
 *   44     4     nCalibrationFloats (version 3; zero in version 2)
 *   48     16    reserved, zero
 *   sections: edges f64[nEdges] | nBins u16[nFeatures] | treeNodeCounts i32[nTrees]
 *             | codes i16[nNodes] | bins u8[nSplits] | mixed f32[nMixedFloats]
 *             | calibration f32[nCalibrationFloats] (top-label knots, version 3)
 *
 * A split node costs 3 bytes, a pure leaf 2, a mixed leaf 2 + 4 * nClasses.
 */

import { ForestFormatError } from "../forest.ts";
import { PART_FORMAT, type ForestPart } from "./part.ts";

export const MAGIC = "ORFB";
/**
 * 3: adds the top-label calibration section. 2: trees in depth-first pair
 * order, no calibration (read as uncalibrated; models stored before
 * version 3 keep working). Version 1 (an early build, never released)
 * stored trees breadth-first; it cannot be told apart from 2 by structure,
 * so version 1 blobs are refused rather than misread.
 */
export const FORMAT_VERSION = 3;
/** Oldest version decodePart() still reads. */
const OLDEST_READABLE = 2;
export const HEADER_BYTES = 64;
const MAGIC_BYTES = [0x4f, 0x52, 0x46, 0x42];

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const pad8 = (n: number): number => (n + 7) & ~7;

/** Order-sensitive 32-bit hash of 32-bit words; any single changed word changes it. */
export function checksum(words: Int32Array): number {
  let h = 0x811c9dc5 | 0;
  for (let i = 0; i < words.length; i++) {
    h = Math.imul(h ^ words[i]!, 0x01000193);
    h ^= h >>> 13;
  }
  return h >>> 0;
}

interface Layout {
  edges: number;
  nBins: number;
  counts: number;
  codes: number;
  bins: number;
  mixed: number;
  calibration: number;
  total: number;
}

function layout(nEdges: number, nFeatures: number, nTrees: number, nNodes: number, nSplits: number, nMixed: number, nCalibration: number): Layout {
  let o = HEADER_BYTES;
  const edges = o;
  o += pad8(nEdges * 8);
  const nBins = o;
  o += pad8(nFeatures * 2);
  const counts = o;
  o += pad8(nTrees * 4);
  const codes = o;
  o += pad8(nNodes * 2);
  const bins = o;
  o += pad8(nSplits);
  const mixed = o;
  o += pad8(nMixed * 4);
  const calibration = o;
  o += pad8(nCalibration * 4);
  return { edges, nBins, counts, codes, bins, mixed, calibration, total: o };
}

/** Encodes a part covering a whole forest (trees from 0). */
export function encodePart(part: ForestPart): Uint8Array {
  if (!LITTLE_ENDIAN) throw new Error("own-random-forest blobs need a little-endian host");
  const nTrees = part.treeNodeCounts.length;
  const L = layout(part.edges.length, part.nFeatures, nTrees, part.codes.length, part.bins.length, part.mixed.length, part.calibration.length);
  const out = new Uint8Array(L.total);
  const buf = out.buffer;
  new Float64Array(buf, L.edges, part.edges.length).set(part.edges);
  new Uint16Array(buf, L.nBins, part.nFeatures).set(part.nBins);
  new Int32Array(buf, L.counts, nTrees).set(part.treeNodeCounts);
  new Int16Array(buf, L.codes, part.codes.length).set(part.codes);
  out.set(part.bins, L.bins);
  new Float32Array(buf, L.mixed, part.mixed.length).set(part.mixed);
  new Float32Array(buf, L.calibration, part.calibration.length).set(part.calibration);
  const dv = new DataView(buf);
  for (let i = 0; i < 4; i++) out[i] = MAGIC_BYTES[i]!;
  dv.setUint16(4, FORMAT_VERSION, true);
  dv.setUint16(6, HEADER_BYTES, true);
  dv.setUint32(8, L.total, true);
  dv.setUint32(16, part.nClasses, true);
  dv.setUint32(20, part.nFeatures, true);
  dv.setUint32(24, nTrees, true);
  dv.setUint32(28, part.codes.length, true);
  dv.setUint32(32, part.bins.length, true);
  dv.setUint32(36, part.mixed.length, true);
  dv.setUint32(40, part.edges.length, true);
  dv.setUint32(44, part.calibration.length, true);
  dv.setUint32(12, checksum(new Int32Array(buf, HEADER_BYTES, (L.total - HEADER_BYTES) / 4)), true);
  return out;
}

function describeBytes(bytes: Uint8Array): string {
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
  const text = Array.from(bytes, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
  return `${hex} (${JSON.stringify(text)})`;
}

/**
 * Decodes and checks a blob's framing; the trees themselves are validated by
 * OwnForest. An 8-byte-aligned blob is referenced, not copied: change it
 * afterwards and the model's serialize() changes with it.
 */
export function decodePart(blob: Uint8Array): ForestPart {
  if (!(blob instanceof Uint8Array)) throw new ForestFormatError(`expected a Uint8Array blob, got ${typeof blob}`);
  const head = blob.subarray(0, 4);
  const magicOk = blob.length >= 4 && MAGIC_BYTES.every((b, i) => head[i] === b);
  if (!magicOk) {
    throw new ForestFormatError(
      blob.length === 0
        ? `not an own-random-forest blob: it is empty (expected magic "${MAGIC}")`
        : `not an own-random-forest blob: expected magic "${MAGIC}" (4f 52 46 42), found ${describeBytes(blob.subarray(0, 8))}`,
    );
  }
  if (blob.length < 8) throw new ForestFormatError(`truncated own-random-forest blob: ${blob.length} bytes, the header alone is ${HEADER_BYTES}`);
  const version = blob[4]! | (blob[5]! << 8);
  if (version < OLDEST_READABLE || version > FORMAT_VERSION) {
    throw new ForestFormatError(`unsupported own-random-forest format version ${version} (this build reads versions ${OLDEST_READABLE} to ${FORMAT_VERSION})`);
  }
  if (blob.length < HEADER_BYTES) {
    throw new ForestFormatError(`truncated own-random-forest blob: ${blob.length} bytes, the header alone is ${HEADER_BYTES}`);
  }
  if (!LITTLE_ENDIAN) throw new ForestFormatError("own-random-forest blobs need a little-endian host");
  // An 8-byte-aligned blob is read in place (a model's blob is megabytes, and
  // first-touching a copy's pages was most of a load); any other is copied
  // once into an aligned buffer. Sections are views either way.
  const aligned = blob.byteOffset % 8 === 0;
  const buf = aligned ? blob.buffer : Uint8Array.from(blob).buffer;
  const o = aligned ? blob.byteOffset : 0;
  const dv = new DataView(buf, o, blob.length);
  const headerBytes = dv.getUint16(6, true);
  const total = dv.getUint32(8, true);
  if (headerBytes !== HEADER_BYTES) throw new ForestFormatError(`corrupt own-random-forest blob: header size ${headerBytes}, expected ${HEADER_BYTES}`);
  if (total !== blob.length) {
    throw new ForestFormatError(
      total > blob.length
        ? `truncated own-random-forest blob: header says ${total} bytes, got ${blob.length}`
        : `corrupt own-random-forest blob: header says ${total} bytes, got ${blob.length} (trailing data)`,
    );
  }
  const nClasses = dv.getUint32(16, true);
  const nFeatures = dv.getUint32(20, true);
  const nTrees = dv.getUint32(24, true);
  const nNodes = dv.getUint32(28, true);
  const nSplits = dv.getUint32(32, true);
  const nMixed = dv.getUint32(36, true);
  const nEdges = dv.getUint32(40, true);
  const nCalibration = dv.getUint32(44, true);
  if (version < 3 && nCalibration !== 0) throw new ForestFormatError(`corrupt own-random-forest blob: version ${version} with calibration data`);
  const L = layout(nEdges, nFeatures, nTrees, nNodes, nSplits, nMixed, nCalibration);
  if (L.total !== total) {
    throw new ForestFormatError(
      `corrupt own-random-forest blob: counts (${nTrees} trees, ${nNodes} nodes, ${nSplits} splits, ${nEdges} edges) need ${L.total} bytes, blob has ${total}`,
    );
  }
  const stored = dv.getUint32(12, true);
  const actual = checksum(new Int32Array(buf, o + HEADER_BYTES, (total - HEADER_BYTES) / 4));
  if (stored !== actual) {
    throw new ForestFormatError(
      `corrupt own-random-forest blob: checksum ${actual.toString(16).padStart(8, "0")} does not match stored ${stored.toString(16).padStart(8, "0")}`,
    );
  }
  return {
    format: PART_FORMAT,
    nClasses,
    nFeatures,
    treeStart: 0,
    treeEnd: nTrees,
    totalTrees: nTrees,
    // what prediction reads after the load is copied (small); the node codes
    // and split bins are only replayed by the load and re-read by serialize()
    nBins: new Uint16Array(buf, o + L.nBins, nFeatures).slice(),
    edges: new Float64Array(buf, o + L.edges, nEdges).slice(),
    treeNodeCounts: new Int32Array(buf, o + L.counts, nTrees).slice(),
    codes: new Int16Array(buf, o + L.codes, nNodes),
    bins: new Uint8Array(buf, o + L.bins, nSplits),
    mixed: new Float32Array(buf, o + L.mixed, nMixed).slice(),
    calibration: new Float32Array(buf, o + L.calibration, nCalibration).slice(),
  };
}
