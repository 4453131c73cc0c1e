/**
 * Hugging Face model directories, exported and imported: what `LlamaForCausalLM.from_pretrained` /
 * `Qwen3ForCausalLM.from_pretrained` read and write.
 *
 *   config.json              architectures, model_type and every LlamaConfig / Qwen3Config field the
 *                            model needs (HF names, as our LlamaConfig), torch_dtype, bos/eos ids
 *   generation_config.json   bos/eos ids (what `generate` stops on)
 *   model.safetensors        every parameter under its HF name, F32, F16 or BF16; a tied model has
 *                            no `lm_head.weight` (HF ties it to `model.embed_tokens.weight`)
 *   (model.safetensors.index.json + shards, on import: `weight_map` names each tensor's shard)
 *
 * Export writes each file atomically (temporary file, fsync, rename) and then fsyncs the directory.
 * Import checks everything against the config before returning (missing, extra, mis-shaped
 * tensors are a CheckpointError naming the tensor and the file).
 */
import { constants } from 'node:fs';
import { mkdir, open, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CheckpointError, ConfigError } from '../errors';
import { checkWeights } from '../grads';
import { readRegularFile, writeFileAtomically } from '../io/files';
import {
  readSafetensorsFile,
  type SafetensorsDType,
  type SafetensorsInput,
  type SafetensorsTensor,
  tensorToFloat32,
  writeSafetensorsFile,
} from '../io/safetensors';
import { type LlamaConfig, parseLlamaConfig } from '../model/config';
import { parameterSpecs } from '../model/parameters';
import { checkModelToWrite } from './check-model';
import type { ConvertedModel } from './llama2c';

export interface ExportHuggingFaceOptions {
  /** How the weights are stored (default F32: lossless; F16 and BF16 halve the file). */
  dtype?: 'F32' | 'F16' | 'BF16';
  /**
   * The token ids `generate` starts with and stops on. Default: BOS 1 and EOS 2 for a 32000-token
   * vocabulary (Llama 2's SentencePiece, the Stories models), none otherwise (null in the files).
   */
  generation?: { bos_token_id?: number; eos_token_id?: number };
}

const TORCH_DTYPE: Record<SafetensorsDType, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };
const FP16_MAX = 65504;
const f32OfBits = (bits: number) => new Float32Array(Uint32Array.of(bits).buffer)[0]!;
/** The largest finite BF16 (0x7f7f), and the smallest magnitude that rounds (to nearest even) to infinity. */
const BF16_MAX = f32OfBits(0x7f7f0000);
const BF16_OVERFLOW = f32OfBits(0x7f7f8000);
const LLAMA2_VOCAB = 32000;

function refuse(
  file: string | undefined,
  what: string,
  where: { tensor?: string; field?: string } = {},
): never {
  throw new CheckpointError(what, { ...(file !== undefined ? { file } : {}), ...where });
}

/**
 * Writes `model` as a Hugging Face model directory (`dir` is created if missing): model.safetensors,
 * config.json, generation_config.json. Returns the paths written.
 */
