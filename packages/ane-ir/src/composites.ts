/**
 * Composites: every higher-level op, built only from the primitives of `ops/primitives.ts`. Each call
 * is tagged with its composite kind (`Graph.composite`), so the partitioner can place it as a unit
 * (an RMSNorm whose sum of squares could overflow fp16 runs on the host as one op).
 *
 * Layout: activations are channels-first `[C, S]` (features, positions); linear weights are
 * `[out, in]`; attention heads are `[H, S, HD]`.
 */

import { constantNumbers } from './graph/data';
import { ConstraintError, IrError, ShapeError } from './graph/errors';
import { evaluate } from './graph/evaluate';
import { Graph } from './graph/graph';
import { isConstantLike, type Tensor } from './graph/tensor';
import { FP16_MAX } from './mil/fp16';
import { DEFAULT_CHIP } from './mil/rules';
import {
  add,
  concat,
  conv2d,
  div,
  equal,
  exp,
  gather,
  log,
  matmul,
  mul,
  pow,
  reduceMax,
  reduceSum,
  reshape,
  select,
  sigmoid,
  slice,
  softmax,
  sub,
  tanh,
  transpose,
} from './ops/primitives';

/** The fp16 value masks use for "never attend": the most negative finite fp16 (never -inf). */
export const MASK_VALUE = -FP16_MAX;

function named(options: { name?: string }, fallback: string): string {
  return options.name ?? fallback;
}

// ---- elementwise helpers ----

/** -x, as `mul(x, -1)`. */
export function neg(x: Tensor): Tensor {
  return mul(x, -1, { name: 'neg' });
}

/** Zeros shaped like x, as `sub(x, x)`: never `mul(x, 0)`, which fails to compile after a reduction. */
export function zerosLike(x: Tensor): Tensor {
  return sub(x, x, { name: 'zeros' });
}

/** A tensor shaped like x filled with `value`, as `(x - x) + value`. */
export function fullLike(x: Tensor, value: number): Tensor {
  return add(zerosLike(x), value, { name: 'full' });
}

/** Mean over `axes` (sum times 1/n). */
export function mean(
  x: Tensor,
  axes: number | readonly number[],
  options: { keepDims?: boolean } = {},
): Tensor {
  const list = typeof axes === 'number' ? [axes] : axes;
  const count = list.reduce((n, axis) => n * x.shape[axis < 0 ? axis + x.rank : axis]!, 1);
  return x.graph.composite('mean', 'mean', () =>
    mul(reduceSum(x, list, { keepDims: options.keepDims ?? false }), 1 / count),
  );
}

// ---- linear layers ----

export interface LinearOptions {
  /** Bias `[out]`, added after the product. */
  bias?: Tensor;
  name?: string;
}

/**
 * y `[out, S]` = W `[out, in]` · x `[in, S]`. With a frozen or constant W it lowers to a 1x1 conv;
 * with a trainable W the weight travels packed in the kernel input and the product is a matmul.
 */
export function linear(x: Tensor, weight: Tensor, options: LinearOptions = {}): Tensor {
  return x.graph.composite(
    'linear',
    named(options, 'linear'),
    () => {
      if (x.rank !== 2 || weight.rank !== 2) {
        throw new ShapeError(
          'linear',
          `${x.name}`,
          [x.shape, weight.shape],
          'expects x [in, S] (channels-first) and weight [out, in]',
        );
      }
      const y = matmul(weight, x, { name: 'y' });
      if (options.bias === undefined) return y;
      return add(y, reshape(options.bias, [weight.shape[0]!, 1], { name: 'bias' }), { name: 'y_bias' });
    },
    { x, weight, ...(options.bias !== undefined ? { bias: options.bias } : {}) },
  );
}

// ---- normalization ----

export interface NormOptions {
  /** Default 1e-5 (an fp16 subnormal; never below 2^-24, which is 0 in fp16). */
  eps?: number;
  name?: string;
}

/**
 * RMSNorm over the channels of x `[D, S]`: `x * (sum_c x^2 / D + eps)^-0.5 * gain[D]`. The sum of
 * squares is the fp16 hazard: it reaches 65504 once the RMS passes sqrt(65504 / D).
 */
export function rmsNorm(x: Tensor, gain: Tensor, options: NormOptions = {}): Tensor {
  return x.graph.composite(
    'rmsnorm',
    named(options, 'rmsnorm'),
    () => {
      const channels = x.shape[0]!;
      if (gain.rank !== 1 || gain.shape[0] !== channels) {
        throw new ShapeError('rmsnorm', x.name, [x.shape, gain.shape], `gain must be [${channels}]`);
      }
      const squares = mul(x, x, { name: 'sq' });
      const sum = reduceSum(squares, 0, { keepDims: true, name: 'ss' });
      const meanSquare = mul(sum, 1 / channels, { name: 'ms' });
      const shifted = add(meanSquare, options.eps ?? 1e-5, { name: 'ms_eps' });
      const inverse = pow(shifted, -0.5, { name: 'rrms' });
      const normalized = mul(x, inverse, { name: 'xr' });
      return mul(normalized, reshape(gain, [channels, 1], { name: 'g' }), { name: 'out' });
    },
    { x, gain, eps: options.eps ?? 1e-5 },
  );
}

