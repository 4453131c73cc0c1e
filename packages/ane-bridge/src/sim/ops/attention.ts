/**
 * scaled_dot_product_attention (iOS18): softmax(Q Kᵀ / sqrt(E) + mask) V over the last two axes,
 * batch axes broadcast. Evaluated as the op sequence the ANE would run, each step rounded to fp16:
 *   scores = fp16(Q Kᵀ · fp32(1/sqrt(E)))       [batch, L, S]
 *   scores = fp16(scores + mask)                 (float mask: additive; bool mask: false → -inf)
 *   probs  = fp16(softmax(scores, axis = -1))
 *   out    = fp16(probs V)                        [batch, L, EV]
 * On the ANE the mask is ignored (rule `op.sdpa-mil`); the interpreter then passes no mask.
 */
import { roundToFp16 } from 'ane-ir/mil';
import type { StridedLayout } from '../layout';
import { planBroadcast } from '../layout';
import type { FloatTensor } from '../tensor';
import type { MatmulGeometry } from './matmul';
import { matmul, planMatmul } from './matmul';
import type { ReductionGeometry } from './reduce';
import { planAxis, softmax } from './reduce';

export interface AttentionPlan {
  readonly scores: MatmulGeometry;
  readonly values: MatmulGeometry;
  readonly scoresShape: readonly number[];
  readonly softmaxGeometry: ReductionGeometry;
  readonly scale: number;
  /** Walks (scores, mask) when a mask is applied. */
  readonly maskLayout?: StridedLayout;
  /** [batch, L, S] fp16 scratch for the scores and probabilities. */
  readonly scratch: Float32Array;
}

export function planAttention(
  queryShape: readonly number[],
  keyShape: readonly number[],
  valueShape: readonly number[],
  maskShape: readonly number[] | undefined,
  /** Allocates the scores scratch (the planner counts it against the simulator's memory limit). */
  scratchOf: (length: number) => Float32Array = (length) => new Float32Array(length),
): { outShape: number[]; plan: AttentionPlan } {
  if (queryShape.length < 2 || keyShape.length < 2 || valueShape.length < 2) {
    throw new RangeError('scaled_dot_product_attention: query, key and value need rank >= 2');
  }
  const { outShape: scoresShape, geometry: scores } = planMatmul(queryShape, keyShape, false, true);
  const { outShape, geometry: values } = planMatmul(scoresShape, valueShape, false, false);
  const embedding = queryShape[queryShape.length - 1]!;
  const scratch = scratchOf(scoresShape.reduce((a, b) => a * b, 1));
  const plan: AttentionPlan = {
    scores,
    values,
    scoresShape,
    softmaxGeometry: planAxis(scoresShape, -1),
    scale: Math.fround(1 / Math.sqrt(embedding)),
    scratch,
    ...(maskShape === undefined ? {} : { maskLayout: planBroadcast(scoresShape, [scoresShape, maskShape]) }),
  };
  return { outShape, plan };
}

/** out = attention(query, key, value[, mask]); `mask` is float (additive) or bool (keep where true). */
export function scaledDotProductAttention(
  out: FloatTensor,
  query: Float32Array,
  key: Float32Array,
  value: Float32Array,
  mask: { readonly data: Float32Array | Uint8Array; readonly isBool: boolean } | undefined,
  plan: AttentionPlan,
): void {
  const scores: FloatTensor = { dtype: 'fp16', shape: plan.scoresShape, data: plan.scratch };
  matmul(scores, query, key, plan.scores, plan.scale);
  if (mask !== undefined && plan.maskLayout !== undefined) {
    applyMask(plan.scratch, mask.data, mask.isBool, plan.maskLayout);
  }
  softmax(scores, plan.scratch, plan.softmaxGeometry);
  matmul(out, plan.scratch, value, plan.values);
}

function applyMask(
  scores: Float32Array,
  mask: Float32Array | Uint8Array,
  isBool: boolean,
  layout: StridedLayout,
): void {
  const { rows, inner } = layout;
  const maskStride = layout.innerStrides[1]!;
  for (let row = 0; row < rows; row++) {
    const s = layout.rowOffsets[0]![row]!;
    let m = layout.rowOffsets[1]![row]!;
    for (let i = 0; i < inner; i++, m += maskStride) {
      if (isBool) {
        if (mask[m] === 0) scores[s + i] = Number.NEGATIVE_INFINITY;
      } else scores[s + i] = scores[s + i]! + mask[m]!;
    }
  }
  // fp16 rounding of the masked scores (sums of two fp16 values).
  for (let i = 0; i < scores.length; i++) scores[i] = roundToFp16(scores[i]!);
}
