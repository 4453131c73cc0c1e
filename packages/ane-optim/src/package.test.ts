import { describePackageExports } from '../../../tools/testing/package-exports';
import { describeReadmeExamples } from '../../../tools/testing/readme-examples';

describePackageExports(`${import.meta.dirname}/..`, {
  'ane-optim': [
    'version',
    'SGD',
    'Adam',
    'AdamW',
    'Lion',
    'Optimizer',
    'FlatArena',
    'constant',
    'linearSchedule',
    'linearWarmup',
    'cosineDecay',
    'stepDecay',
    'joinSchedules',
    'clipGradNorm',
    'globalNorm',
    'GradientAccumulator',
    'DynamicLossScaler',
    'encodeOptimizerState',
    'decodeOptimizerState',
    'flattenTree',
    'zerosLike',
    'ThreadPool',
    'OptimizerConfigError',
    'OptimizerInputError',
    'OptimizerStateError',
  ],
});
describeReadmeExamples(`${import.meta.dirname}/..`);