/** LayerNorm over the channels of x `[D, S]`, with gain and optional bias `[D]`. */
export function layerNorm(x: Tensor, gain: Tensor, bias?: Tensor, options: NormOptions = {}): Tensor {
  return x.graph.composite('layernorm', named(options, 'layernorm'), () => {
    const channels = x.shape[0]!;
    const mu = mul(reduceSum(x, 0, { keepDims: true, name: 'sum' }), 1 / channels, { name: 'mu' });
    const centered = sub(x, mu, { name: 'xc' });
    const squares = mul(centered, centered, { name: 'sq' });
    const variance = mul(reduceSum(squares, 0, { keepDims: true, name: 'ss' }), 1 / channels, {
      name: 'var',
    });
    const inverse = pow(add(variance, options.eps ?? 1e-5, { name: 'var_eps' }), -0.5, { name: 'rstd' });
    const scaled = mul(mul(centered, inverse, { name: 'xn' }), reshape(gain, [channels, 1], { name: 'g' }), {
      name: 'xg',
    });
    return bias === undefined
      ? scaled
      : add(scaled, reshape(bias, [channels, 1], { name: 'b' }), { name: 'out' });
  });
}

// ---- activations ----

/** SiLU: `x * sigmoid(x)`. */
export function silu(x: Tensor, options: { name?: string } = {}): Tensor {
  return x.graph.composite('silu', named(options, 'silu'), () =>
    mul(x, sigmoid(x, { name: 'sig' }), { name: 'out' }),
  );
}

export interface GeluOptions {
  /** 'tanh' (default): `0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))`; 'sigmoid': `x * sigmoid(1.702x)`. */
  approximation?: 'tanh' | 'sigmoid';
  name?: string;
}

/** GELU, decomposed (native `gelu` is contested on the ANE, and its LUT differs between chips). */
export function gelu(x: Tensor, options: GeluOptions = {}): Tensor {
  return x.graph.composite('gelu', named(options, 'gelu'), () => {
    if (options.approximation === 'sigmoid') return mul(x, sigmoid(mul(x, 1.702)), { name: 'out' });
    const cube = mul(mul(x, x), x, { name: 'cube' });
    const inner = mul(add(x, mul(cube, 0.044715)), Math.sqrt(2 / Math.PI), { name: 'inner' });
    const gate = add(tanh(inner), 1, { name: 'gate' });
    return mul(mul(x, gate), 0.5, { name: 'out' });
  });
}

export interface SwigluParts {
  /** W2 · gate, `[D, S]`. */
  readonly y: Tensor;
  /** W1 · x, `[HID, S]`. */
  readonly h1: Tensor;
  /** W3 · x, `[HID, S]`. */
  readonly h3: Tensor;
  /** silu(h1) * h3, `[HID, S]`. */
  readonly gate: Tensor;
}

/** SwiGLU feed-forward, returning its intermediate values too (forward taps for a backward pass). */
export function swigluParts(
  x: Tensor,
  w1: Tensor,
  w3: Tensor,
  w2: Tensor,
  options: { name?: string } = {},
): SwigluParts {
  return x.graph.composite('swiglu', named(options, 'ffn'), () => {
    const h1 = linear(x, w1, { name: 'w1' });
    const h3 = linear(x, w3, { name: 'w3' });
    const gate = mul(silu(h1), h3, { name: 'gate' });
    const y = linear(gate, w2, { name: 'w2' });
    return { y, h1, h3, gate };
  });
}

/** SwiGLU feed-forward: `W2 (silu(W1 x) * W3 x)`. */
export function swiglu(
  x: Tensor,
  w1: Tensor,
  w3: Tensor,
  w2: Tensor,
  options: { name?: string } = {},
): Tensor {
  return swigluParts(x, w1, w3, w2, options).y;
}

// ---- rotary position embedding ----

/**
 * 'interleaved': pairs (2i, 2i+1) rotate together (llama2.c, Meta's checkpoints).
 * 'rotate-half': element i pairs with i + HD/2 (Hugging Face `rotate_half`).
 */
export type RopeConvention = 'interleaved' | 'rotate-half';

export interface RopeTableOptions {
  /** Default 10000. */
  base?: number;
  /** Default 'interleaved'. */
  convention?: RopeConvention;
  /** Position of the first row (default 0). */
  offset?: number;
  /**
   * Sequences packed back to back along the positions (default 1): the tables are
   * `[seq * sequences, HD]`, each sequence's rows starting again at `offset`.
   */
  sequences?: number;
  name?: string;
}

export interface RopeTables {
  /** `[S, HD]` fp16 constants. */
  readonly cos: Tensor;
  readonly sin: Tensor;
  readonly convention: RopeConvention;
}

/** cos/sin tables `[S, HD]` for positions 0..S-1, each frequency laid out for `convention`. */
export function ropeTables(
  graph: Graph,
  seq: number,
  headDim: number,
  options: RopeTableOptions = {},
): RopeTables {
  if (headDim % 2 !== 0) throw new IrError(`ropeTables: headDim must be even, got ${headDim}`);
  const base = options.base ?? 10000;
  const convention = checkedConvention('ropeTables', options.convention ?? 'interleaved');
  const offset = options.offset ?? 0;
  const sequences = wholeSequences('ropeTables', options.sequences);
  const half = headDim / 2;
  const rows = seq * sequences;
  const cos = new Float64Array(rows * headDim);
  const sin = new Float64Array(rows * headDim);
  for (let row = 0; row < rows; row++) {
    const p = row % seq;
    for (let j = 0; j < headDim; j++) {
      const i = convention === 'interleaved' ? Math.floor(j / 2) : j % half;
      const angle = (p + offset) / base ** ((2 * i) / headDim);
      cos[row * headDim + j] = Math.cos(angle);
      sin[row * headDim + j] = Math.sin(angle);
    }
  }
  const prefix = options.name ?? 'rope';
  return {
    cos: graph.constant(cos, [rows, headDim], { name: `${prefix}_cos` }),
    sin: graph.constant(sin, [rows, headDim], { name: `${prefix}_sin` }),
    convention,
  };
}

