export type { ChipFamily, Program, TensorSpec } from 'ane-ir/mil';
export {
  type BenchProgram,
  type LayerConfig,
  STORIES15M_LAYER,
  storiesLayerProgram,
} from './ane/bench';
export { type Capabilities, capabilities, describeCapabilities } from './capabilities';
export {
  CaseFormatError,
  type ConformanceCase,
  type ExpectedRefusal,
  findCaseDirs,
  loadCase,
} from './conformance/case';
export { compareOutput, type OutputComparison, type WorstElement } from './conformance/compare';
export { type CaseOutcome, type CaseResult, runConformance } from './conformance/run';
export { decodeDeviceBytes, type TensorBuffer, type TensorData } from './device/buffers';
export {
  type BackendName,
  DEFAULT_COMPILE_BUDGET,
  Device,
  type OpenDeviceOptions,
  openDevice,
} from './device/device';
export type { Kernel, KernelInputs, RunOptions } from './device/kernel';
export * from './errors';
export {
  type BoundHostOp,
  bindHostOp,
  type DerivedValues,
  HOST_OP_KERNELS,
  type HostArray,
  type HostOpBinder,
  type HostValues,
} from './executor/host-ops';
export {
  type LoadOptions,
  PlanExecutable,
  type PlanFeed,
  type PlanFeeds,
  type PlanOutputs,
  type PlanRunOptions,
  type PlanSource,
} from './executor/plan-executable';
export { type BackgroundStaging, formatProfile, type RunProfile, type StepTiming } from './executor/profile';
export * from './kernels';
export {
  loadNativeAddon,
  NATIVE_ABI_VERSION,
  type NativeLoadOptions,
  type NativeLoadResult,
  type SimdLevel,
} from './native/loader';
export { compileSimProgram } from './sim/compile';
export {
  type OpTime,
  SIM_MEMORY_LIMIT_BYTES,
  type SimCompileOptions,
  type SimExecutable,
} from './sim/executable';
export {
  SimOpsMismatchError,
  type SimOpsMode,
  setSimOpsMode,
  simOpsMode,
} from './sim/native-ops';
export { version } from './version';
