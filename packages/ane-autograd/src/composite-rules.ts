/**
 * Composite-level VJP rules: one rule for a whole composite call where it gives a better backward
 * than its primitives' rules (fewer ops, a form a native kernel implements). The reverse sweep uses
 * one when the call's inner values are read only inside the call; otherwise it differentiates the
 * primitives. Each rule is tested against the primitive-level derivation.
 */
import type { CompositeTag, Tensor } from 'ane-ir';
import { mul, reduceSum, reshape, sub } from './folded-ops';
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

/** The composite kind of an RMSNorm's backward (`{ x, gain, dy, rrms }`). */
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
  return x.graph.composite(
    RMSNORM_GRAD,
    RMSNORM_GRAD,
    () => {
      const grads = new Map<Tensor, Tensor>();
      if (needs(x)) {
        const u = mul(dy, reshape(gain, [channels, 1], { name: 'g' }), { name: 'u' });
        const dot = reduceSum(mul(u, normalized, { name: 'u_xr' }), 0, { keepDims: true, name: 'dot' });
        const centered = sub(u, mul(normalized, mul(dot, 1 / channels, { name: 'mean_dot' })), {
          name: 'centered',
        });
        grads.set(x, mul(centered, rrms, { name: 'dx' }));
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
    },
    { x, gain, dy, rrms },
  );
};

function isTensor(value: unknown): value is Tensor {
  return typeof value === 'object' && value !== null && 'op' in value && 'shape' in value;
}

/** Composite rules by composite kind. */
export const COMPOSITE_VJP_RULES: Readonly<Record<string, CompositeVjpRule>> = {
  rmsnorm: rmsnormRule,
};
