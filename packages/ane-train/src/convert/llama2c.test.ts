import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CheckpointError } from '../errors';
import { type LlamaConfig, PRESETS } from '../model/config';
import { initParameters, parameterCount } from '../model/parameters';
import { SMALL } from '../testing/small-model';
import {
  encodeLlama2cCheckpoint,
  parseLlama2cCheckpoint,
  readLlama2cCheckpoint,
  writeLlama2cCheckpoint,
} from './llama2c';
import { interleavedToRotateHalf, rotateHalfToInterleaved } from './rope-layout';

const dir = mkdtempSync(join(tmpdir(), 'ane-train-llama2c-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Catches the CheckpointError `run` throws (sync or async). */
async function checkpointError(run: () => unknown): Promise<CheckpointError> {
  try {
    await run();
  } catch (error) {
    expect(error).toBeInstanceOf(CheckpointError);
    return error as CheckpointError;
  }
  throw new Error('expected a CheckpointError, nothing was thrown');
}

describe('RoPE layout permutation', () => {
  it('moves interleaved pairs (2i, 2i+1) to rotate-half halves (i, i + HD/2), per head (hand-computed)', () => {
    // 2 heads of head_dim 6, one column: row r holds r.
    const rows = Float32Array.from({ length: 12 }, (_, r) => r);
    expect([...interleavedToRotateHalf(rows, 2, 6, 1)]).toEqual([0, 2, 4, 1, 3, 5, 6, 8, 10, 7, 9, 11]);
    expect([...rotateHalfToInterleaved(interleavedToRotateHalf(rows, 2, 6, 1), 2, 6, 1)]).toEqual([...rows]);
    // Whole rows move: 1 head of 4, two columns.
    const wide = Float32Array.from([10, 11, 20, 21, 30, 31, 40, 41]);
    expect([...interleavedToRotateHalf(wide, 1, 4, 2)]).toEqual([10, 11, 30, 31, 20, 21, 40, 41]);
  });

  it("attention scores of llama2.c's interleaved RoPE equal HF rotate-half RoPE on the permuted weights (float64)", () => {
    const heads = 2;
    const headDim = 8;
    const dim = 5;
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648 - 0.5;
    };
    const wq = Float32Array.from({ length: heads * headDim * dim }, random);
    const wk = Float32Array.from({ length: heads * headDim * dim }, random);
    const x = Array.from({ length: dim }, random);
    const y = Array.from({ length: dim }, random);
    const project = (w: Float32Array, v: number[]) =>
      Array.from({ length: heads * headDim }, (_, r) => v.reduce((s, vi, c) => s + w[r * dim + c]! * vi, 0));
    const angle = (p: number, i: number) => p * 10000 ** ((-2 * i) / headDim);
    const ropeInterleaved = (q: number[], p: number) =>
      q.map((_, f) => {
        const h = Math.floor(f / headDim);
        const i = Math.floor((f % headDim) / 2);
        const [re, im] = [q[h * headDim + 2 * i]!, q[h * headDim + 2 * i + 1]!];
        const a = angle(p, i);
        return f % 2 === 0 ? re * Math.cos(a) - im * Math.sin(a) : re * Math.sin(a) + im * Math.cos(a);
      });
    const ropeRotateHalf = (q: number[], p: number) =>
      q.map((_, f) => {
        const h = Math.floor(f / headDim);
        const d = f % headDim;
        const i = d % (headDim / 2);
        const [a1, a2] = [q[h * headDim + i]!, q[h * headDim + i + headDim / 2]!];
        const a = angle(p, i);
        return d < headDim / 2 ? a1 * Math.cos(a) - a2 * Math.sin(a) : a2 * Math.cos(a) + a1 * Math.sin(a);
      });
    const score = (q: number[], k: number[], h: number) =>
      q.slice(h * headDim, (h + 1) * headDim).reduce((s, v, i) => s + v * k[h * headDim + i]!, 0);
    const hq = interleavedToRotateHalf(wq, heads, headDim, dim);
    const hk = interleavedToRotateHalf(wk, heads, headDim, dim);
    for (const [pq, pk] of [
      [3, 1],
      [7, 7],
      [5, 0],
    ] as const) {
      for (let h = 0; h < heads; h++) {
        const llama2c = score(ropeInterleaved(project(wq, x), pq), ropeInterleaved(project(wk, y), pk), h);
        const hf = score(ropeRotateHalf(project(hq, x), pq), ropeRotateHalf(project(hk, y), pk), h);
        expect(hf).toBeCloseTo(llama2c, 12);
        // Without the permutation the scores differ (the test can fail), except at equal positions,
        // where RoPE's rotations cancel in any layout.
        const wrong = score(ropeRotateHalf(project(wq, x), pq), ropeRotateHalf(project(wk, y), pk), h);
        if (pq !== pk) expect(Math.abs(wrong - llama2c)).toBeGreaterThan(1e-4);
        else expect(wrong).toBeCloseTo(llama2c, 12);
      }
    }
  });
});

/** The smallest legacy model: dim 2, 1 head of 2, 1 KV head, hidden 1, 1 layer, vocab 1, seq_len 1. */
const TINY_HEADER = [2, 1, 1, 1, 1, 1, 1];
/** llama2.c's legacy tensor order and sizes for TINY_HEADER (shared classifier). */
const LEGACY_ORDER: [string | null, number][] = [
  ['model.embed_tokens.weight', 2],
  ['model.layers.0.input_layernorm.weight', 2],
  ['model.layers.0.self_attn.q_proj.weight', 4],
  ['model.layers.0.self_attn.k_proj.weight', 4],
  ['model.layers.0.self_attn.v_proj.weight', 4],
  ['model.layers.0.self_attn.o_proj.weight', 4],
  ['model.layers.0.post_attention_layernorm.weight', 2],
  ['model.layers.0.mlp.gate_proj.weight', 2],
  ['model.layers.0.mlp.down_proj.weight', 2],
  ['model.layers.0.mlp.up_proj.weight', 2],
  ['model.norm.weight', 2],
  [null, 1], // freq_cis_real [1, 1]
  [null, 1], // freq_cis_imag
];

function fileOf(headerInts: number[], floats: number, options: { prefix?: Uint8Array } = {}): Uint8Array {
  const prefix = options.prefix ?? new Uint8Array(0);
  const out = new Uint8Array(prefix.length + 28 + 4 * floats);
  out.set(prefix);
  const view = new DataView(out.buffer);
  headerInts.forEach((v, i) => {
    view.setInt32(prefix.length + 4 * i, v, true);
  });
  for (let i = 0; i < floats; i++) view.setFloat32(prefix.length + 28 + 4 * i, i + 1, true);
  return out;
}

describe('readLlama2cCheckpoint: layouts', () => {
  it("maps the legacy order to HF names (values 1, 2, 3, … in file order; head_dim 2: RoPE's pairs already halves)", () => {
    const floats = LEGACY_ORDER.reduce((n, [, size]) => n + size, 0);
    const { config, weights } = parseLlama2cCheckpoint(fileOf(TINY_HEADER, floats));
    let next = 1;
    for (const [name, size] of LEGACY_ORDER) {
      const expected = Array.from({ length: size }, (_, i) => next + i);
      next += size;
      if (name !== null)
        expect({ name, values: [...weights.get(name)!] }).toEqual({ name, values: expected });
    }
    expect(weights.size).toBe(11);
    expect(config).toEqual({
      model_type: 'llama',
      hidden_size: 2,
      intermediate_size: 1,
      num_hidden_layers: 1,
      num_attention_heads: 1,
      num_key_value_heads: 1,
      head_dim: 2,
      vocab_size: 1,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: true,
      max_position_embeddings: 1,
    });
  });

  it('a negative vocab_size means an own classifier (wcls last, after the freq tables)', () => {
    const floats = LEGACY_ORDER.reduce((n, [, size]) => n + size, 0) + 2;
    const header = [...TINY_HEADER];
    header[5] = -1;
    const { config, weights } = parseLlama2cCheckpoint(fileOf(header, floats));
    expect(config.tie_word_embeddings).toBe(false);
    expect(config.vocab_size).toBe(1);
    expect([...weights.get('lm_head.weight')!]).toEqual([floats - 1, floats]);
    expect([...weights.keys()].at(-1)).toBe('lm_head.weight');
  });

  it('a stories15M-shaped file is exactly the published size of stories15M.bin (60816028 bytes) and reads as the stories15M preset', () => {
    // karpathy/tinyllamas stories15M.bin: dim 288, hidden_dim 768, 6 layers, 6 heads, 6 KV heads,
    // vocab 32000 (shared), seq_len 256; 60,816,028 bytes on the Hugging Face hub.
    const bytes = new Uint8Array(60_816_028);
    const view = new DataView(bytes.buffer);
    for (const [i, v] of [288, 768, 6, 6, 6, 32000, 256].entries()) view.setInt32(4 * i, v, true);
    const { config } = parseLlama2cCheckpoint(bytes);
    expect(config).toEqual(PRESETS.stories15M);
  });

  it('reads version 1 ("ak42", 256-byte header, shared flag; norms first, then the embedding, no freq tables)', () => {
    const v1Order: [string, number][] = [
      ['model.layers.0.input_layernorm.weight', 2],
      ['model.layers.0.post_attention_layernorm.weight', 2],
      ['model.norm.weight', 2],
      ['model.embed_tokens.weight', 2],
      ['model.layers.0.self_attn.q_proj.weight', 4],
      ['model.layers.0.self_attn.k_proj.weight', 4],
      ['model.layers.0.self_attn.v_proj.weight', 4],
      ['model.layers.0.self_attn.o_proj.weight', 4],
      ['model.layers.0.mlp.gate_proj.weight', 2],
      ['model.layers.0.mlp.down_proj.weight', 2],
      ['model.layers.0.mlp.up_proj.weight', 2],
      ['lm_head.weight', 2],
    ];
    const floats = v1Order.reduce((n, [, size]) => n + size, 0);
    const bytes = new Uint8Array(256 + 4 * floats);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, 0x616b3432, true);
    view.setInt32(4, 1, true);
    TINY_HEADER.forEach((v, i) => {
      view.setInt32(8 + 4 * i, v, true);
    });
    bytes[36] = 0; // not shared
    for (let i = 0; i < floats; i++) view.setFloat32(256 + 4 * i, i + 1, true);
    const { config, weights } = parseLlama2cCheckpoint(bytes);
    expect(config.tie_word_embeddings).toBe(false);
    let next = 1;
    for (const [name, size] of v1Order) {
      expect({ name, values: [...weights.get(name)!] }).toEqual({
        name,
        values: Array.from({ length: size }, (_, i) => next + i),
      });
      next += size;
    }
  });
});

