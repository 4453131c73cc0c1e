/** Messages between the simulator's device thread and the JS thread (./device-thread.ts). */
import type { ChipFamily, Program } from 'ane-ir/mil';
import type { SimOpsMode } from './native-ops';

export type WorkerRequest =
  | { type: 'compile'; handle: number; program: Program; chip: ChipFamily }
  | { type: 'release'; handle: number }
  | {
      type: 'run';
      id: number;
      handle: number;
      inputs: Uint8Array[];
      outputs: Uint8Array[];
      /** The JS thread's simulator op mode (setSimOpsMode applies to the device thread too). */
      mode: SimOpsMode;
    };

export interface WorkerReply {
  id: number;
  error?: { name: string; message: string };
}
