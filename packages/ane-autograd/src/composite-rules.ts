/**
 * Composite-level VJP rules: one rule for a whole composite call where it gives a better backward
 * than its primitives' rules (fewer ops, a form a native kernel implements). The reverse sweep uses
 * one when the call's inner values are read only inside the call; otherwise it differentiates the
 * primitives. Each rule is tested against the primitive-level derivation.
 */
import { type CompositeTag, ropeSwap, softmax, swappedRopeTable, type Tensor } from 'ane-ir';
import { add, div, equal, mul, reduceSum, reshape, select, sub } from './folded-ops';
import { WEIGHT_GRAD } from './rules';

/** What a composite rule is given. */
export interface CompositeVjpArgs {
  /** The call (its `args` and `result`). */
  readonly call: CompositeTag;
  /** The gradient of the loss with respect to the call's result. */
  readonly dy: Tensor;
  /** Whether an operand needs a gradient. */
  readonly needs: (operand: Tensor) => boolean;
}

/**
 * Gradients by operand, or `undefined` when the call's nodes do not have the shape the rule
 * expects (the sweep then differentiates the primitives).
 */
export type CompositeVjpRule = (args: CompositeVjpArgs) => Map<Tensor, Tensor> | undefined;

/**
 * The composite kind of an RMSNorm's input gradient (`{ x, gain, dy, rrms }`, result dx; the gain's
 * gradient is a separate `weight_grad` call).
 */
export const RMSNORM_GRAD = 'rmsnorm_grad';

/**
 * RMSNorm `y = x ⊙ r ⊙ g` over the channels of x `[D, S]`, `r = (Σ_c x² / D + eps)^-½` `[1, S]`:
 *   u  = dy ⊙ g
 *   dx = r ⊙ (u − x̂ ⊙ Σ_c(u ⊙ x̂) / D)      with x̂ = x ⊙ r (the forward's own value)
 *   dg = Σ_s dy ⊙ x̂                         (a `weight_grad` call, like dW)
 * It reads the forward's `r` and `x̂` (no second sum of squares) and has no fp16 overflow hazard
 * of its own: Σ_c(u ⊙ x̂) is bounded by D·|u| since |x̂| ≤ √D.
 */
const rmsnormRule: CompositeVjpRule = ({ call, dy, needs }) => {
  const x = call.args?.x;
  const gain = call.args?.gain;
  const result = call.result;
  if (!(isTensor(x) && isTensor(gain) && result !== undefined)) return undefined;
  // The forward's structure (composites.ts): out = mul(xr, reshape(gain)); xr = mul(x, rrms).
  const normalized = result.inputs[0];
  const rrms = normalized?.inputs[1];
  if (
    result.op.kind !== 'binary' ||
    normalized === undefined ||
    normalized.op.kind !== 'binary' ||
    normalized.inputs[0] !== x ||
    rrms === undefined ||
    x.rank !== 2
  ) {
    return undefined;
  }
  const [channels] = x.shape as [number, number];
  const grads = new Map<Tensor, Tensor>();
  if (needs(x)) {
    // The call returns dx alone (its recorded result), so a host kernel can bind it by its args.
    const dx = x.graph.composite(
      RMSNORM_GRAD,
      RMSNORM_GRAD,
      () => {
        const u = mul(dy, reshape(gain, [channels, 1], { name: 'g' }), { name: 'u' });
        const dot = reduceSum(mul(u, normalized, { name: 'u_xr' }), 0, { keepDims: true, name: 'dot' });
        const centered = sub(u, mul(normalized, mul(dot, 1 / channels, { name: 'mean_dot' })), {
          name: 'centered',
        });
        return mul(centered, rrms, { name: 'dx' });
      },
      { x, gain, dy, rrms },
    );
    grads.set(x, dx);
  }
  if (needs(gain)) {
    // A reduction over every position of the batch, like dW: a weight gradient.
    const dg = x.graph.composite(
      WEIGHT_GRAD,
      WEIGHT_GRAD,
      () => reduceSum(mul(dy, normalized, { name: 'dy_xr' }), 1, { name: 'dg' }),
      { weight: gain, dy, x: normalized },
    );
    grads.set(gain, dg);
  }
  return grads;
};

