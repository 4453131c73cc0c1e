/**
 * The loss and every parameter's gradient of a Hugging Face Llama model on one token batch: the
 * library behind `ane-train grads`, how users check us against PyTorch.
 *
 * `computeGradients` runs one step of a device session (forward and dx on the device, dW, the
 * embedding and the loss where the plan puts them) on given weights and tokens and returns the mean
 * next-token cross-entropy over the B × S positions and d loss / d param by HF name.
 * `gradsCommand` is the file-level version: it reads and checks the config, the weights and the
 * tokens before running anything, and writes the gradients as F32 safetensors (atomically).
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CheckpointError, ConfigError, DataError, TrainError } from './errors';
import { readRegularFile } from './io/files';
import { readSafetensorsFile, tensorToFloat32, writeSafetensorsFile } from './io/safetensors';
import { checkTokens, readTokenFile } from './io/tokens';
import { type LlamaConfig, parseLlamaConfig } from './model/config';
import { parameterSpecs } from './model/parameters';
import { type DeviceSession, openSession } from './runtime/session';

export interface ComputeGradientsOptions {
  config: LlamaConfig;
  /** Every parameter by Hugging Face name (fp32 values, HF shapes flattened row-major). */
  weights: ReadonlyMap<string, Float32Array>;
  /** B × (S + 1) token ids, sequence after sequence. */
  tokens: ArrayLike<number>;
  batch: number;
  seq: number;
  backend?: 'auto' | 'ane' | 'sim';
  /**
   * The loss scale of the device step (default 1024, a power of two, so exact): the device keeps
   * gradients in fp16, where the small gradients of a mean over many positions (≈1e-5 and below)
   * would fall into subnormals at scale 1 (for Stories' vocabulary of 32000 and seq 256, a logit's
   * gradient is ~1e-7, below fp16's smallest subnormal). The gradients are divided by it on the
   * host; if any comes back infinite or NaN, the step is run again at a scale 32× smaller, down
   * to 1. (On the refgen fixture both 1 and 1024 stay within 0.33% of each tensor's largest
   * gradient against PyTorch; 1024 is for models whose gradients are smaller.)
   */
  lossScale?: number;
  /** Opens the device session (default: `openSession`, in this process). Tests inject variants. */
  openSession?: typeof openSession;
}

export interface GradientsResult {
  /** Mean next-token cross-entropy over the B × S positions. */
  loss: number;
  /** d loss / d param by Hugging Face name, in HF's parameter order. */
  grads: Map<string, Float32Array>;
  /** The loss scale the returned gradients were computed at (divided out). */
  lossScale: number;
  /** The device's backend ('auto' resolved). */
  backend: 'ane' | 'sim';
}

const DEFAULT_LOSS_SCALE = 1024;

/**
 * The weights a config needs, checked: every parameter present with its shape's number of values,
 * no unknown names (a typo must not pass as an ignored tensor). Returns the names in HF order.
 */
export function checkWeights(
  config: LlamaConfig,
  weights: ReadonlyMap<string, { readonly length: number } | { readonly shape: readonly number[] }>,
  options: { file?: string } = {},
): void {
  const where = options.file !== undefined ? `weights file ${options.file}` : 'the weights';
  const specs = parameterSpecs(config);
  const expected = new Map(specs.map((s) => [s.name, s.shape]));
  const unknown = [...weights.keys()].filter((name) => !expected.has(name));
  if (unknown.length > 0) {
    const tiedHint =
      config.tie_word_embeddings && unknown.includes('lm_head.weight')
        ? ' (the config ties lm_head.weight to model.embed_tokens.weight: set tie_word_embeddings false, or drop lm_head.weight)'
        : '';
    throw new CheckpointError(
      `${where}: ${unknown.length} tensor(s) the model does not have: ${list(unknown)}${tiedHint}. The model (${specs.length} parameters) expects Hugging Face names such as '${specs[1]?.name ?? specs[0]!.name}'`,
      { ...(options.file !== undefined ? { file: options.file } : {}), tensor: unknown[0]! },
    );
  }
  const missing = specs.filter((s) => !weights.has(s.name)).map((s) => s.name);
  if (missing.length > 0) {
    const tiedHint =
      !config.tie_word_embeddings && missing.includes('lm_head.weight')
        ? ' (the config has tie_word_embeddings false, so lm_head.weight is a parameter of its own: set tie_word_embeddings true if the model shares the embedding)'
        : '';
    throw new CheckpointError(
      `${where}: ${missing.length} of the model's ${specs.length} parameters are missing: ${list(missing)}${tiedHint}`,
      { ...(options.file !== undefined ? { file: options.file } : {}), tensor: missing[0]! },
    );
  }
  for (const spec of specs) {
    const value = weights.get(spec.name)!;
    const ok =
      'shape' in value
        ? value.shape.length === spec.shape.length && value.shape.every((d, i) => d === spec.shape[i])
        : value.length === spec.shape.reduce((a, b) => a * b, 1);
    if (!ok) {
      const found = 'shape' in value ? `shape [${value.shape.join(', ')}]` : `${value.length} values`;
      throw new CheckpointError(
        `${where}: tensor '${spec.name}' has ${found}, the config needs [${spec.shape.join(', ')}]: check the config.json belongs to these weights`,
        { ...(options.file !== undefined ? { file: options.file } : {}), tensor: spec.name },
      );
    }
  }
}

