export {
  decodeText,
  demoTokenCorpus,
  isTokenFile,
  loadCorpus,
  MAX_TEXT_BYTES,
  type TokenCorpus,
} from './corpus';
export { demoCorpus } from './demo-corpus';
export {
  BatchSampler,
  type BatchSamplerOptions,
  type SamplerState,
  sequentialBatches,
  splitCorpus,
} from './sampler';
export { byteTokenizer, decodeStream, loadTokenizer, type Tokenizer, type TokenizerName } from './tokenizer';
