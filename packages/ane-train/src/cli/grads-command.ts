/**
 * `ane-train grads`: the loss and every parameter's gradient of a Hugging Face Llama model on a
 * token batch, written as F32 safetensors under the HF names: how users check us against PyTorch.
 */
import { type ArgsDef, defineCommand } from 'citty';
import { gradsCommand } from '../grads';
import { choiceFlag, parseStrictArgs, stringFlag, UsageError, wholeNumberFlag } from './args';
import type { CliIo } from './io';
import { BACKENDS, loadRunOptions } from './options-file';
import { OPTIONS_FLAG } from './plan-command';

export const gradsArgs = {
  config: {
    type: 'string',
    valueHint: 'config.json',
    description: 'the Hugging Face Llama/Qwen3 config.json',
  },
  weights: {
    type: 'string',
    valueHint: 'w.safetensors',
    description: 'the weights under their HF names (F32, F16 or BF16)',
  },
  tokens: {
    type: 'string',
    valueHint: 't.bin',
    description: 'B×(S+1) little-endian uint16 token ids, sequence after sequence',
  },
  batch: { type: 'string', valueHint: 'B', description: 'sequences in the token file' },
  seq: {
    type: 'string',
    valueHint: 'S',
    description: 'positions per sequence (each sequence holds S+1 tokens)',
  },
  out: {
    type: 'string',
    valueHint: 'g.safetensors',
    description: 'where to write the gradients (F32, HF names)',
  },
  backend: {
    type: 'string',
    valueHint: BACKENDS.join('|'),
    description: "the device: 'auto' (the Neural Engine where available, else the simulator), 'ane' or 'sim'",
  },
  options: OPTIONS_FLAG,
} satisfies ArgsDef;

export const gradsCommandDef = defineCommand({
  meta: {
    name: 'grads',
    description:
      "compute the mean next-token cross-entropy of a token batch and every parameter's gradient; print the loss, write the gradients as F32 safetensors",
  },
  args: gradsArgs,
});

export async function runGrads(rawArgs: readonly string[], io: CliIo): Promise<number> {
  const args = parseStrictArgs(rawArgs, gradsArgs);
  const batchFlag = wholeNumberFlag(args, 'batch');
  const seqFlag = wholeNumberFlag(args, 'seq');
  const backendFlag = choiceFlag(args, 'backend', BACKENDS);
  const { options } = await loadRunOptions(stringFlag(args, 'options'), io.cwd);
  const path = (name: 'weights' | 'tokens' | 'out'): string => {
    const value = stringFlag(args, name);
    if (value === undefined) throw new UsageError(`missing --${name}`);
    return io.resolve(value);
  };
  const configFlag = stringFlag(args, 'config');
  const configPath = configFlag !== undefined ? io.resolve(configFlag) : options.config;
  if (configPath === undefined) throw new UsageError('missing --config (the model config.json)');
  const weightsPath = path('weights');
  const tokensPath = path('tokens');
  const outPath = path('out');
  const batch = batchFlag ?? options.batch;
  if (batch === undefined) throw new UsageError('missing --batch (sequences in the token file)');
  const seq = seqFlag ?? options.seq;
  if (seq === undefined) throw new UsageError('missing --seq (positions per sequence)');
  const backend = backendFlag ?? options.backend ?? 'auto';
  const result = await gradsCommand({ configPath, weightsPath, tokensPath, batch, seq, outPath, backend });
  io.stdout(`loss ${result.loss}\n`);
  io.stdout(
    `wrote ${result.grads.size} gradients (F32, Hugging Face names) to ${outPath} (${result.backend} backend)\n`,
  );
  return 0;
}