/**
 * Rotates heads x `[H, S, HD]` by position: `x * cos + rot(x) * sin`, where rot pairs elements by
 * the tables' convention and negates the first of each pair. It is computed as
 * `x * cos + swap(x) * signedSin`: negating the table instead of the values gives the same bits
 * (fp16 negation is exact) with one op fewer, and makes the backward the same form (see
 * `ropeSwap`). The call records `{ x, cos, signedSin, convention }`.
 */
export function rope(x: Tensor, tables: RopeTables, options: { name?: string } = {}): Tensor {
  const [, seq, headDim] = x.shape as [number, number, number];
  if (x.rank !== 3 || tables.cos.shape[0] !== seq || tables.cos.shape[1] !== headDim) {
    throw new ShapeError(
      'rope',
      x.name,
      [x.shape, tables.cos.shape],
      'expects x [H, S, HD] and tables [S, HD]',
    );
  }
  const convention = checkedConvention('rope', tables.convention);
  const sinSigned = signedSin(tables.sin, convention);
  const args = { x, cos: tables.cos, signedSin: sinSigned, convention };
  return x.graph.composite(
    'rope',
    named(options, 'rope'),
    () => {
      const xc = mul(x, tables.cos, { name: 'xc' });
      const rs = mul(ropeSwap(x, convention, { name: 'swap' }), sinSigned, { name: 'rs' });
      return add(xc, rs, { name: 'out' });
    },
    args,
  );
}

/**
 * Exchanges the two elements of every rotating pair along the last axis (its size even):
 * 'rotate-half' swaps the halves, 'interleaved' swaps elements 2i and 2i+1. Its own inverse and
 * its own transpose, so RoPE's input gradient is `dy * cos + swap(dy) * swap(signedSin)`.
 */
export function ropeSwap(x: Tensor, convention: RopeConvention, options: { name?: string } = {}): Tensor {
  checkedConvention('ropeSwap', convention);
  const shape = x.shape;
  const width = shape[shape.length - 1];
  if (x.rank < 1 || width === undefined || width % 2 !== 0) {
    throw new ShapeError('ropeSwap', x.name, [shape], 'expects a last axis of even size');
  }
  const name = named(options, 'swap');
  const half = width / 2;
  if (convention === 'rotate-half') {
    const begin = (at: number) => shape.map((_, a) => (a === shape.length - 1 ? at : 0));
    const halfShape = shape.map((d, a) => (a === shape.length - 1 ? half : d));
    const first = slice(x, begin(0), halfShape, { name: 'x1' });
    const second = slice(x, begin(half), halfShape, { name: 'x2' });
    return concat([second, first], shape.length - 1, { name });
  }
  // [..., S, HD] as [..., S * HD / 2, 2]: each pair one row.
  const lead = shape.slice(0, -2);
  const rows = (shape.length >= 2 ? shape[shape.length - 2]! : 1) * half;
  const pairs = reshape(x, [...lead, rows, 2], { name: 'pairs' });
  const pairShape = [...lead, rows, 1];
  const begin = (at: number) => pairShape.map((_, a) => (a === pairShape.length - 1 ? at : 0));
  const even = slice(pairs, begin(0), pairShape, { name: 'even' });
  const odd = slice(pairs, begin(1), pairShape, { name: 'odd' });
  return reshape(concat([odd, even], pairShape.length - 1, { name: 'swapped' }), shape, { name });
}

const ROPE_CONVENTIONS: readonly RopeConvention[] = ['interleaved', 'rotate-half'];

function checkedConvention(what: string, convention: unknown): RopeConvention {
  if (ROPE_CONVENTIONS.includes(convention as RopeConvention)) return convention as RopeConvention;
  throw new IrError(
    `${what}: convention must be ${ROPE_CONVENTIONS.map((c) => `'${c}'`).join(' or ')}, got ${typeof convention === 'string' ? `'${convention}'` : String(convention)}`,
  );
}

/** RoPE tables derived from a table, by the table and convention (built once, outside any call). */
type DerivedTables = WeakMap<Tensor, Map<RopeConvention, Tensor>>;

function derivedOnce(
  cache: DerivedTables,
  table: Tensor,
  convention: RopeConvention,
  build: () => Tensor,
): Tensor {
  let byConvention = cache.get(table);
  if (byConvention === undefined) {
    byConvention = new Map();
    cache.set(table, byConvention);
  }
  let derived = byConvention.get(convention);
  if (derived === undefined) {
    derived = table.graph.unscoped(build);
    byConvention.set(convention, derived);
  }
  return derived;
}

const SWAPPED_TABLES: DerivedTables = new WeakMap();

/**
 * `ropeSwap` of a table `[S, HD]` (RoPE's backward reads `swap(signedSin)`), built once per table
 * and convention outside any call: a constant table gives a constant, its elements moved at build
 * time so no op reaches a kernel; any other table gives the swap's ops.
 */