function list(names: readonly string[]): string {
  const shown = names.slice(0, 4).map((n) => `'${n}'`);
  return names.length > 4 ? `${shown.join(', ')}, … (${names.length - 4} more)` : shown.join(', ');
}

function checkBatchShape(batch: number, seq: number, tokens: number, file?: string): void {
  if (!Number.isSafeInteger(batch) || batch < 1) {
    throw new ConfigError(`batch must be a whole number ≥ 1 (sequences), got ${String(batch)}`, 'batch');
  }
  if (!Number.isSafeInteger(seq) || seq < 1) {
    throw new ConfigError(
      `seq must be a whole number ≥ 1 (positions per sequence), got ${String(seq)}`,
      'seq',
    );
  }
  if (tokens !== batch * (seq + 1)) {
    const where = file !== undefined ? `token file ${file}` : 'the tokens';
    throw new DataError(
      `${where} holds ${tokens} token ids; batch ${batch} × (seq ${seq} + 1) needs exactly ${batch * (seq + 1)}` +
        (tokens % (seq + 1) === 0 ? ` (it fits batch ${tokens / (seq + 1)})` : '') +
        ': each sequence holds seq inputs and the one token after them',
      { ...(file !== undefined ? { file } : {}) },
    );
  }
}

/** The loss and d loss / d param (by HF name) of `weights` on one batch, on a device session. */
export async function computeGradients(options: ComputeGradientsOptions): Promise<GradientsResult> {
  if (options === null || typeof options !== 'object') {
    throw new ConfigError(
      `computeGradients(options): options must be an object { config, weights, tokens, batch, seq }, got ${String(options)}`,
      'options',
    );
  }
  const { config, weights, tokens, batch, seq } = options;
  if (config === null || typeof config !== 'object') {
    throw new ConfigError(
      `computeGradients: config must be a model config object (parseLlamaConfig(json) or PRESETS.tiny), got ${typeof config === 'string' ? `the string '${config}'` : String(config)}`,
      'config',
    );
  }
  if (!(weights instanceof Map)) {
    throw new CheckpointError(
      `computeGradients: weights must be a Map from Hugging Face parameter name to Float32Array, got ${weights === null ? 'null' : typeof weights}: new Map(Object.entries(weights)) converts an object`,
    );
  }
  if (
    tokens === null ||
    (typeof tokens !== 'object' && typeof tokens !== 'function') ||
    typeof tokens.length !== 'number'
  ) {
    throw new DataError(
      `computeGradients: tokens must be an array of token ids (Uint16Array, Int32Array, number[]), got ${tokens === null ? 'null' : typeof tokens}`,
    );
  }
  checkBatchShape(batch, seq, tokens.length);
  checkWeights(config, weights);
  checkTokens(tokens, config.vocab_size);
  let lossScale = options.lossScale ?? DEFAULT_LOSS_SCALE;
  if (!(Number.isFinite(lossScale) && lossScale >= 1)) {
    throw new ConfigError(`lossScale must be a finite number ≥ 1, got ${String(lossScale)}`, 'lossScale');
  }
  const ids = Int32Array.from(tokens);
  const open = options.openSession ?? openSession;
  const session: DeviceSession = await open({ config, seq, batch, backend: options.backend ?? 'auto' });
  try {
    await session.writeWeights(weights);
    for (;;) {
      const step = await session.step(ids, lossScale);
      const bad = [...step.grads].find(([, g]) => !g.every(Number.isFinite))?.[0];
      if (bad === undefined) {
        const grads = new Map<string, Float32Array>();
        for (const spec of parameterSpecs(config)) {
          const g = step.grads.get(spec.name);
          if (g === undefined)
            throw new TrainError(`the device session returned no gradient for '${spec.name}'`);
          if (lossScale !== 1) for (let i = 0; i < g.length; i++) g[i]! /= lossScale;
          grads.set(spec.name, g);
        }
        return { loss: step.loss, grads, lossScale, backend: session.backend };
      }
      if (lossScale <= 1) {
        throw new TrainError(
          `the gradient of '${bad}' is not finite even at loss scale 1 (loss ${step.loss}): the model overflows fp16 on the device; check the weights (e.g. their magnitude) or run on the CPU`,
        );
      }
      lossScale = Math.max(1, lossScale / 32);
    }
  } finally {
    await session.dispose();
  }
}

