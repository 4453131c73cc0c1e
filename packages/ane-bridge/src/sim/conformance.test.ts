import { join } from 'node:path';
import { CHIP_FAMILIES } from 'ane-ir/mil';
import { describe, expect, it } from 'vitest';
import { findCaseDirs, loadCase } from '../conformance/case';
import { compareOutput } from '../conformance/compare';
import { decodeDeviceBytes } from '../device/buffers';
import { CompileError } from '../errors';
import { nativeAddon } from '../native/loader';
import { compileSimProgram } from './executable';
import { setSimOpsMode, simOpsMode } from './native-ops';

const cases = findCaseDirs([join(import.meta.dirname, '..', '..', 'conformance')]).map(loadCase);

/** Chips on which the corpus notes say a case does not compile, with the rule that refuses it. */
const REFUSED: Record<string, { chips: string[]; ruleId: string }> = {
  A2: { chips: ['M1', 'M2'], ruleId: 'dtype-fp32-io-in-memory' },
};

describe('the conformance corpus on the simulator', () => {
  it('has all twelve cases', () => expect(cases.map((c) => c.id)).toHaveLength(12));

  for (const chip of CHIP_FAMILIES) {
    for (const testCase of cases) {
      const refusal = REFUSED[testCase.id];
      if (refusal?.chips.includes(chip)) {
        it(`${chip} ${testCase.id}: refused with rule ${refusal.ruleId}`, () => {
          expect(() => compileSimProgram(testCase.program, { chip })).toThrow(CompileError);
          try {
            compileSimProgram(testCase.program, { chip });
          } catch (error) {
            expect((error as CompileError).details.ruleId).toBe(refusal.ruleId);
          }
        });
        continue;
      }
      it(`${chip} ${testCase.id}: ${testCase.title}`, () => {
        const executable = compileSimProgram(testCase.program, { chip });
        const outputs = testCase.expected.map((bytes) => new Uint8Array(bytes.byteLength));
        executable.run(testCase.inputs, outputs);
        testCase.program.outputs.forEach((spec, j) => {
          const comparison = compareOutput(
            decodeDeviceBytes(outputs[j]!, spec.dtype),
            decodeDeviceBytes(testCase.expected[j]!, spec.dtype),
            spec.shape,
            testCase.tolerance,
          );
          expect(comparison.pass, `${testCase.id}/${spec.name}: ${JSON.stringify(comparison.worst)}`).toBe(
            true,
          );
        });
      });
    }
  }
});

describe('the conformance corpus with native and TS simulator ops, fused and not', () => {
  const native = nativeAddon().addon?.simOps !== undefined;
  const initial = simOpsMode();
  for (const testCase of cases) {
    it.skipIf(!native)(`${testCase.id}: the same output bytes, and every op agrees in compare mode`, () => {
      const runIn = (mode: 'ts' | 'native' | 'compare', fuseElementwise: boolean) => {
        setSimOpsMode(mode);
        try {
          const executable = compileSimProgram(testCase.program, { fuseElementwise });
          const outputs = testCase.expected.map((bytes) => new Uint8Array(bytes.byteLength));
          executable.run(testCase.inputs, outputs);
          return outputs;
        } finally {
          setSimOpsMode(initial);
        }
      };
      const ts = runIn('ts', false);
      for (const fuse of [false, true]) {
        for (const mode of ['ts', 'native', 'compare'] as const) {
          expect(runIn(mode, fuse), `${mode}, fuseElementwise ${fuse}`).toEqual(ts);
        }
      }
    });
  }
});
