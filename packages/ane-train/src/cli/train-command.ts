/** `ane-train train`: flags and the options file → TrainSettings → runTraining. */
import { CHIP_FAMILIES } from 'ane-ir/mil';
import { type ArgsDef, defineCommand } from 'citty';
import { type LlamaConfig, PRESET_NAMES, parseLlamaConfig, resolveModel } from '../model/config';
import {
  choiceFlag,
  countFlag,
  numberFlag,
  parseStrictArgs,
  stringFlag,
  UsageError,
  wholeNumberFlag,
} from './args';
import type { CliIo } from './io';
import { defaultTokenizerFor, loadModelSource } from './model-source';
import { BACKENDS, loadRunOptions, readConfigFile } from './options-file';
import { OPTIONS_FLAG } from './plan-command';
import { readRunFile, runTraining, type TrainSettings } from './train';

/** The defaults: tuned so the tiny preset learns the demo corpus in about a minute and a half on 2 cores. */
export const TRAIN_DEFAULTS = {
  preset: 'tiny',
  steps: 400,
  batch: 8,
  seq: 64,
  lr: 3e-3,
  warmup: 30,
  weightDecay: 0.1,
  accumulate: 1,
  evalEvery: 50,
  evalBatches: 8,
  valFraction: 0.1,
  checkpointEvery: 100,
  seed: 1337,
  sampleTokens: 200,
  prompt: 'Once upon a time',
} as const;

const s = (valueHint: string, description: string) => ({ type: 'string', valueHint, description }) as const;

export const trainArgs = {
  preset: s(PRESET_NAMES.join('|'), `a model preset (default ${TRAIN_DEFAULTS.preset})`),
  config: s('config.json', 'a Hugging Face Llama/Qwen3 config.json (instead of --preset)'),
  init: s(
    'path',
    'start from these weights (an ane-train checkpoint, a run directory, a Hugging Face directory or a llama2.c .bin); the model is theirs',
  ),
  data: s('file', 'a uint16 token file (.bin) or a UTF-8 text file (default: the built-in demo corpus)'),
  tokenizer: s('byte|llama2|tokenizer.json', 'for text (default: byte for vocab 256, llama2 for 32000)'),
  steps: s('N', `optimizer steps in all (default ${TRAIN_DEFAULTS.steps})`),
  batch: s('B', `sequences per micro-batch (default ${TRAIN_DEFAULTS.batch})`),
  seq: s('S', `positions per sequence (default ${TRAIN_DEFAULTS.seq})`),
  lr: s('LR', `peak learning rate (default ${TRAIN_DEFAULTS.lr})`),
  'min-lr': s('LR', 'the learning rate the cosine decay ends at (default lr / 10)'),
  warmup: s('N', `linear warmup steps (default ${TRAIN_DEFAULTS.warmup})`),
  'weight-decay': s('WD', `AdamW weight decay, none on norm gains (default ${TRAIN_DEFAULTS.weightDecay})`),
  accumulate: s('N', 'micro-batches per optimizer step (default 1)'),
  'eval-every': s('N', `validation every N steps, 0 for none (default ${TRAIN_DEFAULTS.evalEvery})`),
  'eval-batches': s('N', `validation micro-batches (default ${TRAIN_DEFAULTS.evalBatches})`),
  'val-fraction': s(
    'F',
    `the tail of the data held out for validation (default ${TRAIN_DEFAULTS.valFraction})`,
  ),
  'checkpoint-every': s(
    'N',
    `checkpoint every N steps, 0 for only at the end (default ${TRAIN_DEFAULTS.checkpointEvery})`,
  ),
  'keep-checkpoints': { type: 'boolean', description: 'also keep checkpoints/step-N.safetensors' },
  'log-every': s('N', 'a metrics record (and a plain progress line) every N steps (default steps / 60)'),
  seed: s('N', `seeds the init, the shuffling and the sample (default ${TRAIN_DEFAULTS.seed})`),
  backend: s(
    BACKENDS.join('|'),
    "'auto' (the Neural Engine where available, else the simulator), 'ane' or 'sim'",
  ),
  chip: s(CHIP_FAMILIES.join('|'), "the chip whose ANE rules apply (default: the device's)"),
  out: s('dir', 'the run directory (default runs/<date-time>)'),
  resume: s('dir', 'continue the run in this directory from its latest checkpoint'),
  'sample-tokens': s(
    'N',
    `tokens of the closing sample, 0 for none (default ${TRAIN_DEFAULTS.sampleTokens})`,
  ),
  prompt: s('text', `the closing sample's prompt (default "${TRAIN_DEFAULTS.prompt}")`),
  options: OPTIONS_FLAG,
} satisfies ArgsDef;