export async function exportHuggingFace(
  dir: string,
  model: { config: LlamaConfig; weights: ReadonlyMap<string, Float32Array> },
  options: ExportHuggingFaceOptions = {},
): Promise<string[]> {
  if (typeof dir !== 'string' || dir === '') {
    refuse(undefined, `exportHuggingFace(dir, …) takes a directory path, got ${describe(dir)}`, {
      field: 'dir',
    });
  }
  if (
    model === null ||
    typeof model !== 'object' ||
    model.config === null ||
    typeof model.config !== 'object'
  ) {
    refuse(
      undefined,
      'exportHuggingFace(dir, model): model must be { config, weights } (e.g. what readLlama2cCheckpoint or importHuggingFace returns)',
      { field: 'model' },
    );
  }
  if (options === null || typeof options !== 'object') {
    refuse(
      undefined,
      `exportHuggingFace: options must be an object { dtype?, generation? }, got ${describe(options)}`,
      {
        field: 'options',
      },
    );
  }
  const dtype = options.dtype ?? 'F32';
  if (!Object.hasOwn(TORCH_DTYPE, dtype)) {
    refuse(
      undefined,
      `exportHuggingFace: dtype must be 'F32', 'F16' or 'BF16', got ${JSON.stringify(dtype)}`,
      {
        field: 'dtype',
      },
    );
  }
  const config = checkModelToWrite(model.config, model.weights, { what: 'exportHuggingFace' });
  const weights = model.weights;
  const ids = generationIds(config, options.generation);

  const tensors = new Map<string, SafetensorsInput>();
  for (const spec of parameterSpecs(config)) {
    const values = weights.get(spec.name)!;
    if (dtype === 'F16') {
      for (let i = 0; i < values.length; i++) {
        if (!(Math.abs(values[i]!) <= FP16_MAX)) {
          refuse(
            undefined,
            `exportHuggingFace: tensor '${spec.name}' holds ${values[i]} at index ${i}, outside F16's range (±${FP16_MAX}): export as F32 or BF16`,
            { tensor: spec.name, field: 'dtype' },
          );
        }
      }
    }
    if (dtype === 'BF16') {
      for (let i = 0; i < values.length; i++) {
        if (!(Math.abs(values[i]!) < BF16_OVERFLOW)) {
          refuse(
            undefined,
            `exportHuggingFace: tensor '${spec.name}' holds ${values[i]} at index ${i}, which rounds to infinity in BF16 (largest ±${BF16_MAX.toExponential(4)}): export as F32`,
            { tensor: spec.name, field: 'dtype' },
          );
        }
      }
    }
    tensors.set(spec.name, { dtype, shape: [...spec.shape], values });
  }

  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    refuse(
      dir,
      code === 'EEXIST' || code === 'ENOTDIR'
        ? `exportHuggingFace: ${dir} is a file (or under one), not a directory: pass the path of a directory to create or to write into`
        : `exportHuggingFace: cannot create the directory ${dir} (${code ?? (error as Error).message}): pass a directory path you can write`,
      {
        field: 'dir',
      },
    );
  }
  const weightsPath = join(dir, 'model.safetensors');
  const configPath = join(dir, 'config.json');
  const generationPath = join(dir, 'generation_config.json');
  // The three files are replaced one after the other: refuse a target that cannot be replaced
  // (a directory, a FIFO) before the first is written, so a refusal never leaves a half-exported
  // directory (new weights beside the previous model's config).
  for (const target of [weightsPath, configPath, generationPath]) {
    const info = await stat(target).catch(() => undefined);
    if (info !== undefined && !info.isFile()) {
      refuse(
        target,
        `exportHuggingFace: ${target} exists and is not a regular file (${info.isDirectory() ? 'a directory' : 'a FIFO, socket or device'}): move it away or export into another directory; nothing was written`,
        { field: 'file' },
      );
    }
  }
  await writeSafetensorsFile(weightsPath, tensors, { format: 'pt' });
  await writeJson(configPath, hfConfigJson(config, dtype, ids));
  await writeJson(generationPath, {
    _from_model_config: true,
    bos_token_id: ids.bos,
    eos_token_id: ids.eos,
  });
  await syncDirectory(dir);
  return [weightsPath, configPath, generationPath];
}

function generationIds(
  config: LlamaConfig,
  generation: ExportHuggingFaceOptions['generation'],
): { bos: number | null; eos: number | null } {
  if (generation !== undefined && (generation === null || typeof generation !== 'object')) {
    refuse(
      undefined,
      `exportHuggingFace: generation must be { bos_token_id?, eos_token_id? }, got ${describe(generation)}`,
      {
        field: 'generation',
      },
    );
  }
  const llama2 = config.vocab_size === LLAMA2_VOCAB;
  const pick = (key: 'bos_token_id' | 'eos_token_id', fallback: number): number | null => {
    const value = generation?.[key];
    if (value === undefined) return llama2 ? fallback : null;
    if (!Number.isSafeInteger(value) || value < 0 || value >= config.vocab_size) {
      refuse(
        undefined,
        `exportHuggingFace: generation.${key} must be a token id from 0 to ${config.vocab_size - 1}, got ${String(value)}`,
        {
          field: `generation.${key}`,
        },
      );
    }
    return value;
  };
  return { bos: pick('bos_token_id', 1), eos: pick('eos_token_id', 2) };
}

