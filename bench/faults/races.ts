import { ModelType } from "../../gen/ml/v1/ml_pb.ts";
import { mlClient } from "../load/client.ts";
import { ingestForUsers } from "../load/users.ts";
import { modelConsistency } from "./consistency.ts";
import { codeOf, isBugCode } from "./mix.ts";
import type { FaultOptions } from "./options.ts";
import { codeList, count, progress, type FaultRow } from "./report.ts";
import type { FaultRig } from "./rig.ts";

/**
 * `raceCalls` ActivateModel and Train calls for one user, all at once: no
 * Internal, exactly one active version afterwards, every version in the activation log.
 */
export async function runRaces(rig: FaultRig, options: FaultOptions, tag: string): Promise<FaultRow[]> {
  const service = await rig.ensure();
  const client = mlClient(service.port);
  const user = `${tag}-race`;
  const E = ModelType.ENERGY_PREDICTION;
  await ingestForUsers(client, [user], 80);
  for (let i = 0; i < 3; i++) await client.train({ userId: user, modelType: E });
  const ids = (await client.listModels({ userId: user, modelType: E })).models.map((m) => m.modelId);
  progress(`races: ${ids.length} versions of ${user}; firing ${options.raceCalls} ActivateModel and Train calls at once`);
  const codes = new Map<string, number>();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: options.raceCalls }, async (_, i) => {
      const code =
        i % 2 === 0
          ? await client.activateModel({ modelId: ids[i % ids.length]! }).then(() => "OK", codeOf)
          : await client.train({ userId: user, modelType: E }).then(() => "OK", codeOf);
      count(codes, `${i % 2 === 0 ? "ActivateModel" : "Train"} ${code}`);
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const models = await modelConsistency(rig.pool, [user]);
  const S = `races: ${options.raceCalls} ActivateModel + Train for one user`;
  return [
    {
      scenario: S,
      figure: `codes (${seconds.toFixed(1)} s)`,
      value: codeList(codes),
      target: "no Internal/Unknown",
      pass: ![...codes.keys()].some((k) => isBugCode(k.split(" ")[1]!)),
    },
    {
      scenario: S,
      figure: "versions; active not exactly one; versions without activation log",
      value: `${models.versions}; ${models.activeNotOne.join("; ") || "0"}; ${models.unlogged.length}`,
      target: "0; 0",
      pass: models.activeNotOne.length === 0 && models.unlogged.length === 0,
    },
  ];
}
