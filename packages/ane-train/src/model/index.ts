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
  buildTrainingGraph,
  type ChipName,
  PASS_POSITIONS,
  sequencesPerPass,
  TRAINING_IO,
  type TrainingGraph,
  type TrainingGraphOptions,
} from './training-graph';
