/**
 * Wrong types at the functional entry points (computeGradients, gradsCommand, readSafetensors) are
 * typed errors that say what to pass, not TypeErrors from deep inside; Buffers and views into a
 * larger ArrayBuffer are accepted as what they are.
 */
import { describe, expect, it } from 'vitest';
import { CheckpointError, ConfigError, DataError } from './errors';
import { computeGradients, gradsCommand } from './grads';
import { encodeSafetensors, readSafetensors } from './io/safetensors';
import type { LlamaConfig } from './model/config';
import { initParameters } from './model/parameters';

const SMALL: LlamaConfig = {
  model_type: 'llama',
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 1,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 8,
  vocab_size: 32,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true,
  max_position_embeddings: 64,
};
const weights = initParameters(SMALL, { seed: 1 });
const tokens = Uint16Array.from({ length: 9 }, (_, i) => (i * 5) % SMALL.vocab_size);
const base = { config: SMALL, weights, tokens, batch: 1, seq: 8, backend: 'sim' as const };

describe('computeGradients and gradsCommand refuse wrong types with typed errors', () => {
  it('null options, a preset name as config, weights as an object, null tokens', async () => {
    await expect(computeGradients(null as never)).rejects.toThrow(ConfigError);
    await expect(computeGradients({ ...base, config: 'tiny' as never })).rejects.toThrow(
      /config must be a model config object \(parseLlamaConfig/,
    );
    await expect(
      computeGradients({ ...base, weights: Object.fromEntries(weights) as never }),
    ).rejects.toThrow(CheckpointError);
    await expect(computeGradients({ ...base, tokens: null as never })).rejects.toThrow(DataError);
    await expect(gradsCommand(null as never)).rejects.toThrow(ConfigError);
  });

  it('takes tokens as a Buffer or a view into a larger ArrayBuffer, with the same result as a plain array', async () => {
    const plain = await computeGradients({ ...base, tokens: Array.from(tokens) });
    const arena = new ArrayBuffer(100);
    const view = new Uint16Array(arena, 20, tokens.length);
    view.set(tokens);
    expect((await computeGradients({ ...base, tokens: view })).loss).toBe(plain.loss);
    expect((await computeGradients({ ...base, tokens: Buffer.from(tokens) })).loss).toBe(plain.loss);
  }, 60_000);
});

describe('readSafetensors', () => {
  const values = Float32Array.of(1, 2, 3);
  const bytes = encodeSafetensors(new Map([['w', { dtype: 'F32', shape: [3], values }]]));

  it('refuses an ArrayBuffer or a path with a CheckpointError that says what to pass', () => {
    expect(() => readSafetensors(bytes.buffer as never)).toThrow(/takes the file's bytes as a Uint8Array/);
    expect(() => readSafetensors('model.safetensors' as never)).toThrow(CheckpointError);
  });

  it('reads a Buffer view at an offset into a larger buffer', () => {
    const pooled = Buffer.alloc(bytes.length + 7);
    pooled.set(bytes, 7);
    const tensor = readSafetensors(pooled.subarray(7)).tensors.get('w')!;
    expect(tensor.shape).toEqual([3]);
    expect([...new Float32Array(Uint8Array.from(tensor.data).buffer)]).toEqual([1, 2, 3]);
  });
});