export function swappedRopeTable(table: Tensor, convention: RopeConvention): Tensor {
  checkedConvention('swappedRopeTable', convention);
  const name = `${table.localName}_swapped`;
  return derivedOnce(SWAPPED_TABLES, table, convention, () => {
    if (table.op.kind !== 'constant') return ropeSwap(table, convention, { name });
    // The same swap, evaluated on a copy of the table in a scratch graph: moved elements are exact.
    const scratch = new Graph();
    const copy = scratch.constantFromData(table.op.data, table.shape, { dtype: table.dtype });
    const [values] = evaluate([ropeSwap(copy, convention)], {});
    return table.graph.constant(values!, table.shape, { dtype: table.dtype, name });
  });
}

const SIGNED_SIN: DerivedTables = new WeakMap();

/**
 * `sin` with the first element of each rotating pair negated, so `rot(x) * sin = swap(x) *
 * signedSin` exactly: built once per table and convention, outside any call, and shared by every
 * rope that reads the table. A constant table gives a constant; any other is multiplied by ±1.
 */
function signedSin(sin: Tensor, convention: RopeConvention): Tensor {
  const headDim = sin.shape[sin.rank - 1]!;
  const negated = (j: number) => (convention === 'interleaved' ? j % 2 === 0 : j < headDim / 2);
  const name = `${sin.localName}_signed`;
  const graph = sin.graph;
  return derivedOnce(SIGNED_SIN, sin, convention, () => {
    if (sin.op.kind === 'constant' && (sin.op.data.dtype === 'fp16' || sin.op.data.dtype === 'fp32')) {
      const data = sin.op.data;
      const values = data.values.slice() as Uint16Array | Float32Array;
      for (let i = 0; i < values.length; i++) {
        if (!negated(i % headDim)) continue;
        // fp16 data is bit patterns: negation flips the sign bit.
        if (data.dtype === 'fp16') values[i] = values[i]! ^ 0x8000;
        else values[i] = -values[i]!;
      }
      return graph.constantFromData({ dtype: data.dtype, values }, sin.shape, { name, dtype: sin.dtype });
    }
    const signs = Float64Array.from({ length: headDim }, (_, j) => (negated(j) ? -1 : 1));
    return mul(sin, graph.constant(signs, [headDim], { dtype: sin.dtype, name: `${name}_signs` }), { name });
  });
}

// ---- attention ----

/** `[H * HD, S]` -> `[H, S, HD]`. */
export function splitHeads(x: Tensor, heads: number, options: { name?: string } = {}): Tensor {
  const [channels, seq] = x.shape as [number, number];
  if (x.rank !== 2 || channels % heads !== 0) {
    throw new ShapeError('split_heads', x.name, [x.shape], `channels must divide into ${heads} heads`);
  }
  const base = named(options, 'heads');
  const split = reshape(x, [heads, channels / heads, seq], { name: `${base}_r` });
  return transpose(split, [0, 2, 1], { name: base });
}

/** `[H, S, HD]` -> `[H * HD, S]`. */
export function mergeHeads(x: Tensor, options: { name?: string } = {}): Tensor {
  const [heads, seq, headDim] = x.shape as [number, number, number];
  const base = named(options, 'merged');
  const back = transpose(x, [0, 2, 1], { name: `${base}_t` });
  return reshape(back, [heads * headDim, seq], { name: base });
}

const MASKS = new WeakMap<Graph, Map<string, Tensor>>();

/** A `sequences` option: a whole number ≥ 1 (default 1). */
function wholeSequences(op: string, sequences: number | undefined): number {
  const value = sequences ?? 1;
  if (!Number.isSafeInteger(value) || value < 1)
    throw new IrError(
      `${op}: sequences must be a whole number ≥ 1, got ${typeof value === 'number' ? String(value) : `${typeof value} ${JSON.stringify(value)}`}`,
    );
  return value;
}

/**
 * Additive causal mask `[S, S]`: 0 where key <= query, -65504 elsewhere. One constant per graph,
 * size and name: every attention call shares it. With `sequences`, the positions hold that many
 * sequences of `seq` back to back, and the mask `[seq * sequences]²` is block diagonal: a query
 * sees the keys up to itself within its own sequence only.
 */
export function causalMask(
  graph: Graph,
  seq: number,
  options: { name?: string; sequences?: number } = {},
): Tensor {
  const name = options.name ?? 'causal_mask';
  const sequences = wholeSequences('causalMask', options.sequences);
  let masks = MASKS.get(graph);
  if (masks === undefined) {
    masks = new Map();
    MASKS.set(graph, masks);
  }
  const key = `${seq}x${sequences}:${name}`;
  const cached = masks.get(key);
  if (cached !== undefined) return cached;
  const n = seq * sequences;
  const values = new Float64Array(n * n).fill(MASK_VALUE);
  for (let t = 0; t < n; t++) {
    const first = t - (t % seq);
    for (let u = first; u <= t; u++) values[t * n + u] = 0;
  }
  // Created outside any scope, so every caller sees the same node.
  const mask = graph.unscoped(() => graph.constant(values, [n, n], { name }));
  masks.set(key, mask);
  return mask;
}

export interface AttentionWeights {
  /** `[H * HD, D]` */
  readonly wq: Tensor;
  /** `[KV * HD, D]` */
  readonly wk: Tensor;
  /** `[KV * HD, D]` */
  readonly wv: Tensor;
  /** `[D, H * HD]` */
  readonly wo: Tensor;
}

