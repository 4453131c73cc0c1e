/** `ane-train plan`: what a training step of a model compiles, runs where, and costs. */
import { CHIP_FAMILIES } from 'ane-ir/mil';
import { type ArgsDef, defineCommand } from 'citty';
import { ConfigError } from '../errors';
import { type LlamaConfig, PRESET_NAMES, parseLlamaConfig, resolveModel } from '../model/config';
import { batchTrainingGraph } from '../model/training-graph';
import { describePlan, formatPlanSummary } from '../plan-summary';
import { choiceFlag, parseStrictArgs, stringFlag, UsageError, wholeNumberFlag } from './args';
import type { CliIo } from './io';
import { DEFAULT_OPTIONS_FILE, loadRunOptions, readConfigFile } from './options-file';

/** The sequence length `plan` assumes when none is given: 256 positions, or the model's maximum if shorter. */
export const DEFAULT_PLAN_SEQ = 256;

export const OPTIONS_FLAG = {
  type: 'string',
  valueHint: 'file.json',
  description: `run options file (default: ./${DEFAULT_OPTIONS_FILE} when present); flags override its keys`,
} as const;

export const planArgs = {
  preset: { type: 'string', valueHint: PRESET_NAMES.join('|'), description: 'a model preset' },
  config: {
    type: 'string',
    valueHint: 'config.json',
    description: 'a Hugging Face Llama/Qwen3 config.json (instead of --preset)',
  },
  batch: { type: 'string', valueHint: 'B', description: 'sequences per step (default 1)' },
  accumulate: {
    type: 'string',
    valueHint: 'N',
    description:
      'micro-batches per optimizer step (default 1): the step-time estimate spreads the optimizer over N micro-batches',
  },
  seq: {
    type: 'string',
    valueHint: 'S',
    description: `positions per sequence (default ${DEFAULT_PLAN_SEQ}, or max_position_embeddings if shorter)`,
  },
  chip: {
    type: 'string',
    valueHint: CHIP_FAMILIES.join('|'),
    description: 'the chip family whose ANE rules apply (default M4)',
  },
  json: {
    type: 'boolean',
    description: 'print the summary as JSON (top-level `programs`: the compile count)',
  },
  options: OPTIONS_FLAG,
} satisfies ArgsDef;

export const planCommand = defineCommand({
  meta: {
    name: 'plan',
    description:
      'show the plan of one training step: distinct programs (the compile count), kernels, host ops and their kernels, where every op runs and why, FLOPs, I/O, memory and a step-time estimate (not measured)',
  },
  args: planArgs,
});

/** Which model: a flag wins over the options file; a preset and a config together are a mistake. */
async function chooseModel(
  flags: { preset?: string; config?: string },
  file: { preset?: string; config?: string; file?: string },
): Promise<LlamaConfig> {
  if (flags.preset !== undefined && flags.config !== undefined)
    throw new UsageError('give --preset or --config, not both');
  let preset = flags.preset;
  let config = flags.config;
  if (preset === undefined && config === undefined) {
    if (file.preset !== undefined && file.config !== undefined)
      throw new ConfigError(
        `options file ${file.file}: 'preset' and 'config' are both set: keep one`,
        'preset',
        file.file,
      );
    preset = file.preset;
    config = file.config;
  }
  if (preset !== undefined) return resolveModel(choiceFlag({ preset }, 'preset', PRESET_NAMES)!);
  if (config !== undefined) return parseLlamaConfig(await readConfigFile(config), { file: config });
  throw new UsageError('which model? give --preset P or --config config.json');
}

export async function runPlan(rawArgs: readonly string[], io: CliIo): Promise<number> {
  const args = parseStrictArgs(rawArgs, planArgs);
  const batchFlag = wholeNumberFlag(args, 'batch');
  const accumulateFlag = wholeNumberFlag(args, 'accumulate');
  const seqFlag = wholeNumberFlag(args, 'seq');
  const chipFlag = choiceFlag(args, 'chip', CHIP_FAMILIES);
  const presetFlag = stringFlag(args, 'preset');
  if (presetFlag !== undefined) choiceFlag(args, 'preset', PRESET_NAMES);
  const loaded = await loadRunOptions(stringFlag(args, 'options'), io.cwd);
  const file = loaded.options;
  const configFlag = stringFlag(args, 'config');
  const config = await chooseModel(
    {
      ...(presetFlag !== undefined ? { preset: presetFlag } : {}),
      ...(configFlag !== undefined ? { config: io.resolve(configFlag) } : {}),
    },
    { ...file, ...(loaded.file !== undefined ? { file: loaded.file } : {}) },
  );
  const batch = batchFlag ?? file.batch ?? 1;
  const seq = seqFlag ?? file.seq ?? Math.min(DEFAULT_PLAN_SEQ, config.max_position_embeddings);
  const chip = chipFlag ?? file.chip;
  const training = batchTrainingGraph(config, {
    seq,
    batch,
    ...(chip !== undefined ? { chip } : {}),
  });
  const accumulate = accumulateFlag ?? file.accumulate ?? 1;
  const summary = describePlan(training, { batch, accumulate });
  io.stdout(args.json === true ? `${JSON.stringify(summary)}\n` : formatPlanSummary(summary));
  return 0;
}
