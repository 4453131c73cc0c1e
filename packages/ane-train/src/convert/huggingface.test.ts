import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CheckpointError, ConfigError } from '../errors';
import { readSafetensorsFile, type SafetensorsInput, writeSafetensorsFile } from '../io/safetensors';
import type { LlamaConfig } from '../model/config';
import { initParameters, parameterSpecs } from '../model/parameters';
import { SMALL } from '../testing/small-model';
import { exportHuggingFace, importHuggingFace } from './huggingface';
import { readLlama2cCheckpoint, writeLlama2cCheckpoint } from './llama2c';

const root = mkdtempSync(join(tmpdir(), 'ane-train-hf-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let count = 0;
const fresh = (name: string) => join(root, `${name}-${count++}`);

async function checkpointError(run: () => unknown): Promise<CheckpointError> {
  try {
    await run();
  } catch (error) {
    expect(error).toBeInstanceOf(CheckpointError);
    return error as CheckpointError;
  }
  throw new Error('expected a CheckpointError, nothing was thrown');
}

const sameBits = (a: Float32Array, b: Float32Array) =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

const json = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;

/** Writes a model directory by hand (config.json + the given tensors as F32). */
async function writeModelDir(
  config: Record<string, unknown>,
  tensors: Map<string, Float32Array>,
  shapes: Map<string, number[]>,
) {
  const dir = fresh('by-hand');
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const inputs = new Map<string, SafetensorsInput>();
  for (const [name, values] of tensors) inputs.set(name, { dtype: 'F32', shape: shapes.get(name)!, values });
  await writeSafetensorsFile(join(dir, 'model.safetensors'), inputs);
  return dir;
}

const shapesOf = (config: LlamaConfig) => new Map(parameterSpecs(config).map((s) => [s.name, [...s.shape]]));

describe('exportHuggingFace', () => {
  it('writes model.safetensors (tied: no lm_head.weight), config.json and generation_config.json, nothing else', async () => {
    const dir = fresh('export');
    const weights = initParameters(SMALL, { seed: 1 });
    const files = await exportHuggingFace(dir, { config: SMALL, weights });
    expect(files).toEqual([
      join(dir, 'model.safetensors'),
      join(dir, 'config.json'),
      join(dir, 'generation_config.json'),
    ]);
    expect(readdirSync(dir).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors']);

    const config = json(join(dir, 'config.json'));
    expect(config).toMatchObject({
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: 32,
      intermediate_size: 64,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 8,
      vocab_size: 32,
      max_position_embeddings: 64,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: true,
      hidden_act: 'silu',
      attention_bias: false,
      mlp_bias: false,
      rope_scaling: null,
      torch_dtype: 'float32',
      bos_token_id: null,
      eos_token_id: null,
    });
    expect(json(join(dir, 'generation_config.json'))).toEqual({
      _from_model_config: true,
      bos_token_id: null,
      eos_token_id: null,
    });

    const written = await readSafetensorsFile(join(dir, 'model.safetensors'));
    expect(written.metadata).toEqual({ format: 'pt' });
    expect(written.tensors.has('lm_head.weight')).toBe(false);
    expect(written.tensors.size).toBe(parameterSpecs(SMALL).length);
    expect(written.tensors.get('model.layers.1.mlp.down_proj.weight')).toMatchObject({
      dtype: 'F32',
      shape: [32, 64],
    });
  });

  it('an untied model exports lm_head.weight; given bos/eos ids go to both configs', async () => {
    const config = { ...SMALL, tie_word_embeddings: false };
    const dir = fresh('untied');
    await exportHuggingFace(
      dir,
      { config, weights: initParameters(config) },
      { generation: { eos_token_id: 0 } },
    );
    expect(
      (await readSafetensorsFile(join(dir, 'model.safetensors'))).tensors.get('lm_head.weight')?.shape,
    ).toEqual([32, 32]);
    expect(json(join(dir, 'config.json'))).toMatchObject({
      tie_word_embeddings: false,
      eos_token_id: 0,
      bos_token_id: null,
    });
    expect(json(join(dir, 'generation_config.json'))).toMatchObject({ eos_token_id: 0 });
    const error = await checkpointError(() =>
      exportHuggingFace(
        fresh('bad-eos'),
        { config, weights: initParameters(config) },
        { generation: { eos_token_id: 32 } },
      ),
    );
    expect(error.details.field).toBe('generation.eos_token_id');
  });

  it("Llama 2's 32000-token vocabulary defaults to BOS 1 and EOS 2", async () => {
    const config: LlamaConfig = { ...SMALL, vocab_size: 32000, num_hidden_layers: 1 };
    const dir = fresh('llama2-vocab');
    await exportHuggingFace(dir, { config, weights: initParameters(config) }, { dtype: 'BF16' });
    expect(json(join(dir, 'config.json'))).toMatchObject({
      bos_token_id: 1,
      eos_token_id: 2,
      torch_dtype: 'bfloat16',
    });
    expect(json(join(dir, 'generation_config.json'))).toMatchObject({ bos_token_id: 1, eos_token_id: 2 });
  });

  it('a Qwen3 model exports as Qwen3ForCausalLM with its q/k norms, and re-imports', async () => {
    const config: LlamaConfig = {
      ...SMALL,
      model_type: 'qwen3',
      head_dim: 16,
      rope_theta: 1e6,
      rms_norm_eps: 1e-6,
    };
    const weights = initParameters(config, { seed: 9 });
    const dir = fresh('qwen3');
    await exportHuggingFace(dir, { config, weights });
    expect(json(join(dir, 'config.json'))).toMatchObject({
      architectures: ['Qwen3ForCausalLM'],
      model_type: 'qwen3',
      head_dim: 16,
      use_sliding_window: false,
    });
    const back = await importHuggingFace(dir);
    expect(back.config).toEqual(config);
    expect(back.weights.has('model.layers.0.self_attn.q_norm.weight')).toBe(true);
    for (const [name, values] of weights) expect(sameBits(back.weights.get(name)!, values)).toBe(true);
  });

  it('F16 and BF16 store values they represent exactly, and import them back exactly', async () => {
    const weights = initParameters(SMALL);
    let k = 0;
    for (const values of weights.values())
      for (let i = 0; i < values.length; i++) values[i] = ((k++ % 61) - 30) / 64;
    for (const dtype of ['F16', 'BF16'] as const) {
      const dir = fresh(dtype);
      await exportHuggingFace(dir, { config: SMALL, weights }, { dtype });
      const file = await readSafetensorsFile(join(dir, 'model.safetensors'));
      expect([...file.tensors.values()].every((t) => t.dtype === dtype)).toBe(true);
      const back = await importHuggingFace(dir);
      for (const [name, values] of weights) expect(sameBits(back.weights.get(name)!, values)).toBe(true);
    }
  });

  it('refuses F16 for a value beyond its range, naming the tensor; writes nothing', async () => {
    const weights = initParameters(SMALL);
    weights.get('model.norm.weight')![3] = 70000;
    const dir = fresh('f16-overflow');
    const error = await checkpointError(() =>
      exportHuggingFace(dir, { config: SMALL, weights }, { dtype: 'F16' }),
    );
    expect(error.details.tensor).toBe('model.norm.weight');
    expect(error.message).toMatch(/70000 at index 3.*export as F32 or BF16/);
    expect(() => readdirSync(dir)).toThrow();
  });

  it('refuses BF16 for a value that rounds to infinity in BF16 (finite in F32); the largest BF16 still exports', async () => {
    // BF16's largest finite value is 0x7f7f (3.3895e38); fp32 0x7f7f8000 (3.3962e38) and above round to inf
    const f32 = (bits: number) => new Float32Array(Uint32Array.of(bits).buffer)[0]!;
    const weights = initParameters(SMALL);
    weights.get('model.norm.weight')![5] = -f32(0x7f7f8000);
    const dir = fresh('bf16-overflow');
    const error = await checkpointError(() =>
      exportHuggingFace(dir, { config: SMALL, weights }, { dtype: 'BF16' }),
    );
    expect(error.details.tensor).toBe('model.norm.weight');
    expect(error.message).toMatch(/at index 5, which rounds to infinity in BF16.*export as F32/);
    expect(() => readdirSync(dir)).toThrow();
    weights.get('model.norm.weight')![5] = -f32(0x7f7f7fff); // rounds down to -0x7f7f: finite
    const ok = fresh('bf16-max');
    await exportHuggingFace(ok, { config: SMALL, weights }, { dtype: 'BF16' });
    expect((await importHuggingFace(ok)).weights.get('model.norm.weight')![5]).toBe(-f32(0x7f7f0000));
  });

  it('a target file that is a directory is refused before anything is written (the previous export stays whole)', async () => {
    const dir = fresh('half-export');
    await exportHuggingFace(dir, { config: SMALL, weights: initParameters(SMALL, { seed: 1 }) });
    const before = readFileSync(join(dir, 'model.safetensors'));
    const config = readFileSync(join(dir, 'config.json'), 'utf8');
    rmSync(join(dir, 'generation_config.json'));
    mkdirSync(join(dir, 'generation_config.json'));
    const error = await checkpointError(() =>
      exportHuggingFace(dir, {
        config: { ...SMALL, rms_norm_eps: 1e-6 },
        weights: initParameters(SMALL, { seed: 2 }),
      }),
    );
    expect(error.message).toMatch(
      /generation_config\.json exists and is not a regular file \(a directory\).*nothing was written/,
    );
    expect(readFileSync(join(dir, 'model.safetensors')).equals(before)).toBe(true);
    expect(readFileSync(join(dir, 'config.json'), 'utf8')).toBe(config);
  });

  it('importHuggingFace of an ane-train training checkpoint says to use loadCheckpoint (was: a list of unknown optimizer tensors)', async () => {
    const dir = fresh('ane-train-checkpoint');
    await exportHuggingFace(dir, { config: SMALL, weights: initParameters(SMALL, { seed: 1 }) });
    const path = join(dir, 'latest.safetensors');
    const weights = initParameters(SMALL, { seed: 2 });
    const tensors = new Map<string, SafetensorsInput>();
    for (const spec of parameterSpecs(SMALL)) {
      tensors.set(spec.name, { dtype: 'F32', shape: [...spec.shape], values: weights.get(spec.name)! });
    }
    // what saveTrainerCheckpoint writes beside the weights (here one AdamW buffer)
    tensors.set('optimizer/model.norm.weight/m', {
      dtype: 'F32',
      shape: [SMALL.hidden_size],
      values: new Float32Array(SMALL.hidden_size),
    });
    await writeSafetensorsFile(path, tensors, { format: 'ane-train/checkpoint', version: '1' });
    const error = await checkpointError(() => importHuggingFace(path));
    expect(error.message).toMatch(/is an ane-train checkpoint .*read it with loadCheckpoint/);
    expect(error.details.file).toBe(path);
  });

  it('refuses a directory path that is a file', async () => {
    const file = join(root, 'a-file');
    writeFileSync(file, 'x');
    const error = await checkpointError(() =>
      exportHuggingFace(join(file, 'hf'), { config: SMALL, weights: initParameters(SMALL) }),
    );
    expect(error.details.field).toBe('dir');
    expect(readFileSync(file, 'utf8')).toBe('x');
    // the file itself as the directory: said in words, not as EEXIST
    const same = await checkpointError(() =>
      exportHuggingFace(file, { config: SMALL, weights: initParameters(SMALL) }),
    );
    expect(same.message).toMatch(/a-file is a file \(or under one\), not a directory/);
    expect(readFileSync(file, 'utf8')).toBe('x');
  });

  it('refuses weights that do not fit the config and a bad dtype', async () => {
    const weights = initParameters(SMALL);
    weights.delete('model.layers.1.self_attn.v_proj.weight');
    expect(
      (await checkpointError(() => exportHuggingFace(fresh('x'), { config: SMALL, weights }))).details.tensor,
    ).toBe('model.layers.1.self_attn.v_proj.weight');
    const error = await checkpointError(() =>
      exportHuggingFace(
        fresh('x'),
        { config: SMALL, weights: initParameters(SMALL) },
        { dtype: 'F64' as 'F32' },
      ),
    );
    expect(error.details.field).toBe('dtype');
  });
});

describe('llama2.c → Hugging Face → llama2.c round trip', () => {
  for (const tied of [true, false]) {
    it(`a generated stories-format file (${tied ? 'shared' : 'own'} classifier): F32 export and re-import are bit for bit, the .bin comes back byte for byte`, async () => {
      const config: LlamaConfig = { ...SMALL, tie_word_embeddings: tied, max_position_embeddings: 32 };
      const bin = join(fresh('stories'), 'stories.bin');
      mkdirSync(join(bin, '..'));
      await writeLlama2cCheckpoint(bin, config, initParameters(config, { seed: 5, std: 0.3 }));
      const imported = await readLlama2cCheckpoint(bin);
      const dir = fresh('hf');
      await exportHuggingFace(dir, imported);
      const back = await importHuggingFace(dir);
      expect(back.config).toEqual(imported.config);
      expect([...back.weights.keys()]).toEqual([...imported.weights.keys()]);
      for (const [name, values] of imported.weights)
        expect(sameBits(back.weights.get(name)!, values)).toBe(true);
      const again = join(dir, 'again.bin');
      await writeLlama2cCheckpoint(again, back.config, back.weights);
      expect(readFileSync(again).equals(readFileSync(bin))).toBe(true);
    });
  }
});

describe('importHuggingFace', () => {
  const weights = initParameters(SMALL, { seed: 2 });
  const config = { ...SMALL } as unknown as Record<string, unknown>;

  it('reads a .safetensors path with config.json beside it, or the config.json path', async () => {
    const dir = await writeModelDir(config, weights, shapesOf(SMALL));
    for (const path of [join(dir, 'model.safetensors'), join(dir, 'config.json')]) {
      const back = await importHuggingFace(path);
      for (const [name, values] of weights) expect(sameBits(back.weights.get(name)!, values)).toBe(true);
    }
  });

  it('reads sharded weights through model.safetensors.index.json', async () => {
    const dir = fresh('sharded');
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    const shapes = shapesOf(SMALL);
    const names = [...weights.keys()];
    const shards = [names.slice(0, 5), names.slice(5)];
    const weightMap: Record<string, string> = {};
    for (const [i, shard] of shards.entries()) {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      await writeSafetensorsFile(
        join(dir, file),
        new Map(
          shard.map((n) => [n, { dtype: 'F32' as const, shape: shapes.get(n)!, values: weights.get(n)! }]),
        ),
      );
      for (const n of shard) weightMap[n] = file;
    }
    writeFileSync(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );
    const back = await importHuggingFace(dir);
    expect([...back.weights.keys()]).toEqual(names);
    for (const [name, values] of weights) expect(sameBits(back.weights.get(name)!, values)).toBe(true);

    // A stale index: a tensor listed in the wrong shard.
    weightMap[names[0]!] = 'model-00002-of-00002.safetensors';
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
    const error = await checkpointError(() => importHuggingFace(dir));
    expect(error.details.tensor).toBe(names[0]);
    // A shard outside the directory.
    weightMap[names[0]!] = '../elsewhere.safetensors';
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
    expect((await checkpointError(() => importHuggingFace(dir))).details.field).toBe('weight_map');
  });

  it('skips rotary_emb.inv_freq buffers; drops a tied lm_head.weight equal to the embedding', async () => {
    const tensors = new Map(weights);
    tensors.set('model.layers.0.self_attn.rotary_emb.inv_freq', new Float32Array(4));
    tensors.set('lm_head.weight', weights.get('model.embed_tokens.weight')!.slice());
    const shapes = shapesOf(SMALL);
    shapes.set('model.layers.0.self_attn.rotary_emb.inv_freq', [4]);
    shapes.set('lm_head.weight', [32, 32]);
    const back = await importHuggingFace(await writeModelDir(config, tensors, shapes));
    expect([...back.weights.keys()]).toEqual([...weights.keys()]);
  });

  it('a tied config with a different lm_head.weight, an extra, a missing and a mis-shaped tensor name the tensor and file', async () => {
    const shapes = shapesOf(SMALL);
    const withHead = new Map(weights);
    withHead.set('lm_head.weight', new Float32Array(32 * 32).fill(0.5));
    shapes.set('lm_head.weight', [32, 32]);
    let dir = await writeModelDir(config, withHead, shapes);
    let error = await checkpointError(() => importHuggingFace(dir));
    expect(error.details).toEqual({ file: join(dir, 'model.safetensors'), tensor: 'lm_head.weight' });
    expect(error.message).toMatch(/tie_word_embeddings/);

    const extra = new Map(weights);
    extra.set('model.layers.0.mlp.extra.weight', new Float32Array(2));
    shapes.set('model.layers.0.mlp.extra.weight', [2]);
    dir = await writeModelDir(config, extra, shapes);
    expect((await checkpointError(() => importHuggingFace(dir))).details.tensor).toBe(
      'model.layers.0.mlp.extra.weight',
    );

    const missing = new Map(weights);
    missing.delete('model.layers.1.post_attention_layernorm.weight');
    dir = await writeModelDir(config, missing, shapes);
    error = await checkpointError(() => importHuggingFace(dir));
    expect(error.details.tensor).toBe('model.layers.1.post_attention_layernorm.weight');

    const reshaped = shapesOf(SMALL);
    reshaped.set('model.layers.0.mlp.up_proj.weight', [32, 64]);
    dir = await writeModelDir(config, weights, reshaped);
    error = await checkpointError(() => importHuggingFace(dir));
    expect(error.details.tensor).toBe('model.layers.0.mlp.up_proj.weight');
    expect(error.message).toMatch(/shape \[32, 64\].*\[64, 32\]/);
  });

  it('a non-finite weight names the tensor', async () => {
    const bad = new Map(weights);
    const norm = weights.get('model.norm.weight')!.slice();
    norm[1] = Number.POSITIVE_INFINITY;
    bad.set('model.norm.weight', norm);
    const dir = await writeModelDir(config, bad, shapesOf(SMALL));
    const error = await checkpointError(() => importHuggingFace(dir));
    expect(error.details.tensor).toBe('model.norm.weight');
    expect(error.message).toMatch(/Infinity at index 1/);
  });

  it('a missing path, a directory without weights or without config.json, a bad config', async () => {
    expect((await checkpointError(() => importHuggingFace(join(root, 'nope')))).message).toMatch(
      /does not exist/,
    );
    const empty = fresh('empty');
    mkdirSync(empty);
    expect((await checkpointError(() => importHuggingFace(empty))).message).toMatch(
      /neither model\.safetensors nor model\.safetensors\.index\.json/,
    );
    const noConfig = await writeModelDir(config, weights, shapesOf(SMALL));
    rmSync(join(noConfig, 'config.json'));
    const error = await checkpointError(() => importHuggingFace(noConfig));
    expect(error.details.file).toBe(join(noConfig, 'config.json'));
    const badConfig = await writeModelDir({ ...config, hidden_size: -1 }, weights, shapesOf(SMALL));
    await expect(importHuggingFace(badConfig)).rejects.toBeInstanceOf(ConfigError);
    writeFileSync(join(badConfig, 'config.json'), '{ not json');
    await expect(importHuggingFace(badConfig)).rejects.toThrow(/not valid JSON/);
  });
});

describe('wrong inputs to the writers are typed errors, and nothing is written', () => {
  const weights = initParameters(SMALL, { seed: 4 });

  it('a preset name or an invalid object as config is a ConfigError', async () => {
    const dir = fresh('bad-config');
    await expect(exportHuggingFace(dir, { config: 'tiny' as never, weights })).rejects.toThrow(
      CheckpointError,
    );
    await expect(
      exportHuggingFace(dir, { config: { ...SMALL, num_key_value_heads: 3 }, weights }),
    ).rejects.toBeInstanceOf(ConfigError);
    await expect(
      writeLlama2cCheckpoint(join(root, 'bad.bin'), { ...SMALL, hidden_size: 0 }, weights),
    ).rejects.toBeInstanceOf(ConfigError);
    expect(() => readdirSync(dir)).toThrow();
  });

  it('weights as a plain object, a tensor that is not a Float32Array, a non-finite weight', async () => {
    const dir = fresh('bad-weights');
    let error = await checkpointError(() =>
      exportHuggingFace(dir, { config: SMALL, weights: Object.fromEntries(weights) as never }),
    );
    expect(error.message).toMatch(/new Map\(Object\.entries/);
    const asArray = new Map<string, Float32Array>(weights);
    asArray.set('model.norm.weight', Array.from(weights.get('model.norm.weight')!) as never);
    error = await checkpointError(() => exportHuggingFace(dir, { config: SMALL, weights: asArray }));
    expect(error.details.tensor).toBe('model.norm.weight');
    const diverged = new Map(weights);
    const embed = weights.get('model.embed_tokens.weight')!.slice();
    embed[7] = Number.NaN;
    diverged.set('model.embed_tokens.weight', embed);
    for (const write of [
      () => exportHuggingFace(dir, { config: SMALL, weights: diverged }),
      () => writeLlama2cCheckpoint(join(root, 'diverged.bin'), SMALL, diverged),
    ]) {
      error = await checkpointError(write);
      expect(error.details.tensor).toBe('model.embed_tokens.weight');
      expect(error.message).toMatch(/NaN at index 7.*nothing was written/);
    }
    expect(() => readdirSync(dir)).toThrow();
    expect(readdirSync(root).filter((f) => f.startsWith('diverged') || f.startsWith('bad.bin'))).toEqual([]);
  });
});
