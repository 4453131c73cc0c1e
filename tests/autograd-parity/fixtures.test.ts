/**
 * The PyTorch gradient fixtures load, hold what their configs say, and agree with a float64
 * forward written here from the model's definition (reference.ts): the loss and activations match,
 * central differences of that forward match the stored gradients, and a wrong convention (RoPE
 * pairing, GQA head mapping) visibly changes the loss.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  type Fixture,
  FixtureError,
  fixturePath,
  type LlamaFixtureConfig,
  type LlamaFixtureName,
  loadLlamaFixture,
  loadMlpFixture,
  parseFixture,
} from './fixtures';
import { type LlamaVariant, llamaForward, mlpForward, type Params } from './reference';

/** True when v is exactly an IEEE half-precision value (normal or subnormal). */
function isFp16(v: number): boolean {
  if (v === 0) return true;
  const magnitude = Math.abs(v);
  if (!Number.isFinite(magnitude) || magnitude > 65504) return false;
  const exponent = Math.max(Math.floor(Math.log2(magnitude)), -14);
  return Number.isInteger(magnitude / 2 ** (exponent - 10));
}

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function paramsOf(fixture: Fixture<unknown>): Record<string, ArrayLike<number>> {
  return Object.fromEntries(fixture.params.map((t) => [t.name, t.data]));
}

function maxAbs(values: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < values.length; i++) max = Math.max(max, Math.abs(values[i]!));
  return max;
}

/** The entry with the largest |gradient| and one fixed other entry. */
function largestAndOne(grad: Float32Array): number[] {
  let largest = 0;
  for (let i = 1; i < grad.length; i++) if (Math.abs(grad[i]!) > Math.abs(grad[largest]!)) largest = i;
  return [largest, Math.floor(grad.length * 0.37)];
}

/** `count` entries spread evenly over the tensor. */
const spread = (count: number) => (grad: Float32Array) =>
  Array.from({ length: count }, (_, k) => Math.floor(((k + 0.5) / count) * grad.length));

/**
 * Central differences of `loss` at some entries (default: `largestAndOne`) of every tensor that has
 * a gradient (or of the named ones), compared with the stored gradient relative to the tensor's
 * largest gradient. Returns the worst relative error and where it was.
 */
function finiteDifferenceError(
  fixture: Fixture<unknown>,
  loss: (x: ArrayLike<number>, params: Params) => number,
  options: { names?: readonly string[]; entries?: (grad: Float32Array) => number[] } = {},
): { worst: number; where: string } {
  const step = 1e-4;
  let worst = 0;
  let where = '';
  for (const tensor of fixture.tensors) {
    if (tensor.grad === undefined || (options.names !== undefined && !options.names.includes(tensor.name))) {
      continue;
    }
    const grad = tensor.grad;
    for (const index of (options.entries ?? largestAndOne)(grad)) {
      const perturbed = Float64Array.from(tensor.data);
      const at = (delta: number) => {
        perturbed[index] = tensor.data[index]! + delta;
        return tensor.role === 'input'
          ? loss(perturbed, paramsOf(fixture))
          : loss(fixture.tensor('x').data, { ...paramsOf(fixture), [tensor.name]: perturbed });
      };
      const numeric = (at(step) - at(-step)) / (2 * step);
      const error = Math.abs(numeric - grad[index]!) / maxAbs(grad);
      if (error > worst) {
        worst = error;
        where = `${tensor.name}[${index}]: finite difference ${numeric}, stored ${grad[index]}`;
      }
    }
  }
  return { worst, where };
}

function expectedLlamaShapes(c: LlamaFixtureConfig): Record<string, number[]> {
  return {
    x: [c.dim, c.seq],
    'layers.0.attention_norm': [c.dim],
    'layers.0.wq': [c.heads * c.headDim, c.dim],
    'layers.0.wk': [c.kvHeads * c.headDim, c.dim],
    'layers.0.wv': [c.kvHeads * c.headDim, c.dim],
    'layers.0.wo': [c.dim, c.heads * c.headDim],
    'layers.0.ffn_norm': [c.dim],
    'layers.0.w1': [c.hidden, c.dim],
    'layers.0.w3': [c.hidden, c.dim],
    'layers.0.w2': [c.dim, c.hidden],
    norm: [c.dim],
    output: [c.vocab, c.dim],
    h: [c.dim, c.seq],
    out: [c.dim, c.seq],
    logits: [c.vocab, c.seq],
  };
}

