/**
 * `gradsCommand` against PyTorch on a Qwen3-style model: the qwen3-gqa fixture of
 * tools/refgen/llama_grads.py (model_type qwen3: per-head RMSNorm of queries and keys, gains
 * `self_attn.q_norm.weight` / `k_norm.weight` [head_dim], before RoPE; 2 layers, hidden 128, 4
 * heads, 2 KV heads, head_dim 48 set explicitly and ≠ hidden / heads = 32, intermediate 256, vocab
 * 256, tied, rope_theta 1e6, eps 1e-6; batch 2, seq 32; F16 weights, gains 1 + N(0, 0.1²);
 * PyTorch in float64 from exactly those weights) through the simulator (the ANE's fp16 numerics).
 *
 * The bound is grads.test.ts's: for each parameter, q_norm and k_norm included, max |ours −
 * PyTorch| ≤ 1% of max |PyTorch|; the loss within 1e-3 relative.
 *
 * The control shows the check can see a missing q/k norm: the same weights under a Llama config
 * (everything the same but the q/k norm) give PyTorch's loss of that model (the fixture's
 * `loss_without_qk_norm`, so the control model itself is sound) and miss both the Qwen3 loss and
 * the gradient bound on the parameters the two models share.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareGradients, gradientTable } from '../test/grads-parity';
import { computeGradients, gradsCommand } from './grads';
import { readSafetensorsFile, tensorToFloat32 } from './io/safetensors';
import { readTokenFile } from './io/tokens';
import { type LlamaConfig, parseLlamaConfig } from './model/config';
import { parameterSpecs } from './model/parameters';

const FIXTURE = join(__dirname, '..', 'fixtures', 'qwen3-gqa');
const files = {
  configPath: join(FIXTURE, 'config.json'),
  weightsPath: join(FIXTURE, 'weights.safetensors'),
  tokensPath: join(FIXTURE, 'tokens.bin'),
};
const BATCH = 2;
const SEQ = 32;
/** max |ours − PyTorch| / max |PyTorch| per tensor (grads.test.ts's fp16 bound). */
const BOUND = 0.01;
const LOSS_RELATIVE = 1e-3;
const QK_NORMS = [0, 1].flatMap((l) => [
  `model.layers.${l}.self_attn.q_norm.weight`,
  `model.layers.${l}.self_attn.k_norm.weight`,
]);

const dir = mkdtempSync(join(tmpdir(), 'ane-train-grads-qwen3-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let expected: Map<string, Float32Array>;
let expectedLoss: number;
let lossWithoutQkNorm: number;
let config: LlamaConfig;
let weights: Map<string, Float32Array>;
let tokens: Uint16Array;

beforeAll(async () => {
  const reference = await readSafetensorsFile(join(FIXTURE, 'expected.safetensors'));
  expected = new Map([...reference.tensors].map(([name, t]) => [name, tensorToFloat32(t)]));
  expectedLoss = Number(reference.metadata.loss);
  lossWithoutQkNorm = Number(reference.metadata.loss_without_qk_norm);
  config = parseLlamaConfig(JSON.parse(await readFile(files.configPath, 'utf8')));
  const w = await readSafetensorsFile(files.weightsPath);
  weights = new Map([...w.tensors].map(([name, t]) => [name, tensorToFloat32(t)]));
  tokens = await readTokenFile(files.tokensPath);
});

const relative = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describe('ane-train grads: parity with PyTorch on a Qwen3-style model (q/k norm, head_dim 48; sim)', () => {
  it('the fixture is the Qwen3 model the test is about', () => {
    expect(config).toMatchObject({
      model_type: 'qwen3',
      hidden_size: 128,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 48,
      rms_norm_eps: 1e-6,
      rope_theta: 1e6,
      tie_word_embeddings: true,
    });
    expect(config.head_dim).not.toBe(config.hidden_size / config.num_attention_heads);
    // Every parameter the model has, q/k norm gains included, has a PyTorch gradient, and no other.
    expect([...expected.keys()].sort()).toEqual(
      parameterSpecs(config)
        .map((p) => p.name)
        .sort(),
    );
    for (const name of QK_NORMS) expect(expected.get(name)!.length).toBe(48);
    // The gains are not all ones (a missing gain would not show otherwise).
    expect(weights.get(QK_NORMS[0]!)!.some((g) => Math.abs(g - 1) > 0.05)).toBe(true);
  });

  it("matches PyTorch's loss and every gradient, q_norm and k_norm included, within the fp16 bound", async () => {
    const outPath = join(dir, 'g.safetensors');
    const result = await gradsCommand({ ...files, batch: BATCH, seq: SEQ, outPath, backend: 'sim' });
    expect(result.backend).toBe('sim');
    expect(relative(result.loss, expectedLoss)).toBeLessThan(LOSS_RELATIVE);

    const written = await readSafetensorsFile(outPath);
    expect([...written.tensors.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const tensor of written.tensors.values()) expect(tensor.dtype).toBe('F32');
    expect(written.tensors.get('model.layers.0.self_attn.q_proj.weight')!.shape).toEqual([192, 128]);
    expect(written.tensors.get('model.layers.1.self_attn.o_proj.weight')!.shape).toEqual([128, 192]);
    expect(written.tensors.get('model.layers.1.self_attn.k_norm.weight')!.shape).toEqual([48]);
    const ours = new Map([...written.tensors].map(([name, t]) => [name, tensorToFloat32(t)]));
    const { rows, withinBound } = compareGradients(ours, expected, BOUND);
    expect(withinBound, gradientTable(rows)).toBe(true);
    // the q/k norm gains' rows are real comparisons (not absent), within the bound
    for (const name of QK_NORMS) {
      expect(rows.find((r) => r.tensor === name)!.normalized).toBeLessThanOrEqual(BOUND);
    }
  }, 120_000);

  it('control: the same weights without the q/k norm (a Llama config) miss the loss and the bound', async () => {
    const llama: LlamaConfig = { ...config, model_type: 'llama' };
    const shared = new Map([...weights].filter(([name]) => !QK_NORMS.includes(name)));
    const result = await computeGradients({
      config: llama,
      weights: shared,
      tokens,
      batch: BATCH,
      seq: SEQ,
      backend: 'sim',
    });
    // The control model is sound: it is PyTorch's model without the q/k norm.
    expect(relative(result.loss, lossWithoutQkNorm)).toBeLessThan(LOSS_RELATIVE);
    // And the checks tell it from Qwen3: the loss, and the gradients of the parameters both have.
    expect(relative(result.loss, expectedLoss)).toBeGreaterThan(LOSS_RELATIVE);
    const expectedShared = new Map([...expected].filter(([name]) => !QK_NORMS.includes(name)));
    expect([...result.grads.keys()].sort()).toEqual([...expectedShared.keys()].sort());
    const missing = compareGradients(result.grads, expectedShared, BOUND);
    expect(missing.withinBound, gradientTable(missing.rows)).toBe(false);
    // not by a hair: the attention projections are off by far more than the bound
    const wq = missing.rows.find((r) => r.tensor === 'model.layers.0.self_attn.q_proj.weight')!;
    expect(wq.normalized).toBeGreaterThan(10 * BOUND);
  }, 120_000);
});