export interface GradsCommandOptions {
  configPath: string;
  weightsPath: string;
  tokensPath: string;
  batch: number;
  seq: number;
  outPath: string;
  backend?: 'auto' | 'ane' | 'sim';
  /** See ComputeGradientsOptions.lossScale. */
  lossScale?: number;
  openSession?: typeof openSession;
}

/** The gradients file can be written: its directory exists and is writable, it is not a directory. */
async function checkWritable(outPath: string): Promise<void> {
  const refuse = (why: string): never => {
    throw new CheckpointError(`cannot write the gradients to ${outPath}: ${why}`, { file: outPath });
  };
  const existing = await stat(outPath).catch(() => undefined);
  if (existing !== undefined && !existing.isFile())
    refuse('it exists and is not a regular file; choose a file path');
  const directory = dirname(outPath);
  try {
    await access(directory, constants.W_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    refuse(
      code === 'ENOENT'
        ? `the directory ${directory} does not exist; create it first`
        : `the directory ${directory} is not writable (${code ?? (error as Error).message})`,
    );
  }
}

/**
 * The gradients file is none of the inputs (compared as files: device and inode, so any spelling
 * of the path counts): `--out w.safetensors` would replace the weights with their gradients.
 */
async function checkNotAnInput(outPath: string, inputs: Record<'config' | 'weights' | 'tokens', string>) {
  const out = await stat(outPath).catch(() => undefined);
  if (out === undefined) return; // a new file cannot be an existing input
  for (const [kind, path] of Object.entries(inputs)) {
    const input = await stat(path).catch(() => undefined);
    if (input !== undefined && input.dev === out.dev && input.ino === out.ino) {
      throw new CheckpointError(
        `cannot write the gradients to ${outPath}: it is the ${kind} file (${path}); name a new file for --out`,
        { file: outPath },
      );
    }
  }
}

/**
 * `ane-train grads`: reads and checks the config (parseLlamaConfig), the weights (F32/F16/BF16
 * safetensors under HF names: every parameter, the right shapes, no unknown tensors) and the
 * tokens (B × (S + 1) ids below vocab_size) and that the output can be written, BEFORE running anything, computes the gradients and
 * writes them as F32 safetensors under their HF names (atomically; the loss in the metadata).
 * Prints nothing: the CLI prints the loss.
 */
export async function gradsCommand(options: GradsCommandOptions): Promise<GradientsResult> {
  if (options === null || typeof options !== 'object') {
    throw new ConfigError(
      `gradsCommand(options): options must be an object { configPath, weightsPath, tokensPath, batch, seq, outPath }, got ${String(options)}`,
      'options',
    );
  }
  const { configPath, weightsPath, tokensPath, batch, seq, outPath } = options;
  // A regular file only: readFile on a FIFO would block forever, on a directory fail obscurely.
  const configBytes = await readRegularFile(configPath, (why) => {
    throw new ConfigError(
      `the model config ${configPath} ${why}: pass a Hugging Face config.json`,
      'config',
      configPath,
    );
  });
  const configText = new TextDecoder().decode(configBytes);
  let json: unknown;
  try {
    json = JSON.parse(configText);
  } catch (error) {
    throw new ConfigError(
      `the model config ${configPath} is not valid JSON (${(error as Error).message})`,
      'config',
      configPath,
    );
  }
  const config = parseLlamaConfig(json, { file: configPath });
  await checkWritable(outPath);
  await checkNotAnInput(outPath, { config: configPath, weights: weightsPath, tokens: tokensPath });
  const tokens = await readTokenFile(tokensPath);
  checkBatchShape(batch, seq, tokens.length, tokensPath);
  checkTokens(tokens, config.vocab_size, { file: tokensPath });
  const file = await readSafetensorsFile(weightsPath);
  checkWeights(config, file.tensors, { file: weightsPath });
  const weights = new Map<string, Float32Array>();
  for (const [name, tensor] of file.tensors) weights.set(name, tensorToFloat32(tensor));

  const result = await computeGradients({
    config,
    weights,
    tokens,
    batch,
    seq,
    ...(options.backend !== undefined ? { backend: options.backend } : {}),
    ...(options.lossScale !== undefined ? { lossScale: options.lossScale } : {}),
    ...(options.openSession !== undefined ? { openSession: options.openSession } : {}),
  });
  const specs = new Map(parameterSpecs(config).map((s) => [s.name, s.shape]));
  const out = new Map(
    [...result.grads].map(([name, values]) => [
      name,
      { dtype: 'F32' as const, shape: [...specs.get(name)!], values },
    ]),
  );
  await writeSafetensorsFile(outPath, out, {
    loss: String(result.loss),
    batch: String(batch),
    seq: String(seq),
    backend: result.backend,
    note: 'd loss / d parameter under Hugging Face names; loss: mean next-token cross-entropy over batch × seq positions',
  });
  return result;
}
