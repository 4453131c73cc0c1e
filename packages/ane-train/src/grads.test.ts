/**
 * `computeGradients` / `gradsCommand` against PyTorch: the fixture of tools/refgen/llama_grads.py (a
 * 2-layer GQA Llama, hidden 128, 4 heads, 2 KV heads, intermediate 256, vocab 256, tied embeddings,
 * batch 2, seq 64; F16 weights; PyTorch in float64 from exactly those weights) through the
 * simulator (the ANE's fp16 numerics).
 *
 * The bound (fp16, as tests/autograd-parity's): for each parameter, max |ours − PyTorch| ≤ 1% of
 * max |PyTorch| (the error relative to the tensor's largest gradient: the device stores every
 * intermediate in fp16, a relative rounding of 2^-11 per value, chained through two blocks' forward
 * and backward; small entries of a tensor carry the absolute error of its large ones, so an
 * elementwise relative error is not bounded). The expected gradients are stored as F16, which moves
 * none by more than 0.05% of its tensor's largest (checked by the generator). The loss is within
 * 1e-3 relative. A model whose query heads read the wrong KV heads (h mod KV instead of HF's
 * h / (H / KV)) misses the bound through the same check.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareGradients, gradientTable as table } from '../test/grads-parity';
import { CheckpointError, ConfigError, DataError } from './errors';
import { computeGradients, gradsCommand } from './grads';
import {
  encodeSafetensors,
  readSafetensorsFile,
  type SafetensorsInput,
  tensorToFloat32,
} from './io/safetensors';
import { type LlamaConfig, parseLlamaConfig } from './model/config';
import { parameterSpecs } from './model/parameters';
import type { openSession } from './runtime/session';

const FIXTURE = join(__dirname, '..', 'fixtures', 'llama-gqa');
const files = {
  configPath: join(FIXTURE, 'config.json'),
  weightsPath: join(FIXTURE, 'weights.safetensors'),
  tokensPath: join(FIXTURE, 'tokens.bin'),
};
const BATCH = 2;
const SEQ = 64;
/** max |ours − PyTorch| / max |PyTorch| per tensor (see the header). */
const BOUND = 0.01;
const LOSS_RELATIVE = 1e-3;

