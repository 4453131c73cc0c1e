/**
 * `ane-train train | sample | import | export` as a user runs them: the built CLI (dist/cli.js) in a
 * child process, on the simulator, with stdout a pipe (so progress is plain lines). Build first
 * (`pnpm --filter ane-train build`).
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, saveCheckpoint } from '../src/checkpoint';
import { writeLlama2cCheckpoint } from '../src/convert';
import { loadTokenizer } from '../src/data';
import { PRESETS, parseLlamaConfig } from '../src/model/config';
import { initParameters } from '../src/model/parameters';
import type { MetricsRecord } from '../src/report/metrics';
import { checkWellFormed } from '../src/report/xml-check.test-helper';
import { Sampler } from '../src/sample';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let dir: string;
function cli(args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { cwd: dir, env: { ...process.env, NO_COLOR: '1' }, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

// English text: ~12 KB of short sentences (bytes: the tiny preset's vocabulary).
const SENTENCES = [
  'The cat sat on the warm mat and looked at the bird.',
  'A little girl named Lily found a red ball in the park.',
  'Tom and his dog ran to the river to see the big boat.',
  'The sun was bright, and the children played all day.',
  'Mom made a cake, and everyone said it was very good.',
];
const TEXT = Array.from({ length: 48 }, (_, i) => SENTENCES[(i * 3) % SENTENCES.length]).join(' ');
/** A short run with a constant learning rate, so a shorter run resumed to more steps is the same run. */
const SMALL = [
  '--preset',
  'tiny',
  '--data',
  'story.txt',
  '--seq',
  '16',
  '--batch',
  '2',
  '--lr',
  '0.003',
  '--min-lr',
  '0.003',
  '--warmup',
  '0',
  '--eval-every',
  '3',
  '--eval-batches',
  '2',
  '--log-every',
  '1',
  '--checkpoint-every',
  '0',
  '--sample-tokens',
  '8',
  '--backend',
  'sim',
  '--seed',
  '5',
];