/**
 * The composite kind of a per-head RMSNorm's input gradient (`{ x, gain, dy, rrms, xr, heads }`,
 * result dx `[H * HD, S]`; the gain's gradient is a separate `weight_grad` call).
 */
export const HEAD_RMSNORM_GRAD = 'head_rmsnorm_grad';

/**
 * ane-ir's `headRmsNorm` (Qwen3's q/k norm): the RMSNorm rule applied to each head, a row block
 * `[HD, S]` of x `[H * HD, S]`, reading the forward's `rrms` `[H, S]` and `xr` = x ⊙ r
 * `[H * HD, S]` (rank 2: they cross kernels and host ops; no second sum of squares):
 *   u  = dy ⊙ g,   dx = r ⊙ (u − x̂ ⊙ Σ_d(u ⊙ x̂) / HD)     per head
 *   dg = Σ_h Σ_s dy ⊙ x̂                                   (a `weight_grad` call)
 */
const headRmsnormRule: CompositeVjpRule = ({ call, dy, needs }) => {
  const x = call.args?.x;
  const gain = call.args?.gain;
  const heads = call.args?.heads;
  const result = call.result;
  if (!(isTensor(x) && isTensor(gain) && typeof heads === 'number' && result !== undefined)) return undefined;
  // The forward's structure (ane-ir composites.ts): out = reshape(y3); y3 = mul(reshape(xr), g);
  // xr = reshape(xr3); xr3 = mul(x3, reshape(rrms)).
  const normalized = result.inputs[0]?.inputs[0]?.inputs[0];
  const rrms = normalized?.inputs[0]?.inputs[1]?.inputs[0];
  if (
    normalized === undefined ||
    rrms === undefined ||
    x.rank !== 2 ||
    normalized.rank !== 2 ||
    rrms.rank !== 2
  )
    return undefined;
  const [channels, seq] = x.shape as [number, number];
  const headDim = channels / heads;
  const grads = new Map<Tensor, Tensor>();
  if (needs(x)) {
    const dx = x.graph.composite(
      HEAD_RMSNORM_GRAD,
      HEAD_RMSNORM_GRAD,
      () => {
        const dy3 = reshape(dy, [heads, headDim, seq], { name: 'dy3' });
        const u = mul(dy3, reshape(gain, [1, headDim, 1], { name: 'g' }), { name: 'u' });
        const xr3 = reshape(normalized, [heads, headDim, seq], { name: 'xr3' });
        const dot = reduceSum(mul(u, xr3, { name: 'u_xr' }), 1, { keepDims: true, name: 'dot' });
        const centered = sub(u, mul(xr3, mul(dot, 1 / headDim, { name: 'mean_dot' })), { name: 'centered' });
        const r3 = reshape(rrms, [heads, 1, seq], { name: 'r3' });
        return reshape(mul(centered, r3, { name: 'dx3' }), [channels, seq], { name: 'dx' });
      },
      { x, gain, dy, rrms, xr: normalized, heads },
    );
    grads.set(x, dx);
  }
  if (needs(gain)) {
    // Σ over positions (a [C] row sum, like an RMSNorm gain's), then over heads.
    const dg = x.graph.composite(
      WEIGHT_GRAD,
      WEIGHT_GRAD,
      () => {
        const rows = reduceSum(mul(dy, normalized, { name: 'dy_xr' }), 1, { name: 'rows' });
        return reduceSum(reshape(rows, [heads, headDim], { name: 'by_head' }), 0, { name: 'dg' });
      },
      { weight: gain, dy, x: normalized },
    );
    grads.set(gain, dg);
  }
  return grads;
};

/** The composite kind of softmax cross-entropy's backward (`{ logits, targets, dloss, ignoreIndex? }`). */
export const SOFTMAX_CROSS_ENTROPY_GRAD = 'softmax_cross_entropy_grad';

/**
 * Softmax cross-entropy `L = −(1/N) Σ_s log softmax(logits)[t_s, s]` over the N counted positions
 * (ane-ir's `softmaxCrossEntropy`; with `ignoreIndex`, positions whose target equals it are not
 * counted), for an incoming `dloss` `[1, 1]` (the loss scale arrives through it):
 *   dlogits = (softmax(logits) − onehot(t)) ⊙ kept · dloss / N
 * one `softmax_cross_entropy_grad` call (a host op by its int32 targets, run by the native
 * `softmaxCrossEntropyGrad`). It recomputes the probabilities from the logits rather than
 * reading the forward's log-probabilities, so the forward call stays sealed and keeps its own
 * native kernel. The targets have no gradient.
 */
