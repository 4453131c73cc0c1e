import { describePackageExports } from '../../../tools/testing/package-exports';
import { describeReadmeExamples } from '../../../tools/testing/readme-examples';

describePackageExports(`${import.meta.dirname}/..`, {
  'ane-bridge': ['version', 'capabilities', 'loadNativeAddon', 'CompileError', 'DeviceUnavailableError'],
});
describeReadmeExamples(`${import.meta.dirname}/..`);
