/**
 * Checkpoints: the file layout (read back with the plain safetensors reader and a checksum computed
 * here), resume from a checkpoint bit for bit, and every damaged or mismatched file refused with a
 * CheckpointError naming the problem while the file on disk stays as it was.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Adam, AdamW, Lion, SGD } from 'ane-optim';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BatchSampler, type SamplerState } from '../data';
import { CheckpointError, TrainError } from '../errors';
import {
  encodeSafetensors,
  readSafetensors,
  type SafetensorsInput,
  tensorToFloat32,
} from '../io/safetensors';
import { initParameters, parameterSpecs } from '../model/parameters';
import { SMALL } from '../testing/small-model';
import { Trainer, type TrainerOptions } from '../trainer';
import {
  type Checkpoint,
  loadCheckpoint,
  restoreTrainer,
  saveCheckpoint,
  saveTrainerCheckpoint,
} from './checkpoint';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ane-train-checkpoint-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const open: Trainer[] = [];
function trainer(options: Partial<TrainerOptions> = {}): Trainer {
  const t = new Trainer({
    model: SMALL,
    backend: 'sim',
    seq: 8,
    batch: 2,
    seed: 5,
    optimizer: new AdamW({ learningRate: 1e-2, weightDecay: 0.1 }),
    lossScale: { initScale: 128, growthInterval: 2 },
    ...options,
  });
  open.push(t);
  return t;
}
afterEach(async () => {
  while (open.length > 0) await open.pop()!.dispose();
});

const TOKENS = Uint16Array.from(
  { length: 400 },
  (_, i) => ([3, 1, 4, 1, 5, 9, 2, 6][i % 8]! * (1 + (i >> 7))) % 32,
);

function bits(values: Float32Array): Uint32Array {
  return new Uint32Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
}

/** sha256 of a file's bytes with the checksum's 64 hex digits read as '0' (the documented rule). */
function documentedChecksum(bytes: Uint8Array): string {
  const text = Buffer.from(bytes).toString('latin1');
  const key = '"checksum":"sha256:';
  const at = text.indexOf(key) + key.length;
  const copy = Buffer.from(bytes);
  copy.fill('0', at, at + 64);
  return `sha256:${createHash('sha256').update(copy).digest('hex')}`;
}

/** Re-encodes a checkpoint's tensors and metadata after `edit`, with a valid checksum. */
function rewritten(
  bytes: Uint8Array,
  edit: (tensors: Map<string, SafetensorsInput>, metadata: Record<string, string>) => void,
): Uint8Array {
  const contents = readSafetensors(bytes);
  const tensors = new Map<string, SafetensorsInput>();
  for (const [name, tensor] of contents.tensors) {
    tensors.set(name, { dtype: tensor.dtype, shape: tensor.shape, values: tensorToFloat32(tensor) });
  }
  const metadata = { ...contents.metadata, checksum: `sha256:${'0'.repeat(64)}` };
  edit(tensors, metadata);
  const out = encodeSafetensors(tensors, metadata);
  const sum = documentedChecksum(out);
  const text = Buffer.from(out).toString('latin1');
  const at = text.indexOf('"checksum":"sha256:') + '"checksum":"sha256:'.length;
  Buffer.from(out.buffer, out.byteOffset).write(sum.slice(7), at, 'latin1');
  return out;
}