const softmaxCrossEntropyRule: CompositeVjpRule = ({ call, dy, needs }) => {
  const logits = call.args?.logits;
  const targets = call.args?.targets;
  const ignoreIndex = call.args?.ignoreIndex;
  if (
    !(isTensor(logits) && isTensor(targets)) ||
    logits.rank !== 2 ||
    targets.rank !== 1 ||
    (ignoreIndex !== undefined && typeof ignoreIndex !== 'number') ||
    dy.size !== 1
  ) {
    return undefined;
  }
  const grads = new Map<Tensor, Tensor>();
  if (!needs(logits)) return grads;
  const graph = logits.graph;
  const [vocab, seq] = logits.shape as [number, number];
  const dlogits = graph.composite(
    SOFTMAX_CROSS_ENTROPY_GRAD,
    SOFTMAX_CROSS_ENTROPY_GRAD,
    () => {
      const probs = softmax(logits, 0, { name: 'probs' });
      const row = reshape(targets, [1, seq], { name: 'targets_row' });
      const ids = graph.constant(
        Array.from({ length: vocab }, (_, v) => v),
        [vocab, 1],
        { dtype: targets.dtype, name: 'vocab_ids' },
      );
      const onehot = select(equal(ids, row, { name: 'hit' }), graph.scalar(1, logits.dtype), 0, {
        name: 'onehot',
      });
      const diff = sub(probs, onehot, { name: 'diff' });
      // dy is shaped like the loss, [1, 1]: it broadcasts as it is.
      const dloss = dy;
      if (ignoreIndex === undefined)
        return mul(diff, mul(dloss, 1 / seq, { name: 'scale' }), { name: 'dlogits' });
      const kept = select(
        equal(row, ignoreIndex, { name: 'ignored' }),
        graph.scalar(0, logits.dtype, { name: 'zero' }),
        1,
        { name: 'kept' },
      );
      const count = reduceSum(kept, [0, 1], { keepDims: true, name: 'count' });
      const scale = mul(kept, div(dloss, count, { name: 'dloss_n' }), { name: 'scale' });
      return mul(diff, scale, { name: 'dlogits' });
    },
    { logits, targets, dloss: dy, ...(ignoreIndex !== undefined ? { ignoreIndex } : {}) },
  );
  grads.set(logits, dlogits);
  return grads;
};

/**
 * RoPE `y = x ⊙ cos + swap(x) ⊙ s` (s: the signed sin table, `rope` in ane-ir) is linear in x and
 * swap is its own transpose, so
 *   dx = dy ⊙ cos + swap(dy) ⊙ swap(s)
 * the forward's form again, with the table swapped once per graph (`swappedRopeTable`).
 * The primitives' rules give the same values as a sum of zero-padded windows, one add per window.
 */
const ropeRule: CompositeVjpRule = ({ call, dy, needs }) => {
  const { x, cos, signedSin, convention } = call.args ?? {};
  if (
    !(isTensor(x) && isTensor(cos) && isTensor(signedSin)) ||
    (convention !== 'rotate-half' && convention !== 'interleaved') ||
    needs(cos) ||
    needs(signedSin)
  ) {
    return undefined;
  }
  const grads = new Map<Tensor, Tensor>();
  if (!needs(x)) return grads;
  const swappedSin = swappedRopeTable(signedSin, convention);
  const dc = mul(dy, cos, { name: 'dc' });
  const ds = mul(ropeSwap(dy, convention, { name: 'dy_swap' }), swappedSin, { name: 'ds' });
  grads.set(x, add(dc, ds, { name: 'dx' }));
  return grads;
};

function isTensor(value: unknown): value is Tensor {
  return typeof value === 'object' && value !== null && 'op' in value && 'shape' in value;
}

/** Composite rules by composite kind. */
export const COMPOSITE_VJP_RULES: Readonly<Record<string, CompositeVjpRule>> = {
  rmsnorm: rmsnormRule,
  rope: ropeRule,
  head_rmsnorm: headRmsnormRule,
  softmax_cross_entropy: softmaxCrossEntropyRule,
};
