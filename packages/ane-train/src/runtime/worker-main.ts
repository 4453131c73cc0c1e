/**
 * The device worker process (forked by worker-session.ts; shipped as dist/worker-main.{js,cjs}).
 * It opens one device, with the compile budget of a fresh process, on its first `open` request and
 * runs the sessions the parent opens on it, one request at a time, answering each with its result
 * or its error. It exits when the parent closes the channel (dispose, or the parent's own exit).
 */
import { type Device, openDevice } from 'ane-bridge';
import { type OpenResult, serializeError, type WorkerMessage, type WorkerRequest } from './protocol';
import { checkSessionSpec, InProcessSession, sessionTrainingGraph } from './session';

function send(message: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    // A parent that has gone away cannot be answered: the 'disconnect' handler ends the process.
    if (!process.connected) resolve();
    else process.send!(message, undefined, undefined, () => resolve());
  });
}

let device: Device | undefined;
const sessions = new Map<number, InProcessSession>();

async function handle(request: WorkerRequest): Promise<unknown> {
  switch (request.type) {
    case 'open': {
      const { spec } = request;
      checkSessionSpec(spec);
      device ??= openDevice({
        backend: spec.backend,
        ...(spec.chip !== undefined ? { chip: spec.chip } : {}),
        ...(spec.compileBudget !== undefined ? { compileBudget: spec.compileBudget } : {}),
      });
      const session = new InProcessSession(device, sessionTrainingGraph(spec, device.chip), spec.batch, {
        ownsDevice: false,
      });
      sessions.set(request.session, session);
      const { used, limit } = device.compileBudget;
      const result: OpenResult = {
        programs: session.programs,
        backend: device.backend,
        chip: device.chip,
        budget: { used, limit },
      };
      return result;
    }
    case 'writeWeights':
      await sessionOf(request.session).writeWeights(request.weights);
      return null;
    case 'step':
      // Views, not copies: the response is serialized (its arrays' bytes copied) when it is sent,
      // before this worker takes the next request.
      return sessionOf(request.session).step(request.tokens, request.lossScale, { grads: 'view' });
    case 'dispose': {
      const session = sessions.get(request.session);
      sessions.delete(request.session);
      await session?.dispose();
      return null;
    }
  }
}

function sessionOf(id: number): InProcessSession {
  const session = sessions.get(id);
  if (session === undefined)
    throw new Error(`the worker has no open session ${id} (disposed, or never opened)`);
  return session;
}

if (typeof process.send !== 'function') {
  process.stderr.write(
    'ane-train worker-main is the device worker process: ane-train forks it (it needs an IPC channel) and it is not meant to be run by hand\n',
  );
  process.exit(2);
}

// One request at a time, in arrival order (the parent awaits each anyway).
let queue: Promise<void> = Promise.resolve();
process.on('message', (request: WorkerRequest) => {
  queue = queue.then(async () => {
    try {
      const result = await handle(request);
      await send({ type: 'response', id: request.id, ok: true, result });
    } catch (error) {
      await send({ type: 'response', id: request.id, ok: false, error: serializeError(error) });
    }
  });
});
process.on('disconnect', () => {
  for (const session of sessions.values()) void session.dispose();
  device?.dispose();
  process.exit(0);
});
void send({ type: 'ready', pid: process.pid });
