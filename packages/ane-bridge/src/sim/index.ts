/**
 * The ANE simulator: executes MIL programs on the CPU with the Neural Engine's fp16 numerics and
 * the rule table's hardware behaviours.
 */
export type { BehaviourSettings, SimulatedBehaviour } from './behaviours';
export { behaviourSettingsFor, SIMULATED_BEHAVIOURS } from './behaviours';
export type { OpTime, SimCompileOptions, SimExecutable } from './executable';
export { compileSimProgram } from './executable';
export { sgemm } from './gemm';
export type { SimOpsMode } from './native-ops';
export { SimOpsMismatchError, setSimOpsMode, simOpsMode } from './native-ops';
