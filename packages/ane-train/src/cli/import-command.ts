/** `ane-train import`: a llama2.c .bin or a Hugging Face model → an ane-train checkpoint (weights only). */
import { existsSync, statSync } from 'node:fs';
import { type ArgsDef, defineCommand } from 'citty';
import { saveCheckpoint } from '../checkpoint';
import { parameterCount } from '../model/parameters';
import { parseStrictArgs, stringFlag, UsageError } from './args';
import type { CliIo } from './io';
import { defaultTokenizerFor, loadModelSource } from './model-source';

export const importArgs = {
  source: {
    type: 'positional',
    required: false,
    valueHint: 'source',
    description: 'a llama2.c checkpoint (.bin) or a Hugging Face model directory',
  },
  out: {
    type: 'string',
    valueHint: 'model.safetensors',
    description: 'the ane-train checkpoint to write (weights, config; train from it with --init)',
  },
  force: {
    type: 'boolean',
    description: 'replace --out when it exists (by default an existing file is kept)',
  },
} satisfies ArgsDef;

export const importCommandDef = defineCommand({
  meta: {
    name: 'import',
    description:
      'read a llama2.c checkpoint (stories15M.bin) or a Hugging Face model directory (F32/F16/BF16) and write an ane-train checkpoint: ane-train import <source> --out <file>',
  },
  args: importArgs,
});

export async function runImport(rawArgs: readonly string[], io: CliIo): Promise<number> {
  const args = parseStrictArgs(rawArgs, importArgs, { positionals: 1, positionalHint: 'source' });
  const source = args._[0];
  if (source === undefined)
    throw new UsageError(
      'missing the source: ane-train import <llama2c .bin | Hugging Face dir> --out <file>',
    );
  const out = stringFlag(args, 'out');
  if (out === undefined) throw new UsageError('missing --out (the checkpoint file to write)');
  // An existing file may be a training run's checkpoint: replacing it with weights only would end
  // that run (its --resume would have nothing to continue from). Refuse before reading the source.
  if (existsSync(io.resolve(out)) && args.force !== true)
    throw new UsageError(
      `--out ${out} already exists${statSync(io.resolve(out)).isDirectory() ? ' (a directory: --out is the checkpoint file to write)' : ''}: choose another --out, or add --force to replace it`,
    );
  const model = await loadModelSource(io.resolve(source));
  const tokenizer = model.tokenizer ?? defaultTokenizerFor(model.config.vocab_size);
  await saveCheckpoint(io.resolve(out), {
    config: model.config,
    weights: model.weights,
    metadata: { source: model.file, ...(tokenizer !== undefined ? { tokenizer } : {}) },
  });
  const c = model.config;
  io.stdout(
    `imported ${model.kind} ${model.file}: ${c.model_type}, ${c.num_hidden_layers} layers, hidden ${c.hidden_size}, ${c.num_attention_heads}/${c.num_key_value_heads} heads, vocab ${c.vocab_size} (${(parameterCount(c) / 1e6).toFixed(2)}M parameters)\n` +
      `wrote ${io.resolve(out)}\n` +
      `fine-tune: ane-train train --init ${out} --data your.txt; sample: ane-train sample --checkpoint ${out}\n`,
  );
  return 0;
}