describe('saveCheckpoint / loadCheckpoint', () => {
  it('writes HF-named F32 weights, optimizer state under optimizer/<param>/<field>, JSON metadata and a whole-file checksum', async () => {
    const t = trainer();
    await t.fit(TOKENS, { steps: 2 });
    const path = join(dir, 'layout.safetensors');
    await saveTrainerCheckpoint(path, t, { data: { position: 36 }, metadata: { tokenizer: 'byte' } });
    const bytes = readFileSync(path);
    const { tensors, metadata } = readSafetensors(bytes);
    expect(metadata.format).toBe('ane-train/checkpoint');
    expect(metadata.version).toBe('1');
    expect(JSON.parse(metadata.config!)).toEqual(SMALL);
    expect(JSON.parse(metadata.data!)).toEqual({ position: 36 });
    expect(metadata.tokenizer).toBe('byte');
    expect(metadata.checksum).toBe(documentedChecksum(bytes));
    const trainerMeta = JSON.parse(metadata.trainer!);
    expect(trainerMeta.step).toBe(2);
    expect(trainerMeta.lossScaler).toEqual(t.lossScaler!.saveState());
    for (const spec of parameterSpecs(SMALL)) {
      const weight = tensors.get(spec.name)!;
      expect(weight.dtype).toBe('F32');
      expect(weight.shape).toEqual(spec.shape);
      expect(bits(tensorToFloat32(weight))).toEqual(bits(t.weights.get(spec.name)!));
      // AdamW's moments, shaped like their parameter.
      for (const field of ['m', 'v']) {
        const state = tensors.get(`optimizer/${spec.name}/${field}`)!;
        expect(state.shape).toEqual(spec.shape);
        expect(bits(tensorToFloat32(state))).toEqual(
          bits((t.optimizer.state.get(spec.name) as unknown as Record<string, Float32Array>)[field]!),
        );
      }
    }
    expect(tensors.size).toBe(3 * parameterSpecs(SMALL).length);

    const loaded = await loadCheckpoint(path, { config: SMALL });
    expect(loaded.config).toEqual(SMALL);
    expect(loaded.data).toEqual({ position: 36 });
    expect(loaded.metadata).toEqual({ tokenizer: 'byte' });
    const state = t.saveState();
    expect(loaded.trainer!.step).toBe(2);
    expect(loaded.trainer!.seed).toBe(5);
    expect(loaded.trainer!.optimizer.meta).toEqual(state.optimizer.meta);
    expect(bits(loaded.trainer!.optimizer.data)).toEqual(bits(state.optimizer.data));
    for (const [name, values] of t.weights) expect(bits(loaded.weights.get(name)!)).toEqual(bits(values));
  }, 60_000);

  it('a weights-only checkpoint round-trips and leaves trainer and data out', async () => {
    const weights = initParameters(SMALL, { seed: 9 });
    const path = join(dir, 'weights-only.safetensors');
    await saveCheckpoint(path, { config: SMALL, weights });
    const loaded = await loadCheckpoint(path);
    expect(loaded.trainer).toBeUndefined();
    expect(loaded.data).toBeUndefined();
    expect(loaded.metadata).toBeUndefined();
    for (const [name, values] of weights) expect(bits(loaded.weights.get(name)!)).toEqual(bits(values));
  });

  it('resume from a checkpoint continues bit for bit: losses and final weights equal an uninterrupted run', async () => {
    const steps = 8;
    const k = 3;
    // 14 windows of 8 + 1 tokens: 7 batches an epoch, so the run crosses an epoch (a new shuffle).
    const tokens = TOKENS.subarray(0, 120);
    const sampler = () => new BatchSampler(tokens, { batch: 2, seq: 8, seed: 3 });
    const reference = trainer();
    const referenceLosses = (await reference.fit(sampler(), { steps })).history.loss;

    const path = join(dir, 'resume.safetensors');
    const firstSampler = sampler();
    const first = trainer();
    const firstLosses = (await first.fit(firstSampler, { steps: k })).history.loss;
    await saveTrainerCheckpoint(path, first, { data: firstSampler.state() });
    await first.dispose();

    const checkpoint = await loadCheckpoint(path, { config: SMALL });
    const resumed = trainer({ seed: 1234 });
    restoreTrainer(resumed, checkpoint);
    const restored = sampler();
    restored.restore(checkpoint.data as SamplerState);
    const restLosses = (await resumed.fit(restored, { steps: steps - k })).history.loss;

    expect([...firstLosses, ...restLosses]).toEqual(referenceLosses);
    for (const [name, values] of reference.weights)
      expect(bits(resumed.weights.get(name)!), name).toEqual(bits(values));
    expect(resumed.lossScaler!.scale).toBe(reference.lossScaler!.scale);
    expect(resumed.step).toBe(steps);
    expect(restored.state()).toEqual(
      (() => {
        const s = sampler();
        for (let i = 0; i < steps; i++) s.next();
        return s.state();
      })(),
    );
  }, 120_000);
});

