/**
 * Conformance cases on disk (the corpus format of conformance/README.md): loading a case directory
 * into a Program with its inputs, expected outputs and tolerance.
 *
 * A case directory is untrusted input: every file it names must be a regular file inside the
 * directory (no absolute paths, no `..`, no symlink leading out), and its size is checked before a
 * byte is read, so a FIFO, a device such as /dev/zero or an oversized file cannot hang the run or
 * exhaust memory.
 */
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  lstatSync,
  openSync,
  readdirSync,
  readSync,
  realpathSync,
  statSync,
} from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { byteLength, CHIP_FAMILIES, type ChipFamily, type Program, type TensorSpec } from 'ane-ir/mil';

/** Chips on which a case is expected to be refused by the compiler, and (optionally) by which rule. */
export interface ExpectedRefusal {
  chips: ChipFamily[];
  /** The rule id that refuses it; when absent, any compile refusal on those chips is expected. */
  ruleId?: string;
  /** Where the case says so: its `expectRefused` field, or the sentence in its `notes`. */
  source: 'expectRefused' | 'notes';
}

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
  /** Set when the case says it does not compile on some chips (e.g. fp32 I/O on M1/M2). */
  expectedRefusal?: ExpectedRefusal;
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

/** Largest case.json and program.mil read (a case is small; anything larger is not a case). */
const MAX_CASE_JSON_BYTES = 1 << 20;
const MAX_PROGRAM_BYTES = 64 << 20;
/** Largest weight blob file read (Node cannot hold one buffer past 2 GiB anyway). */
const MAX_WEIGHT_BYTES = 2 ** 31 - 1;

interface TensorEntry extends TensorSpec {
  file: string;
}

/**
 * `name` (as written in case.json, relative to `dir`) as an absolute path inside `dir`, after
 * following symlinks. Refuses absolute paths, `..` and symlinks that lead out of the case.
 */
function pathInsideCase(dir: string, name: string, caseFile: string, what: string): string {
  if (name === '' || isAbsolute(name) || name.includes('\0')) {
    throw new CaseFormatError(
      caseFile,
      `${what}: file '${name}' must be a path relative to the case directory`,
    );
  }
  const file = resolve(dir, name);
  if (!isInside(dir, file)) {
    throw new CaseFormatError(caseFile, `${what}: file '${name}' leaves the case directory ${dir}`);
  }
  let real: string;
  try {
    real = realpathSync(file);
  } catch {
    if (!existsSync(file)) {
      // A dangling symlink exists for lstat but not for existsSync.
      let dangling = false;
      try {
        dangling = lstatSync(file).isSymbolicLink();
      } catch {}
      throw new CaseFormatError(file, dangling ? `a symlink to nothing (${what})` : `missing (${what})`);
    }
    throw new CaseFormatError(file, `cannot be resolved (${what})`);
  }
  const realDir = realpathSync(dir);
  if (!isInside(realDir, real)) {
    throw new CaseFormatError(
      file,
      `leads out of the case directory (to ${real}); ${what} must be a file inside it`,
    );
  }
  return real;
}

function isInside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

function describeType(stats: {
  isDirectory(): boolean;
  isFIFO(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
  isSocket(): boolean;
}): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO (named pipe)';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'a device file';
  if (stats.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * Reads a regular file whose size is checked first (`check` sees the size and throws when it is
 * wrong). Opened non-blocking so that a FIFO swapped in after the check cannot block the open;
 * the type and size are taken from the open descriptor (fstat).
 */
function readRegularFile(file: string, what: string, check: (size: number) => void): Uint8Array {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | (constants.O_NOFOLLOW ?? 0));
  } catch (error) {
    if (existsSync(file) && statSync(file).isDirectory()) {
      throw new CaseFormatError(file, `is a directory; ${what} must be a regular file`);
    }
    throw new CaseFormatError(file, `cannot be opened (${what}): ${(error as Error).message}`);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) {
      throw new CaseFormatError(file, `is ${describeType(stats)}; ${what} must be a regular file`);
    }
    check(stats.size);
    const bytes = new Uint8Array(stats.size);
    let offset = 0;
    while (offset < bytes.byteLength) {
      const n = readSync(fd, bytes, offset, bytes.byteLength - offset, offset);
      if (n === 0) break;
      offset += n;
    }
    if (offset !== bytes.byteLength) {
      throw new CaseFormatError(file, `shrank while being read (${offset} of ${bytes.byteLength} bytes)`);
    }
    return bytes;
  } finally {
    closeSync(fd);
  }
}

