import type { Program } from 'ane-ir/mil';
import { compileSimProgram } from '../sim';
import { simDeviceThread } from '../sim/device-thread';
import type { BackendImplementation, ChipFamily } from './device';
import type { CompiledProgram } from './kernel';

/**
 * The simulator as a device backend: parses, validates, checks the ANE rules and plans once.
 * Kernels run on the JS thread, unless ANE_BRIDGE_SIM_THREAD=1 gives them the simulator's device
 * thread (src/sim/device-thread.ts) for `run`; `runSync` always executes on the calling thread.
 */
export const simBackend: BackendImplementation = {
  compile: (program: Program, chip: ChipFamily): CompiledProgram => {
    const executable = compileSimProgram(program, { chip });
    const thread = simDeviceThread();
    if (thread === null) return executable;
    const handle = thread.register(program, chip);
    return {
      warnings: executable.warnings,
      run: (inputs, outputs) => executable.run(inputs, outputs),
      runAsync: (inputs, outputs) =>
        thread.run(handle, inputs, outputs, () => executable.run(inputs, outputs)),
      dispose: () => thread.release(handle),
    };
  },
};