const metricsOf = (run: string): MetricsRecord[] =>
  readFileSync(join(dir, run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as MetricsRecord);

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`pnpm --filter ane-train build\` first`);
  dir = mkdtempSync(join(tmpdir(), 'ane-train-cli-train-'));
  writeFileSync(join(dir, 'story.txt'), TEXT);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ane-train train', () => {
  it('writes metrics.jsonl, a checkpoint, loss.svg and report.html; plain progress lines off a TTY; ends with a sample', async () => {
    const run = await cli(['train', ...SMALL, '--steps', '6', '--out', 'runA']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    // One plain line per logged step, and the validation lines.
    const stepLines = run.stdout.split('\n').filter((l) => /^step +\d+\/6 {2}loss /.test(l));
    expect(stepLines.map((l) => Number(/^step +(\d+)/.exec(l)![1]))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(run.stdout).toMatch(/^step 0\/6 {2}val loss \d+\.\d{4}$/m);
    expect(run.stdout).toMatch(/^step 3\/6 {2}val loss \d+\.\d{4} \(start \d+\.\d{4}\)$/m);
    expect(run.stdout).not.toContain('\r');
    expect(run.stdout).toContain('A sample (prompt "Once upon a time"):\nOnce upon a time');
    expect(run.stdout).toContain('report.html');

    const records = metricsOf('runA');
    expect(records.map((r) => r.step)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(Object.keys(records[0]!).sort()).toEqual(['step', 'time', 'valLoss']);
    for (const r of records.slice(1)) {
      expect(r.loss).toBeGreaterThan(0);
      expect(r.lr).toBe(0.003);
      expect(r.tokensPerSec).toBeGreaterThan(0);
    }
    expect(records.filter((r) => r.valLoss !== undefined).map((r) => r.step)).toEqual([0, 3, 6]);
    // The first loss of a byte model at init is about ln 256.
    expect(Math.abs(records[1]!.loss! - Math.log(256))).toBeLessThan(0.3);

    const svg = readFileSync(join(dir, 'runA', 'loss.svg'), 'utf8');
    checkWellFormed(svg);
    const polyline = /<polyline[^>]*data-series="training"[^>]*points="([^"]+)"/.exec(svg);
    expect(polyline![1]!.split(' ')).toHaveLength(6);
    const html = readFileSync(join(dir, 'runA', 'report.html'), 'utf8');
    expect(html.match(/<svg /g)!.length).toBeGreaterThanOrEqual(4);
    expect(html).toContain('The plan of a step');
    expect(html).toMatch(/\d+ distinct programs/);
    expect(html).not.toMatch(/<script/);

    const checkpoint = await loadCheckpoint(join(dir, 'runA', 'checkpoints', 'latest.safetensors'));
    expect(checkpoint.trainer?.step).toBe(6);
    expect(checkpoint.metadata?.tokenizer).toBe('byte');
  }, 120_000);

  it('--resume continues the run: step numbers go on, metrics are appended, and the losses equal an uninterrupted run', async () => {
    const first = await cli(['train', ...SMALL, '--steps', '4', '--out', 'runB']);
    expect(first.code).toBe(0);
    const resumed = await cli(['train', '--resume', 'runB', '--steps', '6']);
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toContain('steps 4 → 6');
    const lines = resumed.stdout.split('\n').filter((l) => /^step +\d+\/6 {2}loss /.test(l));
    expect(lines.map((l) => Number(/^step +(\d+)/.exec(l)![1]))).toEqual([5, 6]);
    const records = metricsOf('runB');
    expect(records.filter((r) => r.loss !== undefined).map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
    // The same losses, bit for bit, as the 6-step run that never stopped (runA of the test above).
    const straight = metricsOf('runA');
    const losses = (rs: MetricsRecord[]) => rs.filter((r) => r.loss !== undefined).map((r) => r.loss);
    expect(losses(records)).toEqual(losses(straight));
  }, 120_000);

  it('Ctrl-C saves a checkpoint after the step in flight, prints how to resume and exits 130', async () => {
    const child = spawn(process.execPath, [CLI, 'train', ...SMALL, '--steps', '100000', '--out', 'runC'], {
      cwd: dir,
      env: { ...process.env, NO_COLOR: '1' },
    });
    let stdout = '';
    let stderr = '';
    let sent = false;
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (!sent && /^step +3\/100000 {2}loss/m.test(stdout)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(stderr).toBe('');
    expect(code).toBe(130);
    expect(stdout).toMatch(/continue with: ane-train train --resume runC/);
    const saved = Number(/stopped at step (\d+) of 100000/.exec(stdout)![1]);
    expect(saved).toBeGreaterThanOrEqual(3);
    const checkpoint = await loadCheckpoint(join(dir, 'runC', 'checkpoints', 'latest.safetensors'));
    expect(checkpoint.trainer?.step).toBe(saved);
    expect(metricsOf('runC').at(-1)!.step).toBe(saved);
  }, 120_000);
});

describe('a second Ctrl-C', () => {
  it('exits 130 at once, without waiting for the step in flight or saving', async () => {
    const child = spawn(
      process.execPath, // Steps of ~0.2 s (demo corpus, batch 8 × 64): the second Ctrl-C comes during the step in flight.
      [
        CLI,
        'train',
        '--seq',
        '64',
        '--batch',
        '8',
        '--eval-every',
        '0',
        '--log-every',
        '1',
        '--backend',
        'sim',
        '--steps',
        '100000',
        '--out',
        'runE',
      ],
      {
        cwd: dir,
        env: { ...process.env, NO_COLOR: '1' },
      },
    );
    let stdout = '';
    let stderr = '';
    // Signals do not queue: two SIGINTs sent back to back can arrive as one. The second is sent only
    // once the run has said it took the first.
    let sentFirst = false;
    let sentSecond = false;
    const onOutput = () => {
      if (!sentFirst && /^step +2\/100000 {2}loss/m.test(stdout)) {
        sentFirst = true;
        child.kill('SIGINT');
      }
      if (sentFirst && !sentSecond && /Ctrl-C: saving a checkpoint/.test(stdout + stderr)) {
        sentSecond = true;
        child.kill('SIGINT');
      }
    };
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      onOutput();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      onOutput();
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code).toBe(130);
    expect(stderr).toContain('second Ctrl-C: exiting without saving');
    expect(stdout).not.toContain('continue with:');
  }, 120_000);
});

