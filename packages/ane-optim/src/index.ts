export {
  GradientAccumulator,
  type GradientAccumulatorOptions,
  type GradientAccumulatorState,
} from './accumulate';
export {
  type ArenaField,
  type ArenaLayout,
  type ArenaTensor,
  FlatArena,
  type FlatArenaOptions,
} from './arena';
export { clipCoefficient, clipGradNorm, globalNorm, type NormOptions } from './clip';
export { OptimizerConfigError, OptimizerInputError, OptimizerStateError } from './errors';
export type { KernelCall, KernelChoice, KernelName } from './kernels';
export {
  DynamicLossScaler,
  type LossScalerOptions,
  type LossScalerState,
  type UnscaleResult,
} from './loss-scaler';
export {
  type BaseHyperParameters,
  type LearningRate,
  OPTIMIZER_STATE_VERSION,
  Optimizer,
  type OptimizerName,
  type OptimizerOptions,
  type OptimizerState,
  type OptimizerStateMeta,
  type ParamGroup,
  type ParamMatcher,
  type Resolved,
  type StateBufferEntry,
  type StateTensorEntry,
  type StepArenaOptions,
  type TensorState,
} from './optimizer';
export { Adam, type AdamHyperParameters, type AdamOptions, AdamW } from './optimizers/adam';
export { Lion, type LionHyperParameters, type LionOptions } from './optimizers/lion';
export { SGD, type SgdHyperParameters, type SgdOptions } from './optimizers/sgd';
export {
  constant,
  cosineDecay,
  joinSchedules,
  linearSchedule,
  linearWarmup,
  type Schedule,
  stepDecay,
} from './schedules';
export {
  type DecodeOptimizerStateOptions,
  decodeOptimizerState,
  encodeOptimizerState,
} from './state-file';
export { ThreadPool, type ThreadPoolOptions } from './thread-pool';
export { flattenTree, type ParamTree, zerosLike } from './tree';
export { version } from './version';