/** A llama2.c-expressible model's config: SMALL (GQA, head_dim 8 = 32 / 4). */
const CONFIG: LlamaConfig = { ...SMALL, max_position_embeddings: 16 };

describe('writeLlama2cCheckpoint → readLlama2cCheckpoint', () => {
  for (const tied of [true, false]) {
    it(`round-trips bit for bit (${tied ? 'shared' : 'own'} classifier), in run.c's size`, async () => {
      const config = { ...CONFIG, tie_word_embeddings: tied };
      const weights = initParameters(config, { seed: 3, std: 0.5 });
      const file = join(dir, `round-trip-${tied}.bin`);
      await writeLlama2cCheckpoint(file, config, weights);
      // 28-byte header + every parameter + the two freq tables [seq_len, head_dim / 2].
      expect(statSync(file).size).toBe(28 + 4 * (parameterCount(config) + 2 * 16 * 4));
      const header = new Int32Array(readFileSync(file).buffer.slice(0, 28));
      expect([...header]).toEqual([32, 64, 2, 4, 2, tied ? 32 : -32, 16]);
      const back = await readLlama2cCheckpoint(file);
      expect(back.config).toEqual(config);
      expect([...back.weights.keys()]).toEqual([...weights.keys()]);
      for (const [name, values] of weights) {
        expect(Buffer.from(back.weights.get(name)!.buffer).equals(Buffer.from(values.buffer))).toBe(true);
      }
      // On disk wq is interleaved: not the HF rows (the permutation is applied, not skipped).
      const onDiskWq = new Float32Array(
        readFileSync(file).buffer.slice(28 + 4 * (32 * 32 + 2 * 32)),
        0,
        32 * 32,
      );
      const hfWq = weights.get('model.layers.0.self_attn.q_proj.weight')!;
      expect([...onDiskWq]).toEqual([...rotateHalfToInterleaved(hfWq, 4, 8, 32)]);
      expect([...onDiskWq]).not.toEqual([...hfWq]);
    });
  }

  it('parses a Node Buffer that is a view at an unaligned offset into a larger (pooled) buffer, bit for bit', async () => {
    const weights = initParameters(CONFIG, { seed: 5 });
    const bytes = encodeLlama2cCheckpoint(CONFIG, weights);
    for (const shift of [1, 2, 3, 5]) {
      // a Buffer's slice is a view, so a copy through it must not read the whole pool from byte 0
      const pool = Buffer.alloc(bytes.length + 8 + shift, 0x7f);
      pool.set(bytes, shift);
      const view = pool.subarray(shift, shift + bytes.length);
      const back = parseLlama2cCheckpoint(view);
      for (const [name, values] of weights) {
        const got = back.weights.get(name)!;
        const bytesOf = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
        expect(bytesOf(got).equals(bytesOf(values)), name).toBe(true);
      }
    }
  });

  it('refuses models llama2.c cannot express, naming the field, and writes nothing', async () => {
    const file = join(dir, 'refused.bin');
    const weights = initParameters(CONFIG);
    const cases: [Partial<LlamaConfig>, string][] = [
      [{ model_type: 'qwen3' }, 'model_type'],
      [{ head_dim: 16 }, 'head_dim'],
      [{ rope_theta: 1e6 }, 'rope_theta'],
      [{ rms_norm_eps: 1e-6 }, 'rms_norm_eps'],
    ];
    for (const [change, field] of cases) {
      const error = await checkpointError(() =>
        writeLlama2cCheckpoint(file, { ...CONFIG, ...change }, weights),
      );
      expect(error.details.field).toBe(field);
      expect(error.message).toMatch(/llama2\.c cannot express this model/);
    }
    const missing = new Map(weights);
    missing.delete('model.norm.weight');
    const error = await checkpointError(() => writeLlama2cCheckpoint(file, CONFIG, missing));
    expect(error.details.tensor).toBe('model.norm.weight');
    expect(readdirSync(dir).filter((f) => f.startsWith('refused') || f.includes('.tmp'))).toEqual([]);
  });
});