function maxSize(file: string, what: string, limit: number): (size: number) => void {
  return (size) => {
    if (size > limit) {
      throw new CaseFormatError(file, `${what} is ${size} bytes, more than the ${limit} a case may hold`);
    }
  };
}

function readCaseJson(caseFile: string): Record<string, unknown> {
  if (!existsSync(caseFile)) throw new CaseFormatError(caseFile, 'missing');
  const bytes = readRegularFile(caseFile, 'case.json', maxSize(caseFile, 'case.json', MAX_CASE_JSON_BYTES));
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new CaseFormatError(caseFile, `not readable as JSON (${(error as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const found = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
    throw new CaseFormatError(
      caseFile,
      `must hold a JSON object ({ id, inputs, outputs, tolerance, … }), found ${found}`,
    );
  }
  return value as Record<string, unknown>;
}

function tensorEntries(caseFile: string, value: unknown, field: string): TensorEntry[] {
  if (!Array.isArray(value)) throw new CaseFormatError(caseFile, `'${field}' must be an array`);
  return value.map((entry: unknown, i) => {
    const e = (entry ?? {}) as Partial<TensorEntry>;
    const ok =
      typeof entry === 'object' &&
      typeof e.name === 'string' &&
      (e.dtype === 'fp16' || e.dtype === 'fp32') &&
      Array.isArray(e.shape) &&
      e.shape.every((d) => Number.isSafeInteger(d) && d >= 0) &&
      typeof e.file === 'string';
    if (!ok) {
      throw new CaseFormatError(
        caseFile,
        `${field}[${i}] needs name, dtype ('fp16' | 'fp32'), shape and file`,
      );
    }
    const spec = { name: e.name!, dtype: e.dtype!, shape: e.shape! };
    if (!Number.isSafeInteger(byteLength(spec))) {
      throw new CaseFormatError(
        caseFile,
        `${field}[${i}] ('${spec.name}'): shape [${spec.shape.join(', ')}] is too large`,
      );
    }
    return { ...spec, file: e.file! };
  });
}

function readTensorFile(dir: string, caseFile: string, entry: TensorEntry): Uint8Array {
  const what = `tensor '${entry.name}'`;
  const file = pathInsideCase(dir, entry.file, caseFile, what);
  const expected = byteLength(entry);
  return readRegularFile(file, what, (size) => {
    if (size !== expected) {
      throw new CaseFormatError(
        file,
        `holds ${size} bytes, but ${entry.dtype} [${entry.shape.join(', ')}] needs ${expected}`,
      );
    }
  });
}

function readTolerance(caseFile: string, value: unknown): { atol: number; rtol: number } {
  const tolerance = (value ?? {}) as { atol?: unknown; rtol?: unknown };
  for (const key of ['atol', 'rtol'] as const) {
    const v = typeof value === 'object' ? tolerance[key] : undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new CaseFormatError(
        caseFile,
        `'tolerance.${key}' must be a finite number ≥ 0, found ${JSON.stringify(v) ?? 'nothing'} (a negative or infinite tolerance would pass any output)`,
      );
    }
  }
  return { atol: tolerance.atol as number, rtol: tolerance.rtol as number };
}

const CHIP_LIST = /\b(M\d(?:\s*(?:\/|,|and|or)\s*M\d)*)\b/;

/**
 * The chips a case says it does not compile on: its `expectRefused` field
 * (`{ "chips": ["M1", "M2"], "rule": "dtype-fp32-io-in-memory" }`), or, in cases written before
 * that field, the sentence of its `notes` that says it is "not to compile on M1/M2".
 */
function readExpectedRefusal(caseFile: string, meta: Record<string, unknown>): ExpectedRefusal | undefined {
  const field = meta.expectRefused;
  if (field !== undefined) {
    const f = (field ?? {}) as { chips?: unknown; rule?: unknown };
    const chips = f.chips;
    const ok =
      typeof field === 'object' &&
      field !== null &&
      Array.isArray(chips) &&
      chips.length > 0 &&
      chips.every((c) => CHIP_FAMILIES.includes(c as ChipFamily)) &&
      (f.rule === undefined || typeof f.rule === 'string');
    if (!ok) {
      throw new CaseFormatError(
        caseFile,
        `'expectRefused' must be { "chips": [${CHIP_FAMILIES.map((c) => `"${c}"`).join(', ')} …], "rule"?: "<rule id>" }`,
      );
    }
    return {
      chips: chips as ChipFamily[],
      ...(typeof f.rule === 'string' ? { ruleId: f.rule } : {}),
      source: 'expectRefused',
    };
  }
  if (typeof meta.notes !== 'string') return undefined;
  const sentence = /not (?:to )?compile on ([^.;]*)/i.exec(meta.notes);
  const list = sentence ? CHIP_LIST.exec(sentence[1]!) : null;
  if (!list) return undefined;
  const chips = [...list[1]!.matchAll(/M\d/g)]
    .map((m) => m[0])
    .filter((c) => CHIP_FAMILIES.includes(c as ChipFamily));
  return chips.length > 0 ? { chips: chips as ChipFamily[], source: 'notes' } : undefined;
}

export function loadCase(caseDir: string): ConformanceCase {
  const dir = resolve(caseDir);
  const caseFile = join(dir, 'case.json');
  const meta = readCaseJson(caseFile);
  const inputs = tensorEntries(caseFile, meta.inputs, 'inputs');
  const outputs = tensorEntries(caseFile, meta.outputs, 'outputs');
  if (outputs.length === 0) {
    throw new CaseFormatError(
      caseFile,
      "'outputs' is empty: a case needs at least one expected output to compare",
    );
  }
  const weightEntries = meta.weights ?? [];
  if (!Array.isArray(weightEntries)) throw new CaseFormatError(caseFile, "'weights' must be an array");
  const weights = new Map<string, Uint8Array>();
  for (const [i, entry] of weightEntries.entries()) {
    const w = (entry ?? {}) as { key?: unknown; file?: unknown };
    if (typeof w.key !== 'string' || typeof w.file !== 'string') {
      throw new CaseFormatError(caseFile, `weights[${i}] needs key and file`);
    }
    const what = `weights '${w.key}'`;
    const file = pathInsideCase(dir, w.file, caseFile, what);
    weights.set(w.key, readRegularFile(file, what, maxSize(file, what, MAX_WEIGHT_BYTES)));
  }
  const tolerance = readTolerance(caseFile, meta.tolerance);
  for (const key of ['id', 'title'] as const) {
    if (meta[key] !== undefined && typeof meta[key] !== 'string') {
      throw new CaseFormatError(caseFile, `'${key}' must be a string`);
    }
  }
  const expectedRefusal = readExpectedRefusal(caseFile, meta);
  const milFile = join(dir, 'program.mil');
  const milPath = pathInsideCase(dir, 'program.mil', caseFile, 'program.mil');
  const milBytes = readRegularFile(
    milPath,
    'program.mil',
    maxSize(milFile, 'program.mil', MAX_PROGRAM_BYTES),
  );
  const spec = ({ name, dtype, shape }: TensorEntry): TensorSpec => ({ name, dtype, shape });
  return {
    id: (meta.id as string | undefined) ?? dir,
    title: (meta.title as string | undefined) ?? '',
    dir,
    program: {
      mil: new TextDecoder().decode(milBytes),
      weights,
      inputs: inputs.map(spec),
      outputs: outputs.map(spec),
    },
    inputs: inputs.map((entry) => readTensorFile(dir, caseFile, entry)),
    expected: outputs.map((entry) => readTensorFile(dir, caseFile, entry)),
    tolerance,
    ...(expectedRefusal ? { expectedRefusal } : {}),
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
    if (cases.length === 0)
      throw new CaseFormatError(full, 'holds no case.json, directly or in a subdirectory');
    dirs.push(...cases);
  }
  return dirs;
}
