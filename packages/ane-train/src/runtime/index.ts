export {
  type CompileBudgetState,
  type CompilePlan,
  DeviceRuntime,
  type DeviceRuntimeOptions,
  type RuntimeEvent,
  type RuntimeStepResult,
} from './device-runtime';
export {
  checkSessionSpec,
  type DeviceSession,
  openSession,
  type SessionSpec,
  type StepOptions,
  type StepProfile,
  type StepResult,
} from './session';
export { openWorkerSession } from './worker-session';