export interface AttentionOptions {
  heads: number;
  /** Key/value heads (GQA); default `heads` (MHA). Query head h reads kv head floor(h / (heads / kvHeads)). */
  kvHeads?: number;
  /** RoPE tables `[S, HD]` applied to queries and keys; omitted: no RoPE. */
  rope?: RopeTables;
  /** Additive mask `[S, S]` (S: one sequence's positions); default the causal mask. */
  mask?: Tensor;
  /**
   * Sequences held back to back in x's positions (default 1): x is `[D, S · sequences]` and each
   * sequence attends within itself only, its scores a `[S, S]` block per head (the heads and
   * sequences form one batch of `H · sequences` attention problems), so attention costs the same
   * per sequence however many a pass holds. The projections and everything per position run over
   * all positions. RoPE tables then cover every position (`ropeTables`' `sequences`).
   */
  sequences?: number;
  /** Score scale; default 1/sqrt(HD). */
  scale?: number;
  /**
   * Per-head RMSNorm of queries and keys (Qwen3's `q_norm` / `k_norm`): each head of q and of k is
   * normalized over its HD features with a gain `[HD]` after the projections and before RoPE.
   * `eps` defaults to 1e-5 (`llamaBlock`: its own `eps`).
   */
  qkNorm?: QkNormOptions;
  name?: string;
}

export interface QkNormOptions {
  /** Query-head gain `[HD]`. */
  readonly q: Tensor;
  /** Key-head gain `[HD]`. */
  readonly k: Tensor;
  readonly eps?: number;
}

/**
 * RMSNorm of every head of x `[H * HD, S]` over its HD features, with one gain `[HD]` shared by the
 * heads (Qwen3's q/k norm), as one `head_rmsnorm` call recording `{ x, gain, heads, eps }`:
 *   rrms[h, s] = (Σ_d x[h·HD + d, s]² / HD + eps)^-½            `[H, S]`
 *   xr = x ⊙ rrms (per head), out = xr ⊙ gain (per feature)       `[H * HD, S]`
 * Head h is the contiguous row block h·HD..(h+1)·HD of x, so on the host it is H ordinary
 * RMSNorms over `[HD, S]` (ane-bridge's native `rmsnormForward`). Its sum of squares is the fp16
 * hazard: the partitioner places it like `rmsNorm`. `rrms` and `xr` are rank-2 nodes, so the
 * backward (ane-autograd's composite rule) reads them rather than a second sum of squares.
 */
export function headRmsNorm(x: Tensor, gain: Tensor, heads: number, options: NormOptions = {}): Tensor {
  const eps = options.eps ?? 1e-5;
  return x.graph.composite(
    'head_rmsnorm',
    named(options, 'head_norm'),
    () => {
      const [channels, seq] = x.shape as [number, number];
      if (x.rank !== 2 || channels % heads !== 0) {
        throw new ShapeError('head_rmsnorm', x.name, [x.shape], `channels must divide into ${heads} heads`);
      }
      const headDim = channels / heads;
      if (gain.rank !== 1 || gain.shape[0] !== headDim) {
        throw new ShapeError(
          'head_rmsnorm',
          x.name,
          [x.shape, gain.shape],
          `gain must be [${headDim}] (the head dimension)`,
        );
      }
      const byHead = reshape(x, [heads, headDim, seq], { name: 'x3' });
      const squares = mul(byHead, byHead, { name: 'sq' });
      const sum = reduceSum(squares, 1, { name: 'ss' }); // [H, S]
      const meanSquare = mul(sum, 1 / headDim, { name: 'ms' });
      const inverse = pow(add(meanSquare, eps, { name: 'ms_eps' }), -0.5, { name: 'rrms' });
      const normalized3 = mul(byHead, reshape(inverse, [heads, 1, seq], { name: 'r3' }), { name: 'xr3' });
      const normalized = reshape(normalized3, [channels, seq], { name: 'xr' });
      const scaled = mul(
        reshape(normalized, [heads, headDim, seq], { name: 'xr_h' }),
        reshape(gain, [1, headDim, 1], { name: 'g' }),
        {
          name: 'y3',
        },
      );
      return reshape(scaled, [channels, seq], { name: 'out' });
    },
    { x, gain, heads, eps },
  );
}

export interface AttentionParts {
  /** Wo · attention, `[D, S]`. */
  readonly out: Tensor;
  /** Queries and keys after RoPE, values: `[H, S, HD]` (keys and values expanded to H heads). */
  readonly q: Tensor;
  readonly k: Tensor;
  readonly v: Tensor;
  /** softmax(scale · q kᵀ + mask), `[H, S, S]` (`[H · sequences, S, S]` with `sequences`, head-major). */
  readonly probs: Tensor;
  /** probs · v merged back to `[H * HD, S]`. */
  readonly attn: Tensor;
}

/**
 * Causal self-attention on x `[D, S]`, MHA or GQA with any ratio: projections, RoPE, scores
 * `q kᵀ * scale`, additive mask (-65504, never -inf), softmax over keys, `probs v`, output
 * projection. Never the MIL SDPA op (the ANE ignores its mask).
 */
