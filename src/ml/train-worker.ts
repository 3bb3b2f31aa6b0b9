import { trainPopulation, trainUserEnergy, type PopulationJob, type UserEnergyJob } from "./train-energy.ts";
import { trainModel, type TrainJob, type TrainResult } from "./train-model.ts";

/** Every job the worker pool runs. */
export type AnyTrainJob = (TrainJob & { readonly kind?: "forest" }) | UserEnergyJob | PopulationJob;

/** Piscina entry point: one training job per call, run off the event loop. */
export default function runTrainJob(job: AnyTrainJob): TrainResult {
  switch (job.kind) {
    case "energy-user":
      return trainUserEnergy(job);
    case "energy-population":
      return trainPopulation(job);
    default:
      return trainModel(job);
  }
}