const dir = mkdtempSync(join(tmpdir(), 'ane-train-grads-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let expected: Map<string, Float32Array>;
let expectedLoss: number;
let config: LlamaConfig;
let weights: Map<string, Float32Array>;
let tokens: Uint16Array;

beforeAll(async () => {
  const reference = await readSafetensorsFile(join(FIXTURE, 'expected.safetensors'));
  expected = new Map([...reference.tensors].map(([name, t]) => [name, tensorToFloat32(t)]));
  expectedLoss = Number(reference.metadata.loss);
  const { readFile } = await import('node:fs/promises');
  config = parseLlamaConfig(JSON.parse(await readFile(files.configPath, 'utf8')));
  const w = await readSafetensorsFile(files.weightsPath);
  weights = new Map([...w.tensors].map(([name, t]) => [name, tensorToFloat32(t)]));
  const { readTokenFile } = await import('./io/tokens');
  tokens = await readTokenFile(files.tokensPath);
});

describe('ane-train grads: parity with PyTorch (sim)', () => {
  it("matches PyTorch's loss and every parameter's gradient within the fp16 bound, written as F32 safetensors", async () => {
    const outPath = join(dir, 'g.safetensors');
    const result = await gradsCommand({ ...files, batch: BATCH, seq: SEQ, outPath, backend: 'sim' });
    expect(result.backend).toBe('sim');
    expect(Math.abs(result.loss - expectedLoss) / expectedLoss).toBeLessThan(LOSS_RELATIVE);

    const written = await readSafetensorsFile(outPath);
    expect([...written.tensors.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const tensor of written.tensors.values()) expect(tensor.dtype).toBe('F32');
    expect(written.tensors.get('model.layers.1.self_attn.k_proj.weight')!.shape).toEqual([64, 128]);
    expect(Number(written.metadata.loss)).toBe(result.loss);
    const ours = new Map([...written.tensors].map(([name, t]) => [name, tensorToFloat32(t)]));
    const { rows, withinBound } = compareGradients(ours, expected, BOUND);
    expect(withinBound, table(rows)).toBe(true);
  }, 120_000);

  it('a model whose query heads read the wrong KV heads (h mod KV) misses the bound', async () => {
    // The wrong model (query head h reads KV head h mod KV) is the right one (h reads h / r,
    // r = H / KV) with query head h moved to slot π(h) = (h mod KV)·r + ⌊h / KV⌋, since
    // ⌊π(h) / r⌋ = h mod KV: permute q_proj's rows and o_proj's columns by head, run, and move the
    // gradients back. Its gradients are the wrong model's gradients at the fixture's weights.
    const {
      num_attention_heads: heads,
      num_key_value_heads: kvHeads,
      head_dim: headDim,
      hidden_size: d,
    } = config;
    const r = heads / kvHeads;
    const slot = (h: number) => (h % kvHeads) * r + Math.floor(h / kvHeads);
    expect(Array.from({ length: heads }, (_, h) => slot(h))).toEqual([0, 2, 1, 3]);
    const q = (l: number) => `model.layers.${l}.self_attn.q_proj.weight`; // [H·HD, D]
    const o = (l: number) => `model.layers.${l}.self_attn.o_proj.weight`; // [D, H·HD]
    /** Moves head h's rows of a [H·HD, D] matrix to slot to(h). */
    const moveRows = (m: Float32Array, to: (h: number) => number) => {
      const out = new Float32Array(m.length);
      for (let h = 0; h < heads; h++)
        out.set(m.subarray(h * headDim * d, (h + 1) * headDim * d), to(h) * headDim * d);
      return out;
    };
    /** Moves head h's columns of a [D, H·HD] matrix to slot to(h). */
    const moveColumns = (m: Float32Array, to: (h: number) => number) => {
      const out = new Float32Array(m.length);
      const width = heads * headDim;
      for (let row = 0; row < d; row++)
        for (let h = 0; h < heads; h++)
          for (let j = 0; j < headDim; j++)
            out[row * width + to(h) * headDim + j] = m[row * width + h * headDim + j]!;
      return out;
    };
    /** The gradients of the model whose query head h sits in slot to(h), moved back to head order. */
    const gradientsWithHeadsAt = async (to: (h: number) => number) => {
      const from = (s: number) => Array.from({ length: heads }, (_, h) => h).find((h) => to(h) === s)!;
      const permuted = new Map(weights);
      for (let l = 0; l < config.num_hidden_layers; l++) {
        permuted.set(q(l), moveRows(weights.get(q(l))!, to));
        permuted.set(o(l), moveColumns(weights.get(o(l))!, to));
      }
      const result = await computeGradients({
        config,
        weights: permuted,
        tokens,
        batch: BATCH,
        seq: SEQ,
        backend: 'sim',
      });
      const grads = new Map(result.grads);
      for (let l = 0; l < config.num_hidden_layers; l++) {
        grads.set(q(l), moveRows(grads.get(q(l))!, from));
        grads.set(o(l), moveColumns(grads.get(o(l))!, from));
      }
      return grads;
    };
    const wrong = compareGradients(await gradientsWithHeadsAt(slot), expected, BOUND);
    expect(wrong.withinBound, table(wrong.rows)).toBe(false);
    // The control: swapping heads 0 and 1, which read the same KV head under HF's mapping, changes
    // nothing, so the moves are sound and the miss above is the mapping's.
    const swapWithinGroup = (h: number) => (h === 0 ? 1 : h === 1 ? 0 : h);
    const control = compareGradients(await gradientsWithHeadsAt(swapWithinGroup), expected, BOUND);
    expect(control.withinBound, table(control.rows)).toBe(true);
  }, 120_000);
});

describe('gradsCommand checks everything before running', () => {
  const neverRun: typeof openSession = async () => {
    throw new Error('the device session must not be opened for bad input');
  };
  const run = (overrides: Partial<Parameters<typeof gradsCommand>[0]>) =>
    gradsCommand({
      ...files,
      batch: BATCH,
      seq: SEQ,
      outPath: join(dir, 'never.safetensors'),
      backend: 'sim',
      openSession: neverRun,
      ...overrides,
    });
  const weightsFile = (name: string, change: (t: Map<string, SafetensorsInput>) => void): string => {
    const tensors = new Map<string, SafetensorsInput>(
      parameterSpecs(config).map((p) => [
        p.name,
        { dtype: 'F32', shape: [...p.shape], values: weights.get(p.name)! },
      ]),
    );
    change(tensors);
    const path = join(dir, name);
    writeFileSync(path, encodeSafetensors(tensors));
    return path;
  };

  it('a missing parameter, an unknown tensor (a typo), lm_head in a tied model, a wrong shape', async () => {
    const missing = weightsFile('missing.safetensors', (t) => t.delete('model.layers.1.mlp.up_proj.weight'));
    await expect(run({ weightsPath: missing })).rejects.toMatchObject({
      name: 'CheckpointError',
      details: { file: missing, tensor: 'model.layers.1.mlp.up_proj.weight' },
    });
    const typo = weightsFile('typo.safetensors', (t) => {
      t.set('model.layers.0.mlp.gate_prj.weight', t.get('model.layers.0.mlp.gate_proj.weight')!);
    });
    await expect(run({ weightsPath: typo })).rejects.toThrow(
      /tensor\(s\) the model does not have: 'model.layers.0.mlp.gate_prj.weight'/,
    );
    const tied = weightsFile('tied.safetensors', (t) => {
      t.set('lm_head.weight', t.get('model.embed_tokens.weight')!);
    });
    await expect(run({ weightsPath: tied })).rejects.toThrow(
      /ties lm_head.weight to model.embed_tokens.weight/,
    );
    const shape = weightsFile('shape.safetensors', (t) => {
      t.set('model.norm.weight', {
        dtype: 'F32',
        shape: [1, 128],
        values: weights.get('model.norm.weight')!,
      });
    });
    await expect(run({ weightsPath: shape })).rejects.toThrow(
      /'model.norm.weight' has shape \[1, 128\], the config needs \[128\]/,
    );
    // an untied config needs lm_head
    const untied = join(dir, 'untied.json');
    writeFileSync(
      untied,
      JSON.stringify({ ...JSON.parse(JSON.stringify(config)), tie_word_embeddings: false }),
    );
    await expect(run({ configPath: untied })).rejects.toThrow(
      /missing: 'lm_head.weight'.*tie_word_embeddings false/,
    );
  });

  it('tokens: a length other than B × (S + 1), an id beyond the vocabulary', async () => {
    await expect(run({ batch: 3 })).rejects.toThrow(DataError);
    await expect(run({ batch: 1 })).rejects.toThrow(
      /holds 130 token ids; batch 1 × \(seq 64 \+ 1\) needs exactly 65 \(it fits batch 2\)/,
    );
    const bad = Uint16Array.from(tokens);
    bad[70] = 300;
    const tokensPath = join(dir, 'bad-tokens.bin');
    writeFileSync(tokensPath, new Uint8Array(bad.buffer));
    await expect(run({ tokensPath })).rejects.toMatchObject({
      name: 'DataError',
      details: { file: tokensPath, offset: 140 },
    });
  });

  it('configs: unreadable, not JSON, not a Llama config', async () => {
    await expect(run({ configPath: join(dir, 'none.json') })).rejects.toThrow(ConfigError);
    const notJson = join(dir, 'bad.json');
    writeFileSync(notJson, '{ hidden_size: 1');
    await expect(run({ configPath: notJson })).rejects.toThrow(/is not valid JSON/);
    const noHeads = join(dir, 'noheads.json');
    writeFileSync(noHeads, JSON.stringify({ hidden_size: 128 }));
    await expect(run({ configPath: noHeads })).rejects.toMatchObject({ name: 'ConfigError', file: noHeads });
    await expect(run({ weightsPath: dir })).rejects.toThrow(CheckpointError);
  });

  it('a config that is a FIFO or a directory is refused without reading it (no hang)', async () => {
    const fifo = join(dir, 'config.fifo');
    execFileSync('mkfifo', [fifo]);
    await expect(run({ configPath: fifo })).rejects.toMatchObject({
      name: 'ConfigError',
      file: fifo,
      message: expect.stringMatching(/FIFO/),
    });
    await expect(run({ configPath: dir })).rejects.toMatchObject({
      name: 'ConfigError',
      message: expect.stringMatching(/directory/),
    });
  }, 5000);

  it('an output path in a missing directory, or that is a directory', async () => {
    await expect(run({ outPath: join(dir, 'no-such-dir', 'g.safetensors') })).rejects.toThrow(
      /cannot write the gradients to .*does not exist; create it first/,
    );
    await expect(run({ outPath: dir })).rejects.toMatchObject({
      name: 'CheckpointError',
      details: { file: dir },
    });
  });

  it('an output path that is one of the inputs (a typo would overwrite the weights with gradients)', async () => {
    const weightsCopy = join(dir, 'weights-copy.safetensors');
    copyFileSync(files.weightsPath, weightsCopy);
    const before = readFileSync(weightsCopy);
    // the same file under another spelling of its path
    const sameFile = `${dir}/./sub/../weights-copy.safetensors`;
    mkdirSync(join(dir, 'sub'), { recursive: true });
    await expect(run({ weightsPath: weightsCopy, outPath: sameFile })).rejects.toMatchObject({
      name: 'CheckpointError',
      message: expect.stringMatching(/is the weights file/),
    });
    await expect(run({ outPath: files.tokensPath })).rejects.toThrow(/is the tokens file/);
    await expect(run({ outPath: files.configPath })).rejects.toThrow(/is the config file/);
    expect(readFileSync(weightsCopy).equals(before)).toBe(true);
  });
});

describe('computeGradients and the loss scale', () => {
  it('divides the loss scale out, and on an overflow runs again at a 32× smaller scale', async () => {
    // A stand-in session: every gradient is (index + 1) / 8 times the loss scale, infinite when the
    // scale exceeds 64 (an fp16 overflow on the device).
    const scales: number[] = [];
    const fake: typeof openSession = async (spec) => ({
      where: 'in-process',
      backend: 'sim',
      programs: 0,
      async writeWeights() {},
      async step(ids, lossScale) {
        scales.push(lossScale);
        expect(ids).toBeInstanceOf(Int32Array);
        const grads = new Map(
          parameterSpecs(spec.config).map((p) => {
            const g = new Float32Array(p.shape.reduce((a, b) => a * b, 1));
            for (let i = 0; i < g.length; i++)
              g[i] = lossScale > 64 ? Number.POSITIVE_INFINITY : (((i % 5) + 1) / 8) * lossScale;
            return [p.name, g];
          }),
        );
        return { loss: 2.5, grads, profile: { deviceMs: 0, hostMs: 0, stagingMs: 0, idleMs: 0, totalMs: 0 } };
      },
      async dispose() {},
    });
    const result = await computeGradients({
      config,
      weights,
      tokens,
      batch: BATCH,
      seq: SEQ,
      openSession: fake,
    });
    expect(scales).toEqual([1024, 32]);
    expect(result.lossScale).toBe(32);
    expect(result.loss).toBe(2.5);
    expect([...result.grads.get('model.norm.weight')!.subarray(0, 6)]).toEqual([
      0.125, 0.25, 0.375, 0.5, 0.625, 0.125,
    ]);
    expect([...result.grads.keys()]).toEqual(parameterSpecs(config).map((p) => p.name));
  });
});