export function causalSelfAttentionParts(
  x: Tensor,
  weights: AttentionWeights,
  options: AttentionOptions,
): AttentionParts {
  const graph = x.graph;
  return graph.composite('attention', named(options, 'attn'), () => {
    const heads = options.heads;
    const kvHeads = options.kvHeads ?? heads;
    const sequences = wholeSequences('attention', options.sequences);
    const positions = x.shape[1]!;
    if (positions % sequences !== 0) {
      throw new ShapeError(
        'attention',
        x.name,
        [x.shape],
        `its ${positions} positions do not divide into ${sequences} sequences`,
      );
    }
    const seq = positions / sequences;
    const givenMask = options.mask?.shape;
    if (sequences > 1 && givenMask !== undefined && (givenMask.at(-1) !== seq || givenMask.at(-2) !== seq)) {
      throw new ShapeError(
        'attention',
        x.name,
        [x.shape, givenMask],
        `with ${sequences} sequences the mask is one sequence's [${seq}, ${seq}]`,
      );
    }
    if (heads % kvHeads !== 0) {
      throw new ShapeError(
        'attention',
        x.name,
        [x.shape],
        `heads (${heads}) must be a multiple of kvHeads (${kvHeads})`,
      );
    }
    const q = linear(x, weights.wq, { name: 'q' });
    const k = linear(x, weights.wk, { name: 'k' });
    const v = linear(x, weights.wv, { name: 'v' });
    if (
      q.shape[0]! % heads !== 0 ||
      k.shape[0]! !== (q.shape[0]! / heads) * kvHeads ||
      v.shape[0] !== k.shape[0]
    ) {
      throw new ShapeError(
        'attention',
        x.name,
        [weights.wq.shape, weights.wk.shape, weights.wv.shape],
        `wq must be [H*HD, D] and wk, wv [KV*HD, D] with H=${heads}, KV=${kvHeads}`,
      );
    }
    const headDim = q.shape[0]! / heads;
    const qkNorm = options.qkNorm;
    const eps = qkNorm?.eps ?? 1e-5;
    const qn = qkNorm === undefined ? q : headRmsNorm(q, qkNorm.q, heads, { eps, name: 'q_norm' });
    const kn = qkNorm === undefined ? k : headRmsNorm(k, qkNorm.k, kvHeads, { eps, name: 'k_norm' });
    let qh = splitHeads(qn, heads, { name: 'qh' });
    let kh = splitHeads(kn, kvHeads, { name: 'kh' });
    let vh = splitHeads(v, kvHeads, { name: 'vh' });
    if (options.rope !== undefined) {
      qh = rope(qh, options.rope, { name: 'q_rope' });
      kh = rope(kh, options.rope, { name: 'k_rope' });
    }
    if (kvHeads !== heads) {
      kh = expandKvHeads(kh, heads / kvHeads, 'k_exp');
      vh = expandKvHeads(vh, heads / kvHeads, 'v_exp');
    }
    // [H, S · sequences, HD] holds head h's sequence b at rows b·S..(b+1)·S: as [H · sequences, S, HD]
    // each (head, sequence) is one attention problem, without a copy.
    const bySequence = (t: Tensor, name: string) =>
      sequences === 1 ? t : reshape(t, [heads * sequences, seq, headDim], { name });
    const qs = bySequence(qh, 'q_seq');
    const ks = bySequence(kh, 'k_seq');
    const vs = bySequence(vh, 'v_seq');
    const scores = matmul(qs, transpose(ks, [0, 2, 1], { name: 'kt' }), { name: 'scores' });
    const scaled = mul(scores, options.scale ?? 1 / Math.sqrt(headDim), { name: 'scaled' });
    const mask = options.mask ?? causalMask(graph, seq, { name: 'mask' });
    const masked = add(scaled, mask, { name: 'masked' });
    const probs = softmax(masked, -1, { name: 'probs' });
    const perSequence = matmul(probs, vs, { name: 'ctx' });
    const context =
      sequences === 1 ? perSequence : reshape(perSequence, [heads, positions, headDim], { name: 'ctx_h' });
    const attn = mergeHeads(context, { name: 'att' });
    const out = linear(attn, weights.wo, { name: 'o' });
    return { out, q: qh, k: kh, v: vh, probs, attn };
  });
}

/** Causal self-attention (see `causalSelfAttentionParts`), returning Wo · attention `[D, S]`. */
export function causalSelfAttention(x: Tensor, weights: AttentionWeights, options: AttentionOptions): Tensor {
  return causalSelfAttentionParts(x, weights, options).out;
}

/** `[KV, S, HD]` -> `[KV * ratio, S, HD]`, each kv head repeated `ratio` times in a row. */
function expandKvHeads(x: Tensor, ratio: number, name: string): Tensor {
  const [kvHeads, seq, headDim] = x.shape as [number, number, number];
  const parts: Tensor[] = [];
  for (let j = 0; j < kvHeads; j++) {
    const head = slice(x, [j, 0, 0], [1, seq, headDim], { name: `${name}_h${j}` });
    for (let r = 0; r < ratio; r++) parts.push(head);
  }
  return concat(parts, 0, { name });
}

// ---- embedding ----

/**
 * Embedding lookup: rows of table `[V, D]` for int32 tokens `[S]`, as channels-first `[D, S]`. A host
 * op: the ANE has no gather (and no gather gradient).
 */
export function embedding(tokens: Tensor, table: Tensor, options: { name?: string } = {}): Tensor {
  return tokens.graph.composite(
    'embedding',
    named(options, 'embed'),
    () => {
      const rows = gather(table, tokens, 0, { name: 'rows' });
      return transpose(rows, [1, 0], { name: 'out' });
    },
    { tokens, table },
  );
}

