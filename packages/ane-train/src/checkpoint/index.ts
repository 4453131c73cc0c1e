export type { EvaluateOptions, TrainerCheckpointView, TrainerState } from '../trainer';
export {
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  type Checkpoint,
  type LoadCheckpointOptions,
  loadCheckpoint,
  restoreTrainer,
  saveCheckpoint,
  saveTrainerCheckpoint,
} from './checkpoint';
