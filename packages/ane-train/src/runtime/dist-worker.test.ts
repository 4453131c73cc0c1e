/**
 * The built package (dist/, as published) finds and runs its own worker entry, from the ESM build
 * and from the CJS build: a DeviceRuntime forced to hand over runs its second bucket in a worker
 * forked from dist/worker-main.{js,cjs} without being told where it is. Needs the build
 * (`pnpm test` builds first).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildTrainingGraph } from '../model/training-graph';
import type { DeviceRuntime as DeviceRuntimeClass, RuntimeEvent } from './device-runtime';
import { TINY, tinyTokens, tinyWeights } from './runtime.test-helper';
import { resolveWorkerEntry, WORKER_ENTRY_ENV } from './worker-session';

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist');

beforeAll(() => {
  for (const file of ['index.js', 'index.cjs', 'worker-main.js', 'worker-main.cjs']) {
    if (!existsSync(join(dist, file))) {
      throw new Error(
        `${join(dist, file)} is missing: build the package first (pnpm --filter ane-train build)`,
      );
    }
  }
});

async function handOverWith(DeviceRuntime: typeof DeviceRuntimeClass): Promise<RuntimeEvent[]> {
  const events: RuntimeEvent[] = [];
  const budget = buildTrainingGraph(TINY, { seq: 8 }).plan.programs.length;
  const runtime = new DeviceRuntime({
    config: TINY,
    batch: 1,
    backend: 'sim',
    compileBudget: budget,
    onEvent: (e) => events.push(e),
  });
  try {
    runtime.setWeights(tinyWeights());
    await runtime.step(tinyTokens(1, 8), 8, 1024);
    const second = await runtime.step(tinyTokens(1, 12), 12, 1024);
    expect(second.where).toBe('worker');
    expect(Number.isFinite(second.loss)).toBe(true);
  } finally {
    await runtime.dispose();
  }
  return events;
}

describe('the built worker entry', () => {
  it('is found from source at dist/worker-main.js (a forked Node cannot run the TypeScript entry)', () => {
    const saved = process.env[WORKER_ENTRY_ENV];
    delete process.env[WORKER_ENTRY_ENV];
    try {
      expect(resolveWorkerEntry()).toBe(join(dist, 'worker-main.js'));
    } finally {
      if (saved !== undefined) process.env[WORKER_ENTRY_ENV] = saved;
    }
  });

  it('runs hand-overs from the ESM build', async () => {
    const { DeviceRuntime } = (await import(join(dist, 'index.js'))) as {
      DeviceRuntime: typeof DeviceRuntimeClass;
    };
    const events = await handOverWith(DeviceRuntime);
    expect(events.map((e) => e.type)).toEqual(['compile', 'hand-over', 'compile']);
  }, 30_000);

  it('runs hand-overs from the CJS build', async () => {
    const require = createRequire(import.meta.url);
    const { DeviceRuntime } = require(join(dist, 'index.cjs')) as {
      DeviceRuntime: typeof DeviceRuntimeClass;
    };
    const events = await handOverWith(DeviceRuntime);
    expect(events.map((e) => e.type)).toEqual(['compile', 'hand-over', 'compile']);
  }, 30_000);
});
