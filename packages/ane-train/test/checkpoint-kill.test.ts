/**
 * `kill -9` during a checkpoint write: a child process saves checkpoints to one path in a loop (a
 * model of 4M parameters with its optimizer state: ~50 MB a file, so most of its time is spent
 * writing), and is killed with SIGKILL at random moments. Each time, the checkpoint at the path must
 * still load and verify, and be one whole generation the child wrote (never a mix, never partial);
 * a temporary file the kill left behind is ignored by the load and removed by the next save.
 *
 * The child runs checkpoint/checkpoint.ts bundled by esbuild (the workspace packages stay external,
 * resolved through NODE_PATH), so no build of ane-train is needed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, saveCheckpoint } from '../src/checkpoint';
import type { LlamaConfig } from '../src/model/config';

const CONFIG: LlamaConfig = {
  model_type: 'llama',
  hidden_size: 256,
  intermediate_size: 688,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  num_key_value_heads: 4,
  head_dim: 64,
  vocab_size: 4096,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true,
  max_position_embeddings: 256,
};

/** The child: generation g has every weight and optimizer value equal to g, step g, metadata generation g. */
const CHILD = `
import { saveCheckpoint } from './checkpoint';
import { parameterSpecs } from '../model/parameters';
const [path, configJson] = process.argv.slice(2);
const config = JSON.parse(configJson);
const specs = parameterSpecs(config);
const weights = new Map(specs.map((s) => [s.name, new Float32Array(s.shape.reduce((a, b) => a * b, 1))]));
const tensors = specs.map((s) => ({ name: s.name, length: s.shape.reduce((a, b) => a * b, 1), shape: [...s.shape], step: 0 }));
const buffers = [];
let offset = 0;
for (const field of ['m', 'v']) for (const t of tensors) { buffers.push({ tensor: t.name, field, offset, length: t.length }); offset += t.length; }
const data = new Float32Array(offset);
void (async () => {
for (let g = 1; ; g++) {
  for (const values of weights.values()) values.fill(g);
  data.fill(g);
  for (const t of tensors) t.step = g;
  const meta = { format: 'ane-optim/optimizer-state', version: 1, optimizer: 'AdamW', step: g, tensors, buffers, hyperParameters: [] };
  await saveCheckpoint(path, {
    config, weights, data: { generation: g }, metadata: { generation: String(g) },
    trainer: { step: g, seed: 1, optimizer: { meta, data }, lossScaler: null },
  });
  process.stdout.write('saved ' + g + '\\n');
}
})();
`;

let dir: string;
let childScript: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ane-train-kill-'));
  childScript = join(dir, 'child.cjs');
  await build({
    stdin: {
      contents: CHILD,
      resolveDir: join(import.meta.dirname, '..', 'src', 'checkpoint'),
      loader: 'ts',
    },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    packages: 'external',
    outfile: childScript,
    logLevel: 'silent',
  });
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Starts the child; resolves once it has saved `generations` checkpoints. */
function startChild(path: string): { child: ChildProcess; saved: (count: number) => Promise<void> } {
  const child = spawn(process.execPath, [childScript, path, JSON.stringify(CONFIG)], {
    cwd: join(import.meta.dirname, '..'),
    env: { ...process.env, NODE_PATH: join(import.meta.dirname, '..', 'node_modules') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let count = 0;
  let stderr = '';
  const waiting: Array<{ count: number; resolve: () => void }> = [];
  child.stdout!.on('data', (chunk: Buffer) => {
    count += chunk
      .toString()
      .split('\n')
      .filter((line) => line.startsWith('saved ')).length;
    for (const w of waiting.filter((w) => count >= w.count)) w.resolve();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<never>((_, reject) =>
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`the child exited (${code ?? signal}): ${stderr}`));
    }),
  );
  return {
    child,
    saved: (wanted) =>
      Promise.race([
        exited,
        new Promise<void>((resolve) => {
          if (count >= wanted) resolve();
          else waiting.push({ count: wanted, resolve });
        }),
      ]),
  };
}

async function killNow(child: ChildProcess): Promise<void> {
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await gone;
}

/** Loads the checkpoint at `path` and checks it is one whole generation; returns the generation. */
async function checkWhole(path: string): Promise<number> {
  const checkpoint = await loadCheckpoint(path, { config: CONFIG });
  const generation = Number(checkpoint.metadata?.generation);
  expect(generation).toBeGreaterThanOrEqual(1);
  expect(checkpoint.data).toEqual({ generation });
  expect(checkpoint.trainer!.step).toBe(generation);
  for (const [name, values] of checkpoint.weights) {
    expect(values[0], name).toBe(generation);
    expect(values[values.length - 1], name).toBe(generation);
  }
  const data = checkpoint.trainer!.optimizer.data;
  expect(data[0]).toBe(generation);
  expect(data[data.length - 1]).toBe(generation);
  return generation;
}

describe('kill -9 during a checkpoint write', () => {
  it('leaves the previous checkpoint loadable and whole, at random moments, several times', async () => {
    const path = join(dir, 'latest.safetensors');
    let leftovers = 0;
    const writeMs: number[] = [];
    for (let round = 0; round < 6; round++) {
      const { child, saved } = startChild(path);
      // One whole checkpoint of this child first (the first round has none from before), then a
      // kill at a random moment of the following writes.
      await saved(1);
      const started = performance.now();
      await saved(2);
      writeMs.push(performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 1.5 * Math.max(...writeMs)));
      await killNow(child);
      await checkWhole(path);
      leftovers += readdirSync(dir).filter((name) => name.startsWith('.latest.safetensors.')).length;
    }
    // The kills landed mid-write at least once (a temporary file was left): the test tested something.
    console.log(
      `checkpoint writes took ${writeMs.map((ms) => ms.toFixed(0)).join(', ')} ms; ${leftovers} kills left a temporary file`,
    );
    expect(leftovers).toBeGreaterThan(0);

    // The next save in the directory removes the dead writers' temporaries.
    const checkpoint = await loadCheckpoint(path);
    await saveCheckpoint(path, checkpoint);
    expect(readdirSync(dir).filter((name) => name.startsWith('.latest.safetensors.'))).toEqual([]);
    await checkWhole(path);
  }, 180_000);
});
