export { type Bounds, computeBounds } from './check/bounds';
export {
  type ConstraintViolation,
  checkKernelRules,
  IR_CHECKS,
  IR_RULE_ENFORCEMENT,
  type IrCheck,
  type IrCheckContext,
  type IrFinding,
} from './check/ir-checks';
export * from './composites';
export { hashProgram } from './emit/hash';
export { DEFAULT_BUILD_INFO, type Dialect, IOS16_BUILD_INFO } from './emit/mil-builder';
export { type ConstantData, constantNumbers, type TensorValues } from './graph/data';
export { DTYPES, type DType, dtypeByteWidth, isFloatDType, shapeSize } from './graph/dtype';
export { ConstraintError, IrError, ShapeError } from './graph/errors';
export { type EvaluateOptions, evaluate, type Feeds } from './graph/evaluate';
export {
  type ConstantOptions,
  Graph,
  type GraphOutput,
  type InputOptions,
  type OpOptions,
  type ParamOptions,
} from './graph/graph';
export {
  BINARY_FNS,
  type BinaryFn,
  COMPARE_FNS,
  type CompareFn,
  type CompositeTag,
  type Op,
  type OpKind,
  opLabel,
  REDUCE_FNS,
  type ReduceFn,
  Tensor,
  UNARY_FNS,
  type UnaryFn,
} from './graph/tensor';
export type { IoMode, KernelPort, PackedSegment } from './lower/io';
export {
  type ConstraintWarning,
  checkKernel,
  type KernelCheckResult,
  type KernelDefinition,
  type LoweredKernel,
  type LowerOptions,
  lowerGraph,
  lowerKernel,
} from './lower/kernel';
export { physicalShape } from './lower/layout';
export { type KernelGraph, type RewriteRule, rewriteGraph } from './lower/rewrite';
export { LOWERING_RULES } from './lower/rules';
export { packInput, unpackOutput } from './lower/staging';
export * from './ops/primitives';
export {
  type ExecutionTarget,
  type HostOp,
  type KernelInstance,
  type PartitionOptions,
  type Placement,
  type Plan,
  type PlannedProgram,
  type PlanOutput,
  type PlanStep,
  partition,
  WEIGHT_GRAD_SUM_KIND,
} from './partition/partition';
export { formatPlan } from './partition/report';
export { version } from './version';