// ---- pooling and transposed convolution (the forms with exact ANE lowerings and gradients) ----

export interface PoolOptions {
  kernel: number;
  /** Default `kernel`. */
  stride?: number;
  /** Default 0. */
  pad?: number;
  name?: string;
}

function poolWindows(x: Tensor, kind: string, options: PoolOptions): Tensor {
  const stride = options.stride ?? options.kernel;
  const pad = options.pad ?? 0;
  if (stride !== options.kernel || pad !== 0) {
    throw new ConstraintError(
      'op-pool-vjp-envelope',
      { op: kind, node: `${x.name}` },
      `${kind} with kernel ${options.kernel}, stride ${stride}, pad ${pad} has overlapping or padded windows`,
      DEFAULT_CHIP,
    );
  }
  const width = x.shape[x.rank - 1]!;
  if (width % options.kernel !== 0) {
    throw new ShapeError(
      kind,
      x.name,
      [x.shape],
      `the last axis (${width}) must divide into windows of ${options.kernel}`,
    );
  }
  return reshape(x, [...x.shape.slice(0, -1), width / options.kernel, options.kernel], { name: 'windows' });
}

/** Average pool over the last axis, non-overlapping windows (stride == kernel, no padding). */
export function avgPool(x: Tensor, options: PoolOptions): Tensor {
  return x.graph.composite('avg_pool', named(options, 'avg_pool'), () => {
    const windows = poolWindows(x, 'avg_pool', options);
    return mul(reduceSum(windows, -1, { name: 'sum' }), 1 / options.kernel, { name: 'out' });
  });
}

/** Max pool over the last axis, non-overlapping windows (stride == kernel, no padding). */
export function maxPool(x: Tensor, options: PoolOptions): Tensor {
  return x.graph.composite('max_pool', named(options, 'max_pool'), () =>
    reduceMax(poolWindows(x, 'max_pool', options), -1, { name: 'out' }),
  );
}

/**
 * Transposed 2-D convolution (stride 1, groups 1) of x `[N, IC, H, W]` with a constant or frozen
 * weight `[IC, OC, kH, kW]`, as a conv with the flipped, transposed weight and `k - 1 - pad` padding.
 * Strides above 1 have no exact ANE form (`conv_transpose` has no output padding).
 */
export function convTranspose2d(
  x: Tensor,
  weight: Tensor,
  options: { strides?: readonly [number, number]; pad?: readonly [number, number]; name?: string } = {},
): Tensor {
  return x.graph.composite('conv_transpose', named(options, 'conv_transpose'), () => {
    const [sh, sw] = options.strides ?? [1, 1];
    if (sh !== 1 || sw !== 1) {
      throw new ConstraintError(
        'op-conv-transpose-stride',
        { op: 'conv_transpose', node: x.name },
        `conv_transpose with strides [${sh}, ${sw}]`,
        DEFAULT_CHIP,
      );
    }
    if (weight.rank !== 4 || !isConstantLike(weight)) {
      throw new ShapeError(
        'conv_transpose',
        x.name,
        [x.shape, weight.shape],
        'expects a constant or frozen weight [IC, OC, kH, kW]',
      );
    }
    const [inChannels, outChannels, kh, kw] = weight.shape as [number, number, number, number];
    const [ph, pw] = options.pad ?? [0, 0];
    if (ph > kh - 1 || pw > kw - 1) {
      throw new ShapeError(
        'conv_transpose',
        x.name,
        [x.shape, weight.shape],
        `pad must be at most kernel - 1`,
      );
    }
    const source = weight.op.kind === 'constant' || weight.op.kind === 'param' ? weight.op.data : undefined;
    const values = source === undefined ? new Float64Array(weight.size) : constantNumbers(source);
    const flipped = new Float64Array(weight.size);
    for (let i = 0; i < inChannels; i++)
      for (let o = 0; o < outChannels; o++)
        for (let h = 0; h < kh; h++)
          for (let w = 0; w < kw; w++) {
            flipped[((o * inChannels + i) * kh + h) * kw + w] =
              values[((i * outChannels + o) * kh + (kh - 1 - h)) * kw + (kw - 1 - w)]!;
          }
    const convWeight = x.graph.constant(flipped, [outChannels, inChannels, kh, kw], { name: 'w_flipped' });
    const padH = kh - 1 - ph;
    const padW = kw - 1 - pw;
    return conv2d(x, convWeight, { pad: [padH, padH, padW, padW], name: 'out' });
  });
}

// ---- transformer block ----

export interface LlamaBlockWeights {
  /** RMSNorm gains `[D]`. */
  readonly attnNorm: Tensor;
  readonly ffnNorm: Tensor;
  readonly wq: Tensor;
  readonly wk: Tensor;
  readonly wv: Tensor;
  readonly wo: Tensor;
  /** `[HID, D]`, `[HID, D]`, `[D, HID]`. */
  readonly w1: Tensor;
  readonly w3: Tensor;
  readonly w2: Tensor;
}

export interface LlamaBlockOptions extends Omit<AttentionOptions, 'name'> {
  /** RMSNorm epsilon (default 1e-5). */
  eps?: number;
  /** Residual branch scale α (`x + α·f(x)`); default 1. */
  residualScale?: number;
  name?: string;
}

