import { describePackageExports } from '../../../tools/testing/package-exports';
import { describeReadmeExamples } from '../../../tools/testing/readme-examples';

describePackageExports(`${import.meta.dirname}/..`, {
  'ane-train': [
    'Trainer',
    'buildTrainingGraph',
    'parseLlamaConfig',
    'resolveModel',
    'PRESETS',
    'parameterSpecs',
    'initParameters',
    'DeviceRuntime',
    'openSession',
    'describePlan',
    'computeGradients',
    'readSafetensorsFile',
    'writeSafetensorsFile',
    'readTokenFile',
    'ConfigError',
    'DataError',
    'CheckpointError',
    'TrainError',
    'version',
  ],
});
describeReadmeExamples(`${import.meta.dirname}/..`);