const LLAMA_CASES: { name: LlamaFixtureName; kvHeads: number }[] = [
  { name: 'llama-block-mha', kvHeads: 4 },
  { name: 'llama-block-gqa', kvHeads: 2 },
];

describe.each(LLAMA_CASES)('$name', ({ name, kvHeads }) => {
  const fixture = loadLlamaFixture(name);
  const forward = (x: ArrayLike<number>, params: Params, variant: LlamaVariant = {}) =>
    llamaForward(x, params, fixture.targets, fixture.config, variant);

  it("has the issue's dimensions and every array the size its shape says", () => {
    expect(fixture.config).toEqual({
      dim: 64,
      heads: 4,
      kvHeads,
      headDim: 16,
      hidden: 128,
      seq: 32,
      vocab: 64,
      eps: 1e-5,
      ropeTheta: 10000,
      ropeConvention: 'rotate-half',
    });
    const expected = expectedLlamaShapes(fixture.config);
    expect(fixture.tensors.map((t) => t.name).sort()).toEqual(Object.keys(expected).sort());
    for (const tensor of fixture.tensors) {
      expect(tensor.shape, tensor.name).toEqual(expected[tensor.name]);
      expect(tensor.data.length, tensor.name).toBe(size(tensor.shape));
      if (tensor.role === 'activation') expect(tensor.grad, tensor.name).toBeUndefined();
      else expect(tensor.grad?.length, `${tensor.name}'s gradient`).toBe(size(tensor.shape));
    }
    expect(fixture.params.map((p) => p.name)).toEqual(Object.keys(expected).slice(1, 12));
    expect(fixture.tensor('layers.0.wq').hf).toBe('model.layers.0.self_attn.q_proj.weight');
    expect(fixture.conventions).toMatch(/RoPE rotate-half/);
    expect(fixture.targets.length).toBe(32);
    for (const target of fixture.targets) expect(target >= 0 && target < 64).toBe(true);
  });

  it('holds fp16-representable inputs and weights', () => {
    for (const tensor of [fixture.tensor('x'), ...fixture.params]) {
      const bad = tensor.data.findIndex((v) => !isFp16(v));
      expect(bad, `${tensor.name}[${bad}] = ${tensor.data[bad]}`).toBe(-1);
    }
  });

  it('stores the loss and activations a float64 forward recomputes from its weights', () => {
    const result = forward(fixture.tensor('x').data, paramsOf(fixture));
    expect(Math.abs(result.loss - fixture.loss) / fixture.loss).toBeLessThan(1e-4);
    // Loss well away from ln(vocab) = 4.16 would mean a degenerate model; this one is not.
    expect(fixture.loss).toBeGreaterThan(3);
    expect(fixture.loss).toBeLessThan(6);
    for (const [activation, values] of [
      ['h', result.h],
      ['out', result.out],
      ['logits', result.logits],
    ] as const) {
      const stored = fixture.tensor(activation).data;
      let error = 0;
      for (let i = 0; i < values.length; i++) error = Math.max(error, Math.abs(values[i]! - stored[i]!));
      expect(error / maxAbs(values), activation).toBeLessThan(1e-5);
    }
  });

  it('stores gradients that central differences of the float64 forward reproduce', () => {
    const { worst, where } = finiteDifferenceError(fixture, (x, params) => forward(x, params).loss);
    expect(worst, where).toBeLessThan(1e-4);
  });

  it('tells a wrong RoPE pairing and a wrong GQA head mapping from the right ones', () => {
    const x = fixture.tensor('x').data;
    const params = paramsOf(fixture);
    const wrongRope: LlamaVariant = { rope: 'interleaved' };
    const wrongHeads: LlamaVariant = { kvHeadOf: (h, _heads, kv) => h % kv };
    const variants = kvHeads < fixture.config.heads ? [wrongRope, wrongHeads] : [wrongRope];
    for (const variant of variants) {
      // The loss moves by more than 5x the 1e-4 the right conventions are held to...
      expect(Math.abs(forward(x, params, variant).loss - fixture.loss) / fixture.loss).toBeGreaterThan(5e-4);
      // ...and the attention weights' gradients by a tenth of their largest entry or more (the right
      // conventions reproduce them to ~1e-8).
      const { worst } = finiteDifferenceError(fixture, (x, params) => forward(x, params, variant).loss, {
        names: ['layers.0.wq', 'layers.0.wk', 'layers.0.wv'],
        entries: spread(8),
      });
      expect(worst).toBeGreaterThan(0.1);
    }
  });
});