describe('fine-tuning and bench', () => {
  it("--init starts from a run's weights: the first loss is that run's, not chance", async () => {
    const run = await cli(['train', '--init', 'runA', ...SMALL.slice(2), '--steps', '2', '--out', 'runD']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const first = metricsOf('runD').find((r) => r.step === 1)!.loss!;
    const trained = metricsOf('runA').at(-1)!.loss!;
    expect(first).toBeLessThan(Math.log(256) - 0.5);
    expect(Math.abs(first - trained)).toBeLessThan(0.5);
    const wrong = await cli(['train', '--init', 'runA', '--preset', 'tiny']);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('--init brings its own model');
  }, 120_000);

  it('bench --json reports ms/step and tokens/s that agree with each other', async () => {
    const run = await cli([
      'bench',
      '--seq',
      '16',
      '--batch',
      '2',
      '--steps',
      '2',
      '--warmup',
      '1',
      '--backend',
      'sim',
      '--json',
    ]);
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout) as {
      steps: number;
      msPerStep: number;
      tokensPerSecond: number;
      backend: string;
    };
    expect(result.steps).toBe(2);
    expect(result.backend).toBe('sim');
    expect(result.tokensPerSecond).toBeCloseTo((2 * 16) / (result.msPerStep / 1000), 6);
  }, 120_000);
});

describe('sample, import and export', () => {
  it('a llama2.c file imports, exports to Hugging Face, and samples the same text from either, deterministically by seed', async () => {
    const config = { ...PRESETS.tiny, num_key_value_heads: 4 };
    await writeLlama2cCheckpoint(join(dir, 'model.bin'), config, initParameters(config, { seed: 3 }));
    const imported = await cli(['import', 'model.bin', '--out', 'imported.safetensors']);
    expect(imported.stderr).toBe('');
    expect(imported.code).toBe(0);
    const exported = await cli(['export', 'imported.safetensors', '--out', 'hf']);
    expect(exported.code).toBe(0);
    for (const file of ['model.safetensors', 'config.json', 'generation_config.json'])
      expect(existsSync(join(dir, 'hf', file))).toBe(true);
    const args = [
      '--max-tokens',
      '12',
      '--seed',
      '9',
      '--temperature',
      '1',
      '--backend',
      'sim',
      '--prompt',
      'Hi',
    ];
    const a = await cli(['sample', '--checkpoint', 'imported.safetensors', ...args]);
    const b = await cli(['sample', '--checkpoint', 'imported.safetensors', ...args]);
    const c = await cli(['sample', '--checkpoint', 'hf', ...args]);
    const d = await cli(['sample', '--checkpoint', 'hf', ...args.slice(0, 3), '10', ...args.slice(4)]);
    expect(a.code).toBe(0);
    expect(a.stderr).toMatch(/^[\d.]+ tokens\/s \(seed 9\)\n$/);
    expect(a.stdout.startsWith('Hi')).toBe(true);
    expect(b.stdout).toBe(a.stdout);
    expect(c.stdout).toBe(a.stdout);
    expect(d.stdout).not.toBe(a.stdout);
  }, 120_000);
});

describe('sample with a SentencePiece vocabulary', () => {
  it('streams the text a whole decode of prompt + generated ids gives (the first generated token keeps its leading space)', async () => {
    // A small model over Llama 2's 32000-token vocabulary, random weights, greedy.
    const config = parseLlamaConfig({
      hidden_size: 16,
      intermediate_size: 32,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      vocab_size: 32000,
      max_position_embeddings: 32,
      tie_word_embeddings: true,
    });
    const weights = initParameters(config, { seed: 11 });
    await saveCheckpoint(join(dir, 'sp.safetensors'), { config, weights, metadata: { tokenizer: 'llama2' } });
    const run = await cli([
      'sample',
      '--checkpoint',
      'sp.safetensors',
      '--temperature',
      '0',
      '--max-tokens',
      '6',
      '--seq',
      '32',
      '--backend',
      'sim',
    ]);
    expect(run.stderr).toMatch(/tokens\/s/);
    expect(run.code).toBe(0);
    const tokenizer = await loadTokenizer('llama2');
    const prompt = [tokenizer.bosId!, ...tokenizer.encode('Once upon a time')];
    const sampler = await Sampler.open({ model: config, weights, backend: 'sim', seq: 32 });
    try {
      const result = await sampler.generate(prompt, {
        temperature: 0,
        maxTokens: 6,
        eosId: tokenizer.eosId!,
      });
      // The case that matters: the first generated token starts a word (decoded alone, it would lose its space).
      expect(tokenizer.decode([...prompt, result.tokens[0]!])).toMatch(/^Once upon a time /);
      expect(tokenizer.decode([result.tokens[0]!])).not.toMatch(/^ /);
      expect(run.stdout).toBe(`${tokenizer.decode([...prompt, ...result.tokens])}\n`);
    } finally {
      await sampler.dispose();
    }
  }, 120_000);
});

