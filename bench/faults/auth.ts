import type { FaultOptions } from "./options.ts";
import type { FaultRow } from "./report.ts";
import type { FaultRig } from "./rig.ts";

export async function runAuth(_rig: FaultRig, _options: FaultOptions, _tag: string): Promise<FaultRow[]> {
  throw new Error("not yet");
}
