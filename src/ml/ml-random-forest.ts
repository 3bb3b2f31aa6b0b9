import { RandomForestClassifier } from "ml-random-forest";
import { ForestFormatError, type Forest, type ForestAlgorithm, type ForestOptions } from "./forest.ts";

/**
 * `ml-random-forest` behind the forest interface. Its own predictProbability
 * drops the first tree's vote and ignores leaf class distributions, so
 * probabilities are computed here from each tree's leaf distribution.
 */

const KIND = "ml-random-forest";
const FORMAT_VERSION = 1;
/** ml-cart cannot split on NaN; a value below every real feature keeps "missing" separable. */
const MISSING = -1;

interface TreeNodeLike {
  left?: TreeNodeLike;
  right?: TreeNodeLike;
  splitColumn?: number;
  splitValue?: number;
  distribution?: { to1DArray(): number[] } | number[][];
}
interface ClassifierLike {
  estimators: { root: TreeNodeLike }[];
  indexes: number[][];
  toJSON(): unknown;
}

interface StoredForest {
  format: string;
  version: number;
  nClasses: number;
  model: unknown;
}

function leafDistribution(node: TreeNodeLike): number[] {
  const d = node.distribution;
  if (d === undefined) return [];
  return Array.isArray(d) ? (d[0] ?? []) : d.to1DArray();
}

function wrap(model: ClassifierLike, nClasses: number): Forest {
  // Flatten once: tree traversal with plain objects is all predict needs.
  const trees = model.estimators.map((e, i) => ({ root: e.root, columns: model.indexes[i] ?? [] }));
  return {
    kind: KIND,
    nClasses,
    predictProba(row) {
      const sums = new Array<number>(nClasses).fill(0);
      for (const { root, columns } of trees) {
        let node = root;
        while (node.left !== undefined && node.right !== undefined && node.splitColumn !== undefined) {
          const raw = row[columns[node.splitColumn] ?? 0] ?? MISSING;
          const value = Number.isNaN(raw) ? MISSING : raw;
          node = value < (node.splitValue ?? 0) ? node.left : node.right;
        }
        const dist = leafDistribution(node);
        let total = 0;
        for (let c = 0; c < nClasses; c++) total += dist[c] ?? 0;
        if (total <= 0) continue;
        for (let c = 0; c < nClasses; c++) sums[c]! += (dist[c] ?? 0) / total;
      }
      const total = sums.reduce((a, b) => a + b, 0);
      return total > 0 ? sums.map((s) => s / total) : sums.map(() => 1 / nClasses);
    },
    serialize() {
      const stored: StoredForest = { format: KIND, version: FORMAT_VERSION, nClasses, model: model.toJSON() };
      return new TextEncoder().encode(JSON.stringify(stored));
    },
  };
}

/** The reference forest: correct but O(n²) per node, so slow beyond a few hundred rows. */
export const mlRandomForest: ForestAlgorithm = {
  kind: KIND,
  fit(X, y, nClasses, options: ForestOptions) {
    if (X.length === 0) throw new RangeError("cannot fit a forest on 0 rows");
    const rows = X.map((r) => r.map((v) => (Number.isNaN(v) ? MISSING : v)));
    const model = new RandomForestClassifier({
      nEstimators: options.nEstimators,
      seed: options.seed,
      maxFeatures: 1.0,
      replacement: false,
      useSampleBagging: true,
      noOOB: true,
      treeOptions: {
        maxDepth: options.maxDepth ?? Number.POSITIVE_INFINITY,
        minNumSamples: Math.max(1, (options.minSamplesLeaf ?? 1) * 2 - 1),
      },
    });
    model.train(rows, [...y]);
    return wrap(model as unknown as ClassifierLike, nClasses);
  },
  load(blob) {
    let stored: StoredForest;
    try {
      stored = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(blob)) as StoredForest;
    } catch {
      throw new ForestFormatError(`not an ${KIND} model: the blob (${blob.byteLength} bytes) is not JSON`);
    }
    if (stored?.format !== KIND || stored.version !== FORMAT_VERSION) {
      throw new ForestFormatError(`not an ${KIND} v${FORMAT_VERSION} model: found format ${String(stored?.format)} version ${String(stored?.version)}`);
    }
    try {
      const model = RandomForestClassifier.load(stored.model as never) as unknown as ClassifierLike;
      return wrap(model, stored.nClasses);
    } catch (err) {
      throw new ForestFormatError(`corrupt ${KIND} model: ${(err as Error).message}`);
    }
  },
};