describe('readLlama2cCheckpoint: malformed files are CheckpointErrors naming the file', () => {
  const good = encodeLlama2cCheckpoint(CONFIG, initParameters(CONFIG));
  const write = (name: string, bytes: Uint8Array) => {
    const file = join(dir, name);
    writeFileSync(file, bytes);
    return file;
  };
  const withHeader = (index: number, value: number) => {
    const bytes = good.slice();
    new DataView(bytes.buffer).setInt32(4 * index, value, true);
    return bytes;
  };

  it('a truncated file: expected and found sizes', async () => {
    const file = write('truncated.bin', good.subarray(0, good.length - 4));
    const error = await checkpointError(() => readLlama2cCheckpoint(file));
    expect(error.details).toEqual({ file, field: 'size' });
    expect(error.message).toContain(file);
    expect(error.message).toContain(`is ${good.length - 4} bytes`);
    expect(error.message).toContain(`needs ${good.length}`);
    expect(error.message).toMatch(/truncated/);
  });

  it('trailing bytes: the header does not describe the file', async () => {
    const bytes = new Uint8Array(good.length + 8);
    bytes.set(good);
    const error = await checkpointError(() => readLlama2cCheckpoint(write('long.bin', bytes)));
    expect(error.details.field).toBe('size');
    expect(error.message).toMatch(/8 bytes too many/);
  });

  it('shorter than the header', async () => {
    const error = await checkpointError(() => readLlama2cCheckpoint(write('tiny.bin', good.subarray(0, 20))));
    expect(error.details.field).toBe('header');
    expect(error.message).toMatch(/20 bytes, shorter than llama2\.c's 28-byte header/);
  });

  it('header fields ≤ 0 or absurd name the field', async () => {
    const cases: [number, number, string][] = [
      [0, 0, 'dim'],
      [1, -5, 'hidden_dim'],
      [2, 0, 'n_layers'],
      [2, 1 << 30, 'n_layers'],
      [3, 0, 'n_heads'],
      [4, -1, 'n_kv_heads'],
      [5, 0, 'vocab_size'],
      [6, 0, 'seq_len'],
    ];
    for (const [index, value, field] of cases) {
      const error = await checkpointError(() =>
        parseLlama2cCheckpoint(withHeader(index, value), { file: 'x.bin' }),
      );
      expect({ field: error.details.field, file: error.details.file }).toEqual({ field, file: 'x.bin' });
      expect(error.message).toContain(`header field ${field} is ${value}`);
    }
  });

  it('heads that do not divide dim, an odd head size, KV heads that do not divide heads', async () => {
    expect((await checkpointError(() => parseLlama2cCheckpoint(withHeader(3, 5)))).details.field).toBe(
      'n_heads',
    );
    expect((await checkpointError(() => parseLlama2cCheckpoint(withHeader(3, 32)))).message).toMatch(/even/);
    expect((await checkpointError(() => parseLlama2cCheckpoint(withHeader(4, 3)))).details.field).toBe(
      'n_kv_heads',
    );
  });

  it('a header that fits but a size that does not (a wrong layer count)', async () => {
    const error = await checkpointError(() => parseLlama2cCheckpoint(withHeader(2, 3), { file: 'y.bin' }));
    expect(error.details.field).toBe('size');
    expect(error.message).toMatch(/n_layers 3/);
  });

  it('version 2 (int8) and unknown versions after the magic', async () => {
    const bytes = new Uint8Array(512);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, 0x616b3432, true);
    view.setInt32(4, 2, true);
    expect((await checkpointError(() => parseLlama2cCheckpoint(bytes))).message).toMatch(
      /version 2.*--version 0/,
    );
    view.setInt32(4, 9, true);
    expect((await checkpointError(() => parseLlama2cCheckpoint(bytes))).details.field).toBe('version');
    view.setInt32(4, 1, true);
    for (const [i, v] of [32, 64, 2, 4, 2, 32, 16].entries()) view.setInt32(8 + 4 * i, v, true);
    bytes[36] = 7;
    expect((await checkpointError(() => parseLlama2cCheckpoint(bytes))).details.field).toBe(
      'shared_classifier',
    );
  });

  it('a non-finite weight names the tensor and the byte offset', async () => {
    const bytes = good.slice();
    const offset = 28 + 4 * (32 * 32 + 5); // the 6th value of layer 0's attention norm
    new DataView(bytes.buffer).setFloat32(offset, Number.NaN, true);
    const error = await checkpointError(() => parseLlama2cCheckpoint(bytes, { file: 'z.bin' }));
    expect(error.details.tensor).toBe('model.layers.0.input_layernorm.weight');
    expect(error.message).toContain(`byte offset ${offset}`);
  });

  it('a FIFO, a directory and a missing file are refused without hanging', async () => {
    const fifo = join(dir, 'pipe.bin');
    execFileSync('mkfifo', [fifo]);
    expect((await checkpointError(() => readLlama2cCheckpoint(fifo))).message).toMatch(/FIFO/);
    const sub = join(dir, 'sub.bin');
    mkdirSync(sub);
    expect((await checkpointError(() => readLlama2cCheckpoint(sub))).message).toMatch(/directory/);
    const missing = await checkpointError(() => readLlama2cCheckpoint(join(dir, 'nope.bin')));
    expect(missing.message).toMatch(/does not exist/);
    expect(missing.details.file).toBe(join(dir, 'nope.bin'));
  });
});
