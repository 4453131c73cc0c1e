/**
 * Dynamic loss scaling, as torch.cuda.amp.GradScaler does it, with the same defaults: the loss is
 * multiplied by `scale` (initially 2^16) so that small fp16 gradients do not flush to zero; before
 * the optimizer step the gradients are unscaled (multiplied by 1/scale) and checked. A step whose
 * gradients hold an inf or NaN is skipped and the scale multiplied by `backoffFactor` (0.5); after
 * `growthInterval` (2000) clean steps in a row it is multiplied by `growthFactor` (2).
 *
 * The gradients are always unscaled before the update, so every optimizer sees true gradients: SGD
 * needs it (its step is proportional to the gradient); Adam's direction is scale-invariant, but its
 * eps, gradient clipping and L2 weight decay are not, so it gets true gradients as well. With the
 * default power-of-two factors the unscaling is exact (barring underflow), and a scaled run
 * matches an unscaled one bit for bit.
 */
import { describeValue, OptimizerConfigError, OptimizerStateError } from './errors';
import { checkKernelChoice, type KernelChoice, scaleLeaves, sumOfSquares } from './kernels';
import { checkOptionKeys } from './options';
import { contiguousSpan, flattenTree, type ParamTree } from './tree';

export interface LossScalerOptions {
  /** Starting scale (PyTorch: 65536 = 2^16). */
  initScale?: number;
  /** Scale multiplier after `growthInterval` clean steps (PyTorch: 2). */
  growthFactor?: number;
  /** Scale multiplier after a step with inf/NaN gradients (PyTorch: 0.5). */
  backoffFactor?: number;
  /** Clean steps in a row before the scale grows (PyTorch: 2000). */
  growthInterval?: number;
  /** The scale never backs off below this (PyTorch has no floor; default 0, none). */
  minScale?: number;
  /**
   * The scale never grows above this (PyTorch has no ceiling; default Infinity). A device whose
   * loss scale is an fp16 input needs one: 32768 is the largest power of two fp16 holds.
   */
  maxScale?: number;
  /** Which ane-bridge kernels check the gradients (default 'auto'). */
  kernels?: KernelChoice;
}

export interface LossScalerState {
  format: 'ane-optim/loss-scaler';
  version: 1;
  scale: number;
  growthTracker: number;
}

export interface UnscaleResult {
  /** The gradients hold an inf or NaN: skip the optimizer step (then call update(true)). */
  skip: boolean;
}

const f = Math.fround;

function positive(option: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new OptimizerConfigError(
      `DynamicLossScaler: ${option} must be a positive finite number, got ${describeValue(v)}`,
      option,
    );
  }
  return v;
}

export class DynamicLossScaler {
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;
  readonly minScale: number;
  readonly maxScale: number;
  readonly kernels: KernelChoice;
  private currentScale: number;
  private tracker = 0;

  constructor(options: LossScalerOptions = {}) {
    checkOptionKeys('DynamicLossScaler', options, [
      'initScale',
      'growthFactor',
      'backoffFactor',
      'growthInterval',
      'minScale',
      'maxScale',
      'kernels',
    ]);
    this.currentScale = f(positive('initScale', options.initScale, 65536));
    this.growthFactor = positive('growthFactor', options.growthFactor, 2);
    this.backoffFactor = positive('backoffFactor', options.backoffFactor, 0.5);
    if (this.growthFactor <= 1) {
      throw new OptimizerConfigError(
        `DynamicLossScaler: growthFactor must be above 1, got ${this.growthFactor}`,
        'growthFactor',
      );
    }
    if (this.backoffFactor >= 1) {
      throw new OptimizerConfigError(
        `DynamicLossScaler: backoffFactor must be below 1, got ${this.backoffFactor}`,
        'backoffFactor',
      );
    }
    const interval = options.growthInterval ?? 2000;
    if (!Number.isInteger(interval) || interval < 1) {
      throw new OptimizerConfigError(
        `DynamicLossScaler: growthInterval must be a positive integer, got ${describeValue(interval)}`,
        'growthInterval',
      );
    }
    this.growthInterval = interval;
    const minScale = options.minScale ?? 0;
    if (typeof minScale !== 'number' || !Number.isFinite(minScale) || minScale < 0) {
      throw new OptimizerConfigError(
        `DynamicLossScaler: minScale must be a non-negative finite number, got ${describeValue(minScale)}`,
        'minScale',
      );
    }
    this.minScale = minScale;
    const maxScale = options.maxScale ?? Number.POSITIVE_INFINITY;
    if (
      typeof maxScale !== 'number' ||
      Number.isNaN(maxScale) ||
      maxScale < Math.max(minScale, this.currentScale)
    ) {
      throw new OptimizerConfigError(
        `DynamicLossScaler: maxScale must be a number ≥ initScale (${this.currentScale}) and ≥ minScale, got ${describeValue(maxScale)}`,
        'maxScale',
      );
    }
    this.maxScale = maxScale;
    this.kernels = checkKernelChoice(options.kernels ?? 'auto', 'DynamicLossScaler');
  }

