/**
 * safetensors, read and written by hand (the format is small; there is no maintained npm package):
 *
 *   [0, 8)        N, the header length: little-endian uint64
 *   [8, 8 + N)    the header: UTF-8 JSON, `{ name: { dtype, shape, data_offsets: [begin, end] },
 *                 "__metadata__"?: { key: string } }`, padded with spaces
 *   [8 + N, end)  the data: each tensor's little-endian bytes at [begin, end) of this region
 *
 * The reader checks everything before trusting it (header length beyond the file, invalid JSON,
 * duplicate names, unknown dtypes, dimensions that are not whole numbers, offsets out of range,
 * overlapping, leaving gaps or not matching dtype × shape) and throws a CheckpointError naming the
 * file and the tensor or field. F32, F16 and BF16 decode to Float32Array (F16 through ane-bridge's
 * fp16ToFp32, native when the addon is loaded; BF16 is the upper half of an fp32). The writer puts
 * tensors in name order after a header padded with spaces to a multiple of 8 bytes (so every tensor
 * starts 8-byte aligned), and writes files atomically (a temporary file in the same directory,
 * renamed over the target: a failure leaves no partial file).
 */
import { fp16ToFp32, fp32ToFp16 } from 'ane-bridge';
import { CheckpointError } from '../errors';
import { readRegularFile, writeFileAtomically } from './files';

export type SafetensorsDType = 'F32' | 'F16' | 'BF16';

export interface SafetensorsTensor {
  dtype: SafetensorsDType;
  shape: number[];
  /** The tensor's raw little-endian bytes (a view into the file's bytes). */
  data: Uint8Array;
}

export interface SafetensorsContents {
  tensors: Map<string, SafetensorsTensor>;
  metadata: Record<string, string>;
}

/** A tensor to write: fp32 values stored as `dtype`. */
export interface SafetensorsInput {
  dtype: SafetensorsDType;
  shape: number[];
  values: Float32Array;
}

const BYTES_PER_ELEMENT: Record<SafetensorsDType, number> = { F32: 4, F16: 2, BF16: 2 };
/** dtypes of the format this reader does not convert (for a precise message). */
const OTHER_DTYPES = [
  'F64',
  'I64',
  'I32',
  'I16',
  'I8',
  'U64',
  'U32',
  'U16',
  'U8',
  'BOOL',
  'F8_E4M3',
  'F8_E5M2',
];
/** The safetensors library's own limit on the header (100 MB): beyond it a file is not one. */
const MAX_HEADER_BYTES = 100_000_000;

function fail(
  file: string | undefined,
  what: string,
  where: { tensor?: string; field?: string } = {},
): never {
  const prefix = file !== undefined ? `safetensors file ${file}` : 'safetensors data';
  throw new CheckpointError(`${prefix}: ${what}`, {
    ...(file !== undefined ? { file } : {}),
    ...where,
  });
}

/** Parses a whole safetensors file's bytes. The tensors' data are views into `bytes`. */
export function readSafetensors(bytes: Uint8Array, options: { file?: string } = {}): SafetensorsContents {
  const file = options.file;
  if (!(bytes instanceof Uint8Array)) {
    fail(
      file,
      `readSafetensors takes the file's bytes as a Uint8Array (a Buffer is one), got ${bytes === null ? 'null' : typeof bytes === 'object' ? (bytes as object).constructor?.name : typeof bytes}: wrap an ArrayBuffer in new Uint8Array(buffer), or use readSafetensorsFile(path) for a path`,
    );
  }
  const n = safetensorsHeaderLength(bytes.subarray(0, 8), bytes.length, {
    ...(file !== undefined ? { file } : {}),
  });
  const dataStart = 8 + n;
  const { entries, metadata } = parseSafetensorsHeader(
    bytes.subarray(8, dataStart),
    bytes.length - dataStart,
    {
      ...(file !== undefined ? { file } : {}),
    },
  );
  const tensors = new Map<string, SafetensorsTensor>();
  for (const entry of entries) {
    tensors.set(entry.name, {
      dtype: entry.dtype,
      shape: entry.shape,
      data: bytes.subarray(dataStart + entry.begin, dataStart + entry.end),
    });
  }
  return { tensors, metadata };
}

/**
 * The header length N of a safetensors file from its first 8 bytes (`prefix`), checked against the
 * file's length: a CheckpointError when the file is too short or N runs past its end.
 */
