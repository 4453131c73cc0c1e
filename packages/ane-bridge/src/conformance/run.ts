import { decodeDeviceBytes } from '../device/buffers';
import type { Device } from '../device/device';
import { CompileBudgetError, CompileError } from '../errors';
import { type ConformanceCase, loadCase } from './case';
import { compareOutput, type WorstElement } from './compare';

/**
 * How a case ended: its outputs matched (`pass`); the compiler refused it on a chip the case says
 * it does not compile on (`refused-expected`); or anything else (`fail`).
 */
export type CaseOutcome = 'pass' | 'refused-expected' | 'fail';

export interface CaseResult {
  id: string;
  title: string;
  dir: string;
  /** False only when `outcome` is 'fail': the case behaved as it says it should. */
  pass: boolean;
  outcome: CaseOutcome;
  /** Compile plus run, in milliseconds (0 when the case failed before running). */
  timeMs: number;
  /** The worst element over all outputs, with the output it belongs to. */
  worst?: WorstElement & { output: string };
  /** Why the case failed before its outputs could be compared (load or compile error, …). */
  error?: string;
  /** For `refused-expected`: the compiler's refusal, and the rule that refused it when known. */
  refusal?: { message: string; ruleId?: string; chip: string };
}

function runLoadedCase(testCase: ConformanceCase, device: Device): CaseResult {
  const base = { id: testCase.id, title: testCase.title, dir: testCase.dir };
  const started = performance.now();
  using kernel = device.compile(testCase.program);
  const outputs = kernel.runSync(testCase.inputs);
  const timeMs = performance.now() - started;
  let pass = true;
  let worst: CaseResult['worst'];
  for (const [i, buffer] of outputs.entries()) {
    const expected = decodeDeviceBytes(testCase.expected[i]!, buffer.spec.dtype);
    const comparison = compareOutput(buffer.read(), expected, buffer.spec.shape, testCase.tolerance);
    pass &&= comparison.pass;
    if (comparison.worst && (!worst || comparison.worst.ratio > worst.ratio)) {
      worst = { ...comparison.worst, output: buffer.spec.name };
    }
  }
  return { ...base, pass, outcome: pass ? 'pass' : 'fail', timeMs, ...(worst ? { worst } : {}) };
}

/**
 * A compile refusal the case expects on this chip: a CompileError (not the budget) on a chip the
 * case names, by the rule it names when it names one.
 */
function isExpectedRefusal(testCase: ConformanceCase, device: Device, error: unknown): error is CompileError {
  const expected = testCase.expectedRefusal;
  if (!expected || !(error instanceof CompileError) || error instanceof CompileBudgetError) return false;
  if (!expected.chips.includes(device.chip)) return false;
  return expected.ruleId === undefined || error.details.ruleId === expected.ruleId;
}

/** Runs each case directory on `device`; a case that cannot load, compile or run fails with its error. */
export function runConformance(caseDirs: readonly string[], device: Device): CaseResult[] {
  return caseDirs.map((dir): CaseResult => {
    let testCase: ConformanceCase;
    try {
      testCase = loadCase(dir);
    } catch (error) {
      const e = error as Error;
      return {
        id: dir,
        title: '',
        dir,
        pass: false,
        outcome: 'fail',
        timeMs: 0,
        error: `${e.name}: ${e.message}`,
      };
    }
    const base = { id: testCase.id, title: testCase.title, dir };
    try {
      return runLoadedCase(testCase, device);
    } catch (error) {
      const e = error as Error;
      if (isExpectedRefusal(testCase, device, error)) {
        const ruleId = error.details.ruleId;
        return {
          ...base,
          pass: true,
          outcome: 'refused-expected',
          timeMs: 0,
          refusal: { message: e.message, ...(ruleId ? { ruleId } : {}), chip: device.chip },
        };
      }
      return { ...base, pass: false, outcome: 'fail', timeMs: 0, error: `${e.name}: ${e.message}` };
    }
  });
}
