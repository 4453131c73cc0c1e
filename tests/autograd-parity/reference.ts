/**
 * A float64 forward pass of the fixtures' models, written from their definitions in ane-ir's
 * channels-first layout, independent of ane-ir and of PyTorch. It documents the conventions the
 * fixtures use and recomputes their losses.
 *
 * Every activation is a `[C, S]` Float64Array, element (c, s) at `c * S + s`; every weight is
 * `[out, in]`, element (o, i) at `o * in + i` (nn.Linear.weight's layout).
 */

/** Parameter values by ane-ir name (`layers.0.wq`, `norm`, ...), any float array. */
export type Params = Readonly<Record<string, ArrayLike<number>>>;

export interface LlamaShape {
  readonly dim: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly hidden: number;
  readonly seq: number;
  readonly vocab: number;
  readonly eps: number;
  readonly ropeTheta: number;
}

/** Variations the fixture must tell apart (for showing that a wrong convention is caught). */
export interface LlamaVariant {
  /** Default 'rotate-half' (HF): element i pairs with i + HD/2. 'interleaved': (2i, 2i+1) pair. */
  readonly rope?: 'rotate-half' | 'interleaved';
  /** The KV head query head h reads. Default HF's repeat_kv: `h / (heads / kvHeads)`, rounded down. */
  readonly kvHeadOf?: (head: number, heads: number, kvHeads: number) => number;
}

export interface LlamaForward {
  /** x + attention(rmsnorm(x)), `[D, S]`. */
  readonly h: Float64Array;
  /** h + ffn(rmsnorm(h)), `[D, S]`. */
  readonly out: Float64Array;
  /** output · rmsnorm(out), `[V, S]`. */
  readonly logits: Float64Array;
  readonly loss: number;
}

function get(params: Params, name: string): ArrayLike<number> {
  const value = params[name];
  if (value === undefined) throw new Error(`reference forward: no parameter '${name}'`);
  return value;
}

/** w `[O, I]` · x `[I, S]` (+ bias `[O]`) -> `[O, S]`. */
export function linear(
  w: ArrayLike<number>,
  x: ArrayLike<number>,
  outputs: number,
  inputs: number,
  seq: number,
  bias?: ArrayLike<number>,
): Float64Array {
  const y = new Float64Array(outputs * seq);
  for (let o = 0; o < outputs; o++) {
    for (let s = 0; s < seq; s++) {
      let sum = bias === undefined ? 0 : bias[o]!;
      for (let i = 0; i < inputs; i++) sum += w[o * inputs + i]! * x[i * seq + s]!;
      y[o * seq + s] = sum;
    }
  }
  return y;
}

/** RMSNorm over the channels of x `[D, S]`: `g[c] * x[c, s] / sqrt(mean_c x[c, s]^2 + eps)`. */
export function rmsNorm(
  x: ArrayLike<number>,
  gain: ArrayLike<number>,
  dim: number,
  seq: number,
  eps: number,
) {
  const y = new Float64Array(dim * seq);
  for (let s = 0; s < seq; s++) {
    let squares = 0;
    for (let c = 0; c < dim; c++) squares += x[c * seq + s]! ** 2;
    const inverse = 1 / Math.sqrt(squares / dim + eps);
    for (let c = 0; c < dim; c++) y[c * seq + s] = gain[c]! * x[c * seq + s]! * inverse;
  }
  return y;
}

/**
 * RoPE on q `[H * HD, S]` (channel h * HD + j is element j of head h): position p, element j turns
 * by angle `p * theta^(-2i / HD)`. Rotate-half: i = j mod HD/2 and rot(q)[j] = -q[j + HD/2] for
 * j < HD/2, q[j - HD/2] after. Interleaved: i = floor(j / 2), rot(q)[2i] = -q[2i+1], rot(q)[2i+1] = q[2i].
 */
export function rope(
  q: Float64Array,
  heads: number,
  headDim: number,
  seq: number,
  theta: number,
  convention: 'rotate-half' | 'interleaved',
): Float64Array {
  const half = headDim / 2;
  const y = new Float64Array(q.length);
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < headDim; j++) {
      const i = convention === 'rotate-half' ? j % half : Math.floor(j / 2);
      let partner: number;
      let sign: number;
      if (convention === 'rotate-half') {
        partner = j < half ? j + half : j - half;
        sign = j < half ? -1 : 1;
      } else {
        partner = j % 2 === 0 ? j + 1 : j - 1;
        sign = j % 2 === 0 ? -1 : 1;
      }
      const frequency = theta ** ((-2 * i) / headDim);
      for (let p = 0; p < seq; p++) {
        const angle = p * frequency;
        const value = q[(h * headDim + j) * seq + p]!;
        const rotated = sign * q[(h * headDim + partner) * seq + p]!;
        y[(h * headDim + j) * seq + p] = value * Math.cos(angle) + rotated * Math.sin(angle);
      }
    }
  }
  return y;
}

/**
 * Causal attention on q `[H * HD, S]`, k and v `[KV * HD, S]` (after RoPE) -> context `[H * HD, S]`:
 * for query position t, keys u <= t, `softmax_u(q_t · k_u / sqrt(HD)) v_u` per head.
 */