export function safetensorsHeaderLength(
  prefix: Uint8Array,
  fileLength: number,
  options: { file?: string } = {},
): number {
  const file = options.file;
  if (fileLength < 8 || prefix.length < 8) {
    fail(
      file,
      `is ${fileLength} bytes long, shorter than the 8-byte header length: the file is truncated or not safetensors`,
      {
        field: 'header length',
      },
    );
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(fileLength - 8)) {
    fail(
      file,
      `the header length says ${headerLength} bytes but only ${fileLength - 8} follow it: the file is truncated or not safetensors`,
      { field: 'header length' },
    );
  }
  const n = Number(headerLength);
  if (n > MAX_HEADER_BYTES) {
    fail(file, `the header is ${n} bytes, more than the format's limit of ${MAX_HEADER_BYTES}`, {
      field: 'header length',
    });
  }
  return n;
}

/**
 * Parses and checks a safetensors header (the N bytes of JSON after the length) for a data region
 * of `dataLength` bytes: every entry's dtype, shape and offsets, which must tile the data exactly.
 */
export function parseSafetensorsHeader(
  headerBytes: Uint8Array,
  dataLength: number,
  options: { file?: string } = {},
): {
  entries: { name: string; dtype: SafetensorsDType; shape: number[]; begin: number; end: number }[];
  metadata: Record<string, string>;
} {
  const file = options.file;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    fail(file, 'the header is not valid UTF-8: the file is corrupt or not safetensors', { field: 'header' });
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (error) {
    fail(
      file,
      `the header is not valid JSON (${(error as Error).message}): the file is corrupt or not safetensors`,
      {
        field: 'header',
      },
    );
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    fail(
      file,
      `the header must be a JSON object of tensors, found ${Array.isArray(header) ? 'an array' : String(header)}`,
      {
        field: 'header',
      },
    );
  }
  const duplicate = firstDuplicateTopLevelKey(text);
  if (duplicate !== undefined) {
    fail(file, `tensor '${duplicate}' appears twice in the header: every name must be unique`, {
      tensor: duplicate,
    });
  }

  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: SafetensorsDType; shape: number[]; begin: number; end: number }[] =
    [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
        fail(file, `__metadata__ must be an object of strings, found ${JSON.stringify(entry)}`, {
          field: '__metadata__',
        });
      }
      for (const [key, value] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof value !== 'string') {
          fail(file, `__metadata__.${key} must be a string, found ${JSON.stringify(value)}`, {
            field: `__metadata__.${key}`,
          });
        }
        metadata[key] = value;
      }
      continue;
    }
    entries.push({ name, ...checkEntry(file, name, entry, dataLength) });
  }

  // Tensors tile the data region exactly: sorted by offset, each begins where the previous ended.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let position = 0;
  let previous: string | undefined;
  for (const entry of sorted) {
    if (entry.begin < position) {
      fail(
        file,
        `tensor '${entry.name}' (data_offsets [${entry.begin}, ${entry.end}]) overlaps '${previous}' (which ends at ${position})`,
        { tensor: entry.name, field: 'data_offsets' },
      );
    }
    if (entry.begin > position) {
      fail(
        file,
        `tensor '${entry.name}' begins at ${entry.begin} but the previous tensor${previous !== undefined ? ` '${previous}'` : ''} ends at ${position}: a gap of ${entry.begin - position} unaccounted bytes`,
        { tensor: entry.name, field: 'data_offsets' },
      );
    }
    position = entry.end;
    previous = entry.name;
  }
  if (position !== dataLength) {
    fail(
      file,
      `the tensors cover ${position} bytes of data but ${dataLength} follow the header: ${dataLength - position} trailing bytes (a corrupt or concatenated file)`,
      { field: 'data_offsets' },
    );
  }

  return { entries, metadata };
}

