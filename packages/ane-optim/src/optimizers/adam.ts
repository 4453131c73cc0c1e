/**
 * Adam and AdamW: torch.optim.Adam's and torch.optim.AdamW's rules, run by ane-bridge's adamUpdate
 * and adamwUpdate kernels. Bias correction is on by default, as in PyTorch (MLX defaults it off).
 */
import type { KernelCall } from '../kernels';
import {
  type BaseHyperParameters,
  Optimizer,
  type OptimizerOptions,
  type Resolved,
  type TensorState,
} from '../optimizer';
import { checkBetas, checkBoolean, checkRange, NON_NEGATIVE } from './checks';

export interface AdamHyperParameters extends BaseHyperParameters {
  /** [beta1, beta2]: decay rates of the first and second moments (default [0.9, 0.999]). */
  betas: readonly [number, number];
  /** Added to sqrt(v) (default 1e-8). */
  eps: number;
  /** Adam: L2 penalty added to the gradient; AdamW: decoupled decay p *= 1 - lr*weightDecay. */
  weightDecay: number;
  /** Divide m by 1 - beta1^t and v by 1 - beta2^t (default true, as PyTorch always does). */
  biasCorrection: boolean;
}

export type AdamOptions = OptimizerOptions<AdamHyperParameters>;

type AdamField = 'm' | 'v';
const ADAM_FIELDS: readonly AdamField[] = ['m', 'v'];

abstract class AdamBase extends Optimizer<AdamHyperParameters, AdamField> {
  protected constructor(
    name: 'Adam' | 'AdamW',
    options: AdamOptions,
    defaultWeightDecay: number,
    /** The ane-bridge kernel: L2 decay on the gradient (Adam) or decoupled decay (AdamW). */
    private readonly updateKernel: 'adamUpdate' | 'adamwUpdate',
  ) {
    const { groups, kernels, ...rest } = options ?? {};
    super(
      name,
      {
        learningRate: rest.learningRate ?? 1e-3,
        betas: rest.betas ?? [0.9, 0.999],
        eps: rest.eps ?? 1e-8,
        weightDecay: rest.weightDecay ?? defaultWeightDecay,
        biasCorrection: rest.biasCorrection ?? true,
      },
      groups,
      kernels,
      options,
    );
  }

  protected override checkHyperParameters(hyper: AdamHyperParameters, where: string): void {
    super.checkHyperParameters(hyper, where);
    checkBetas(this.name, `${where}betas`, hyper.betas);
    checkRange(this.name, `${where}eps`, hyper.eps, NON_NEGATIVE);
    checkRange(this.name, `${where}weightDecay`, hyper.weightDecay, NON_NEGATIVE);
    checkBoolean(this.name, `${where}biasCorrection`, hyper.biasCorrection);
  }

  protected stateFields(): readonly AdamField[] {
    return ADAM_FIELDS;
  }

  /** v is a running mean of squares. */
  protected override nonNegativeFields(): readonly AdamField[] {
    return ['v'];
  }

  protected override kernelCall(
    state: TensorState<AdamField>,
    hyper: Resolved<AdamHyperParameters>,
  ): KernelCall<AdamField> {
    const options = {
      lr: hyper.learningRate,
      beta1: hyper.betas[0],
      beta2: hyper.betas[1],
      eps: hyper.eps,
      weightDecay: hyper.weightDecay,
      step: state.step + 1,
      biasCorrection: hyper.biasCorrection,
    };
    return { kernel: this.updateKernel, state: ADAM_FIELDS, options };
  }
}

/**
 * torch.optim.Adam (defaults lr 1e-3, betas [0.9, 0.999], eps 1e-8, weightDecay 0, bias correction
 * on). Weight decay is L2: added to the gradient before the moments.
 */
export class Adam extends AdamBase {
  constructor(options: AdamOptions = {}) {
    super('Adam', options, 0, 'adamUpdate');
  }
}

/**
 * torch.optim.AdamW (defaults lr 1e-3, betas [0.9, 0.999], eps 1e-8, weightDecay 0.01, bias
 * correction on). Weight decay is decoupled: p *= 1 - lr*weightDecay, then the Adam step.
 */
export class AdamW extends AdamBase {
  constructor(options: AdamOptions = {}) {
    super('AdamW', options, 0.01, 'adamwUpdate');
  }
}
