/**
 * The simulator's device thread (the Worker of ./device-thread.ts; built as dist/sim-worker.js):
 * compiles the programs it is sent and runs them on the shared I/O buffers, one run at a time.
 */
import { parentPort } from 'node:worker_threads';
import type { WorkerReply, WorkerRequest } from './device-thread-protocol';
import type { SimExecutable } from './executable';
import { compileSimProgram } from './executable';
import { setSimOpsMode, simOpsMode } from './native-ops';

const executables = new Map<number, SimExecutable | Error>();
const port = parentPort!;

port.on('message', (request: WorkerRequest) => {
  switch (request.type) {
    case 'compile':
      try {
        executables.set(request.handle, compileSimProgram(request.program, { chip: request.chip }));
      } catch (error) {
        executables.set(request.handle, error as Error);
      }
      return;
    case 'release':
      executables.delete(request.handle);
      return;
    case 'run': {
      const reply: WorkerReply = { id: request.id };
      try {
        if (simOpsMode() !== request.mode) setSimOpsMode(request.mode);
        const executable = executables.get(request.handle);
        if (executable === undefined) throw new Error(`program ${request.handle} was never compiled here`);
        if (executable instanceof Error) throw executable;
        executable.run(request.inputs, request.outputs);
      } catch (error) {
        const { name, message } = error as Error;
        reply.error = { name: typeof name === 'string' ? name : 'Error', message: String(message) };
      }
      port.postMessage(reply);
      return;
    }
  }
});