function checkEntry(
  file: string | undefined,
  name: string,
  entry: unknown,
  dataLength: number,
): { dtype: SafetensorsDType; shape: number[]; begin: number; end: number } {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
    fail(
      file,
      `tensor '${name}' must be an object { dtype, shape, data_offsets }, found ${JSON.stringify(entry)}`,
      {
        tensor: name,
      },
    );
  }
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (typeof dtype !== 'string' || !(dtype in BYTES_PER_ELEMENT)) {
    const known = typeof dtype === 'string' && OTHER_DTYPES.includes(dtype);
    fail(
      file,
      known
        ? `tensor '${name}' is ${dtype}; only F32, F16 and BF16 are read: convert the weights (e.g. tensor.float() in PyTorch) and save again`
        : `tensor '${name}' has unknown dtype ${JSON.stringify(dtype)}: expected F32, F16 or BF16`,
      { tensor: name, field: 'dtype' },
    );
  }
  if (!Array.isArray(shape)) {
    fail(file, `tensor '${name}': shape must be an array of whole numbers, found ${JSON.stringify(shape)}`, {
      tensor: name,
      field: 'shape',
    });
  }
  let elements = 1;
  for (const dim of shape) {
    if (!Number.isSafeInteger(dim) || (dim as number) < 0) {
      fail(
        file,
        `tensor '${name}': shape [${shape.join(', ')}] has ${JSON.stringify(dim)}, not a whole number ≥ 0`,
        {
          tensor: name,
          field: 'shape',
        },
      );
    }
    elements *= dim as number;
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)
  ) {
    fail(
      file,
      `tensor '${name}': data_offsets must be [begin, end], two whole numbers ≥ 0, found ${JSON.stringify(offsets)}`,
      { tensor: name, field: 'data_offsets' },
    );
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) {
    fail(file, `tensor '${name}': data_offsets [${begin}, ${end}] end before they begin`, {
      tensor: name,
      field: 'data_offsets',
    });
  }
  if (end > dataLength) {
    fail(
      file,
      `tensor '${name}': data_offsets [${begin}, ${end}] run past the ${dataLength} bytes of data: the file is truncated`,
      { tensor: name, field: 'data_offsets' },
    );
  }
  const expected = elements * BYTES_PER_ELEMENT[dtype as SafetensorsDType];
  if (end - begin !== expected) {
    fail(
      file,
      `tensor '${name}': data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype} [${shape.join(', ')}] needs ${expected}`,
      { tensor: name, field: 'data_offsets' },
    );
  }
  return { dtype: dtype as SafetensorsDType, shape: shape as number[], begin, end };
}

/**
 * The first key of the header's top-level object that occurs twice (JSON.parse keeps the last one
 * silently). Only called on text JSON.parse accepted, so the scan can trust the syntax.
 */
function firstDuplicateTopLevelKey(text: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      if (depth === 1 && c === '{') expectKey = true;
    } else if (c === '}' || c === ']') {
      depth--;
    } else if (c === ',' && depth === 1) {
      expectKey = true;
    }
  }
  return undefined;
}

/** A tensor's values as fp32 (F16 exactly through the fp16 codec, BF16 as the upper half of an fp32). */
export function tensorToFloat32(tensor: SafetensorsTensor): Float32Array {
  const { dtype, data, shape } = tensor;
  // A tensor from readSafetensors is consistent; one built by hand may not be (a silent
  // truncation to whole elements otherwise).
  if (!Object.hasOwn(BYTES_PER_ELEMENT, dtype)) {
    fail(undefined, `tensorToFloat32: unknown dtype ${JSON.stringify(dtype)}: expected F32, F16 or BF16`, {
      field: 'dtype',
    });
  }
  const count = shape.reduce((a, b) => a * b, 1);
  if (data.byteLength !== count * BYTES_PER_ELEMENT[dtype]) {
    fail(
      undefined,
      `tensorToFloat32: the tensor holds ${data.byteLength} bytes but ${dtype} [${shape.join(', ')}] needs ${count * BYTES_PER_ELEMENT[dtype]}`,
      { field: 'data' },
    );
  }
  // Typed-array views need aligned offsets; a misaligned tensor (allowed by the format) is copied
  // (with the Uint8Array constructor: a Buffer's slice() would be a view at the same offset).
  const aligned = data.byteOffset % 4 === 0 ? data : new Uint8Array(data);
  if (dtype === 'F32') return new Float32Array(aligned.buffer, aligned.byteOffset, count).slice();
  const halves = new Uint16Array(aligned.buffer, aligned.byteOffset, count);
  const out = new Float32Array(count);
  if (dtype === 'F16') {
    fp16ToFp32(halves, out);
  } else {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) bits[i] = halves[i]! << 16;
  }
  return out;
}

