import { decodeDeviceBytes } from '../device/buffers';
import type { Device } from '../device/device';
import { type ConformanceCase, loadCase } from './case';
import { compareOutput, type WorstElement } from './compare';

export interface CaseResult {
  id: string;
  title: string;
  dir: string;
  pass: boolean;
  /** Compile plus run, in milliseconds (0 when the case failed before running). */
  timeMs: number;
  /** The worst element over all outputs, with the output it belongs to. */
  worst?: WorstElement & { output: string };
  /** Why the case failed before its outputs could be compared (load or compile error, …). */
  error?: string;
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
  return { ...base, pass, timeMs, ...(worst ? { worst } : {}) };
}

/** Runs each case directory on `device`; a case that cannot load, compile or run fails with its error. */
export function runConformance(caseDirs: readonly string[], device: Device): CaseResult[] {
  return caseDirs.map((dir) => {
    let testCase: ConformanceCase;
    try {
      testCase = loadCase(dir);
    } catch (error) {
      return { id: dir, title: '', dir, pass: false, timeMs: 0, error: (error as Error).message };
    }
    try {
      return runLoadedCase(testCase, device);
    } catch (error) {
      const e = error as Error;
      return { id: testCase.id, title: testCase.title, dir, pass: false, timeMs: 0, error: `${e.name}: ${e.message}` };
    }
  });
}
