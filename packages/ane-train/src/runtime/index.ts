export {
  type CompileBudgetState,
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
  type StepProfile,
  type StepResult,
} from './session';
export { openWorkerSession } from './worker-session';
