import { describe, expect, it } from 'vitest';
import { GradientAccumulator } from './accumulate';
import { FlatArena } from './arena';
import { clipGradNorm, globalNorm } from './clip';
import { OptimizerConfigError } from './errors';
import { DynamicLossScaler } from './loss-scaler';
import { Adam, AdamW } from './optimizers/adam';
import { Lion } from './optimizers/lion';
import { SGD } from './optimizers/sgd';
import { didYouMean } from './options';

/** The OptimizerConfigError `make` throws, as `option: message`. */
function configError(make: () => unknown): string {
  try {
    make();
  } catch (error) {
    expect(error).toBeInstanceOf(OptimizerConfigError);
    return `${(error as OptimizerConfigError).option}: ${(error as Error).message}`;
  }
  throw new Error('expected an OptimizerConfigError');
}

describe('unknown option keys are refused with a did-you-mean', () => {
  it("new AdamW({ lr: 0.5, weight_decay: 0 }) names 'learningRate' (PyTorch's names are not silently ignored)", () => {
    expect(configError(() => new AdamW({ lr: 0.5, weight_decay: 0 } as never))).toBe(
      "lr: AdamW: unknown option 'lr'; did you mean 'learningRate'? (AdamW takes learningRate, betas, eps, weightDecay, biasCorrection, kernels, groups)",
    );
    expect(configError(() => new AdamW({ learningRate: 0.5, weight_decay: 0 } as never))).toMatch(
      /^weight_decay: AdamW: unknown option 'weight_decay'; did you mean 'weightDecay'\?/,
    );
  });

  it('every optimizer and its parameter groups', () => {
    expect(configError(() => new Adam({ betas1: 0.9 } as never))).toMatch(/did you mean 'betas'\?/);
    expect(configError(() => new SGD({ learningRate: 0.1, nesterow: true } as never))).toMatch(
      /^nesterow: SGD: unknown option 'nesterow'; did you mean 'nesterov'\?/,
    );
    expect(configError(() => new Lion({ lr: 1e-4 } as never))).toMatch(/did you mean 'learningRate'\?/);
    expect(configError(() => new AdamW({ groups: [{ params: ['a'], weight_decay: 0 } as never] }))).toMatch(
      /^groups\[0\]\.weight_decay: .*did you mean 'groups\[0\]\.weightDecay'\?/,
    );
    expect(configError(() => new AdamW({ colour: 'blue' } as never))).toMatch(
      /^colour: AdamW: unknown option 'colour' \(AdamW takes /,
    );
  });

  it('the loss scaler, clipping, accumulation, arenas and stepArena', () => {
    expect(configError(() => new DynamicLossScaler({ init_scale: 1024 } as never))).toMatch(
      /^init_scale: DynamicLossScaler: unknown option 'init_scale'; did you mean 'initScale'\?/,
    );
    const grads = { w: new Float32Array([3, 4]) };
    expect(configError(() => clipGradNorm(grads, 1, { kernel: 'ts' } as never))).toMatch(
      /^kernel: clipGradNorm: unknown option 'kernel'; did you mean 'kernels'\?/,
    );
    expect(configError(() => globalNorm(grads, { norm_type: 2 } as never))).toMatch(/^norm_type: globalNorm/);
    expect(grads.w).toEqual(new Float32Array([3, 4])); // refused before anything changed
    expect(configError(() => new GradientAccumulator(grads, { steps: 2, reduce: 'sum' } as never))).toMatch(
      /did you mean 'reduction'\?/,
    );
    expect(configError(() => new FlatArena({ w: 2 }, { share: true } as never))).toMatch(
      /did you mean 'shared'\?/,
    );
    const arena = new FlatArena({ w: 2 });
    expect(configError(() => new AdamW().stepArena(arena, { fp16out: undefined } as never))).toMatch(
      /did you mean 'fp16Out'\?/,
    );
  });

  it('suggests by alias, by snake_case, and by edit distance; nothing for a far-off name', () => {
    expect(didYouMean('lr', ['learningRate', 'betas'])).toBe('learningRate');
    expect(didYouMean('bias_correction', ['biasCorrection'])).toBe('biasCorrection');
    expect(didYouMean('weightdecay', ['weightDecay'])).toBe('weightDecay');
    expect(didYouMean('monentum', ['momentum', 'dampening'])).toBe('momentum');
    expect(didYouMean('xyzzy', ['momentum', 'dampening'])).toBeUndefined();
  });
});
