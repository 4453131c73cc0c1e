/**
 * The llama2.c import and the Hugging Face export checked against PyTorch (fixtures/convert, made by
 * tools/refgen/llama2c_fixture.py): a tiny llama2.c model (2 layers, dim 32, 4 heads over 2 KV
 * heads, vocab 32, own classifier) in llama2.c's legacy .bin, and PyTorch's float64 loss of a fixed
 * batch computed as llama2.c's model.py computes it, with interleaved RoPE.
 *
 * 1. readLlama2cCheckpoint → computeGradients (the device step, sim backend, fp16) gives PyTorch's
 *    loss within 1e-3 relative; the fixture's controls (no RoPE permutation, layers swapped) are
 *    ≥ 2% away, so a wrong import fails.
 * 2. Opt-in, when /usr/bin/python3 (or $REFGEN_PYTHON) has torch (Debian: apt-get install
 *    python3-torch python3-numpy): exportHuggingFace's directory is read by
 *    `llama2c_fixture.py check-hf`, a hand-written safetensors reader and Hugging Face's Llama forward
 *    (rotate-half RoPE, tools/refgen/llama_grads.py), which must give the same loss: the export is
 *    what Hugging Face's LlamaForCausalLM computes with. Likewise a tied Llama (no lm_head.weight in
 *    the file) and a Qwen3 model (q/k norms): HF's forward in PyTorch on the export gives our
 *    device step's loss within 1e-3. Run it with
 *    `cd packages/ane-train && npx vitest run test/convert-pytorch.test.ts`.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { exportHuggingFace } from '../src/convert/huggingface';
import { readLlama2cCheckpoint } from '../src/convert/llama2c';
import { rotateHalfToInterleaved } from '../src/convert/rope-layout';
import { computeGradients } from '../src/grads';
import type { LlamaConfig } from '../src/model/config';
import { initParameters } from '../src/model/parameters';
import { SMALL } from '../src/testing/small-model';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'convert');
const SCRIPT = join(import.meta.dirname, '..', '..', '..', 'tools', 'refgen', 'llama2c_fixture.py');
const LOSS_RELATIVE = 1e-3;

interface Expected {
  batch: number;
  seq: number;
  loss: number;
  loss_rope_not_permuted: number;
  loss_layers_swapped: number;
}
const expected = JSON.parse(readFileSync(join(FIXTURE, 'expected.json'), 'utf8')) as Expected;
const tokensBytes = readFileSync(join(FIXTURE, 'tokens.bin'));
const tokens = new Uint16Array(tokensBytes.buffer, tokensBytes.byteOffset, tokensBytes.byteLength / 2);

const dir = mkdtempSync(join(tmpdir(), 'ane-train-convert-pytorch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const relative = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

it("llama2.c import → the device step (sim) gives PyTorch's loss of llama2.c's interleaved-RoPE model", async () => {
  const model = await readLlama2cCheckpoint(join(FIXTURE, 'stories-tiny.bin'));
  expect(model.config).toMatchObject({
    hidden_size: 32,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    tie_word_embeddings: false,
  });
  // The fixture's controls are far from the loss: a wrong import cannot pass the bound.
  expect(relative(expected.loss_rope_not_permuted, expected.loss)).toBeGreaterThan(20 * LOSS_RELATIVE);
  expect(relative(expected.loss_layers_swapped, expected.loss)).toBeGreaterThan(20 * LOSS_RELATIVE);

  const run = (weights: ReadonlyMap<string, Float32Array>) =>
    computeGradients({
      config: model.config,
      weights,
      tokens,
      batch: expected.batch,
      seq: expected.seq,
      backend: 'sim',
    });
  const ours = await run(model.weights);
  expect(relative(ours.loss, expected.loss)).toBeLessThan(LOSS_RELATIVE);

  // Our forward on the weights NOT permuted reproduces PyTorch's control: the permutation is what
  // makes the difference, in both implementations.
  const unpermuted = new Map(model.weights);
  for (let l = 0; l < model.config.num_hidden_layers; l++) {
    for (const [name, heads] of [
      ['q_proj', 4],
      ['k_proj', 2],
    ] as const) {
      const key = `model.layers.${l}.self_attn.${name}.weight`;
      unpermuted.set(key, rotateHalfToInterleaved(model.weights.get(key)!, heads, 8, 32));
    }
  }
  const control = await run(unpermuted);
  expect(relative(control.loss, expected.loss_rope_not_permuted)).toBeLessThan(LOSS_RELATIVE);
});

const PYTHON = process.env.REFGEN_PYTHON ?? '/usr/bin/python3';
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' }).status === 0;

function checkHf(
  exported: string,
): Promise<{ loss: number; tensors: string[]; config: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    execFile(PYTHON, [SCRIPT, 'check-hf', exported], { encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`${SCRIPT} check-hf failed: ${stderr || error.message}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

it.skipIf(!hasTorch)(
  `the Hugging Face export (F32 and F16) gives PyTorch's loss under HF's Llama forward${hasTorch ? '' : ` (skipped: ${PYTHON} has no torch; apt-get install python3-torch python3-numpy)`}`,
  async () => {
    const model = await readLlama2cCheckpoint(join(FIXTURE, 'stories-tiny.bin'));
    for (const dtype of ['F32', 'F16'] as const) {
      const out = join(dir, dtype);
      await exportHuggingFace(out, model, { dtype });
      const result = await checkHf(out);
      // The weights are fp16-representable: both exports hold them exactly; float64 on both sides.
      expect(relative(result.loss, expected.loss)).toBeLessThan(1e-9);
      expect(result.tensors).toContain('lm_head.weight');
      expect(result.config).toMatchObject({
        architectures: ['LlamaForCausalLM'],
        tie_word_embeddings: false,
      });
    }
  },
  120_000,
);

it.skipIf(!hasTorch)(
  `a tied Llama and a Qwen3 export give our device step's loss under HF's forward in PyTorch${hasTorch ? '' : ` (skipped: ${PYTHON} has no torch)`}`,
  async () => {
    const tied: LlamaConfig = { ...SMALL };
    const qwen3: LlamaConfig = {
      ...SMALL,
      model_type: 'qwen3',
      head_dim: 16,
      rope_theta: 1e6,
      rms_norm_eps: 1e-6,
    };
    for (const config of [tied, qwen3]) {
      const weights = initParameters(config, { seed: 11, std: 0.2 });
      const out = join(dir, `${config.model_type}-tied`);
      await exportHuggingFace(out, { config, weights });
      const result = await checkHf(out);
      expect(result.tensors).not.toContain('lm_head.weight');
      const ours = await computeGradients({
        config,
        weights,
        tokens,
        batch: expected.batch,
        seq: expected.seq,
        backend: 'sim',
      });
      expect(relative(ours.loss, result.loss)).toBeLessThan(LOSS_RELATIVE);
      // The loss is not the uniform guess (ln 32): the weights matter.
      expect(Math.abs(result.loss - Math.log(32))).toBeGreaterThan(0.05);
    }
  },
  120_000,
);
