/**
 * Conformance cases on disk (the corpus format of conformance/README.md): loading a case directory
 * into a Program with its inputs, expected outputs and tolerance.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { byteLength, type Program, type TensorSpec } from 'ane-ir/mil';

export interface ConformanceCase {
  id: string;
  title: string;
  dir: string;
  program: Program;
  /** Device bytes per input, declaration order. */
  inputs: Uint8Array[];
  /** Expected device bytes per output, return order. */
  expected: Uint8Array[];
  tolerance: { atol: number; rtol: number };
}

/** A case directory that cannot be read as a case: which file and what is wrong with it. */
export class CaseFormatError extends Error {
  override name = 'CaseFormatError';
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
  }
}

interface TensorEntry extends TensorSpec {
  file: string;
}

function readJson(file: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new CaseFormatError(file, `not readable as JSON (${(error as Error).message})`);
  }
}

function tensorEntries(caseFile: string, value: unknown, field: string): TensorEntry[] {
  if (!Array.isArray(value)) throw new CaseFormatError(caseFile, `'${field}' must be an array`);
  return value.map((entry, i) => {
    const e = entry as Partial<TensorEntry>;
    const ok =
      typeof e.name === 'string' &&
      (e.dtype === 'fp16' || e.dtype === 'fp32') &&
      Array.isArray(e.shape) &&
      e.shape.every((d) => Number.isInteger(d) && d >= 0) &&
      typeof e.file === 'string';
    if (!ok) {
      throw new CaseFormatError(caseFile, `${field}[${i}] needs name, dtype ('fp16' | 'fp32'), shape and file`);
    }
    return { name: e.name!, dtype: e.dtype!, shape: e.shape!, file: e.file! };
  });
}

function readTensorFile(dir: string, entry: TensorEntry): Uint8Array {
  const file = join(dir, entry.file);
  if (!existsSync(file)) throw new CaseFormatError(file, `missing (tensor '${entry.name}')`);
  const bytes = new Uint8Array(readFileSync(file));
  const expected = byteLength(entry);
  if (bytes.byteLength !== expected) {
    throw new CaseFormatError(
      file,
      `holds ${bytes.byteLength} bytes, but ${entry.dtype} [${entry.shape.join(', ')}] needs ${expected}`,
    );
  }
  return bytes;
}

export function loadCase(caseDir: string): ConformanceCase {
  const dir = resolve(caseDir);
  const caseFile = join(dir, 'case.json');
  const meta = readJson(caseFile);
  const inputs = tensorEntries(caseFile, meta.inputs, 'inputs');
  const outputs = tensorEntries(caseFile, meta.outputs, 'outputs');
  const weightEntries = (meta.weights ?? []) as { key?: unknown; file?: unknown }[];
  if (!Array.isArray(weightEntries)) throw new CaseFormatError(caseFile, "'weights' must be an array");
  const weights = new Map<string, Uint8Array>();
  for (const [i, w] of weightEntries.entries()) {
    if (typeof w.key !== 'string' || typeof w.file !== 'string') {
      throw new CaseFormatError(caseFile, `weights[${i}] needs key and file`);
    }
    const file = join(dir, w.file);
    if (!existsSync(file)) throw new CaseFormatError(file, `missing (weights '${w.key}')`);
    weights.set(w.key, new Uint8Array(readFileSync(file)));
  }
  const tolerance = meta.tolerance as { atol?: unknown; rtol?: unknown } | undefined;
  if (typeof tolerance?.atol !== 'number' || typeof tolerance.rtol !== 'number') {
    throw new CaseFormatError(caseFile, "'tolerance' needs numeric atol and rtol");
  }
  const milFile = join(dir, 'program.mil');
  if (!existsSync(milFile)) throw new CaseFormatError(milFile, 'missing');
  const spec = ({ name, dtype, shape }: TensorEntry): TensorSpec => ({ name, dtype, shape });
  return {
    id: String(meta.id ?? dir),
    title: String(meta.title ?? ''),
    dir,
    program: {
      mil: readFileSync(milFile, 'utf8'),
      weights,
      inputs: inputs.map(spec),
      outputs: outputs.map(spec),
    },
    inputs: inputs.map((entry) => readTensorFile(dir, entry)),
    expected: outputs.map((entry) => readTensorFile(dir, entry)),
    tolerance: { atol: tolerance.atol, rtol: tolerance.rtol },
  };
}

/**
 * Case directories named by `paths`: a path holding case.json is one case; any other directory
 * contributes its subdirectories that hold one, in name order.
 */
export function findCaseDirs(paths: readonly string[]): string[] {
  const dirs: string[] = [];
  for (const path of paths) {
    const full = resolve(path);
    if (!existsSync(full) || !statSync(full).isDirectory()) {
      throw new CaseFormatError(full, 'not a directory');
    }
    if (existsSync(join(full, 'case.json'))) {
      dirs.push(full);
      continue;
    }
    const cases = readdirSync(full)
      .sort()
      .map((name) => join(full, name))
      .filter((sub) => existsSync(join(sub, 'case.json')));
    if (cases.length === 0) throw new CaseFormatError(full, 'holds no case.json, directly or in a subdirectory');
    dirs.push(...cases);
  }
  return dirs;
}
