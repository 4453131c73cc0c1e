/** `ane-train export`: a checkpoint or run → a Hugging Face model directory (safetensors + config.json). */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { type ArgsDef, defineCommand } from 'citty';
import { exportHuggingFace } from '../convert';
import { choiceFlag, parseStrictArgs, stringFlag, UsageError } from './args';
import type { CliIo } from './io';
import { defaultTokenizerFor, loadModelSource } from './model-source';

const DTYPES = ['F32', 'F16', 'BF16'] as const;

export const exportArgs = {
  checkpoint: {
    type: 'positional',
    required: false,
    valueHint: 'checkpoint',
    description: 'an ane-train checkpoint or a run directory (its latest)',
  },
  out: { type: 'string', valueHint: 'dir', description: 'the directory to write (created if missing)' },
  dtype: { type: 'string', valueHint: DTYPES.join('|'), description: "the weights' dtype (default F32)" },
  force: {
    type: 'boolean',
    description: 'write into --out even when it is not empty (its model files are replaced)',
  },
} satisfies ArgsDef;

export const exportCommandDef = defineCommand({
  meta: {
    name: 'export',
    description:
      "write a checkpoint (or a run directory's latest) as a Hugging Face model: model.safetensors, config.json, generation_config.json: ane-train export <checkpoint> --out <dir>",
  },
  args: exportArgs,
});

export async function runExport(rawArgs: readonly string[], io: CliIo): Promise<number> {
  const args = parseStrictArgs(rawArgs, exportArgs, { positionals: 1, positionalHint: 'checkpoint' });
  const source = args._[0];
  if (source === undefined)
    throw new UsageError('missing the checkpoint: ane-train export <checkpoint | run dir> --out <dir>');
  const out = stringFlag(args, 'out');
  if (out === undefined) throw new UsageError('missing --out (the directory to write)');
  const dtype = choiceFlag(args, 'dtype', DTYPES) ?? 'F32';
  // A directory with files in it may be another model (its config.json would be replaced silently).
  const target = io.resolve(out);
  if (
    args.force !== true &&
    existsSync(target) &&
    statSync(target).isDirectory() &&
    readdirSync(target).length > 0
  )
    throw new UsageError(
      `--out ${out} is not empty (${readdirSync(target).slice(0, 3).join(', ')}${readdirSync(target).length > 3 ? ', …' : ''}): choose a new or empty directory, or add --force to replace its model files`,
    );
  const model = await loadModelSource(io.resolve(source));
  const tokenizer = model.tokenizer ?? defaultTokenizerFor(model.config.vocab_size);
  const generation =
    tokenizer === 'llama2'
      ? { bos_token_id: 1, eos_token_id: 2 }
      : tokenizer === 'byte'
        ? { eos_token_id: 0 }
        : {};
  const files = await exportHuggingFace(
    io.resolve(out),
    { config: model.config, weights: model.weights },
    {
      dtype,
      generation,
    },
  );
  io.stdout(`${files.map((f) => `wrote ${f}`).join('\n')}\n`);
  io.stdout(`load it in PyTorch: LlamaForCausalLM.from_pretrained(${JSON.stringify(io.resolve(out))})\n`);
  return 0;
}