export function causalAttention(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  shape: LlamaShape,
  kvHeadOf: (head: number, heads: number, kvHeads: number) => number,
): Float64Array {
  const { heads, kvHeads, headDim, seq } = shape;
  const context = new Float64Array(heads * headDim * seq);
  const scale = 1 / Math.sqrt(headDim);
  const scores = new Float64Array(seq);
  for (let h = 0; h < heads; h++) {
    const kv = kvHeadOf(h, heads, kvHeads);
    for (let t = 0; t < seq; t++) {
      let max = -Infinity;
      for (let u = 0; u <= t; u++) {
        let dot = 0;
        for (let d = 0; d < headDim; d++)
          dot += q[(h * headDim + d) * seq + t]! * k[(kv * headDim + d) * seq + u]!;
        scores[u] = dot * scale;
        max = Math.max(max, scores[u]!);
      }
      let total = 0;
      for (let u = 0; u <= t; u++) {
        scores[u] = Math.exp(scores[u]! - max);
        total += scores[u]!;
      }
      for (let d = 0; d < headDim; d++) {
        let sum = 0;
        for (let u = 0; u <= t; u++) sum += scores[u]! * v[(kv * headDim + d) * seq + u]!;
        context[(h * headDim + d) * seq + t] = sum / total;
      }
    }
  }
  return context;
}

/** Mean over positions of `logsumexp(logits[:, s]) - logits[target[s], s]`; logits `[V, S]`. */
export function meanCrossEntropy(
  logits: Float64Array,
  targets: ArrayLike<number>,
  classes: number,
  seq: number,
) {
  let total = 0;
  for (let s = 0; s < seq; s++) {
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[c * seq + s]!);
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(logits[c * seq + s]! - max);
    total += max + Math.log(sum) - logits[targets[s]! * seq + s]!;
  }
  return total / seq;
}

const silu = (z: number) => z / (1 + Math.exp(-z));

/**
 * The Llama fixture's model on x `[D, S]`: one pre-norm block, a final RMSNorm, the classifier
 * `output [V, D]` and the mean cross-entropy against `targets`.
 */
export function llamaForward(
  x: ArrayLike<number>,
  params: Params,
  targets: ArrayLike<number>,
  shape: LlamaShape,
  variant: LlamaVariant = {},
): LlamaForward {
  const { dim, heads, kvHeads, headDim, hidden, seq, vocab, eps, ropeTheta } = shape;
  const p = (name: string) => get(params, name);
  const convention = variant.rope ?? 'rotate-half';
  const kvHeadOf = variant.kvHeadOf ?? ((h: number, all: number, kv: number) => Math.floor(h / (all / kv)));

  // Attention: h = x + wo · attention(rmsnorm(x)).
  const a = rmsNorm(x, p('layers.0.attention_norm'), dim, seq, eps);
  const q = rope(
    linear(p('layers.0.wq'), a, heads * headDim, dim, seq),
    heads,
    headDim,
    seq,
    ropeTheta,
    convention,
  );
  const k = rope(
    linear(p('layers.0.wk'), a, kvHeads * headDim, dim, seq),
    kvHeads,
    headDim,
    seq,
    ropeTheta,
    convention,
  );
  const v = linear(p('layers.0.wv'), a, kvHeads * headDim, dim, seq);
  const context = causalAttention(q, k, v, shape, kvHeadOf);
  const attended = linear(p('layers.0.wo'), context, dim, heads * headDim, seq);
  const h = new Float64Array(dim * seq);
  for (let i = 0; i < h.length; i++) h[i] = x[i]! + attended[i]!;

  // SwiGLU: out = h + w2 · (silu(w1 · n) * (w3 · n)), n = rmsnorm(h).
  const n = rmsNorm(h, p('layers.0.ffn_norm'), dim, seq, eps);
  const gate = linear(p('layers.0.w1'), n, hidden, dim, seq);
  const up = linear(p('layers.0.w3'), n, hidden, dim, seq);
  for (let i = 0; i < gate.length; i++) gate[i] = silu(gate[i]!) * up[i]!;
  const down = linear(p('layers.0.w2'), gate, dim, hidden, seq);
  const out = new Float64Array(dim * seq);
  for (let i = 0; i < out.length; i++) out[i] = h[i]! + down[i]!;

  // Head: logits = output · rmsnorm(out), mean cross-entropy.
  const logits = linear(p('output'), rmsNorm(out, p('norm'), dim, seq, eps), vocab, dim, seq);
  return { h, out, logits, loss: meanCrossEntropy(logits, targets, vocab, seq) };
}

export interface MlpShape {
  readonly inputs: number;
  readonly hidden: number;
  readonly classes: number;
  readonly positions: number;
}

/** The MLP fixture's model on x `[IN, N]`: `logits = w2 relu(w1 x + b1) + b2`, mean cross-entropy. */
export function mlpForward(
  x: ArrayLike<number>,
  params: Params,
  targets: ArrayLike<number>,
  shape: MlpShape,
) {
  const { inputs, hidden, classes, positions } = shape;
  const pre = linear(get(params, 'w1'), x, hidden, inputs, positions, get(params, 'b1'));
  const relu = pre.map((z) => Math.max(z, 0));
  const logits = linear(get(params, 'w2'), relu, classes, hidden, positions, get(params, 'b2'));
  return { pre, logits, loss: meanCrossEntropy(logits, targets, classes, positions) };
}
