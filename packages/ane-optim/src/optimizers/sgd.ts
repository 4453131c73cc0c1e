/**
 * SGD with momentum, dampening, Nesterov and L2 weight decay: torch.optim.SGD's rule, run by
 * ane-bridge's sgdUpdate kernel.
 */
import { OptimizerConfigError } from '../errors';
import type { KernelCall } from '../kernels';
import {
  type BaseHyperParameters,
  type LearningRate,
  Optimizer,
  type OptimizerOptions,
  type Resolved,
  type TensorState,
} from '../optimizer';
import { checkBoolean, checkRange, NON_NEGATIVE } from './checks';

export interface SgdHyperParameters extends BaseHyperParameters {
  /** Momentum factor (default 0: plain SGD, no state). */
  momentum: number;
  /** Dampening of the gradient's contribution to the momentum (default 0). */
  dampening: number;
  /** Nesterov momentum (default false; needs momentum > 0 and dampening 0, as in PyTorch). */
  nesterov: boolean;
  /** L2 penalty added to the gradient, g += weightDecay * p (default 0). */
  weightDecay: number;
}

/** SGD's learning rate has no default. */
export type SgdOptions = OptimizerOptions<SgdHyperParameters> & { learningRate: LearningRate };

/**
 * torch.optim.SGD: g = grad + weightDecay*p; buf = g on the first step, else
 * momentum*buf + (1 - dampening)*g; g = nesterov ? g + momentum*buf : buf; p -= lr*g.
 * The learning rate has no default (as in MLX).
 */
export class SGD extends Optimizer<SgdHyperParameters, 'momentum'> {
  constructor(options: SgdOptions) {
    const { groups, kernels, ...rest } = options ?? ({} as SgdOptions);
    super(
      'SGD',
      {
        learningRate: rest.learningRate,
        momentum: rest.momentum ?? 0,
        dampening: rest.dampening ?? 0,
        nesterov: rest.nesterov ?? false,
        weightDecay: rest.weightDecay ?? 0,
      },
      groups,
      kernels,
      options,
    );
  }

  protected override checkHyperParameters(hyper: SgdHyperParameters, where: string): void {
    super.checkHyperParameters(hyper, where);
    checkRange('SGD', `${where}momentum`, hyper.momentum, NON_NEGATIVE);
    checkRange('SGD', `${where}dampening`, hyper.dampening, { min: 0, max: 1 });
    checkRange('SGD', `${where}weightDecay`, hyper.weightDecay, NON_NEGATIVE);
    checkBoolean('SGD', `${where}nesterov`, hyper.nesterov);
    if (hyper.nesterov && (hyper.momentum <= 0 || hyper.dampening !== 0)) {
      throw new OptimizerConfigError(
        `SGD: Nesterov momentum needs momentum > 0 and dampening 0 (as in PyTorch), got momentum ${hyper.momentum} and dampening ${hyper.dampening}`,
        `${where}nesterov`,
      );
    }
  }

  protected stateFields(hyper: SgdHyperParameters): readonly 'momentum'[] {
    return hyper.momentum === 0 ? [] : ['momentum'];
  }

  protected override kernelCall(
    state: TensorState<'momentum'>,
    hyper: Resolved<SgdHyperParameters>,
  ): KernelCall<'momentum'> {
    return {
      kernel: 'sgdUpdate',
      state: [hyper.momentum === 0 ? null : 'momentum'],
      options: {
        lr: hyper.learningRate,
        momentum: hyper.momentum,
        dampening: hyper.dampening,
        nesterov: hyper.nesterov,
        weightDecay: hyper.weightDecay,
        firstStep: state.step === 0,
      },
    };
  }
}