describe('every optimizer resumes through a checkpoint', () => {
  const optimizers = {
    'SGD with momentum': () => new SGD({ learningRate: 0.05, momentum: 0.9 }),
    'SGD without state': () => new SGD({ learningRate: 0.05 }),
    Adam: () => new Adam({ learningRate: 1e-2 }),
    Lion: () => new Lion({ learningRate: 1e-3 }),
  };
  for (const [label, make] of Object.entries(optimizers)) {
    it(`${label}: fit(2) + checkpoint + restore + fit(2) equals fit(4)`, async () => {
      const reference = trainer({ optimizer: make() });
      const all = (await reference.fit(TOKENS, { steps: 4 })).history.loss;
      const first = trainer({ optimizer: make() });
      const a = (await first.fit(TOKENS, { steps: 2 })).history.loss;
      const path = join(dir, `optimizer-${label.replace(/ /g, '-')}.safetensors`);
      await saveTrainerCheckpoint(path, first);
      const resumed = trainer({ optimizer: make() });
      restoreTrainer(resumed, await loadCheckpoint(path));
      const b = (await resumed.fit(TOKENS, { steps: 2 })).history.loss;
      expect([...a, ...b]).toEqual(all);
      for (const [name, values] of reference.weights)
        expect(bits(resumed.weights.get(name)!), name).toEqual(bits(values));
    }, 60_000);
  }
});

