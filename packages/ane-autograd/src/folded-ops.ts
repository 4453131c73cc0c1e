/**
 * The ane-ir primitives the backward is built from, with one-element constant expressions folded:
 * an op whose operands are all constants and whose result has one element becomes a constant. The
 * backward of a loss starts from a constant seed (ones `[1, 1]`), so its first ops (`seed · 1/N`)
 * would otherwise be constant arithmetic, which is wasted device work and which ane-ir's lowering
 * mistypes today (a `[1, 1]` constant times a scalar is declared a scalar and the kernel's MIL
 * does not validate). Larger constant expressions (broadcasts of that seed) are left as ops: folding
 * them would bake big constants into programs.
 */

import type { Tensor } from 'ane-ir';
import * as ir from 'ane-ir';

/** `t`, or when it is a one-element op on constants only, a constant holding its value. */
export function foldConstant(t: Tensor): Tensor {
  if (t.op.kind === 'constant' || t.size !== 1 || t.inputs.length === 0) return t;
  if (!t.inputs.every((input) => input.op.kind === 'constant')) return t;
  const [values] = ir.evaluate([t]);
  return t.graph.constant(values!, t.shape, { dtype: t.dtype, name: t.localName });
}

function folding<F extends (...args: never[]) => Tensor>(op: F): F {
  return ((...args: Parameters<F>) => foldConstant(op(...args))) as F;
}

export const add = folding(ir.add);
export const sub = folding(ir.sub);
export const mul = folding(ir.mul);
export const div = folding(ir.div);
export const pow = folding(ir.pow);
export const log = folding(ir.log);
export const greater = folding(ir.greater);
export const less = folding(ir.less);
export const equal = folding(ir.equal);
export const select = folding(ir.select);
export const reduceSum = folding(ir.reduceSum);
export const reshape = folding(ir.reshape);
export const transpose = folding(ir.transpose);
export const slice = folding(ir.slice);
export const concat = folding(ir.concat);
export const matmul = folding(ir.matmul);
export const conv2d = folding(ir.conv2d);
export const cast = folding(ir.cast);
