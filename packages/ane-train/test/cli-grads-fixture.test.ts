/**
 * `ane-train grads` as a user runs it to check us against PyTorch: the built binary (dist/cli.js)
 * on the refgen fixture (fixtures/llama-gqa: a 2-layer GQA Llama, hidden 128, 4 heads, 2 KV heads,
 * vocab 256, batch 2, seq 64; tools/refgen/llama_grads.py, PyTorch float64). The loss it prints and
 * every gradient it writes must match PyTorch's within the fp16 bound of src/grads.test.ts (max
 * |ours − PyTorch| ≤ 1% of the tensor's largest PyTorch gradient; loss within 1e-3 relative).
 * Build first (`pnpm --filter ane-train build`).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readSafetensorsFile, tensorToFloat32 } from '../src/io/safetensors';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli.js');
const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'llama-gqa');
const BOUND = 0.01;
const LOSS_RELATIVE = 1e-3;

let dir: string;
beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`pnpm --filter ane-train build\` first`);
  dir = mkdtempSync(join(tmpdir(), 'ane-train-cli-grads-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { cwd: dir, env: { ...process.env, NO_COLOR: '1' } },
      (error, stdout, stderr) => {
        resolve({
          code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1,
          stdout,
          stderr,
        });
      },
    );
  });
}

it("`ane-train grads` on the PyTorch fixture prints PyTorch's loss and writes its gradients (sim, fp16 bound)", async () => {
  // Relative paths, resolved against the working directory like a user's.
  const out = 'grads.safetensors';
  const run = await cli([
    'grads',
    '--config',
    join(FIXTURE, 'config.json'),
    '--weights',
    join(FIXTURE, 'weights.safetensors'),
    '--tokens',
    join(FIXTURE, 'tokens.bin'),
    '--batch',
    '2',
    '--seq',
    '64',
    '--out',
    out,
    '--backend',
    'sim',
  ]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);

  const reference = await readSafetensorsFile(join(FIXTURE, 'expected.safetensors'));
  const expectedLoss = Number(reference.metadata.loss);
  const printed = Number(/^loss (\S+)$/m.exec(run.stdout)?.[1]);
  expect(Math.abs(printed - expectedLoss) / expectedLoss).toBeLessThan(LOSS_RELATIVE);
  expect(run.stdout).toContain(join(dir, out));

  const written = await readSafetensorsFile(join(dir, out));
  expect([...written.tensors.keys()].sort()).toEqual([...reference.tensors.keys()].sort());
  const misses: string[] = [];
  for (const [name, tensor] of reference.tensors) {
    const torch = tensorToFloat32(tensor);
    const mine = written.tensors.get(name)!;
    expect({ name, dtype: mine.dtype, shape: mine.shape }).toEqual({
      name,
      dtype: 'F32',
      shape: tensor.shape,
    });
    const ours = tensorToFloat32(mine);
    let largest = 0;
    let error = 0;
    for (let i = 0; i < torch.length; i++) {
      largest = Math.max(largest, Math.abs(torch[i]!));
      const e = Math.abs(ours[i]! - torch[i]!);
      if (!(e <= error)) error = e; // a NaN sticks
    }
    if (!(error <= BOUND * largest)) misses.push(`${name}: max error ${error} vs largest ${largest}`);
  }
  expect(misses).toEqual([]);
}, 120_000);
