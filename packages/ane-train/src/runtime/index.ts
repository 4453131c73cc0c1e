export {
  checkSessionSpec,
  type DeviceSession,
  openSession,
  type SessionSpec,
  type StepProfile,
  type StepResult,
} from './session';
