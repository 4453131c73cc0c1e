/**
 * SGD with momentum, dampening, Nesterov and L2 weight decay: torch.optim.SGD's rule, run by
 * ane-bridge's sgdUpdate kernel.
 */
import { OptimizerConfigError } from '../errors';
import type { KernelCall, KernelChoice } from '../kernels';
import {
  type BaseHyperParameters,
  type LearningRate,
  Optimizer,
  type ParamGroup,
  type Resolved,
  type TensorState,
} from '../optimizer';
import { checkOptionKeys } from '../options';
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

export type SgdOptions = {
  learningRate: LearningRate;
  /** Which ane-bridge kernels run the updates (default 'auto': native when loaded). */
  kernels?: KernelChoice;
  groups?: ReadonlyArray<ParamGroup<SgdHyperParameters>>;
} & Partial<Omit<SgdHyperParameters, 'learningRate'>>;

/**
 * torch.optim.SGD: g = grad + weightDecay*p; buf = g on the first step, else
 * momentum*buf + (1 - dampening)*g; g = nesterov ? g + momentum*buf : buf; p -= lr*g.
 * The learning rate has no default (as in MLX).
 */
export class SGD extends Optimizer<SgdHyperParameters, 'momentum'> {
  constructor(options: SgdOptions) {
    checkOptionKeys('SGD', options, [
      'learningRate',
      'momentum',
      'dampening',
      'nesterov',
      'weightDecay',
      'kernels',
      'groups',
    ]);
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