/** config.json as transformers writes it for LlamaForCausalLM / Qwen3ForCausalLM. */
export function hfConfigJson(
  config: LlamaConfig,
  dtype: SafetensorsDType,
  ids: { bos: number | null; eos: number | null },
): Record<string, unknown> {
  const qwen3 = config.model_type === 'qwen3';
  return {
    architectures: [qwen3 ? 'Qwen3ForCausalLM' : 'LlamaForCausalLM'],
    model_type: config.model_type,
    hidden_size: config.hidden_size,
    intermediate_size: config.intermediate_size,
    num_hidden_layers: config.num_hidden_layers,
    num_attention_heads: config.num_attention_heads,
    num_key_value_heads: config.num_key_value_heads,
    head_dim: config.head_dim,
    vocab_size: config.vocab_size,
    max_position_embeddings: config.max_position_embeddings,
    rms_norm_eps: config.rms_norm_eps,
    rope_theta: config.rope_theta,
    rope_scaling: null,
    tie_word_embeddings: config.tie_word_embeddings,
    hidden_act: 'silu',
    attention_bias: false,
    attention_dropout: 0.0,
    ...(qwen3
      ? { use_sliding_window: false, sliding_window: null, max_window_layers: config.num_hidden_layers }
      : { mlp_bias: false, pretraining_tp: 1 }),
    initializer_range: 0.02,
    use_cache: true,
    bos_token_id: ids.bos,
    eos_token_id: ids.eos,
    torch_dtype: TORCH_DTYPE[dtype],
  };
}

async function writeJson(path: string, value: unknown): Promise<void> {
  const bytes = new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`);
  await writeFileAtomically(path, bytes, (why) =>
    refuse(
      path,
      `exportHuggingFace: ${path} cannot be written (${why}): check the directory is writable; the file was left as it was`,
      {
        field: 'file',
      },
    ),
  );
}

/** fsync a directory so its renames survive a power cut (best effort where a platform refuses). */
async function syncDirectory(dir: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(dir, constants.O_RDONLY);
    await handle.sync();
  } catch {
    // Some filesystems (and Windows) do not fsync directories; the files themselves are synced.
  } finally {
    await handle?.close();
  }
}

/**
 * Reads a Hugging Face Llama or Qwen3 model: `path` is a directory holding config.json and
 * model.safetensors (or model.safetensors.index.json and its shards), or a .safetensors file (or
 * an index .json) with config.json beside it. F32, F16 and BF16 tensors become fp32, by HF name, in
 * HF's order. Old checkpoints' `rotary_emb.inv_freq` buffers are skipped, as transformers does; a
 * tied model's `lm_head.weight` is dropped when it equals the embedding.
 */
export async function importHuggingFace(path: string): Promise<ConvertedModel> {
  if (typeof path !== 'string' || path === '') {
    refuse(
      undefined,
      `importHuggingFace(path) takes a directory or .safetensors path, got ${describe(path)}`,
      {
        field: 'path',
      },
    );
  }
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    refuse(
      path,
      `importHuggingFace: ${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}: pass a Hugging Face model directory (config.json + model.safetensors)`,
      {
        field: 'path',
      },
    );
  }
  // A directory, or its config.json, stands for the model directory.
  const whole = info.isDirectory() || basename(path) === 'config.json';
  const dir = info.isDirectory() ? path : dirname(path);
  let weightsPath: string;
  if (whole) {
    const single = join(dir, 'model.safetensors');
    const index = join(dir, 'model.safetensors.index.json');
    if (await exists(single)) weightsPath = single;
    else if (await exists(index)) weightsPath = index;
    else {
      refuse(
        dir,
        `importHuggingFace: ${dir} holds neither model.safetensors nor model.safetensors.index.json: pass a Hugging Face model directory (PyTorch .bin weights are not read: save them with safe_serialization=True)`,
        {
          field: 'model.safetensors',
        },
      );
    }
  } else weightsPath = path;

  const configPath = join(dir, 'config.json');
  if (!(await exists(configPath))) {
    refuse(
      configPath,
      `importHuggingFace: ${configPath} does not exist: the weights need the config.json they were saved with, in the same directory`,
      {
        field: 'config.json',
      },
    );
  }
  const config = await readConfig(configPath);

  const found = new Map<string, { tensor: SafetensorsTensor; file: string }>();
  if (weightsPath.endsWith('.json')) {
    for (const [shard, names] of await readIndex(weightsPath)) {
      const contents = await readSafetensorsFile(shard);
      for (const [name, tensor] of contents.tensors) {
        if (!names.has(name)) {
          refuse(
            shard,
            `importHuggingFace: shard ${shard} holds tensor '${name}', which ${basename(weightsPath)} does not list in this shard: the index and the shards disagree`,
            {
              tensor: name,
            },
          );
        }
        found.set(name, { tensor, file: shard });
      }
      for (const name of names) {
        if (!contents.tensors.has(name)) {
          refuse(
            shard,
            `importHuggingFace: ${basename(weightsPath)} puts tensor '${name}' in ${shard}, which does not hold it: the shard is missing tensors or the index is stale`,
            {
              tensor: name,
            },
          );
        }
      }
    }
  } else {
    const contents = await readSafetensorsFile(weightsPath);
    if (
      contents.metadata.format === 'ane-train/checkpoint' &&
      [...contents.tensors.keys()].some((name) => name.startsWith('optimizer/'))
    ) {
      refuse(
        weightsPath,
        `importHuggingFace: ${weightsPath} is an ane-train checkpoint (weights with optimizer and trainer state), not a Hugging Face model: read it with loadCheckpoint, or export it first (exportHuggingFace, ane-train export)`,
        { field: 'file' },
      );
    }
    for (const [name, tensor] of contents.tensors) found.set(name, { tensor, file: weightsPath });
  }

  for (const name of [...found.keys()]) if (name.endsWith('.rotary_emb.inv_freq')) found.delete(name);
  if (config.tie_word_embeddings && found.has('lm_head.weight') && found.has('model.embed_tokens.weight')) {
    const head = tensorToFloat32(found.get('lm_head.weight')!.tensor);
    const embed = tensorToFloat32(found.get('model.embed_tokens.weight')!.tensor);
    if (head.length === embed.length && head.every((v, i) => Object.is(v, embed[i])))
      found.delete('lm_head.weight');
  }
  const file = weightsPath;
  checkWeights(config, new Map([...found].map(([name, { tensor }]) => [name, tensor])), { file });

  const weights = new Map<string, Float32Array>();
  for (const spec of parameterSpecs(config)) {
    const { tensor, file: from } = found.get(spec.name)!;
    const values = tensorToFloat32(tensor);
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i]!)) {
        refuse(
          from,
          `importHuggingFace: tensor '${spec.name}' in ${from} holds ${values[i]} at index ${i}: a model's weights are finite, so the file is corrupt`,
          {
            tensor: spec.name,
          },
        );
      }
    }
    weights.set(spec.name, values);
  }
  return { config, weights };
}

