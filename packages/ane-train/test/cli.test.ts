/**
 * The `ane-train` binary as a user runs it: the built CLI (dist/cli.js) in a child process, its
 * exit codes, what it prints on stdout and stderr. Build first (`pnpm --filter ane-train build`).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeSafetensors, readSafetensorsFile, tensorToFloat32 } from '../src/io/safetensors';
import { parseLlamaConfig } from '../src/model/config';
import { initParameters, parameterSpecs } from '../src/model/parameters';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: readonly string[], cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { cwd, env: { ...process.env, NO_COLOR: '1' }, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

// A small GQA Llama as a Hugging Face config.json.
const SMALL_LLAMA = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 256,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  max_position_embeddings: 128,
};

let dir: string;
const write = (name: string, value: unknown): string => {
  const path = join(dir, name);
  writeFileSync(path, typeof value === 'string' ? value : JSON.stringify(value));
  return path;
};

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`pnpm --filter ane-train build\` first`);
  dir = mkdtempSync(join(tmpdir(), 'ane-train-cli-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('ane-train plan', () => {
  it('prints a JSON summary whose top-level programs count does not grow with depth (llama and qwen3)', async () => {
    const counts: Record<string, number> = {};
    for (const modelType of ['llama', 'qwen3'])
      for (const layers of [2, 4]) {
        const config = write(`${modelType}-${layers}.json`, {
          ...SMALL_LLAMA,
          model_type: modelType,
          num_hidden_layers: layers,
        });
        const run = await cli(['plan', '--config', config, '--seq', '32', '--json'], dir);
        expect(run.stderr).toBe('');
        expect(run.code).toBe(0);
        const summary = JSON.parse(run.stdout);
        expect(summary.model.layers).toBe(layers);
        counts[`${modelType}-${layers}`] = summary.programs;
      }
    expect(counts['llama-4']).toBe(counts['llama-2']);
    expect(counts['qwen3-4']).toBe(counts['qwen3-2']);
    expect(counts['llama-2']).toBeGreaterThan(0);
  });

  it('plans stories110M with at most 24 distinct programs', async () => {
    const run = await cli(['plan', '--preset', 'stories110M', '--json'], dir);
    expect(run.stderr).toBe('');
    const summary = JSON.parse(run.stdout);
    expect(summary.programs).toBeLessThanOrEqual(24);
    expect(summary.programList).toHaveLength(summary.programs);
    // 12 layers of 768 (q, k, v, o: 768×768; w1, w3, w2: 768×2048), norms, a tied 32000×768 table
    expect(summary.parameters).toBe(12 * (4 * 768 * 768 + 3 * 768 * 2048 + 2 * 768) + 768 + 32000 * 768);
    expect(summary.placements.length).toBe(summary.opsOnAne + summary.opsOnHost);
  }, 60_000);

  it('plans qwen3-0.6b with as many programs at 28 layers as at 4, its classifier on the host as reported', async () => {
    const run = await cli(['plan', '--preset', 'qwen3-0.6b', '--json'], dir);
    expect(run.stderr).toBe('');
    const summary = JSON.parse(run.stdout);
    expect(summary.model.layers).toBe(28);
    expect(summary.programs).toBeLessThanOrEqual(24);
    // 151936 vocabulary columns next to the positions exceed M4's spatial cap (65536)
    expect(summary.hostPlacements.map((p: { op: string }) => p.op)).toContain('output');
    // At full width the top layers' backward kernels fuse differently from the middle layers' (a
    // 2- or 3-layer model has one program fewer); from 4 layers on the count stays put.
    const shallow = write('qwen3-0.6b-4.json', {
      model_type: 'qwen3',
      hidden_size: 1024,
      intermediate_size: 3072,
      num_hidden_layers: 4,
      num_attention_heads: 16,
      num_key_value_heads: 8,
      head_dim: 128,
      vocab_size: 151936,
      rms_norm_eps: 1e-6,
      rope_theta: 1000000,
      tie_word_embeddings: true,
      max_position_embeddings: 40960,
    });
    const four = JSON.parse((await cli(['plan', '--config', shallow, '--json'], dir)).stdout);
    expect(four.model.layers).toBe(4);
    expect(four.programs).toBe(summary.programs);
  }, 60_000);

  it('prints text by default, with the batch and seq it was given', async () => {
    const run = await cli(['plan', '--preset', 'tiny', '--batch', '3', '--seq', '16'], dir);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('3 sequences of 16 positions on M4');
    expect(run.stdout).toMatch(/Programs: \d+ distinct/);
    expect(run.stdout).toContain('weight_grad');
  });

  it('ends with a step-time estimate (not measured) for the chip; --accumulate spreads the optimizer', async () => {
    const text = await cli(['plan', '--preset', 'tiny', '--seq', '16', '--chip', 'M5'], dir);
    expect(text.stdout).toContain('Step-time estimate (M5, not measured)');
    const one = JSON.parse((await cli(['plan', '--preset', 'tiny', '--seq', '16', '--json'], dir)).stdout);
    const four = JSON.parse(
      (await cli(['plan', '--preset', 'tiny', '--seq', '16', '--json', '--accumulate', '4'], dir)).stdout,
    );
    expect([one.estimate.measured, one.estimate.chip, one.estimate.accumulate]).toEqual([false, 'M4', 1]);
    expect(four.estimate.accumulate).toBe(4);
    expect(four.estimate.ms.optimizer).toBeCloseTo(one.estimate.ms.optimizer / 4, 9);
  });

  it('reads ane-train.config.json from the working directory; flags override its keys', async () => {
    const cwd = mkdtempSync(join(dir, 'options-'));
    writeFileSync(join(cwd, 'ane-train.config.json'), JSON.stringify({ preset: 'tiny', batch: 3, seq: 16 }));
    const fromFile = JSON.parse((await cli(['plan', '--json'], cwd)).stdout);
    expect([fromFile.batch, fromFile.seq, fromFile.model.hiddenSize]).toEqual([3, 16, 64]);
    const overridden = JSON.parse((await cli(['plan', '--json', '--batch', '2'], cwd)).stdout);
    expect([overridden.batch, overridden.seq]).toEqual([2, 16]);
    // --options names another file; its `config` is relative to the file
    write('sub-config.json', { ...SMALL_LLAMA, hidden_size: 32 });
    const options = write('opts.json', { config: 'sub-config.json', seq: 8 });
    const named = JSON.parse((await cli(['plan', '--json', '--options', options], cwd)).stdout);
    expect([named.model.hiddenSize, named.seq, named.batch]).toEqual([32, 8, 1]);
  });
});

describe('ane-train grads', () => {
  // 1 layer, GQA (2 query heads on 1 KV head), untied classifier: every kind of parameter.
  const TINY = {
    model_type: 'llama',
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    vocab_size: 64,
    tie_word_embeddings: false,
    max_position_embeddings: 64,
  };
  const B = 2;
  const S = 8;

  function files(name: string, options: { dropTensor?: string; tokens?: number } = {}) {
    const config = write(`${name}-config.json`, TINY);
    const weights = initParameters(parseLlamaConfig(TINY), { seed: 7 });
    const specs = parameterSpecs(parseLlamaConfig(TINY));
    const tensors = new Map(
      specs
        .filter((spec) => spec.name !== options.dropTensor)
        .map((spec) => [
          spec.name,
          { dtype: 'F32' as const, shape: [...spec.shape], values: weights.get(spec.name)! },
        ]),
    );
    const weightsPath = join(dir, `${name}-weights.safetensors`);
    writeFileSync(weightsPath, encodeSafetensors(tensors));
    // B × (S+1) little-endian uint16 ids below the vocabulary
    const ids = new Uint16Array(options.tokens ?? B * (S + 1)).map((_, i) => (i * 37 + 11) % TINY.vocab_size);
    const tokensPath = join(dir, `${name}-tokens.bin`);
    writeFileSync(tokensPath, new Uint8Array(ids.buffer));
    const out = join(dir, `${name}-grads.safetensors`);
    const args = ['grads', '--config', config, '--weights', weightsPath, '--tokens', tokensPath];
    return {
      specs,
      weightsPath,
      tokensPath,
      out,
      args: [...args, '--batch', `${B}`, '--seq', `${S}`, '--out', out],
    };
  }

  it('prints the loss and writes every parameter gradient as F32 under its HF name', async () => {
    const { specs, out, args } = files('ok');
    const run = await cli([...args, '--backend', 'sim'], dir);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const loss = Number(/^loss (\S+)$/m.exec(run.stdout)?.[1]);
    // Weights of std 0.02 give logits near 0: the cross-entropy of a near-uniform guess is ln V.
    expect(Math.abs(loss - Math.log(TINY.vocab_size))).toBeLessThan(0.05);
    expect(run.stdout).toContain(`wrote ${specs.length} gradients`);
    expect(run.stdout).toContain(out);

    const { tensors } = await readSafetensorsFile(out);
    expect([...tensors.keys()].sort()).toEqual(specs.map((s) => s.name).sort());
    for (const spec of specs) {
      const tensor = tensors.get(spec.name)!;
      expect({ name: spec.name, dtype: tensor.dtype, shape: tensor.shape }).toEqual({
        name: spec.name,
        dtype: 'F32',
        shape: [...spec.shape],
      });
      const values = tensorToFloat32(tensor);
      expect(values.every(Number.isFinite)).toBe(true);
      expect(values.some((v) => v !== 0)).toBe(true);
    }
    // Softmax gradients sum to zero over the vocabulary at every position, so the classifier's
    // gradient (Σ_pos dlogits ⊗ h) sums to zero over its vocabulary rows, column by column.
    const head = tensorToFloat32(tensors.get('lm_head.weight')!);
    const D = TINY.hidden_size;
    for (let j = 0; j < D; j++) {
      let sum = 0;
      let magnitude = 0;
      for (let v = 0; v < TINY.vocab_size; v++) {
        sum += head[v * D + j]!;
        magnitude += Math.abs(head[v * D + j]!);
      }
      expect(Math.abs(sum)).toBeLessThan(1e-3 * magnitude);
    }
  }, 60_000);

  it('a bad weights or tokens file exits 2 with one line naming the file', async () => {
    const missing = files('missing', { dropTensor: 'model.layers.0.self_attn.k_proj.weight' });
    const run = await cli(missing.args, dir);
    expect(run.code).toBe(2);
    expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/^error: CheckpointError: /);
    expect(run.stderr).toContain(missing.weightsPath);
    expect(run.stderr).toContain('model.layers.0.self_attn.k_proj.weight');
    expect(existsSync(missing.out)).toBe(false);

    const short = files('short', { tokens: B * (S + 1) - 1 });
    const second = await cli(short.args, dir);
    expect(second.code).toBe(2);
    expect(second.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(second.stderr).toMatch(/^error: DataError: /);
    expect(second.stderr).toContain(short.tokensPath);
    expect(existsSync(short.out)).toBe(false);
  });
});

describe('ane-train usage and errors', () => {
  it('--help works for the command and each subcommand', async () => {
    const main = await cli(['--help'], dir);
    expect(main.code).toBe(0);
    expect(main.stdout).toContain('grads');
    expect(main.stdout).toContain('plan');
    for (const sub of ['plan', 'grads']) {
      const run = await cli([sub, '--help'], dir);
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`ane-train ${sub}`);
      expect(run.stdout).toContain('--options');
    }
  });

  it('a bad command line exits 2 with one error line that points at --help (the usage pushed it off a terminal)', async () => {
    const cases: [string[], string][] = [
      [['plan', '--preset', 'tiny', '--bacth', '2'], "unknown option '--bacth' (did you mean --batch?)"],
      [['plan', '--preset', 'tiny', '--batch', 'two'], "--batch must be a whole number ≥ 1, got 'two'"],
      [['plan', '--preset', 'tiny', '--batch', '0'], "--batch must be a whole number ≥ 1, got '0'"],
      [['plan', '--preset', 'stories100M'], 'did you mean stories110M?'],
      [['plan', '--preset', 'tiny', '--chip', 'M9'], '--chip must be one of M1, M2, M3, M4, M5'],
      [['plan'], 'which model? give --preset P or --config config.json'],
      [['plan', '--preset', 'tiny', '--config', 'c.json'], 'give --preset or --config, not both'],
      [['plan', '--preset'], '--preset needs a value'],
      [['plan', 'tiny'], "unexpected argument 'tiny'"],
      [['grads', '--config', 'c.json'], 'missing --weights'],
      [['grads', '--config', 'c.json', '--weights', 'w', '--tokens', 't', '--out', 'o'], 'missing --batch'],
      [['grads', '--backend', 'gpu'], "--backend must be one of auto, ane, sim, got 'gpu'"],
      [['fly'], "unknown command 'fly'"],
    ];
    for (const [args, message] of cases) {
      const run = await cli(args, dir);
      expect({ args, code: run.code }).toEqual({ args, code: 2 });
      const first = run.stderr.split('\n')[0]!;
      expect(first).toMatch(/^error: /);
      expect(first).toContain(message);
      expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(first).toMatch(
        args[0] === 'fly'
          ? /\(ane-train --help lists the commands\)$/
          : /\(ane-train \w+ --help lists its options\)$/,
      );
      expect(run.stdout).toBe('');
    }
  });

  it('a bad model config exits 2 with one ConfigError line naming the file and the field', async () => {
    const config = write('bad-config.json', { ...SMALL_LLAMA, num_attention_heads: 'four' });
    const run = await cli(['plan', '--config', config], dir);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: ConfigError: /);
    expect(lines[0]).toContain(config);
    expect(lines[0]).toContain("'num_attention_heads'");

    const gqa = write('bad-gqa.json', { ...SMALL_LLAMA, num_key_value_heads: 3 });
    const second = await cli(['plan', '--config', gqa], dir);
    expect(second.code).toBe(2);
    expect(second.stderr).toMatch(/^error: ConfigError: .*'num_key_value_heads'/);
    expect(second.stderr).toContain(gqa);

    for (const [name, text, why] of [
      ['missing.json', undefined, 'does not exist'],
      ['not-json.json', '{ hidden_size: 64', 'is not valid JSON'],
    ] as const) {
      const path = text === undefined ? join(dir, name) : write(name, text);
      const missing = await cli(['plan', '--config', path], dir);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toBe(`${missing.stderr.split('\n')[0]}\n`);
      expect(missing.stderr).toContain(path);
      expect(missing.stderr).toContain(why);
    }
  });

  it('a bad options file exits 2 with one ConfigError line naming the file and the key', async () => {
    for (const [value, key] of [
      [{ preset: 'tiny', batch: 0 }, "'batch'"],
      [{ preset: 'tiny', bacth: 2 }, "unknown key 'bacth'"],
      [{ preset: 'tiny', chip: 'M9' }, "'chip'"],
    ] as const) {
      const options = write('options.json', value);
      const run = await cli(['plan', '--options', options], dir);
      expect(run.code).toBe(2);
      expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(run.stderr).toMatch(/^error: ConfigError: options file /);
      expect(run.stderr).toContain(options);
      expect(run.stderr).toContain(key);
      expect(run.stderr).not.toMatch(/\n\s+at /);
    }
  });
});