describe('user errors: one line, exit 2', () => {
  it('bad data, tokenizer, checkpoint and run directories are one error line naming the file', async () => {
    writeFileSync(join(dir, 'empty.txt'), '');
    writeFileSync(join(dir, 'binary.txt'), Buffer.from([0x48, 0x69, 0x00, 0xff, 0x10]));
    writeFileSync(join(dir, 'short.txt'), 'Too short.');
    writeFileSync(join(dir, 'tokenizer.json'), '{ not json');
    writeFileSync(join(dir, 'odd.bin'), Buffer.from([1, 0, 2]));
    const corrupt = join(dir, 'corrupt.safetensors');
    writeFileSync(corrupt, Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, 0x7b]));
    const base = ['--preset', 'tiny', '--seq', '16', '--batch', '2', '--steps', '2', '--backend', 'sim'];
    const cases: [string[], RegExp, string][] = [
      [['train', ...base, '--data', 'missing.txt', '--out', 'e1'], /^error: DataError: /, 'missing.txt'],
      [['train', ...base, '--data', 'empty.txt', '--out', 'e2'], /^error: DataError: /, 'empty.txt'],
      [['train', ...base, '--data', 'binary.txt', '--out', 'e3'], /^error: DataError: /, 'binary.txt'],
      [['train', ...base, '--data', 'short.txt', '--out', 'e4'], /^error: DataError: /, 'short.txt'],
      [['train', ...base, '--data', 'odd.bin', '--out', 'e5'], /^error: DataError: /, 'odd.bin'],
      [
        ['train', ...base, '--data', 'story.txt', '--tokenizer', 'tokenizer.json', '--out', 'e6'],
        /^error: DataError: /,
        'tokenizer.json',
      ],
      [['sample', '--checkpoint', 'corrupt.safetensors'], /^error: CheckpointError: /, 'corrupt.safetensors'],
      [['import', 'nothing.bin', '--out', 'x.safetensors'], /^error: CheckpointError: /, 'nothing.bin'],
    ];
    for (const [args, pattern, file] of cases) {
      const run = await cli(args);
      expect({ args, code: run.code }).toEqual({ args, code: 2 });
      expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(run.stderr).toMatch(pattern);
      expect(run.stderr).toContain(file);
      expect(run.stderr).not.toMatch(/\n\s+at /);
    }
  }, 120_000);

  it('a bad command line is one error line, exit 2', async () => {
    mkdirSync(join(dir, 'existing'), { recursive: true });
    writeFileSync(join(dir, 'existing', 'metrics.jsonl'), '');
    // A run killed before its first checkpoint: run.json only.
    mkdirSync(join(dir, 'no-checkpoint'), { recursive: true });
    writeFileSync(
      join(dir, 'no-checkpoint', 'run.json'),
      JSON.stringify({
        format: 'ane-train/run',
        settings: {
          modelName: 'tiny',
          model: PRESETS.tiny,
          tokenizer: 'byte',
          steps: 4,
          batch: 2,
          seq: 16,
          lr: 0.003,
          minLr: 0.003,
          warmup: 0,
          weightDecay: 0.1,
          accumulate: 1,
          evalEvery: 0,
          evalBatches: 1,
          valFraction: 0.1,
          checkpointEvery: 0,
          logEvery: 1,
          seed: 1,
          backend: 'sim',
          sampleTokens: 0,
          prompt: 'Once upon a time',
        },
      }),
    );
    const cases: [string[], string][] = [
      [['train', '--steps', 'many'], "--steps must be a whole number ≥ 1, got 'many'"],
      [['train', '--lr', '-1'], "--lr must be a number > 0, got '-1'"],
      [['train', '--val-fraction', '1'], '--val-fraction must be a number ≥ 0 and < 1'],
      [['train', '--resume', 'nowhere'], 'no run.json there'],
      [['train', '--resume', 'runA', '--batch', '4'], '--batch cannot change when resuming'],
      [
        ['train', '--out', 'existing', '--preset', 'tiny'],
        'already holds a training run: continue it with --resume',
      ],
      [['train', '--resume', 'no-checkpoint'], 'the run has no checkpoint yet'],
      // It was cut to --steps - 1 without a word.
      [['train', '--warmup', '10', '--steps', '5'], '--warmup 10 must be below --steps 5'],
      // It was accepted and silently ignored.
      [['train', '--resume', 'no-checkpoint', '--options', 'o.json'], '--options is not read with --resume'],
      [['sample'], 'missing --checkpoint'],
      [['import', 'a.bin'], 'missing --out'],
      [['export', 'a', 'b', '--out', 'c'], "unexpected argument 'b'"],
      [['export', 'a', '--out', 'c', '--dtype', 'F64'], '--dtype must be one of F32, F16, BF16'],
    ];
    for (const [args, message] of cases) {
      const run = await cli(args);
      expect({ args, code: run.code }).toEqual({ args, code: 2 });
      const first = run.stderr.split('\n')[0]!;
      expect(first).toMatch(/^error: /);
      expect(first).toContain(message);
      expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
    }
  }, 120_000);
});