/**
 * A pre-norm Llama block on x `[D, S]`: `h = x + α·attn(rmsnorm(x))`, `out = h + α·ffn(rmsnorm(h))`
 * with causal self-attention (MHA or GQA, optional RoPE) and a SwiGLU feed-forward.
 */
export function llamaBlock(x: Tensor, weights: LlamaBlockWeights, options: LlamaBlockOptions): Tensor {
  return x.graph.composite('llama_block', named(options, 'block'), () => {
    const eps = options.eps ?? 1e-5;
    const alpha = options.residualScale ?? 1;
    const scaled = (t: Tensor, name: string) => (alpha === 1 ? t : mul(t, alpha, { name }));
    const { name: _name, eps: _eps, residualScale: _alpha, ...attention } = options;
    const attnIn = rmsNorm(x, weights.attnNorm, { eps, name: 'attn_norm' });
    const qkNorm =
      attention.qkNorm === undefined ? undefined : { ...attention.qkNorm, eps: attention.qkNorm.eps ?? eps };
    const attn = causalSelfAttention(attnIn, weights, {
      ...attention,
      ...(qkNorm !== undefined ? { qkNorm } : {}),
      name: 'attn',
    });
    const h = add(x, scaled(attn, 'attn_scaled'), { name: 'h' });
    const ffnIn = rmsNorm(h, weights.ffnNorm, { eps, name: 'ffn_norm' });
    const ffn = swiglu(ffnIn, weights.w1, weights.w3, weights.w2, { name: 'ffn' });
    return add(h, scaled(ffn, 'ffn_scaled'), { name: 'out' });
  });
}

// ---- loss head ----

export interface SoftmaxCrossEntropyOptions {
  /**
   * A target value that marks a position to leave out (PyTorch's `ignore_index`): it adds nothing
   * to the loss and is not counted in the mean. Without it every position counts.
   */
  ignoreIndex?: number;
  name?: string;
}

/**
 * Softmax cross-entropy from logits `[V, S]` (channels-first: one column of V scores per position)
 * and int32 targets `[S]`, as one composite call (kind `softmax_cross_entropy`): the mean over the
 * counted positions of `logsumexp(logits[:, s]) − logits[t_s, s]`, shaped `[1, 1]`. Built from
 * primitives so `evaluate` is its float64 reference: the max-shifted log-softmax (`reduceMax`,
 * `exp`, `log`), a one-hot made by `equal` of a vocabulary iota constant with the targets and
 * `select`, reductions. A host op (its targets are int32), run by the native
 * `softmaxCrossEntropy*` kernels. With `ignoreIndex`, positions whose target equals it are left
 * out and the mean divides by the number of the others (all ignored: 0/0, NaN, as in PyTorch).
 * A target outside [0, V) that is not the ignore index picks nothing (its loss is logsumexp).
 */
export function softmaxCrossEntropy(
  logits: Tensor,
  targets: Tensor,
  options: SoftmaxCrossEntropyOptions = {},
): Tensor {
  const { ignoreIndex } = options;
  return logits.graph.composite(
    'softmax_cross_entropy',
    named(options, 'cross_entropy'),
    () => {
      if (
        logits.rank !== 2 ||
        !(logits.dtype === 'fp16' || logits.dtype === 'fp32') ||
        targets.rank !== 1 ||
        targets.dtype !== 'int32' ||
        targets.shape[0] !== logits.shape[1]
      ) {
        throw new ShapeError(
          'softmax_cross_entropy',
          logits.name,
          [logits.shape, targets.shape],
          'expects float logits [V, S] (channels-first) and int32 targets [S]',
        );
      }
      if (ignoreIndex !== undefined && !Number.isInteger(ignoreIndex)) {
        throw new IrError(`softmaxCrossEntropy: ignoreIndex must be an integer, got ${ignoreIndex}`);
      }
      const [vocab, seq] = logits.shape as [number, number];
      const graph = logits.graph;
      const max = reduceMax(logits, 0, { keepDims: true, name: 'max' });
      const shifted = sub(logits, max, { name: 'shifted' });
      const sumExp = reduceSum(exp(shifted, { name: 'exp' }), 0, { keepDims: true, name: 'sum_exp' });
      const logProbs = sub(shifted, log(sumExp, { name: 'lse' }), { name: 'log_probs' });
      const row = reshape(targets, [1, seq], { name: 'targets_row' });
      const ids = graph.constant(
        Array.from({ length: vocab }, (_, v) => v),
        [vocab, 1],
        { dtype: 'int32', name: 'vocab_ids' },
      );
      let picked = select(equal(ids, row, { name: 'hit' }), logProbs, 0, { name: 'picked' });
      if (ignoreIndex === undefined) {
        const total = reduceSum(picked, [0, 1], { keepDims: true, name: 'total' });
        return mul(total, -1 / seq, { name: 'out' });
      }
      const kept = select(
        equal(row, ignoreIndex, { name: 'ignored' }),
        graph.scalar(0, logits.dtype, { name: 'zero' }),
        1,
        { name: 'kept' },
      );
      picked = mul(picked, kept, { name: 'picked_kept' });
      const total = reduceSum(picked, [0, 1], { keepDims: true, name: 'total' });
      const count = reduceSum(kept, [0, 1], { keepDims: true, name: 'count' });
      return div(mul(total, -1, { name: 'neg_total' }), count, { name: 'out' });
    },
    { logits, targets, ...(ignoreIndex !== undefined ? { ignoreIndex } : {}) },
  );
}
