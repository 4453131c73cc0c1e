/**
 * Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), as lucidrains/lion-pytorch
 * and MLX write it, run by ane-bridge's lionUpdate kernel. PyTorch has no Lion; the parity
 * fixtures use a reference written in tools/refgen/.
 */
import type { KernelCall } from '../kernels';
import {
  type BaseHyperParameters,
  Optimizer,
  type OptimizerOptions,
  type Resolved,
  type TensorState,
} from '../optimizer';
import { checkBetas, checkRange, NON_NEGATIVE } from './checks';

export interface LionHyperParameters extends BaseHyperParameters {
  /** [beta1, beta2]: beta1 blends the update's sign, beta2 the momentum (default [0.9, 0.99]). */
  betas: readonly [number, number];
  /** Decoupled weight decay, p *= 1 - lr*weightDecay (default 0). */
  weightDecay: number;
}

export type LionOptions = OptimizerOptions<LionHyperParameters>;

type LionField = 'm';
const LION_FIELDS: readonly LionField[] = ['m'];

/**
 * p *= 1 - lr*weightDecay; p -= lr * sign(beta1*m + (1 - beta1)*g); m = beta2*m + (1 - beta2)*g.
 * Defaults: lr 1e-4 (Lion wants a rate 3-10x smaller than AdamW's), betas [0.9, 0.99], weightDecay 0.
 */
export class Lion extends Optimizer<LionHyperParameters, LionField> {
  constructor(options: LionOptions = {}) {
    const { groups, kernels, ...rest } = options ?? {};
    super(
      'Lion',
      {
        learningRate: rest.learningRate ?? 1e-4,
        betas: rest.betas ?? [0.9, 0.99],
        weightDecay: rest.weightDecay ?? 0,
      },
      groups,
      kernels,
      options,
    );
  }

  protected override checkHyperParameters(hyper: LionHyperParameters, where: string): void {
    super.checkHyperParameters(hyper, where);
    checkBetas('Lion', `${where}betas`, hyper.betas);
    checkRange('Lion', `${where}weightDecay`, hyper.weightDecay, NON_NEGATIVE);
  }

  protected stateFields(): readonly LionField[] {
    return LION_FIELDS;
  }

  protected override kernelCall(
    _state: TensorState<LionField>,
    hyper: Resolved<LionHyperParameters>,
  ): KernelCall<LionField> {
    return {
      kernel: 'lionUpdate',
      state: LION_FIELDS,
      options: {
        lr: hyper.learningRate,
        beta1: hyper.betas[0],
        beta2: hyper.betas[1],
        weightDecay: hyper.weightDecay,
      },
    };
  }
}
