// The optimizers and schedules a Trainer takes, so an app needs only ane-train.
export {
  Adam,
  AdamW,
  constant,
  cosineDecay,
  joinSchedules,
  Lion,
  linearSchedule,
  linearWarmup,
  SGD,
  stepDecay,
} from 'ane-optim';
export * from './checkpoint';
export * from './convert';
export * from './data';
export { CheckpointError, ConfigError, DataError, TrainError } from './errors';
export {
  type ComputeGradientsOptions,
  checkWeights,
  computeGradients,
  type GradientsResult,
  type GradsCommandOptions,
  gradsCommand,
} from './grads';
export {
  encodeSafetensors,
  readSafetensors,
  readSafetensorsFile,
  type SafetensorsContents,
  type SafetensorsDType,
  type SafetensorsInput,
  type SafetensorsTensor,
  tensorToFloat32,
  writeSafetensorsFile,
} from './io/safetensors';
export { checkTokens, readTokenFile } from './io/tokens';
export * from './model';
export * from './plan-summary';
export * from './report';
export * from './runtime';
export * from './sample';
export * from './step-estimate';
export {
  type Backend,
  type FitCallbacks,
  type FitOptions,
  type History,
  type StepLog,
  Trainer,
  type TrainerOptions,
  type TrainingData,
} from './trainer';
export { version } from './version';