/** fp32 → bf16 bits, round to nearest even (NaN stays a quiet NaN). */
function bf16Bits(values: Float32Array, out: Uint16Array): void {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < values.length; i++) {
    const f = bits[i]!;
    if ((f & 0x7fffffff) > 0x7f800000) out[i] = (f >>> 16) | 0x40;
    else out[i] = (f + 0x7fff + ((f >>> 16) & 1)) >>> 16;
  }
}

/** A finite value that became ±infinity in F16 / BF16 is refused: the file would not hold the tensor given. */
function checkNoOverflow(
  name: string,
  dtype: SafetensorsDType,
  values: Float32Array,
  halves: Uint16Array,
): void {
  const infinity = dtype === 'F16' ? 0x7c00 : 0x7f80; // the bits of +inf without the sign
  for (let i = 0; i < halves.length; i++) {
    if ((halves[i]! & 0x7fff) === infinity && Number.isFinite(values[i]!)) {
      fail(
        undefined,
        `tensor '${name}': ${values[i]} at index ${i} is beyond ${dtype}'s range (largest ${dtype === 'F16' ? '65504' : '3.3895e38'}) and would be stored as infinity: write it as ${dtype === 'F16' ? 'F32 or BF16' : 'F32'}, or scale the values`,
        { tensor: name },
      );
    }
  }
}

/** A safetensors file's bytes: tensors in name order, the header padded with spaces to 8 bytes. */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, SafetensorsInput>,
  metadata?: Record<string, string>,
): Uint8Array {
  const names = [...tensors.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string')
        fail(undefined, `metadata '${key}' must be a string, got ${typeof value}`, {
          field: `__metadata__.${key}`,
        });
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const name of names) {
    if (name === '__metadata__') fail(undefined, "a tensor cannot be named '__metadata__'", { tensor: name });
    const { dtype, shape, values } = tensors.get(name)!;
    if (!(dtype in BYTES_PER_ELEMENT)) {
      fail(
        undefined,
        `tensor '${name}': dtype ${JSON.stringify(dtype)} cannot be written; use F32, F16 or BF16`,
        { tensor: name },
      );
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(undefined, `tensor '${name}': shape must be whole numbers ≥ 0, got ${JSON.stringify(shape)}`, {
        tensor: name,
      });
    }
    const elements = shape.reduce((a, b) => a * b, 1);
    if (!(values instanceof Float32Array) || values.length !== elements) {
      fail(
        undefined,
        `tensor '${name}': shape [${shape.join(', ')}] needs a Float32Array of ${elements} values, got ${values instanceof Float32Array ? `${values.length} values` : typeof values}`,
        { tensor: name },
      );
    }
    const size = elements * BYTES_PER_ELEMENT[dtype];
    header[name] = { dtype, shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let position = 8 + headerLength; // a multiple of 8: every tensor starts aligned to its element
  for (const name of names) {
    const { dtype, values } = tensors.get(name)!;
    if (dtype === 'F32') {
      out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), position);
      position += values.byteLength;
    } else {
      const halves = new Uint16Array(out.buffer, position, values.length);
      if (dtype === 'F16') fp32ToFp16(values, halves);
      else bf16Bits(values, halves);
      checkNoOverflow(name, dtype, values, halves);
      position += values.length * 2;
    }
  }
  return out;
}

/** Reads and checks a safetensors file (see `readSafetensors`); refuses FIFOs and directories. */
export async function readSafetensorsFile(path: string): Promise<SafetensorsContents> {
  const bytes = await readRegularFile(path, (why) =>
    fail(path, `${why}: pass the path of a .safetensors file`, { field: 'file' }),
  );
  return readSafetensors(bytes, { file: path });
}

/**
 * Writes tensors (see `encodeSafetensors`) atomically: to a temporary file in the same directory,
 * flushed, then renamed over `path`. On any failure the temporary file is removed and `path` is
 * left as it was.
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: ReadonlyMap<string, SafetensorsInput>,
  metadata?: Record<string, string>,
): Promise<void> {
  const bytes = encodeSafetensors(tensors, metadata);
  await writeFileAtomically(path, bytes, (why) =>
    fail(
      path,
      `cannot be written (${why}): check the directory exists and is writable; nothing was written`,
      {
        field: 'file',
      },
    ),
  );
}
