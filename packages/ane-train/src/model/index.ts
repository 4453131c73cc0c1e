export {
  type LlamaConfig,
  PRESET_NAMES,
  PRESETS,
  type PresetName,
  parseLlamaConfig,
  resolveModel,
} from './config';
export {
  buildForwardGraph,
  FORWARD_IO,
  type ForwardGraph,
  type ForwardGraphOptions,
} from './forward-graph';
export { initParameters, type ParameterSpec, parameterCount, parameterSpecs } from './parameters';
export {
  batchTrainingGraph,
  buildTrainingGraph,
  type ChipName,
  PASS_ACTIVATION_BYTES,
  PASS_POSITIONS,
  planActivationBytes,
  sequencesPerPass,
  TRAINING_IO,
  type TrainingGraph,
  type TrainingGraphOptions,
} from './training-graph';
