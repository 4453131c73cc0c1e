/**
 * Gradient accumulation: sum the gradients of several micro-batches into one set of buffers, then
 * take their mean (or sum) for one optimizer step, which then sees the gradient of the whole batch.
 */
import { describeValue, OptimizerConfigError, OptimizerInputError, OptimizerStateError } from './errors';
import { addInPlace, checkKernelChoice, type KernelChoice, scaleLeaves } from './kernels';
import { checkOptionKeys } from './options';
import { describePath, flattenTree, type ParamTree } from './tree';

export interface GradientAccumulatorOptions {
  /** Micro-batches per optimizer step. */
  steps: number;
  /** 'mean' (default) divides the sum by the number of micro-batches; 'sum' leaves it. */
  reduction?: 'mean' | 'sum';
  /** Which ane-bridge kernels add and divide (default 'auto'); every choice gives the same bits. */
  kernels?: KernelChoice;
}

export interface GradientAccumulatorState {
  format: 'ane-optim/gradient-accumulator';
  version: 1;
  count: number;
}

/**
 * Accumulates into `target`, a gradient tree the caller owns (e.g. `zerosLike(params)`, or a flat
 * arena's `grads`): the first micro-batch after a `finish` is copied in (no zeroing pass), the
 * others are added. `finish` turns the sum into the mean in place and returns `target`.
 */
export class GradientAccumulator<T extends ParamTree = ParamTree> {
  readonly steps: number;
  readonly reduction: 'mean' | 'sum';
  readonly kernels: KernelChoice;
  private readonly leaves: Array<[string, Float32Array]>;
  private accumulated = 0;

  constructor(
    readonly target: T,
    options: GradientAccumulatorOptions,
  ) {
    checkOptionKeys('GradientAccumulator', options, ['steps', 'reduction', 'kernels']);
    const steps = options?.steps;
    if (!Number.isInteger(steps) || steps < 1) {
      throw new OptimizerConfigError(
        `GradientAccumulator: steps must be a positive integer (micro-batches per optimizer step), got ${describeValue(steps)}`,
        'steps',
      );
    }
    const reduction = options.reduction ?? 'mean';
    if (reduction !== 'mean' && reduction !== 'sum') {
      throw new OptimizerConfigError(
        `GradientAccumulator: reduction must be 'mean' or 'sum', got ${describeValue(reduction)}`,
        'reduction',
      );
    }
    this.steps = steps;
    this.reduction = reduction;
    this.kernels = checkKernelChoice(options.kernels ?? 'auto', 'GradientAccumulator');
    this.leaves = flattenTree(target, 'GradientAccumulator target');
  }

  /** Micro-batches accumulated since the last finish. */
  get count(): number {
    return this.accumulated;
  }

  /** `steps` micro-batches are in: time to finish and step the optimizer. */
  get ready(): boolean {
    return this.accumulated >= this.steps;
  }

  /** Adds one micro-batch of gradients (same structure as the target); returns `ready`. */
  accumulate(grads: ParamTree): boolean {
    const incoming = new Map(flattenTree(grads, 'GradientAccumulator.accumulate'));
    for (const [path, leaf] of this.leaves) {
      const grad = incoming.get(path);
      if (grad === undefined || grad.length !== leaf.length) {
        throw new OptimizerInputError(
          `GradientAccumulator.accumulate: ${describePath(path)} ${grad === undefined ? 'is missing from the gradients' : `has ${grad.length} gradients, expected ${leaf.length}`}; pass gradients shaped like the target`,
          path,
        );
      }
    }
    if (incoming.size !== this.leaves.length) {
      const extra = [...incoming.keys()].find((path) => !this.leaves.some(([p]) => p === path));
      throw new OptimizerInputError(
        `GradientAccumulator.accumulate: the gradients have ${describePath(extra ?? '')}, which the target does not`,
        extra,
      );
    }
    for (const [path, leaf] of this.leaves) {
      const grad = incoming.get(path) as Float32Array;
      if (grad === leaf) continue; // accumulated in place by the caller
      if (this.accumulated === 0) leaf.set(grad);
      else addInPlace(leaf, grad, this.kernels); // leaf[i] = leaf[i] + grad[i], in fp32
    }
    this.accumulated += 1;
    return this.ready;
  }

  /**
   * Ends the round: with reduction 'mean' divides the target by the number of micro-batches
   * accumulated (in fp32), resets the count and returns the target, ready for the optimizer.
   */
  finish(): T {
    if (this.accumulated === 0) {
      throw new OptimizerInputError(
        'GradientAccumulator.finish: no gradients were accumulated since the last finish',
      );
    }
    if (this.reduction === 'mean' && this.accumulated > 1) {
      const count = this.accumulated;
      // For a power-of-two count, x / count and x · (1 / count) are the same real number, so their
      // fp32 roundings are the same bits: the multiply runs as a kernel at memory speed.
      const powerOfTwo = count <= 2 ** 30 && (count & (count - 1)) === 0;
      if (powerOfTwo) scaleLeaves(this.leaves, 1 / count, this.kernels);
      else {
        for (const [, leaf] of this.leaves) {
          for (let i = 0; i < leaf.length; i++) leaf[i] = (leaf[i] as number) / count;
        }
      }
    }
    this.accumulated = 0;
    return this.target;
  }

  /** The count (the sums themselves are in the target, which the caller saves with the weights). */
  saveState(): GradientAccumulatorState {
    return { format: 'ane-optim/gradient-accumulator', version: 1, count: this.accumulated };
  }

  loadState(state: GradientAccumulatorState): void {
    if (state?.format !== 'ane-optim/gradient-accumulator' || state.version !== 1) {
      throw new OptimizerStateError(
        `GradientAccumulator.loadState: expected a version 1 state from GradientAccumulator.saveState, got format ${describeValue(state?.format)} version ${describeValue(state?.version)}`,
        { field: state?.format === 'ane-optim/gradient-accumulator' ? 'version' : 'format' },
      );
    }
    if (!Number.isInteger(state.count) || state.count < 0) {
      throw new OptimizerStateError(
        `GradientAccumulator.loadState: count must be a non-negative integer, got ${describeValue(state.count)}`,
        { field: 'count' },
      );
    }
    this.accumulated = state.count;
  }
}
