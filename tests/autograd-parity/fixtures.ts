/**
 * The PyTorch gradient fixtures of tools/refgen/llama_block_fixtures.py, decoded into named
 * Float32Arrays with their shapes.
 *
 * Layout (ane-ir's): weights `[out, in]` exactly like `nn.Linear.weight`; activations channels-first
 * `[C, S]` (the transpose of Hugging Face's `[S, C]` hidden states), element (c, s) at `c * S + s`;
 * norm gains `[D]`; targets `[S]` int32. Inputs and weights are fp16-representable; the model ran
 * in float64 in PyTorch and every result was rounded to float32. Gradients are of the mean
 * cross-entropy at loss scale 1.
 */
import { readFileSync } from 'node:fs';

/** One Llama block (see the generator's docstring for the exact model). */
export interface LlamaFixtureConfig {
  readonly dim: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly hidden: number;
  readonly seq: number;
  readonly vocab: number;
  readonly eps: number;
  readonly ropeTheta: number;
  readonly ropeConvention: 'rotate-half';
}

/** `logits = w2 relu(w1 x + b1) + b2` over `positions` columns. */
export interface MlpFixtureConfig {
  readonly inputs: number;
  readonly hidden: number;
  readonly classes: number;
  readonly positions: number;
}

export type LlamaFixtureName = 'llama-block-mha' | 'llama-block-gqa';
export type FixtureName = LlamaFixtureName | 'mlp-relu';

/**
 * 'input': the model input x (with its gradient); 'param': a trainable parameter (with its
 * gradient); 'activation': a forward value recorded for debugging (no gradient).
 */
export type FixtureRole = 'input' | 'param' | 'activation';

export interface FixtureTensor {
  /** The ane-ir name (llama2.c style: `layers.0.wq`, `norm`, `output`; `x` for the input). */
  readonly name: string;
  /** The Hugging Face / PyTorch name, or what the value is. */
  readonly hf: string;
  readonly role: FixtureRole;
  readonly shape: readonly number[];
  readonly data: Float32Array;
  /** d loss / d this tensor, same shape; present for the input and every parameter. */
  readonly grad?: Float32Array;
}

export interface Fixture<Config> {
  readonly name: FixtureName;
  /** One line describing the model. */
  readonly model: string;
  readonly generator: string;
  /** The torch version that wrote it. */
  readonly torch: string;
  readonly config: Config;
  readonly seed: number;
  /** Mean cross-entropy (float64). */
  readonly loss: number;
  /** Integer class per position, `[S]`. */
  readonly targets: Int32Array;
  /** Every float tensor in stored order: the input, the parameters, the activations. */
  readonly tensors: readonly FixtureTensor[];
  /** The parameters in stored order. */
  readonly params: readonly FixtureTensor[];
  /** The tensor with this ane-ir name; a FixtureError naming the known ones otherwise. */
  tensor(name: string): FixtureTensor;
  /** Its gradient; a FixtureError when it has none. */
  grad(name: string): Float32Array;
}

/** A fixture file that is missing, or whose contents do not match its own header. */
export class FixtureError extends Error {
  override readonly name = 'FixtureError';
}

interface StoredTensor {
  name: string;
  hf: string;
  role: FixtureRole | 'target';
  dtype?: 'int32';
  shape: number[];
  data: string;
  grad?: string;
}

const REGENERATE = 'regenerate it with `pnpm refgen llama` (needs python3-torch; see tools/refgen/README.md)';

export function fixturePath(name: FixtureName): string {
  return new URL(`./fixtures/${name}.json`, import.meta.url).pathname;
}

function decode(file: string, what: string, base64: string, shape: readonly number[], kind: 'f32' | 'i32') {
  const bytes = Buffer.from(base64, 'base64');
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.byteLength !== count * 4) {
    throw new FixtureError(
      `${file}: ${what} should hold ${count} ${kind === 'f32' ? 'float32' : 'int32'} values for shape ` +
        `[${shape.join(', ')}] (${count * 4} bytes) but holds ${bytes.byteLength} bytes; ${REGENERATE}`,
    );
  }
  // Copy into a fresh, aligned buffer (Buffer slices may share an unaligned pool), little-endian.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = kind === 'f32' ? new Float32Array(count) : new Int32Array(count);
  for (let i = 0; i < count; i++) {
    out[i] = kind === 'f32' ? view.getFloat32(i * 4, true) : view.getInt32(i * 4, true);
  }
  return out;
}

