export {
  argmax,
  checkTokenChoiceOptions,
  sampleToken,
  type TokenChoiceOptions,
  tokenDistribution,
} from './sample-token';
export { type SampleOptions, type SampleResult, Sampler, type SamplerOptions } from './sampler';