describe('nothing a user already has is overwritten or lost', () => {
  const oneLineError = (run: Run, pattern: RegExp) => {
    expect(run.code).toBe(2);
    expect(run.stderr.split('\n')[0]).toMatch(pattern);
    expect(run.stderr).not.toMatch(/internal error|\n\s+at /);
  };

  it('train --out onto a file (or below one) is a usage error, not an internal error', async () => {
    writeFileSync(join(dir, 'a-file'), 'mine\n');
    for (const out of ['a-file', 'a-file/run']) {
      const run = await cli(['train', ...SMALL, '--steps', '2', '--out', out]);
      oneLineError(run, /^error: --out .*a-file.* cannot be the run directory \(.*a file, not a directory\)/);
    }
    expect(readFileSync(join(dir, 'a-file'), 'utf8')).toBe('mine\n');
  }, 120_000);

  it('train --out a directory of other files is refused before anything is written there', async () => {
    mkdirSync(join(dir, 'my-project'), { recursive: true });
    writeFileSync(join(dir, 'my-project', 'report.html'), '<p>my report</p>');
    const run = await cli(['train', ...SMALL, '--steps', '2', '--out', 'my-project']);
    oneLineError(run, /^error: --out .*my-project is a directory with other files in it \(report\.html\)/);
    expect(readFileSync(join(dir, 'my-project', 'report.html'), 'utf8')).toBe('<p>my report</p>');
    expect(existsSync(join(dir, 'my-project', 'run.json'))).toBe(false);
  }, 120_000);

  it("import --out an existing file (a run's checkpoint) keeps it; --force replaces it", async () => {
    const config = { ...PRESETS.tiny, num_key_value_heads: 4 };
    await writeLlama2cCheckpoint(join(dir, 'keep.bin'), config, initParameters(config, { seed: 4 }));
    mkdirSync(join(dir, 'keep'), { recursive: true });
    const target = join(dir, 'keep', 'latest.safetensors');
    writeFileSync(target, 'a checkpoint of a run');
    const refused = await cli(['import', 'keep.bin', '--out', 'keep/latest.safetensors']);
    oneLineError(refused, /^error: --out keep\/latest\.safetensors already exists: .*--force/);
    expect(readFileSync(target, 'utf8')).toBe('a checkpoint of a run');
    const forced = await cli(['import', 'keep.bin', '--out', 'keep/latest.safetensors', '--force']);
    expect(forced.code).toBe(0);
    expect((await loadCheckpoint(target)).config.hidden_size).toBe(config.hidden_size);
  }, 120_000);

  it('export --out a non-empty directory keeps its files; --force writes the model into it', async () => {
    const config = { ...PRESETS.tiny, num_key_value_heads: 4 };
    await writeLlama2cCheckpoint(join(dir, 'exp.bin'), config, initParameters(config, { seed: 5 }));
    mkdirSync(join(dir, 'other-model'), { recursive: true });
    writeFileSync(join(dir, 'other-model', 'config.json'), '{"mine":true}');
    const refused = await cli(['export', 'exp.bin', '--out', 'other-model']);
    oneLineError(refused, /^error: --out other-model is not empty \(config\.json\): .*--force/);
    expect(readFileSync(join(dir, 'other-model', 'config.json'), 'utf8')).toBe('{"mine":true}');
    expect(existsSync(join(dir, 'other-model', 'model.safetensors'))).toBe(false);
    const forced = await cli(['export', 'exp.bin', '--out', 'other-model', '--force']);
    expect(forced.code).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, 'other-model', 'config.json'), 'utf8')).hidden_size).toBe(
      config.hidden_size,
    );
  }, 120_000);

  it('--resume of a run whose checkpoint holds weights only refuses, and keeps metrics.jsonl', async () => {
    const first = await cli(['train', ...SMALL, '--steps', '2', '--out', 'runW']);
    expect(first.code).toBe(0);
    const latest = join(dir, 'runW', 'checkpoints', 'latest.safetensors');
    const weightsOnly = await loadCheckpoint(latest);
    await saveCheckpoint(latest, { config: weightsOnly.config, weights: weightsOnly.weights });
    const metricsBefore = readFileSync(join(dir, 'runW', 'metrics.jsonl'), 'utf8');
    expect(metricsBefore.trim().split('\n')).toHaveLength(3);
    const resumed = await cli(['train', '--resume', 'runW', '--steps', '4']);
    oneLineError(resumed, /^error: CheckpointError: --resume .*runW: .* holds weights only .*--init/);
    expect(resumed.stdout).not.toMatch(/^step /m);
    expect(readFileSync(join(dir, 'runW', 'metrics.jsonl'), 'utf8')).toBe(metricsBefore);
  }, 120_000);

  it("--resume with --steps at or below the run's warmup names --steps, not a --warmup never given", async () => {
    const first = await cli([
      'train',
      ...SMALL.filter((_, i, all) => all[i] !== '--warmup' && all[i - 1] !== '--warmup'),
      '--warmup',
      '3',
      '--steps',
      '4',
      '--out',
      'runWarm',
    ]);
    expect(first.code).toBe(0);
    const resumed = await cli(['train', '--resume', 'runWarm', '--steps', '2']);
    oneLineError(resumed, /^error: --steps 2 must be above the run's warmup \(3 steps\)/);
  }, 120_000);

  it('--resume of a run whose data file moved, or whose run.json lacks settings, says so in one line', async () => {
    writeFileSync(join(dir, 'moving.txt'), TEXT);
    const first = await cli([
      'train',
      ...SMALL.slice(4),
      '--data',
      'moving.txt',
      '--steps',
      '2',
      '--out',
      'runMoved',
    ]);
    expect(first.code).toBe(0);
    rmSync(join(dir, 'moving.txt'));
    const moved = await cli(['train', '--resume', 'runMoved', '--steps', '4']);
    oneLineError(
      moved,
      /^error: --resume .*runMoved: the run's data file .*moving\.txt is gone: put it back there/,
    );
    const runFile = join(dir, 'runMoved', 'run.json');
    const saved = JSON.parse(readFileSync(runFile, 'utf8'));
    writeFileSync(
      runFile,
      JSON.stringify({ ...saved, settings: { ...saved.settings, tokenizer: undefined } }),
    );
    const partial = await cli(['train', '--resume', 'runMoved', '--steps', '4']);
    oneLineError(
      partial,
      /^error: ConfigError: .*run\.json is not an ane-train run file \(its settings lack tokenizer\)/,
    );
  }, 120_000);

  it('sample --max-tokens 0 is a flag error', async () => {
    const run = await cli(['sample', '--checkpoint', 'whatever', '--max-tokens', '0']);
    oneLineError(run, /^error: --max-tokens must be a whole number ≥ 1, got '0'/);
  });
});

