import { describePackageExports } from '../../../tools/testing/package-exports';
import { describeReadmeExamples } from '../../../tools/testing/readme-examples';

describePackageExports(`${import.meta.dirname}/..`, {
  'ane-ir': [
    'version',
    'Graph',
    'Tensor',
    'ShapeError',
    'ConstraintError',
    'matmul',
    'linear',
    'rmsNorm',
    'causalSelfAttention',
    'lowerGraph',
    'lowerKernel',
    'checkKernel',
    'partition',
    'packInput',
    'evaluate',
    'IR_CHECKS',
  ],
  'ane-ir/mil': ['roundToFp16', 'encodeFp16', 'decodeFp16', 'byteLength'],
});
describeReadmeExamples(`${import.meta.dirname}/..`);
