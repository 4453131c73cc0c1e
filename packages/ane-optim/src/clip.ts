/**
 * Global-norm gradient clipping, torch.nn.utils.clip_grad_norm_ (and MLX clip_grad_norm) as a free
 * function over a gradient tree, a flat arena's `grads`, or a single Float32Array.
 */
import { describeValue, OptimizerConfigError } from './errors';
import { checkKernelChoice, type KernelChoice, scaleLeaves, sumOfSquares } from './kernels';
import { checkOptionKeys } from './options';
import { flattenTree, type ParamTree } from './tree';

const f = Math.fround;

export interface NormOptions {
  /** Which ane-bridge kernels sum the squares (default 'auto'). */
  kernels?: KernelChoice;
}

/** sqrt(sum over every leaf of sum(g^2)), accumulated in float64. */
export function globalNorm(grads: ParamTree, options: NormOptions = {}): number {
  checkOptionKeys('globalNorm', options, ['kernels']);
  const kernels = checkKernelChoice(options.kernels ?? 'auto', 'globalNorm');
  let sum = 0;
  for (const [, leaf] of flattenTree(grads, 'globalNorm')) sum += sumOfSquares(leaf, kernels);
  return Math.sqrt(sum);
}

/**
 * Scales `grads` in place so that their global L2 norm is at most `maxNorm`, and returns the norm
 * they had. As in PyTorch, the factor is `maxNorm / (norm + 1e-6)`, in fp32, applied only when below
 * 1. A non-finite norm (an inf or NaN gradient) leaves the gradients untouched (PyTorch would fill
 * them with NaN) and is returned so the caller can skip the step; a DynamicLossScaler does so.
 */
export function clipGradNorm(grads: ParamTree, maxNorm: number, options: NormOptions = {}): number {
  checkOptionKeys('clipGradNorm', options, ['kernels']);
  const kernels = checkKernelChoice(options.kernels ?? 'auto', 'clipGradNorm');
  checkMaxNorm('clipGradNorm', maxNorm);
  const leaves = flattenTree(grads, 'clipGradNorm');
  let sum = 0;
  for (const [, leaf] of leaves) sum += sumOfSquares(leaf, kernels);
  const totalNorm = Math.sqrt(sum);
  const coefficient = clipCoefficient(totalNorm, maxNorm);
  if (coefficient < 1) scaleLeaves(leaves, coefficient, kernels);
  return totalNorm;
}

/**
 * The factor `clipGradNorm` scales gradients of global norm `totalNorm` by: `maxNorm / (totalNorm +
 * 1e-6)` in fp32 when below 1, else 1 (and 1 for a non-finite norm, which clipGradNorm leaves
 * alone). For folding the clip into an update (`stepArena`'s `gradScale`) after `globalNorm`.
 */
export function clipCoefficient(totalNorm: number, maxNorm: number): number {
  checkMaxNorm('clipCoefficient', maxNorm);
  if (typeof totalNorm !== 'number') {
    throw new OptimizerConfigError(
      `clipCoefficient: totalNorm must be a number (globalNorm's), got ${describeValue(totalNorm)}`,
      'totalNorm',
    );
  }
  if (!Number.isFinite(totalNorm)) return 1;
  // torch: clip_coef = max_norm / (total_norm + 1e-6) with a float32 total_norm, where
  // `scalar / tensor` is `tensor.reciprocal() * scalar`; every operation rounds to fp32.
  const coefficient = f(f(1 / f(f(totalNorm) + f(1e-6))) * f(maxNorm));
  return Math.min(coefficient, 1);
}

function checkMaxNorm(caller: string, maxNorm: number): void {
  if (typeof maxNorm !== 'number' || !(maxNorm > 0) || !Number.isFinite(maxNorm)) {
    throw new OptimizerConfigError(
      `${caller}: maxNorm must be a positive finite number, got ${describeValue(maxNorm)}`,
      'maxNorm',
    );
  }
}