function load<Config>(name: FixtureName): { fixture: Fixture<Config>; raw: Record<string, unknown> } {
  const file = `fixtures/${name}.json`;
  let text: string;
  try {
    text = readFileSync(fixturePath(name), 'utf8');
  } catch (error) {
    throw new FixtureError(`cannot read ${file} (${(error as Error).message}); ${REGENERATE}`);
  }
  return parseFixture<Config>(text, file);
}

/** Decodes a fixture file's text (`file` names it in errors); every array is checked against its shape. */
export function parseFixture<Config>(
  text: string,
  file: string,
): { fixture: Fixture<Config>; raw: Record<string, unknown> } {
  const raw = JSON.parse(text) as Record<string, unknown> & {
    name: FixtureName;
    model: string;
    generator: string;
    torch: string;
    config: Config;
    seed: number;
    loss: number;
    tensors: StoredTensor[];
  };
  let targets: Int32Array | undefined;
  const tensors: FixtureTensor[] = [];
  for (const stored of raw.tensors) {
    if (stored.role === 'target') {
      targets = decode(file, stored.name, stored.data, stored.shape, 'i32') as Int32Array;
      continue;
    }
    const data = decode(file, stored.name, stored.data, stored.shape, 'f32') as Float32Array;
    const tensor: FixtureTensor = {
      name: stored.name,
      hf: stored.hf,
      role: stored.role,
      shape: stored.shape,
      data,
      ...(stored.grad === undefined
        ? {}
        : {
            grad: decode(file, `${stored.name}'s gradient`, stored.grad, stored.shape, 'f32') as Float32Array,
          }),
    };
    tensors.push(tensor);
  }
  if (targets === undefined) throw new FixtureError(`${file} has no targets; ${REGENERATE}`);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const tensor = (tensorName: string): FixtureTensor => {
    const found = byName.get(tensorName);
    if (found === undefined) {
      throw new FixtureError(
        `${file} has no tensor '${tensorName}'; it has ${[...byName.keys()].map((n) => `'${n}'`).join(', ')}`,
      );
    }
    return found;
  };
  const fixture: Fixture<Config> = {
    name: raw.name,
    model: raw.model,
    generator: raw.generator,
    torch: raw.torch,
    config: raw.config,
    seed: raw.seed,
    loss: raw.loss,
    targets,
    tensors,
    params: tensors.filter((t) => t.role === 'param'),
    tensor,
    grad(tensorName: string): Float32Array {
      const found = tensor(tensorName);
      if (found.grad === undefined) {
        throw new FixtureError(
          `${file}: '${tensorName}' is ${found.role === 'activation' ? 'an activation' : `a ${found.role}`} ` +
            'recorded without a gradient; gradients exist for the input x and every parameter',
        );
      }
      return found.grad;
    },
  };
  return { fixture, raw };
}

/** A Llama block fixture: MHA (4 KV heads) or GQA (2 KV heads, query head h reads KV head h // 2). */
export function loadLlamaFixture(
  name: LlamaFixtureName,
): Fixture<LlamaFixtureConfig> & { readonly conventions: string } {
  const { fixture, raw } = load<LlamaFixtureConfig>(name);
  // The model's formulas in one paragraph (the generator's docstring, condensed).
  return { ...fixture, conventions: raw['conventions'] as string };
}

/** The two-layer ReLU MLP fixture (in 16, hidden 32, 8 classes, 24 positions). */
export function loadMlpFixture(): Fixture<MlpFixtureConfig> & { readonly reluMargin: number } {
  const { fixture, raw } = load<MlpFixtureConfig>('mlp-relu');
  // The smallest |w1 x + b1| over the batch: a device error above it could flip a ReLU.
  return { ...fixture, reluMargin: raw['reluMargin'] as number };
}
