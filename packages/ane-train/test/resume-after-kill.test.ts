/**
 * Resume after a kill continues identically: a child process trains (simulator, the SMALL model, a
 * BatchSampler) and saves a checkpoint after every step; it is killed with SIGKILL at a random
 * moment; this process loads whatever checkpoint the kill left, restores a fresh Trainer and sampler
 * from it and trains on to step 24. The losses of the resumed steps and the final weights equal, bit
 * for bit, those of a run in this process that was never stopped.
 *
 * The child runs the sources bundled by esbuild (workspace packages external, through NODE_PATH).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdamW } from 'ane-optim';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, restoreTrainer } from '../src/checkpoint';
import { BatchSampler, type SamplerState } from '../src/data/sampler';
import { SMALL } from '../src/testing/small-model';
import { Trainer } from '../src/trainer';

/** The run both processes make: the same tokens, sampler, model, optimizer and loss scaling. */
const RUN = `
import { AdamW } from 'ane-optim';
import { BatchSampler } from '../data/sampler';
import { SMALL } from '../testing/small-model';
import { Trainer } from '../trainer';
import { saveTrainerCheckpoint } from './checkpoint';

export const tokens = Uint16Array.from({ length: 150 }, (_, i) => ([3, 1, 4, 1, 5, 9, 2, 6][i % 8] * (1 + (i >> 5))) % 32);
export const sampler = () => new BatchSampler(tokens, { batch: 2, seq: 8, seed: 3 });
export const trainer = () =>
  new Trainer({
    model: SMALL, backend: 'sim', seq: 8, batch: 2, seed: 5,
    optimizer: new AdamW({ learningRate: 1e-2, weightDecay: 0.1 }),
    lossScale: { initScale: 128, growthInterval: 2 },
  });

if (process.argv[2] !== undefined) {
  const path = process.argv[2];
  void (async () => {
    const data = sampler();
    const t = trainer();
    for (let step = 1; step <= 40; step++) {
      await t.fit(data, { steps: 1 });
      await saveTrainerCheckpoint(path, t, { data: data.state() });
      process.stdout.write('step ' + step + '\\n');
    }
    await t.dispose();
  })();
}
`;

const TOKENS = Uint16Array.from(
  { length: 150 },
  (_, i) => ([3, 1, 4, 1, 5, 9, 2, 6][i % 8]! * (1 + (i >> 5))) % 32,
);
const sampler = () => new BatchSampler(TOKENS, { batch: 2, seq: 8, seed: 3 });
const trainer = () =>
  new Trainer({
    model: SMALL,
    backend: 'sim',
    seq: 8,
    batch: 2,
    seed: 5,
    optimizer: new AdamW({ learningRate: 1e-2, weightDecay: 0.1 }),
    lossScale: { initScale: 128, growthInterval: 2 },
  });
const TOTAL = 24;

let dir: string;
let child: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ane-train-resume-'));
  child = join(dir, 'child.cjs');
  await build({
    stdin: { contents: RUN, resolveDir: join(import.meta.dirname, '..', 'src', 'checkpoint'), loader: 'ts' },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    packages: 'external',
    outfile: child,
    logLevel: 'silent',
  });
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const bits = (values: Float32Array) =>
  new Uint32Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));

/** Runs the child until it has saved `atLeast` checkpoints, then kills it after a random delay. */
async function trainAndKill(path: string, atLeast: number, maxDelayMs: number): Promise<void> {
  const process_ = spawn(process.execPath, [child, path], {
    env: { ...process.env, NODE_PATH: join(import.meta.dirname, '..', 'node_modules') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  process_.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  await new Promise<void>((resolve, reject) => {
    let steps = 0;
    process_.stdout!.on('data', (chunk: Buffer) => {
      steps += chunk
        .toString()
        .split('\n')
        .filter((line) => line.startsWith('step ')).length;
      if (steps >= atLeast) resolve();
    });
    process_.on('exit', (code) =>
      reject(new Error(`the child exited (${code}) before step ${atLeast}: ${stderr}`)),
    );
  });
  await new Promise((resolve) => setTimeout(resolve, Math.random() * maxDelayMs));
  const gone = new Promise((resolve) => process_.once('exit', resolve));
  process_.kill('SIGKILL');
  await gone;
}

describe('resume after kill -9', () => {
  it('a run killed at a random moment and resumed from its last checkpoint equals the run never stopped', async () => {
    const reference = trainer();
    const referenceLosses = (await reference.fit(sampler(), { steps: TOTAL })).history.loss;

    const path = join(dir, 'latest.safetensors');
    // Killed somewhere after step 2 (mid-step, mid-write or between): a few steps' time at most.
    await trainAndKill(path, 2, 300);
    const checkpoint = await loadCheckpoint(path, { config: SMALL });
    const k = checkpoint.trainer!.step;
    expect(k).toBeGreaterThanOrEqual(2);
    expect(k).toBeLessThan(TOTAL);
    console.log(`the child was killed after its checkpoint of step ${k}; resuming to step ${TOTAL}`);

    const resumed = trainer();
    restoreTrainer(resumed, checkpoint);
    const data = sampler();
    data.restore(checkpoint.data as SamplerState);
    const rest = (await resumed.fit(data, { steps: TOTAL - k })).history.loss;
    expect(rest).toEqual(referenceLosses.slice(k));
    for (const [name, values] of reference.weights)
      expect(bits(resumed.weights.get(name)!), name).toEqual(bits(values));
    expect(resumed.lossScaler!.scale).toBe(reference.lossScaler!.scale);
    expect(resumed.optimizer.step).toBe(reference.optimizer.step);
    await resumed.dispose();
    await reference.dispose();
  }, 180_000);
});
