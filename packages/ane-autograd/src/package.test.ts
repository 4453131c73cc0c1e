import { describePackageExports } from '../../../tools/testing/package-exports';
import { describeReadmeExamples } from '../../../tools/testing/readme-examples';

describePackageExports(`${import.meta.dirname}/..`, {
  'ane-autograd': [
    'version',
    'valueAndGrad',
    'gradients',
    'stopGradient',
    'gradcheck',
    'VJP_RULES',
    'UnsupportedError',
    'AutogradError',
  ],
});
describeReadmeExamples(`${import.meta.dirname}/..`);