export const trainCommandDef = defineCommand({
  meta: {
    name: 'train',
    description:
      'train a model on a token or text file (default: the tiny preset on the built-in demo corpus); writes metrics.jsonl, checkpoints, loss.svg and report.html under --out',
  },
  args: trainArgs,
});

/** Flags that may change on --resume (the rest are the run's and stay as run.json has them). */
const RESUMABLE = [
  'steps',
  'eval-every',
  'checkpoint-every',
  'keep-checkpoints',
  'log-every',
  'sample-tokens',
  'prompt',
  'backend',
  'resume',
  'options',
];

function timestamp(date = new Date()): string {
  return date.toISOString().replace(/\..*$/, '').replace(/:/g, '-').replace('T', '_');
}

export async function runTrain(rawArgs: readonly string[], io: CliIo): Promise<number> {
  const args = parseStrictArgs(rawArgs, trainArgs);
  const flags = {
    steps: wholeNumberFlag(args, 'steps'),
    batch: wholeNumberFlag(args, 'batch'),
    seq: wholeNumberFlag(args, 'seq'),
    lr: numberFlag(args, 'lr', { min: 0, exclusiveMin: true }),
    minLr: numberFlag(args, 'min-lr', { min: 0 }),
    warmup: countFlag(args, 'warmup'),
    weightDecay: numberFlag(args, 'weight-decay', { min: 0 }),
    accumulate: wholeNumberFlag(args, 'accumulate'),
    evalEvery: countFlag(args, 'eval-every'),
    evalBatches: wholeNumberFlag(args, 'eval-batches'),
    valFraction: numberFlag(args, 'val-fraction', { min: 0, max: 1, exclusiveMax: true }),
    checkpointEvery: countFlag(args, 'checkpoint-every'),
    logEvery: wholeNumberFlag(args, 'log-every'),
    seed: countFlag(args, 'seed'),
    sampleTokens: countFlag(args, 'sample-tokens'),
    backend: choiceFlag(args, 'backend', BACKENDS),
    chip: choiceFlag(args, 'chip', CHIP_FAMILIES),
    preset: stringFlag(args, 'preset') !== undefined ? choiceFlag(args, 'preset', PRESET_NAMES) : undefined,
  };
  const resumeDir = stringFlag(args, 'resume');
  if (resumeDir !== undefined) {
    const given = Object.keys(args).filter(
      (k) => k !== '_' && args[k] !== undefined && !RESUMABLE.includes(k),
    );
    if (given.length > 0)
      throw new UsageError(
        `--${given[0]} cannot change when resuming (the run keeps its model, data and schedule): leave it out, or start a new run; with --resume you may give ${RESUMABLE.filter(
          (k) => k !== 'resume' && k !== 'options',
        )
          .map((k) => `--${k}`)
          .join(', ')}`,
      );
    if (stringFlag(args, 'options') !== undefined)
      throw new UsageError(
        `--options is not read with --resume (the run keeps the options in its run.json): leave it out; with --resume you may give ${RESUMABLE.filter(
          (k) => k !== 'resume' && k !== 'options',
        )
          .map((k) => `--${k}`)
          .join(', ')}`,
      );
    const dir = io.resolve(resumeDir);
    const saved = readRunFile(dir);
    const settings: TrainSettings = {
      ...saved,
      out: dir,
      ...(flags.steps !== undefined ? { steps: flags.steps } : {}),
      ...(flags.evalEvery !== undefined ? { evalEvery: flags.evalEvery } : {}),
      ...(flags.checkpointEvery !== undefined ? { checkpointEvery: flags.checkpointEvery } : {}),
      ...(flags.logEvery !== undefined ? { logEvery: flags.logEvery } : {}),
      ...(flags.sampleTokens !== undefined ? { sampleTokens: flags.sampleTokens } : {}),
      ...(flags.backend !== undefined ? { backend: flags.backend } : {}),
      ...(args['keep-checkpoints'] === true ? { keepCheckpoints: true } : {}),
      ...(stringFlag(args, 'prompt') !== undefined ? { prompt: stringFlag(args, 'prompt')! } : {}),
    };
    return runTraining(settings, io, true);
  }

  const { options: file } = await loadRunOptions(stringFlag(args, 'options'), io.cwd);
  const pathFlag = (name: string) => {
    const value = stringFlag(args, name);
    return value !== undefined ? io.resolve(value) : undefined;
  };
  const configPath = pathFlag('config');
  if (flags.preset !== undefined && configPath !== undefined)
    throw new UsageError('give --preset or --config, not both');
  const init = pathFlag('init') ?? file.init;
  let model: LlamaConfig;
  let modelName: string;
  if (init !== undefined) {
    if (flags.preset !== undefined || configPath !== undefined)
      throw new UsageError('--init brings its own model: leave out --preset and --config');
    model = (await loadModelSource(init)).config;
    modelName = init;
  } else if (configPath !== undefined || (flags.preset === undefined && file.config !== undefined)) {
    const path = configPath ?? file.config!;
    model = parseLlamaConfig(await readConfigFile(path), { file: path });
    modelName = path;
  } else {
    const preset = flags.preset ?? file.preset ?? TRAIN_DEFAULTS.preset;
    model = resolveModel(preset);
    modelName = preset;
  }
  const tokenizerFlag = stringFlag(args, 'tokenizer');
  const tokenizer =
    tokenizerFlag !== undefined
      ? tokenizerFlag === 'byte' || tokenizerFlag === 'llama2'
        ? tokenizerFlag
        : io.resolve(tokenizerFlag)
      : (file.tokenizer ?? defaultTokenizerFor(model.vocab_size));
  if (tokenizer === undefined)
    throw new UsageError(
      `which tokenizer? the model's vocabulary has ${model.vocab_size} tokens: give --tokenizer tokenizer.json (a Hugging Face tokenizer)`,
    );
  const steps = flags.steps ?? file.steps ?? TRAIN_DEFAULTS.steps;
  const lr = flags.lr ?? file.lr ?? TRAIN_DEFAULTS.lr;
  const seq = flags.seq ?? file.seq ?? Math.min(TRAIN_DEFAULTS.seq, model.max_position_embeddings);
  // The default warmup shrinks to fit a short run; a warmup the user gave is checked against --steps.
  const warmup = flags.warmup ?? file.warmup ?? Math.min(TRAIN_DEFAULTS.warmup, Math.max(0, steps - 1));
  const data = pathFlag('data') ?? file.data;
  const out = pathFlag('out') ?? file.out ?? io.resolve(`runs/${timestamp()}`);
  const chip = flags.chip ?? file.chip;
  const settings: TrainSettings = {
    modelName,
    model,
    ...(init !== undefined ? { init } : {}),
    ...(data !== undefined ? { data } : {}),
    tokenizer,
    steps,
    batch: flags.batch ?? file.batch ?? TRAIN_DEFAULTS.batch,
    seq,
    lr,
    minLr: flags.minLr ?? file.minLr ?? lr / 10,
    warmup,
    weightDecay: flags.weightDecay ?? file.weightDecay ?? TRAIN_DEFAULTS.weightDecay,
    accumulate: flags.accumulate ?? file.accumulate ?? TRAIN_DEFAULTS.accumulate,
    evalEvery: flags.evalEvery ?? file.evalEvery ?? Math.min(TRAIN_DEFAULTS.evalEvery, steps),
    evalBatches: flags.evalBatches ?? file.evalBatches ?? TRAIN_DEFAULTS.evalBatches,
    valFraction: flags.valFraction ?? file.valFraction ?? TRAIN_DEFAULTS.valFraction,
    checkpointEvery: flags.checkpointEvery ?? file.checkpointEvery ?? TRAIN_DEFAULTS.checkpointEvery,
    keepCheckpoints:
      args['keep-checkpoints'] !== undefined
        ? args['keep-checkpoints'] === true
        : file.keepCheckpoints === true,
    logEvery: flags.logEvery ?? file.logEvery ?? Math.max(1, Math.round(steps / 60)),
    seed: flags.seed ?? file.seed ?? TRAIN_DEFAULTS.seed,
    backend: flags.backend ?? file.backend ?? 'auto',
    ...(chip !== undefined ? { chip } : {}),
    out,
    sampleTokens: flags.sampleTokens ?? file.sampleTokens ?? TRAIN_DEFAULTS.sampleTokens,
    prompt: stringFlag(args, 'prompt') ?? file.prompt ?? TRAIN_DEFAULTS.prompt,
  };
  return runTraining(settings, io, false);
}