describe('loadCheckpoint refuses damaged and mismatched files, and leaves them as they were', () => {
  let good: Uint8Array;
  beforeAll(async () => {
    const t = new Trainer({ model: SMALL, backend: 'sim', seq: 8, seed: 2 });
    try {
      await t.fit(TOKENS, { steps: 1 });
      const path = join(dir, 'good.safetensors');
      await saveTrainerCheckpoint(path, t, { data: { position: 9 } });
      good = readFileSync(path);
    } finally {
      await t.dispose();
    }
  }, 60_000);

  /** Writes `bytes` as a file, loads it, expects a CheckpointError matching `pattern`, checks the file is unchanged. */
  async function refused(
    name: string,
    bytes: Uint8Array,
    pattern: RegExp,
    options: Parameters<typeof loadCheckpoint>[1] = {},
  ): Promise<CheckpointError> {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    let error: unknown;
    try {
      await loadCheckpoint(path, options);
    } catch (caught) {
      error = caught;
    }
    expect(error, name).toBeInstanceOf(CheckpointError);
    expect((error as Error).message).toMatch(pattern);
    expect((error as CheckpointError).details.file).toBe(path);
    expect(Buffer.compare(readFileSync(path), Buffer.from(bytes)), `${name} changed on disk`).toBe(0);
    return error as CheckpointError;
  }

  it('the good file loads (the control)', async () => {
    const path = join(dir, 'control.safetensors');
    writeFileSync(path, good);
    await expect(loadCheckpoint(path, { config: SMALL })).resolves.toMatchObject({ data: { position: 9 } });
  });

  it('truncated anywhere: in the length, in the header, in the data, by one byte', async () => {
    const headerLength = Number(Buffer.from(good).readBigUInt64LE(0));
    for (const length of [
      0,
      5,
      8 + (headerLength >> 1),
      8 + headerLength,
      good.length - 100,
      good.length - 1,
    ]) {
      await refused(`truncated-${length}.safetensors`, good.subarray(0, length), /truncated/);
    }
  });

  it('a flipped byte in the data, in a header number, in the checksum: checksum mismatch, the file is corrupted', async () => {
    const data = Buffer.from(good);
    data[data.length - 7]! ^= 0x01;
    const error = await refused('flip-data.safetensors', data, /checksum mismatch .* the file is corrupted/);
    expect(error.details.field).toBe('checksum');

    // A digit of the stored step count: still valid JSON, a valid checkpoint, but not the one written.
    const header = Buffer.from(good);
    const text = header.toString('latin1');
    const at = text.indexOf('\\"step\\":1') + '\\"step\\":'.length;
    expect(header[at]).toBe('1'.charCodeAt(0));
    header[at] = '7'.charCodeAt(0);
    await refused('flip-header.safetensors', header, /checksum mismatch/);

    const sum = Buffer.from(good);
    const digit = sum.toString('latin1').indexOf('"checksum":"sha256:') + 25;
    sum[digit] = sum[digit] === 0x61 ? 0x62 : 0x61;
    await refused('flip-checksum.safetensors', sum, /checksum mismatch/);

    // A flip that breaks the header's JSON is found by the safetensors reader first.
    const broken = Buffer.from(good);
    broken[8] = 0x7b ^ 0x01; // the header's opening '{'
    await refused('flip-json.safetensors', broken, /not valid JSON/);
  });

  it('a model config that differs from the expected one: names the field', async () => {
    const error = await refused(
      'config.safetensors',
      good,
      /model with hidden_size 32, but the model here has hidden_size 64/,
      {
        config: { ...SMALL, hidden_size: 64, head_dim: 16 },
      },
    );
    expect(error.details.field).toBe('config.hidden_size');
  });

  it('a missing weight, a wrong shape, a wrong dtype, an extra tensor, a missing optimizer buffer (with valid checksums)', async () => {
    const name = 'model.layers.1.mlp.up_proj.weight';
    let error = await refused(
      'missing.safetensors',
      rewritten(good, (tensors) => tensors.delete(name)),
      /weight 'model\.layers\.1\.mlp\.up_proj\.weight' is missing/,
    );
    expect(error.details.tensor).toBe(name);

    error = await refused(
      'shape.safetensors',
      rewritten(good, (tensors) => {
        tensors.set(name, { ...tensors.get(name)!, shape: [32, 64] });
      }),
      /has shape \[32, 64\], expected \[64, 32\]/,
    );
    expect(error.details).toMatchObject({ tensor: name, field: 'shape' });

    error = await refused(
      'dtype.safetensors',
      rewritten(good, (tensors) => {
        tensors.set(name, { ...tensors.get(name)!, dtype: 'F16' });
      }),
      /is F16, expected F32/,
    );
    expect(error.details).toMatchObject({ tensor: name, field: 'dtype' });

    await refused(
      'extra.safetensors',
      rewritten(good, (tensors) => {
        tensors.set('lm_head.weight', { dtype: 'F32', shape: [32, 32], values: new Float32Array(1024) });
      }),
      /tensor 'lm_head\.weight' is not a parameter/,
    );

    await refused(
      'optimizer.safetensors',
      rewritten(good, (tensors) => tensors.delete('optimizer/model.norm.weight/v')),
      /optimizer state 'optimizer\/model\.norm\.weight\/v' is missing/,
    );

    await refused(
      'format.safetensors',
      rewritten(good, (_, metadata) => {
        metadata.format = 'pt';
      }),
      /is not an ane-train checkpoint \(__metadata__\.format is 'pt'/,
    );
  });

  it('a directory, a missing file: one-line CheckpointErrors', async () => {
    await expect(loadCheckpoint(dir)).rejects.toThrow(/is a directory/);
    await expect(loadCheckpoint(join(dir, 'nope.safetensors'))).rejects.toThrow(CheckpointError);
  });
});

describe('saveCheckpoint is atomic and never damages the previous checkpoint', () => {
  it('a refused save (weights that do not fit, reserved metadata) leaves the previous file byte for byte', async () => {
    const path = join(dir, 'keep.safetensors');
    const weights = initParameters(SMALL, { seed: 1 });
    await saveCheckpoint(path, { config: SMALL, weights });
    const before = readFileSync(path);
    const bad: Checkpoint[] = [
      { config: SMALL, weights: new Map([...weights].slice(1)) },
      { config: { ...SMALL, hidden_size: 48, head_dim: 12 }, weights },
      { config: SMALL, weights, metadata: { format: 'pt' } },
      { config: SMALL, weights, data: 10n },
    ];
    for (const checkpoint of bad)
      await expect(saveCheckpoint(path, checkpoint)).rejects.toThrow(CheckpointError);
    await expect(
      saveCheckpoint(join(dir, 'no-such-dir', 'x.safetensors'), { config: SMALL, weights }),
    ).rejects.toThrow(/cannot be written \(ENOENT\)/);
    expect(Buffer.compare(readFileSync(path), before)).toBe(0);
    expect(readdirSync(dir).filter((name) => name.startsWith('.keep.safetensors'))).toEqual([]);
  });

  it('data holding NaN or ±Infinity is refused, naming the key (JSON would store null and load back something else)', async () => {
    const path = join(dir, 'nan-data.safetensors');
    const weights = initParameters(SMALL, { seed: 1 });
    await saveCheckpoint(path, { config: SMALL, weights, data: { lr: 0.5 } });
    const before = readFileSync(path);
    for (const data of [
      { lr: Number.NaN },
      { nested: { best: Number.POSITIVE_INFINITY } },
      [1, Number.NEGATIVE_INFINITY],
      Number.NaN,
    ]) {
      const error = await saveCheckpoint(path, { config: SMALL, weights, data }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CheckpointError);
      expect((error as CheckpointError).message).toMatch(
        /data must be JSON-serializable \(.* is (NaN|-?Infinity), which JSON stores as null\)/,
      );
    }
    expect(Buffer.compare(readFileSync(path), before)).toBe(0);
    expect((await loadCheckpoint(path)).data).toEqual({ lr: 0.5 });
  });

  it("the next save in the directory removes dead writers' leftover temporary files, and keeps other files", async () => {
    const path = join(dir, 'stale.safetensors');
    // The pid of a process that has exited.
    const dead = spawnSync(process.execPath, [
      '-e',
      'process.stdout.write(String(process.pid))',
    ]).stdout.toString();
    const leftover = join(dir, `.stale.safetensors.${dead}.abc123.tmp`);
    const otherName = join(dir, `.step-4.safetensors.${dead}.x9.tmp`);
    const live = join(dir, '.other.safetensors.1.abc.tmp'); // pid 1 is alive
    const unrelated = join(dir, '.notes.tmp');
    for (const file of [leftover, otherName, live, unrelated]) writeFileSync(file, 'partial');
    await saveCheckpoint(path, { config: SMALL, weights: initParameters(SMALL, { seed: 1 }) });
    const names = readdirSync(dir);
    expect(names).not.toContain(`.stale.safetensors.${dead}.abc123.tmp`);
    expect(names).not.toContain(`.step-4.safetensors.${dead}.x9.tmp`);
    expect(names).toContain('.other.safetensors.1.abc.tmp');
    expect(names).toContain('.notes.tmp');
    await expect(loadCheckpoint(path)).resolves.toBeDefined();
  });
});

describe('saveTrainerCheckpoint while the Trainer is used', () => {
  it('between fits it writes from the live arrays: a fit started meanwhile waits, loadWeights and loadState refuse', async () => {
    const t = trainer();
    await t.fit(TOKENS, { steps: 2 });
    const weightsAtSave = new Map([...t.weights].map(([n, v]) => [n, v.slice()]));
    const stateAtSave = t.saveState();
    const path = join(dir, 'live.safetensors');
    const saving = saveTrainerCheckpoint(path, t);
    expect(() => t.loadWeights(weightsAtSave)).toThrow(/a checkpoint is being written/);
    expect(() => t.loadState(stateAtSave)).toThrow(TrainError);
    const training = t.fit(TOKENS, { steps: 2 }); // must not change the arrays under the writer
    await saving;
    await training;
    expect(t.step).toBe(4);
    const checkpoint = await loadCheckpoint(path);
    expect(checkpoint.trainer!.step).toBe(2);
    for (const [name, values] of weightsAtSave)
      expect(bits(checkpoint.weights.get(name)!), name).toEqual(bits(values));
    expect(bits(checkpoint.trainer!.optimizer.data)).toEqual(bits(stateAtSave.optimizer.data));
    expect(checkpoint.trainer!.optimizer.meta.tensors).toEqual(stateAtSave.optimizer.meta.tensors);
    expect(checkpoint.trainer!.optimizer.meta.buffers).toEqual(stateAtSave.optimizer.meta.buffers);
    t.loadWeights(weightsAtSave); // released afterwards
  }, 60_000);

  it('during fit (from a callback, not awaited) it copies at once: the file holds that step while training goes on', async () => {
    const t = trainer();
    const path = join(dir, 'during.safetensors');
    let saving: Promise<void> | undefined;
    let weightsAtSave: Map<string, Float32Array> | undefined;
    let dataAtSave: Float32Array | undefined;
    await t.fit(TOKENS, {
      steps: 4,
      callbacks: {
        onStepEnd: (log) => {
          if (log.step !== 1) return;
          weightsAtSave = new Map([...t.weights].map(([n, v]) => [n, v.slice()]));
          dataAtSave = t.saveState().optimizer.data;
          saving = saveTrainerCheckpoint(path, t);
        },
      },
    });
    await saving;
    const checkpoint = await loadCheckpoint(path);
    expect(checkpoint.trainer!.step).toBe(2);
    for (const [name, values] of weightsAtSave!)
      expect(bits(checkpoint.weights.get(name)!), name).toEqual(bits(values));
    expect(bits(checkpoint.trainer!.optimizer.data)).toEqual(bits(dataAtSave!));
    // and the run went on past it
    expect(t.step).toBe(4);
    expect(bits(t.weights.get('model.norm.weight')!)).not.toEqual(
      bits(weightsAtSave!.get('model.norm.weight')!),
    );
  }, 60_000);
});

describe('bad arguments are CheckpointErrors that name the fix', () => {
  it('a path that is not a string, options or a checkpoint that is not an object, something that is not a Trainer', async () => {
    const weights = initParameters(SMALL, { seed: 1 });
    await expect(saveCheckpoint(42 as never, { config: SMALL, weights })).rejects.toThrow(
      /path must be a file path/,
    );
    await expect(saveCheckpoint(join(dir, 'x.safetensors'), null as never)).rejects.toThrow(CheckpointError);
    await expect(
      saveCheckpoint(join(dir, 'x.safetensors'), { config: SMALL, weights: {} as never }),
    ).rejects.toThrow(/weights must be a Map/);
    await expect(loadCheckpoint(undefined as never)).rejects.toThrow(/path must be a file path/);
    await expect(loadCheckpoint(join(dir, 'x.safetensors'), null as never)).rejects.toThrow(
      /options must be an object/,
    );
    await expect(saveTrainerCheckpoint(join(dir, 'x.safetensors'), {} as never)).rejects.toThrow(
      /trainer must be a Trainer/,
    );
    expect(() => restoreTrainer({} as never, { config: SMALL, weights })).toThrow(
      /trainer must be a Trainer/,
    );
    const t = trainer();
    expect(() => restoreTrainer(t, null as never)).toThrow(/the result of loadCheckpoint/);
    await expect(saveTrainerCheckpoint(join(dir, 'x.safetensors'), t, null as never)).rejects.toThrow(
      /extra must be an object/,
    );
    expect(readdirSync(dir)).not.toContain('x.safetensors');
  });
});

describe('restoreTrainer', () => {
  it('refuses a checkpoint of another model or another optimizer, leaving the Trainer as it was', async () => {
    const source = trainer();
    await source.fit(TOKENS, { steps: 1 });
    const path = join(dir, 'restore.safetensors');
    await saveTrainerCheckpoint(path, source);
    const checkpoint = await loadCheckpoint(path);

    const other = trainer({ model: { ...SMALL, intermediate_size: 96 } });
    expect(() => restoreTrainer(other, checkpoint)).toThrow(/intermediate_size 64, this Trainer's 96/);

    const unscaled = trainer({ lossScale: false });
    const before = new Map([...unscaled.weights].map(([n, v]) => [n, v.slice()]));
    expect(() => restoreTrainer(unscaled, checkpoint)).toThrow(/lossScale: false/);
    for (const [name, values] of unscaled.weights) expect(bits(values)).toEqual(bits(before.get(name)!));
    expect(unscaled.step).toBe(0);
  }, 60_000);

  it('during fit it is a TrainError naming restoreTrainer, and the run goes on unchanged', async () => {
    const source = trainer();
    await source.fit(TOKENS, { steps: 1 });
    const path = join(dir, 'restore-during-fit.safetensors');
    await saveTrainerCheckpoint(path, source);
    const checkpoint = await loadCheckpoint(path);
    const reference = trainer();
    const expected = (await reference.fit(TOKENS, { steps: 2 })).history.loss;
    const running = trainer();
    let refused: unknown;
    const history = await running.fit(TOKENS, {
      steps: 2,
      callbacks: {
        onStepEnd: () => {
          if (refused !== undefined) return;
          try {
            restoreTrainer(running, checkpoint);
            refused = 'nothing thrown';
          } catch (error) {
            refused = error;
          }
        },
      },
    });
    expect(refused).toBeInstanceOf(TrainError);
    expect((refused as Error).message).toMatch(/^restoreTrainer: fit is running on this Trainer/);
    expect(history.history.loss).toEqual(expected);
  }, 60_000);
});