  /** The current scale (an fp32 value). Multiply the loss, or the loss gradient, by it. */
  get scale(): number {
    return this.currentScale;
  }

  /** Clean steps since the last growth or backoff. */
  get growthTracker(): number {
    return this.tracker;
  }

  /** `loss * scale`. */
  scaleLoss(loss: number): number {
    return loss * this.currentScale;
  }

  /** Whether every gradient is finite (one fast pass: the float64 sum of squares of finite fp32 values is finite). */
  check(grads: ParamTree): UnscaleResult {
    return { skip: !this.allFinite(flattenTree(grads, 'DynamicLossScaler.check')) };
  }

  /**
   * One read pass. Leaves that lie back to back in one buffer (a FlatArena's gradsTree()) are
   * checked in one kernel call over their span: a float64 sum of squares of finite fp32 values is
   * finite (each square is below 2^256, so fewer than 2^700 of them cannot overflow) and one of
   * an inf or NaN is not, whatever the grouping, so the answer is the per-leaf one.
   */
  private allFinite(leaves: ReadonlyArray<readonly [string, Float32Array]>): boolean {
    const span = contiguousSpan(leaves);
    if (span !== null) return Number.isFinite(sumOfSquares(span, this.kernels));
    for (const [, leaf] of leaves) {
      if (!Number.isFinite(sumOfSquares(leaf, this.kernels))) return false;
    }
    return true;
  }

  /**
   * Checks the gradients and, when all are finite, multiplies them by 1/scale in place (fp32, as
   * GradScaler.unscale_). When one is not, they are left as they are and `skip` is true.
   */
  unscale(grads: ParamTree): UnscaleResult {
    const leaves = flattenTree(grads, 'DynamicLossScaler.unscale');
    if (!this.allFinite(leaves)) return { skip: true };
    // torch: inv_scale = scale.double().reciprocal().float()
    const inverse = f(1 / this.currentScale);
    if (inverse !== 1) scaleLeaves(leaves, inverse, this.kernels);
    return { skip: false };
  }

  /**
   * After each step: backs off on `foundInf` (and restarts the count of clean steps), otherwise
   * counts a clean step and grows the scale when `growthInterval` of them are in a row.
   */
  update(foundInf: boolean): void {
    if (foundInf) {
      this.currentScale = Math.max(f(this.currentScale * this.backoffFactor), this.minScale);
      this.tracker = 0;
      return;
    }
    const clean = this.tracker + 1;
    if (clean === this.growthInterval) {
      const grown = Math.min(f(this.currentScale * this.growthFactor), this.maxScale);
      if (Number.isFinite(grown)) this.currentScale = grown;
      this.tracker = 0;
    } else {
      this.tracker = clean;
    }
  }

  /**
   * One whole step: unscale and check `grads`, run `apply` (clipping, the optimizer update) only
   * when they are finite, then update the scale. Returns whether the step was skipped.
   */
  step(grads: ParamTree, apply: () => void): UnscaleResult {
    const result = this.unscale(grads);
    if (!result.skip) apply();
    this.update(result.skip);
    return result;
  }

  saveState(): LossScalerState {
    return {
      format: 'ane-optim/loss-scaler',
      version: 1,
      scale: this.currentScale,
      growthTracker: this.tracker,
    };
  }

  loadState(state: LossScalerState): void {
    if (state?.format !== 'ane-optim/loss-scaler') {
      throw new OptimizerStateError(
        `DynamicLossScaler.loadState: expected a state from DynamicLossScaler.saveState (format 'ane-optim/loss-scaler'), got format ${describeValue(state?.format)}`,
        { field: 'format' },
      );
    }
    if (state.version !== 1) {
      throw new OptimizerStateError(
        `DynamicLossScaler.loadState: state version ${describeValue(state.version)} is not supported (this ane-optim reads version 1); save it again with a matching ane-optim`,
        { field: 'version' },
      );
    }
    if (!Number.isFinite(state.scale) || state.scale <= 0) {
      throw new OptimizerStateError(
        `DynamicLossScaler.loadState: scale must be a positive finite number, got ${describeValue(state.scale)}`,
        { field: 'scale' },
      );
    }
    if (!Number.isInteger(state.growthTracker) || state.growthTracker < 0) {
      throw new OptimizerStateError(
        `DynamicLossScaler.loadState: growthTracker must be a non-negative integer, got ${describeValue(state.growthTracker)}`,
        { field: 'growthTracker' },
      );
    }
    this.currentScale = state.scale;
    this.tracker = state.growthTracker;
  }
}
