export {
  type Derivation,
  derive,
  type GradientsOptions,
  gradients,
  STOP_GRADIENT,
  stopGradient,
  WEIGHT_GRAD_SUM,
} from './backward';
export {
  COMPOSITE_VJP_RULES,
  type CompositeVjpArgs,
  type CompositeVjpRule,
  HEAD_RMSNORM_GRAD,
  RMSNORM_GRAD,
  SOFTMAX_CROSS_ENTROPY_GRAD,
} from './composite-rules';
export { AutogradError, UnsupportedError } from './errors';
export { type GradcheckOptions, type GradcheckResult, gradcheck } from './gradcheck';
export {
  broadcastTo,
  filled,
  ruleKey,
  unbroadcast,
  VJP_RULES,
  type VjpArgs,
  type VjpRule,
  vjpRule,
} from './rules';
export {
  gradOutputName,
  type LossScaleOptions,
  type SavedValue,
  trainableParams,
  type ValueAndGrad,
  type ValueAndGradOptions,
  valueAndGrad,
} from './value-and-grad';
export { version } from './version';
