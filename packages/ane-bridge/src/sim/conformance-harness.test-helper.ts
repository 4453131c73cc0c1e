/**
 * Loads the MIL conformance corpus (shared/conformance) and compares outputs with the corpus rule
 * |got - exp| <= atol + rtol * |exp| in float64, where NaN or infinity fails.
 * The lead may move this module next to the device's conformance runner.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Program, TensorSpec } from 'ane-ir/mil';
import { decodeFp16 } from 'ane-ir/mil';

export interface ConformanceTensor extends TensorSpec {
  readonly bytes: Uint8Array;
}

export interface ConformanceCase {
  readonly id: string;
  readonly title: string;
  readonly directory: string;
  readonly program: Program;
  readonly inputs: readonly ConformanceTensor[];
  readonly expected: readonly ConformanceTensor[];
  readonly tolerance: { readonly atol: number; readonly rtol: number };
}

interface CaseJson {
  id: string;
  title: string;
  inputs: { name: string; dtype: 'fp16' | 'fp32'; shape: number[]; file: string }[];
  outputs: { name: string; dtype: 'fp16' | 'fp32'; shape: number[]; file: string }[];
  weights: { key: string; file: string }[];
  tolerance: { atol: number; rtol: number };
}

/** The corpus directory: $ANE_CONFORMANCE_DIR, else shared/conformance next to the repository. */
export function conformanceDirectory(): string {
  return (
    process.env['ANE_CONFORMANCE_DIR'] ??
    fileURLToPath(new URL('../../../../../shared/conformance', import.meta.url))
  );
}

function readBytes(path: string): Uint8Array {
  const buffer = readFileSync(path);
  // A private, aligned copy (Buffer pools share and misalign memory).
  return new Uint8Array(buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength));
}

export function loadConformanceCase(directory: string): ConformanceCase {
  const json = JSON.parse(readFileSync(join(directory, 'case.json'), 'utf8')) as CaseJson;
  const spec = ({
    name,
    dtype,
    shape,
  }: {
    name: string;
    dtype: 'fp16' | 'fp32';
    shape: number[];
  }): TensorSpec => ({
    name,
    dtype,
    shape,
  });
  return {
    id: json.id,
    title: json.title,
    directory,
    program: {
      mil: readFileSync(join(directory, 'program.mil'), 'utf8'),
      weights: new Map(json.weights.map((weight) => [weight.key, readBytes(join(directory, weight.file))])),
      inputs: json.inputs.map(spec),
      outputs: json.outputs.map(spec),
    },
    inputs: json.inputs.map((input) => ({ ...spec(input), bytes: readBytes(join(directory, input.file)) })),
    expected: json.outputs.map((output) => ({
      ...spec(output),
      bytes: readBytes(join(directory, output.file)),
    })),
    tolerance: json.tolerance,
  };
}

export function loadConformanceCorpus(directory = conformanceDirectory()): ConformanceCase[] {
  if (!existsSync(directory)) return [];
  return readdirSync(directory, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(directory, entry.name, 'case.json')))
    .map((entry) => loadConformanceCase(join(directory, entry.name)))
    .sort((a, b) => a.id.localeCompare(b.id));
}

/** Device bytes of `spec` as numbers. */
export function decodeTensorBytes(dtype: 'fp16' | 'fp32', bytes: Uint8Array): Float64Array {
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  const values =
    dtype === 'fp16'
      ? decodeFp16(new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2))
      : new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4);
  return Float64Array.from(values);
}

export interface Comparison {
  readonly passed: boolean;
  /** Largest |got - exp| over all elements. */
  readonly maxAbsoluteError: number;
  /** Largest |got - exp| / (atol + rtol*|exp|): the share of the allowed error used (1 = at the limit). */
  readonly worstRatio: number;
  readonly failures: number;
  /** The first failing elements, for messages. */
  readonly examples: readonly { index: number; got: number; expected: number }[];
}

/** The corpus rule: every element within atol + rtol*|exp|, NaN or infinity fails. */
export function compareWithTolerance(
  got: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: { atol: number; rtol: number },
): Comparison {
  let maxAbsoluteError = 0;
  let worstRatio = 0;
  let failures = 0;
  const examples: { index: number; got: number; expected: number }[] = [];
  if (got.length !== expected.length) {
    return {
      passed: false,
      maxAbsoluteError: Number.POSITIVE_INFINITY,
      worstRatio: Number.POSITIVE_INFINITY,
      failures: 1,
      examples,
    };
  }
  for (let i = 0; i < expected.length; i++) {
    const g = got[i]!;
    const e = expected[i]!;
    const error = Math.abs(g - e);
    const allowed = tolerance.atol + tolerance.rtol * Math.abs(e);
    const ok = Number.isFinite(g) && Number.isFinite(e) && error <= allowed;
    if (Number.isFinite(error)) maxAbsoluteError = Math.max(maxAbsoluteError, error);
    worstRatio = Math.max(worstRatio, Number.isFinite(error) ? error / allowed : Number.POSITIVE_INFINITY);
    if (!ok) {
      failures++;
      if (examples.length < 5) examples.push({ index: i, got: g, expected: e });
    }
  }
  return { passed: failures === 0, maxAbsoluteError, worstRatio, failures, examples };
}
