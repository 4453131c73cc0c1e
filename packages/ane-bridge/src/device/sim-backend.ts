import type { Program } from 'ane-ir/mil';
import { compileSimProgram } from '../sim';
import { isShared, simDeviceThread } from '../sim/device-thread';
import type { BackendImplementation, ChipFamily } from './device';
import type { CompiledProgram } from './kernel';

/**
 * The simulator as a device backend: parses, validates, checks the ANE rules and plans once.
 * `runSync` executes on the calling thread; `run` on the simulator's device thread (when built),
 * so the JS thread stays free while a kernel runs, as with the Neural Engine.
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
      runAsync: (inputs, outputs) => {
        // Buffers outside shared memory (never a kernel's own) run here, after a turn of the loop.
        if (![...inputs, ...outputs].every(isShared)) {
          return new Promise<void>((resolve) => setImmediate(resolve)).then(() =>
            executable.run(inputs, outputs),
          );
        }
        return thread.run(handle, inputs, outputs, () => executable.run(inputs, outputs));
      },
      dispose: () => thread.release(handle),
    };
  },
};
