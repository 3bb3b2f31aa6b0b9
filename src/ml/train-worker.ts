import { createPacer } from "./pace.ts";
import { trainPopulation, trainUserEnergy, type PopulationJob, type UserEnergyJob } from "./train-energy.ts";
import { trainModel, type TrainJob, type TrainResult } from "./train-model.ts";

/** Every job the worker pool runs, with the share of a core it may use (default: all of one). */
export type AnyTrainJob = ((TrainJob & { readonly kind?: "forest" }) | UserEnergyJob | PopulationJob) & { readonly cpuShare?: number };

/** Piscina entry point: one training job per call, run off the event loop. */
export default function runTrainJob(job: AnyTrainJob): TrainResult {
  // Functions cannot cross into a worker, so the pacing hook is added here, from a plain number.
  const paced = job.cpuShare === undefined || job.cpuShare >= 1 ? job : { ...job, options: { ...job.options, afterTree: createPacer(job.cpuShare) } };
  switch (paced.kind) {
    case "energy-user":
      return trainUserEnergy(paced);
    case "energy-population":
      return trainPopulation(paced);
    default:
      return trainModel(paced);
  }
}
