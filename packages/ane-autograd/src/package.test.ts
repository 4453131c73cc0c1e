import { describePackageExports } from '../../../tools/testing/package-exports';
import { describeReadmeExamples } from '../../../tools/testing/readme-examples';

describePackageExports(`${import.meta.dirname}/..`, { 'ane-autograd': ['version'] });
describeReadmeExamples(`${import.meta.dirname}/..`);
