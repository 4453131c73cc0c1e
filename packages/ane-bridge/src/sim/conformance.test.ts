import { describe, expect, it } from 'vitest';
import {
  compareWithTolerance,
  conformanceDirectory,
  decodeTensorBytes,
  loadConformanceCorpus,
} from './conformance-harness.test-helper';
import { compileSimProgram } from './executable';

const corpus = loadConformanceCorpus();

describe('MIL conformance corpus on the simulator', () => {
  it(`finds the corpus in ${conformanceDirectory()}`, () => {
    expect(corpus.length).toBeGreaterThanOrEqual(12);
  });

  for (const testCase of corpus) {
    it(`${testCase.id}: ${testCase.title}`, () => {
      const executable = compileSimProgram(testCase.program);
      const outputs = testCase.expected.map((spec) => new Uint8Array(spec.bytes.byteLength));
      executable.run(
        testCase.inputs.map((input) => input.bytes),
        outputs,
      );
      testCase.expected.forEach((expected, j) => {
        const got = decodeTensorBytes(expected.dtype, outputs[j]!);
        const comparison = compareWithTolerance(
          got,
          decodeTensorBytes(expected.dtype, expected.bytes),
          testCase.tolerance,
        );
        console.log(
          `${testCase.id}/${expected.name}: max |error| ${comparison.maxAbsoluteError.toExponential(3)}, ${(100 * comparison.worstRatio).toFixed(1)}% of tolerance`,
        );
        expect(
          comparison.failures,
          `${testCase.id}/${expected.name}: ${JSON.stringify(comparison.examples)}`,
        ).toBe(0);
      });
    });
  }
});