async function readConfig(configPath: string): Promise<LlamaConfig> {
  const bytes = await readRegularFile(configPath, (why) => {
    throw new ConfigError(
      `the model config ${configPath} ${why}: pass a model directory with a config.json file`,
      'config',
      configPath,
    );
  });
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new ConfigError(
      `the model config ${configPath} is not valid JSON (${(error as Error).message})`,
      'config',
      configPath,
    );
  }
  return parseLlamaConfig(json, { file: configPath });
}

/** model.safetensors.index.json: shard path → the tensor names it holds. */
async function readIndex(indexPath: string): Promise<Map<string, Set<string>>> {
  const bytes = await readRegularFile(indexPath, (why) =>
    refuse(indexPath, `importHuggingFace: ${indexPath} ${why}`, { field: 'file' }),
  );
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    refuse(indexPath, `importHuggingFace: ${indexPath} is not valid JSON (${(error as Error).message})`, {
      field: 'weight_map',
    });
  }
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (map === null || typeof map !== 'object' || Array.isArray(map)) {
    refuse(
      indexPath,
      `importHuggingFace: ${indexPath} has no "weight_map" object (tensor name → shard file)`,
      {
        field: 'weight_map',
      },
    );
  }
  const shards = new Map<string, Set<string>>();
  const dir = dirname(indexPath);
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    if (
      typeof shard !== 'string' ||
      shard === '' ||
      shard.includes('/') ||
      shard.includes('\\') ||
      shard.startsWith('.')
    ) {
      refuse(
        indexPath,
        `importHuggingFace: ${indexPath} maps tensor '${name}' to ${JSON.stringify(shard)}; expected a shard file name in the same directory`,
        {
          tensor: name,
          field: 'weight_map',
        },
      );
    }
    const shardPath = join(dir, shard);
    if (!shards.has(shardPath)) shards.set(shardPath, new Set());
    shards.get(shardPath)!.add(name);
  }
  return shards;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'an object';
  return typeof value === 'string' ? `the string '${value}'` : typeof value;
}