describe('mlp-relu', () => {
  const fixture = loadMlpFixture();

  it("has the issue's dimensions and every array the size its shape says", () => {
    expect(fixture.config).toEqual({ inputs: 16, hidden: 32, classes: 8, positions: 24 });
    const expected: Record<string, number[]> = {
      x: [16, 24],
      w1: [32, 16],
      b1: [32],
      w2: [8, 32],
      b2: [8],
      pre: [32, 24],
      logits: [8, 24],
    };
    expect(fixture.tensors.map((t) => t.name)).toEqual(Object.keys(expected));
    for (const tensor of fixture.tensors) {
      expect(tensor.shape, tensor.name).toEqual(expected[tensor.name]);
      expect(tensor.data.length, tensor.name).toBe(size(tensor.shape));
      if (tensor.role !== 'activation') expect(tensor.grad?.length, tensor.name).toBe(size(tensor.shape));
    }
    expect(fixture.targets.length).toBe(24);
    for (const target of fixture.targets) expect(target >= 0 && target < 8).toBe(true);
    for (const tensor of [fixture.tensor('x'), ...fixture.params]) {
      expect(tensor.data.every(isFp16), tensor.name).toBe(true);
    }
  });

  it('stores the loss a float64 forward recomputes, and a ReLU margin fp16 cannot cross', () => {
    const result = mlpForward(fixture.tensor('x').data, paramsOf(fixture), fixture.targets, fixture.config);
    expect(Math.abs(result.loss - fixture.loss) / fixture.loss).toBeLessThan(1e-4);
    let margin = Number.POSITIVE_INFINITY;
    for (const z of result.pre) margin = Math.min(margin, Math.abs(z));
    expect(Math.abs(margin - fixture.reluMargin)).toBeLessThan(1e-6);
    expect(fixture.reluMargin).toBeGreaterThanOrEqual(0.004);
  });

  it('stores gradients that central differences of the float64 forward reproduce', () => {
    const { worst, where } = finiteDifferenceError(
      fixture,
      (x, params) => mlpForward(x, params, fixture.targets, fixture.config).loss,
    );
    expect(worst, where).toBeLessThan(1e-4);
  });
});

describe('the loader', () => {
  it('names what a fixture holds when asked for a tensor or gradient it lacks', () => {
    const fixture = loadLlamaFixture('llama-block-mha');
    expect(() => fixture.tensor('layers.0.wqkv')).toThrow(FixtureError);
    expect(() => fixture.tensor('layers.0.wqkv')).toThrow(/no tensor 'layers.0.wqkv'; it has 'x', /);
    expect(() => fixture.grad('logits')).toThrow(/'logits' is an activation recorded without a gradient/);
    expect(fixture.grad('x')).toBe(fixture.tensor('x').grad);
  });

  it('refuses an array whose byte count does not match its shape, and says how to regenerate', () => {
    const text = readFileSync(fixturePath('mlp-relu'), 'utf8');
    const stored = JSON.parse(text) as { tensors: { name: string; data: string }[] };
    const b2 = stored.tensors.find((t) => t.name === 'b2')!;
    b2.data = Buffer.from(b2.data, 'base64').subarray(4).toString('base64');
    expect(() => parseFixture(JSON.stringify(stored), 'mlp-relu.json')).toThrow(FixtureError);
    expect(() => parseFixture(JSON.stringify(stored), 'mlp-relu.json')).toThrow(
      /mlp-relu.json: b2 should hold 8 float32 values for shape \[8\] \(32 bytes\) but holds 28 bytes; regenerate it with `pnpm refgen llama`/,
    );
    expect(parseFixture(text, 'mlp-relu.json').fixture.tensor('b2').data.length).toBe(8);
  });
});
