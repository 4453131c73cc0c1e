export {
  type ExportHuggingFaceOptions,
  exportHuggingFace,
  hfConfigJson,
  importHuggingFace,
} from './huggingface';
export {
  type ConvertedModel,
  encodeLlama2cCheckpoint,
  parseLlama2cCheckpoint,
  readLlama2cCheckpoint,
  writeLlama2cCheckpoint,
} from './llama2c';
export { interleavedToRotateHalf, rotateHalfToInterleaved } from './rope-layout';