describe('the closing sample', () => {
  const args = (out: string) => [
    'train',
    ...SMALL.filter((_, i, all) => all[i] !== '--seq' && all[i - 1] !== '--seq'),
    '--steps',
    '2',
    '--out',
    out,
  ];

  it('a prompt longer than --seq is sampled in a longer window (was a DataError after the whole run)', async () => {
    // "Once upon a time" is 16 bytes: more than a window of 8.
    const run = await cli([...args('sample-seq8'), '--seq', '8']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('A sample (prompt "Once upon a time"):\nOnce upon a time');
    expect(existsSync(join(dir, 'sample-seq8', 'report.html'))).toBe(true);
  }, 120_000);

  it('with a Hugging Face tokenizer.json, streams the sample (a decode of no ids crashed it: internal error)', async () => {
    const words = [...new Set(TEXT.toLowerCase().match(/[a-z]+|[.,]/g)!)];
    const vocab: Record<string, number> = { '[UNK]': 0, '</s>': 1 };
    for (const word of words) vocab[word] ??= Object.keys(vocab).length;
    const special = (id: number, content: string) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    });
    writeFileSync(
      join(dir, 'words-tokenizer.json'),
      JSON.stringify({
        version: '1.0',
        truncation: null,
        padding: null,
        added_tokens: [special(0, '[UNK]'), special(1, '</s>')],
        normalizer: { type: 'Lowercase' },
        pre_tokenizer: { type: 'Whitespace' },
        post_processor: null,
        decoder: null,
        model: { type: 'WordLevel', vocab, unk_token: '[UNK]' },
      }),
    );
    const run = await cli([
      ...args('sample-words'),
      '--seq',
      '16',
      '--tokenizer',
      'words-tokenizer.json',
      '--prompt',
      'the cat',
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('A sample (prompt "the cat"):\nthe cat');
    const sample = await cli([
      'sample',
      '--checkpoint',
      'sample-words',
      '--prompt',
      'the dog',
      '--max-tokens',
      '3',
    ]);
    expect(sample.stderr).toMatch(/tokens\/s/);
    expect(sample.code).toBe(0);
    expect(sample.stdout).toMatch(/^the dog/);
    // The untrained ids above the tokenizer's 48 have no text: counted, not a crash.
    expect(sample.stdout).toMatch(/generated ids are beyond the .* tokenizer's \d+ tokens/);
    const empty = await cli(['sample', '--checkpoint', 'sample-words', '--prompt', '', '--max-tokens', '3']);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/^error: --prompt is empty and the .* tokenizer has no BOS token/);
  }, 120_000);

  it('an empty --prompt with the byte tokenizer is refused before training', async () => {
    const run = await cli([...args('sample-empty'), '--seq', '16', '--prompt', '']);
    expect(run.code).toBe(2);
    expect(run.stderr.split('\n')[0]).toMatch(/^error: --prompt is empty .*--sample-tokens 0/);
    expect(run.stdout).not.toMatch(/^step /m);
    expect(existsSync(join(dir, 'sample-empty'))).toBe(false);
  }, 120_000);
});

describe('a run that diverges', () => {
  const diverging = (steps: number, out: string) => [
    'train',
    ...SMALL.filter(
      (_, i, all) => !['--lr', '--min-lr'].includes(all[i]!) && !['--lr', '--min-lr'].includes(all[i - 1]!),
    ),
    '--lr',
    '1000',
    '--min-lr',
    '1000',
    '--steps',
    String(steps),
    '--checkpoint-every',
    '1',
    '--out',
    out,
  ];
  const firstNaNStep = (stdout: string) => Number(/^step +(\d+)\/\d+ {2}loss NaN/m.exec(stdout)?.[1]);

  it('stops after 10 steps of NaN loss with one TrainError line; no checkpoint holds weights that give NaN', async () => {
    const run = await cli(diverging(60, 'diverged'));
    expect(run.code).toBe(2);
    expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(
      /^error: TrainError: training diverged: .*lower --lr \(this one's peak was 1000\)/,
    );
    const first = firstNaNStep(run.stdout);
    expect(first).toBeGreaterThanOrEqual(1);
    const steps = [...run.stdout.matchAll(/^step +(\d+)\/60 {2}loss /gm)].map((m) => Number(m[1]));
    expect(Math.max(...steps)).toBe(first + 9);
    const latest = join(dir, 'diverged', 'checkpoints', 'latest.safetensors');
    if (existsSync(latest)) expect((await loadCheckpoint(latest)).trainer!.step).toBeLessThan(first);
  }, 120_000);

  it('a short run that ends diverged is the same error, not a failure of the closing sample', async () => {
    const run = await cli(diverging(6, 'diverged-short'));
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^error: TrainError: training diverged: /);
    expect(run.stdout).not.toContain('A sample');
  }, 120_000);
});

describe('--backend ane where there is no Neural Engine', () => {
  it.skipIf(process.platform === 'darwin' && process.arch === 'arm64')(
    'names the flag that fixes it (the device error names only the library call), skipped on Apple silicon',
    async () => {
      const run = await cli([
        'train',
        ...SMALL.slice(0, -4),
        '--backend',
        'ane',
        '--steps',
        '2',
        '--out',
        'no-ane',
      ]);
      expect(run.code).toBe(2);
      expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(run.stderr).toMatch(/^error: DeviceUnavailableError: .*--backend sim/);
    },
    120_000,
  );
});

describe('a file the user may not read or write', () => {
  // As root every file is readable: run the CLI as nobody (uid 65534) then; else chmod is enough.
  const root = process.getuid?.() === 0;
  const asUser = root ? { uid: 65534, gid: 65534 } : {};
  // nobody must be able to reach the checkout (a clone under a 0700 `mktemp -d` is not).
  const reachable =
    !root ||
    spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(CLI)}, 4)`], asUser)
      .status === 0;
  function cliAs(args: readonly string[], cwd: string): Promise<Run> {
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        [CLI, ...args],
        { cwd, env: { ...process.env, NO_COLOR: '1' }, ...asUser },
        (error, stdout, stderr) => {
          const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
          resolve({ code, stdout, stderr });
        },
      );
    });
  }

  it.skipIf(process.platform === 'win32' || !reachable)(
    `is one line naming the file and EACCES, exit 2 (was an internal error with a stack)${reachable ? '' : ' (skipped: running as root, and uid nobody cannot read this checkout, e.g. a clone under a 0700 directory)'}`,
    async () => {
      const open = join(dir, 'perm');
      mkdirSync(open, { recursive: true });
      chmodSync(dir, 0o755);
      chmodSync(open, 0o777);
      const locked = (name: string, content: string | Buffer) => {
        writeFileSync(join(open, name), content);
        chmodSync(join(open, name), 0o000);
      };
      locked('secret.txt', TEXT);
      locked('secret.json', '{"steps": 2}');
      locked('secret.safetensors', 'x');
      const cases: [string[], string][] = [
        [['train', ...SMALL.slice(4), '--data', 'secret.txt', '--out', 'p1'], 'secret.txt'],
        [['train', '--options', 'secret.json', '--out', 'p2'], 'secret.json'],
        [['sample', '--checkpoint', 'secret.safetensors', '--max-tokens', '2'], 'secret.safetensors'],
      ];
      for (const [args, file] of cases) {
        const run = await cliAs(args, open);
        expect({ args, code: run.code }).toEqual({ args, code: 2 });
        expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
        expect(run.stderr).toMatch(/^error: .*EACCES/);
        expect(run.stderr).toContain(join(open, file));
        expect(run.stderr).not.toMatch(/internal error|\n\s+at /);
      }
    },
    120_000,
  );
});

describe('pnpm hands on a `--`', () => {
  it('`ane-train train -- --flags` reads the flags after the `--` (as `pnpm train -- --steps 2` calls it)', async () => {
    const run = await cli(['train', '--', '--steps', 'x']);
    expect(run.code).toBe(2);
    expect(run.stderr.split('\n')[0]).toBe(
      "error: --steps must be a whole number ≥ 1, got 'x' (ane-train train --help lists its options)",
    );
  });
});
