/**
 * MILBlob v2 weight files: the bytes a BLOBFILE(path=..., offset=uint64(M)) constant points into.
 *
 *   0       u32 tensor count
 *   4       u32 format version, 2
 *   8..63   zero
 *   per tensor, at a 64-byte-aligned record offset M (the BLOBFILE `offset`):
 *   M       u32 sentinel 0xDEADBEEF (bytes EF BE AD DE)
 *   M+4     u32 dtype code (BLOB_DTYPE_CODES)
 *   M+8     u64 payload size in bytes
 *   M+16    u64 absolute payload offset, always M+64
 *   M+24    u64 unused trailing bits of the last byte (sub-byte dtypes only, else 0)
 *   M+32    32 zero bytes
 *   M+64    payload, row-major over the constant's MIL shape, little-endian
 *
 * The next record starts at the first multiple of 64 at or after the end of the previous payload;
 * files end with the last payload (no trailing padding). Layout: shared/conformance/README.md
 * "Weight blobs"; field meanings: reference/mil-hardware-peers.md §1.2.
 *
 * The writer is strict. Readers take any Uint8Array view (a Node Buffer at any byte offset) and
 * copy payloads out. `readBlobRecordAs` also reads records other tools write (a payload-offset
 * field other than M+64, e.g. maderix/ANE's ane_int8_bench.m writes 0) as the program declares
 * them, reporting each odd field; what the ANE reads from such records is unverified.
 */
import { MilError } from './errors';
export const BLOB_FORMAT_VERSION = 2;
export const BLOB_SENTINEL = 0xdeadbeef;
export const BLOB_HEADER_BYTES = 64;
export const BLOB_RECORD_BYTES = 64;
export const BLOB_ALIGNMENT = 64;

/**
 * The MILBlob dtype codes (coremltools' append-only BlobDataType enum, as listed in
 * reference/mil-hardware-peers.md §1.2). Codes 1 (fp16) and 4 (int8) are the ones the ANE corpus uses;
 * reference/ane-quirks.md `blob.offset` also names 9 (uint1) and 11 (uint4).
 */
export const BLOB_DTYPE_CODES = {
  fp16: 1,
  fp32: 2,
  uint8: 3,
  int8: 4,
  bf16: 5,
  int16: 6,
  uint16: 7,
  int4: 8,
  uint1: 9,
  uint2: 10,
  uint4: 11,
  uint3: 12,
  uint6: 13,
  int32: 14,
  uint32: 15,
  fp8e4m3fn: 16,
  fp8e5m2: 17,
} as const;

export type BlobDtype = keyof typeof BLOB_DTYPE_CODES;

const BITS_PER_ELEMENT: Readonly<Record<BlobDtype, number>> = {
  fp16: 16,
  fp32: 32,
  uint8: 8,
  int8: 8,
  bf16: 16,
  int16: 16,
  uint16: 16,
  int4: 4,
  uint1: 1,
  uint2: 2,
  uint4: 4,
  uint3: 3,
  uint6: 6,
  int32: 32,
  uint32: 32,
  fp8e4m3fn: 8,
  fp8e5m2: 8,
};

const DTYPE_BY_CODE: ReadonlyMap<number, BlobDtype> = new Map(
  (Object.entries(BLOB_DTYPE_CODES) as [BlobDtype, number][]).map(([dtype, code]) => [code, dtype]),
);

export function isBlobDtype(name: string): name is BlobDtype {
  return Object.hasOwn(BLOB_DTYPE_CODES, name);
}

export function blobDtypeFromCode(code: number): BlobDtype | undefined {
  return DTYPE_BY_CODE.get(code);
}

export function bitsPerBlobElement(dtype: BlobDtype): number {
  return BITS_PER_ELEMENT[dtype];
}

/** Payload bytes of `elementCount` elements of `dtype` (sub-byte dtypes round up to whole bytes). */
export function blobPayloadBytes(dtype: BlobDtype, elementCount: number): number {
  return Math.ceil((elementCount * BITS_PER_ELEMENT[dtype]) / 8);
}

/** The typed array a payload of each dtype is read into; sub-byte and fp8 payloads stay packed bytes. */
export interface BlobElementArrays {
  fp16: Uint16Array;
  fp32: Float32Array;
  uint8: Uint8Array;
  int8: Int8Array;
  bf16: Uint16Array;
  int16: Int16Array;
  uint16: Uint16Array;
  int4: Uint8Array;
  uint1: Uint8Array;
  uint2: Uint8Array;
  uint4: Uint8Array;
  uint3: Uint8Array;
  uint6: Uint8Array;
  int32: Int32Array;
  uint32: Uint32Array;
  fp8e4m3fn: Uint8Array;
  fp8e5m2: Uint8Array;
}

/** Raw payload bytes, or the dtype's own typed array (fp16 as bit patterns in a Uint16Array). */
export type BlobTensorData =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array;

export interface BlobTensor {
  readonly dtype: BlobDtype;
  readonly data: BlobTensorData;
  /** Element count, needed only for sub-byte dtypes whose last byte is partly unused. */
  readonly elementCount?: number;
}

export interface WrittenBlobFile {
  readonly bytes: Uint8Array;
  /** Record offset of each tensor, in input order: the `offset=uint64(M)` its BLOBFILE names. */
  readonly offsets: readonly number[];
}

/** One decoded 64-byte record. */
export interface BlobRecord {
  /** Record offset M (the BLOBFILE `offset`). */
  readonly offset: number;
  readonly dtype: BlobDtype;
  readonly byteSize: number;
  readonly payloadOffset: number;
  /** Unused trailing bits of the last payload byte (sub-byte dtypes). */
  readonly paddingBits: number;
}

export interface BlobFileContents {
  readonly version: number;
  readonly records: readonly BlobRecord[];
}

export interface ExpectedBlobTensor<D extends BlobDtype> {
  readonly dtype: D;
  readonly elementCount: number;
}

/** A weight blob that does not have the MILBlob v2 layout, or does not hold what the program declares. */
export class MilBlobError extends MilError {
  override name = 'MilBlobError';
  constructor(
    /** Byte offset in the blob file where the problem is. */
    readonly offset: number,
    readonly expected: string,
    readonly found: string,
    context = 'weight blob',
  ) {
    super(`${context}: at byte ${offset} expected ${expected}, found ${found}`);
  }
}

/** Next 64-byte boundary at or after `offset`. */
export function alignToBlobRecord(offset: number): number {
  return Math.ceil(offset / BLOB_ALIGNMENT) * BLOB_ALIGNMENT;
}

function asBytes(data: BlobTensorData): Uint8Array {
  return data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

type ElementArrayConstructor =
  | Int8ArrayConstructor
  | Uint16ArrayConstructor
  | Int16ArrayConstructor
  | Uint32ArrayConstructor
  | Int32ArrayConstructor
  | Float32ArrayConstructor;

/** Dtypes with a typed array of their own; the rest (uint8, sub-byte, fp8) are read as bytes. */
const TYPED_ARRAY_FOR_DTYPE: Readonly<Partial<Record<BlobDtype, ElementArrayConstructor>>> = {
  fp16: Uint16Array,
  fp32: Float32Array,
  int8: Int8Array,
  bf16: Uint16Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
};

function checkTensorInput(tensor: BlobTensor, index: number): number {
  const { dtype, data, elementCount } = tensor;
  if (!isBlobDtype(dtype)) {
    throw new TypeError(`writeBlobFile: tensor ${index} has unknown dtype '${String(dtype)}'`);
  }
  const natural = TYPED_ARRAY_FOR_DTYPE[dtype];
  if (!(data instanceof Uint8Array) && !(natural !== undefined && data instanceof natural)) {
    const wanted = natural === undefined ? 'Uint8Array' : `Uint8Array or ${natural.name}`;
    throw new TypeError(
      `writeBlobFile: tensor ${index} (${dtype}) data must be a ${wanted}, got ${data.constructor.name}`,
    );
  }
  const bits = BITS_PER_ELEMENT[dtype];
  if (elementCount === undefined) return 0;
  if (
    !Number.isSafeInteger(elementCount) ||
    elementCount < 0 ||
    blobPayloadBytes(dtype, elementCount) !== data.byteLength
  ) {
    throw new RangeError(
      `writeBlobFile: tensor ${index} (${dtype}) declares ${elementCount} elements, which need ${blobPayloadBytes(dtype, Math.max(0, elementCount))} bytes; data holds ${data.byteLength}`,
    );
  }
  return data.byteLength * 8 - elementCount * bits;
}

/**
 * Writes tensors into one MILBlob v2 file, each record at the next 64-byte boundary. Typed arrays are
 * written little-endian (the byte order of every platform Node runs on here).
 */
export function writeBlobFile(tensors: readonly BlobTensor[]): WrittenBlobFile {
  const paddingBits = tensors.map(checkTensorInput);
  const offsets: number[] = [];
  let end = BLOB_HEADER_BYTES;
  for (const tensor of tensors) {
    const recordOffset = alignToBlobRecord(end);
    offsets.push(recordOffset);
    end = recordOffset + BLOB_RECORD_BYTES + tensor.data.byteLength;
  }
  const bytes = new Uint8Array(end);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, tensors.length, true);
  view.setUint32(4, BLOB_FORMAT_VERSION, true);
  tensors.forEach((tensor, i) => {
    const recordOffset = offsets[i]!;
    const payloadOffset = recordOffset + BLOB_RECORD_BYTES;
    view.setUint32(recordOffset, BLOB_SENTINEL, true);
    view.setUint32(recordOffset + 4, BLOB_DTYPE_CODES[tensor.dtype], true);
    view.setBigUint64(recordOffset + 8, BigInt(tensor.data.byteLength), true);
    view.setBigUint64(recordOffset + 16, BigInt(payloadOffset), true);
    view.setBigUint64(recordOffset + 24, BigInt(paddingBits[i]!), true);
    bytes.set(asBytes(tensor.data), payloadOffset);
  });
  return { bytes, offsets };
}

function dataViewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function readHeader(bytes: Uint8Array): { count: number; version: number } {
  if (bytes.byteLength < BLOB_HEADER_BYTES) {
    throw new MilBlobError(
      0,
      `a ${BLOB_HEADER_BYTES}-byte MILBlob header`,
      `a file of ${bytes.byteLength} bytes`,
    );
  }
  const view = dataViewOf(bytes);
  const version = view.getUint32(4, true);
  if (version !== BLOB_FORMAT_VERSION) {
    throw new MilBlobError(4, `format version ${BLOB_FORMAT_VERSION}`, `version ${version}`);
  }
  return { count: view.getUint32(0, true), version };
}

/** A u64 field as a number, or undefined when it exceeds 2^53 (no real file is that large). */
function readU64(view: DataView, at: number): number | undefined {
  const value = view.getBigUint64(at, true);
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : undefined;
}

function hex(value: number): string {
  return `0x${value.toString(16).toUpperCase().padStart(8, '0')}`;
}

/** The raw fields of the record at `offset`, after the checks every reading makes (header, bounds, sentinel). */
interface RawRecord {
  readonly view: DataView;
  readonly code: number;
  /** The payload-offset field, or undefined past 2^53. */
  readonly writtenPayloadOffset: number | undefined;
}

function readRawRecord(bytes: Uint8Array, offset: number): RawRecord {
  readHeader(bytes);
  if (!Number.isSafeInteger(offset) || offset < BLOB_HEADER_BYTES || offset % BLOB_ALIGNMENT !== 0) {
    throw new MilBlobError(
      Number.isFinite(offset) ? offset : 0,
      `a record offset that is a multiple of ${BLOB_ALIGNMENT} and at least ${BLOB_HEADER_BYTES}`,
      `offset ${offset}`,
    );
  }
  if (offset + BLOB_RECORD_BYTES > bytes.byteLength) {
    throw new MilBlobError(
      offset,
      `a ${BLOB_RECORD_BYTES}-byte record`,
      `end of file after ${Math.max(0, bytes.byteLength - offset)} bytes (file is ${bytes.byteLength} bytes)`,
    );
  }
  const view = dataViewOf(bytes);
  const sentinel = view.getUint32(offset, true);
  if (sentinel !== BLOB_SENTINEL) {
    throw new MilBlobError(offset, `record sentinel ${hex(BLOB_SENTINEL)}`, hex(sentinel));
  }
  return { view, code: view.getUint32(offset + 4, true), writtenPayloadOffset: readU64(view, offset + 16) };
}

/**
 * Reads and validates the record at `offset` (a BLOBFILE `offset`): the file header, the sentinel,
 * the dtype code, the payload offset field (must be `offset + 64`) and that the payload lies inside
 * the file. The reserved bytes are not checked: pre-iOS18 writers could leave garbage in them
 * (reference/mil-hardware-peers.md §1.2).
 */
export function readBlobRecord(bytes: Uint8Array, offset: number): BlobRecord {
  const { view, code, writtenPayloadOffset } = readRawRecord(bytes, offset);
  const dtype = blobDtypeFromCode(code);
  if (dtype === undefined) {
    throw new MilBlobError(offset + 4, 'a known dtype code (1 = fp16, 4 = int8, ... 17)', `code ${code}`);
  }
  const payloadOffset = offset + BLOB_RECORD_BYTES;
  if (writtenPayloadOffset !== payloadOffset) {
    throw new MilBlobError(
      offset + 16,
      `payload offset field ${payloadOffset} (record + 64)`,
      `${view.getBigUint64(offset + 16, true)}`,
    );
  }
  const byteSize = readU64(view, offset + 8);
  if (byteSize === undefined || payloadOffset + byteSize > bytes.byteLength) {
    throw new MilBlobError(
      offset + 8,
      `a payload size that fits the file (at most ${bytes.byteLength - payloadOffset} bytes after byte ${payloadOffset})`,
      `${view.getBigUint64(offset + 8, true)} bytes`,
    );
  }
  const paddingBits = readU64(view, offset + 24);
  const maxPaddingBits = BITS_PER_ELEMENT[dtype] < 8 && byteSize > 0 ? 7 : 0;
  if (paddingBits === undefined || paddingBits > maxPaddingBits) {
    throw new MilBlobError(
      offset + 24,
      maxPaddingBits === 0 ? `padding-bits field 0 for ${dtype}` : `padding-bits field 0..7 for ${dtype}`,
      `${view.getBigUint64(offset + 24, true)}`,
    );
  }
  return { offset, dtype, byteSize, payloadOffset, paddingBits };
}

/** A field of a blob file that other tools fill differently from our writer. */
export type BlobField = 'payload offset' | 'dtype code' | 'payload size' | 'tensor count';

/**
 * A field of a record written by another tool that does not follow the MILBlob v2 layout, accepted
 * because such records compile on the ANE (maderix/ANE's `ane_int8_bench.m` writes a payload-offset
 * field of 0, dtype code 1 for int8 data, a size field that does not follow the shape and a header
 * count of 1 for 3 tensors). What the hardware reads from them is unverified (rule `blob-offset`).
 */
export interface BlobFieldDeviation {
  readonly field: BlobField;
  /** Record offset M of the record (0 for the file header's tensor count). */
  readonly recordOffset: number;
  /** Byte offset of the field in the file. */
  readonly at: number;
  readonly expected: string;
  readonly found: string;
}

/** `payload offset field (byte 80) is 0, expected 128 (record + 64)`. */
export function describeBlobDeviation(deviation: BlobFieldDeviation): string {
  return `${deviation.field} field (byte ${deviation.at}) is ${deviation.found}, expected ${deviation.expected}`;
}

export interface BlobReadOptions {
  /**
   * When given, a record written by another tool (its payload-offset field is not record + 64) is
   * read as the program declares it: payload at record + 64, the declared dtype and size. Each
   * field that differs from the MILBlob v2 layout is appended here. When absent, such records are
   * refused with a `MilBlobError` naming the field.
   */
  readonly deviations?: BlobFieldDeviation[];
}

/**
 * The record at `offset` as a program declaring `expected` reads it. A record in the MILBlob v2
 * layout (payload-offset field = record + 64) is returned as `readBlobRecord` reads it: comparing its
 * dtype and size with the declaration is the caller's job. A record written by another tool (any
 * other payload-offset field) is accepted when `options.deviations` is given: its payload is read at
 * record + 64 with the declared dtype and size (which must fit the file), and every field that
 * differs is reported. The header, the record's bounds and its sentinel are checked either way.
 */
export function readBlobRecordAs(
  bytes: Uint8Array,
  offset: number,
  expected: ExpectedBlobTensor<BlobDtype>,
  options: BlobReadOptions = {},
): BlobRecord {
  const { view, code, writtenPayloadOffset } = readRawRecord(bytes, offset);
  const payloadOffset = offset + BLOB_RECORD_BYTES;
  if (writtenPayloadOffset === payloadOffset || options.deviations === undefined) {
    return readBlobRecord(bytes, offset);
  }
  const { dtype, elementCount } = expected;
  const byteSize = blobPayloadBytes(dtype, elementCount);
  if (payloadOffset + byteSize > bytes.byteLength) {
    throw new MilBlobError(
      payloadOffset,
      `${byteSize} payload bytes for the declared ${dtype} × ${elementCount} at record + 64 (the payload-offset field is ${view.getBigUint64(offset + 16, true)}, so the record was read as another tool writes it)`,
      `${Math.max(0, bytes.byteLength - payloadOffset)} bytes to the end of the file`,
    );
  }
  const deviations: BlobFieldDeviation[] = [
    {
      field: 'payload offset',
      recordOffset: offset,
      at: offset + 16,
      expected: `${payloadOffset} (record + 64)`,
      found: `${view.getBigUint64(offset + 16, true)}`,
    },
  ];
  if (code !== BLOB_DTYPE_CODES[dtype]) {
    const named = blobDtypeFromCode(code);
    deviations.push({
      field: 'dtype code',
      recordOffset: offset,
      at: offset + 4,
      expected: `${BLOB_DTYPE_CODES[dtype]} (${dtype}, as the program declares)`,
      found: named === undefined ? `${code} (unknown)` : `${code} (${named})`,
    });
  }
  const writtenSize = view.getBigUint64(offset + 8, true);
  if (writtenSize !== BigInt(byteSize)) {
    deviations.push({
      field: 'payload size',
      recordOffset: offset,
      at: offset + 8,
      expected: `${byteSize} (${dtype} × ${elementCount})`,
      found: `${writtenSize}`,
    });
  }
  options.deviations.push(...deviations);
  const paddingBits = byteSize * 8 - elementCount * BITS_PER_ELEMENT[dtype];
  return { offset, dtype, byteSize, payloadOffset, paddingBits };
}

/** The header's tensor count field. */
export function blobTensorCount(bytes: Uint8Array): number {
  readHeader(bytes);
  return dataViewOf(bytes).getUint32(0, true);
}

/** A copy of `length` bytes of `bytes` from `start` in a fresh, zero-offset ArrayBuffer (never a Node Buffer pool view). */
export function copyBytes(
  bytes: Uint8Array,
  start = 0,
  length = bytes.byteLength - start,
): Uint8Array<ArrayBuffer> {
  const copy = new Uint8Array(length);
  copy.set(bytes.subarray(start, start + length));
  return copy;
}

/**
 * Reads every record of a blob file in order, checking the header's tensor count, the 64-byte
 * alignment chain between records and that nothing follows the last payload.
 */
export function readBlobFile(bytes: Uint8Array): BlobFileContents {
  const { count, version } = readHeader(bytes);
  const maxRecords = Math.floor((bytes.byteLength - BLOB_HEADER_BYTES) / BLOB_RECORD_BYTES);
  if (count > maxRecords) {
    throw new MilBlobError(
      0,
      `a tensor count that fits a ${bytes.byteLength}-byte file (at most ${maxRecords})`,
      `count ${count}`,
    );
  }
  const records: BlobRecord[] = [];
  let end = BLOB_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    const record = readBlobRecord(bytes, alignToBlobRecord(end));
    records.push(record);
    end = record.payloadOffset + record.byteSize;
  }
  if (end !== bytes.byteLength) {
    throw new MilBlobError(
      end,
      `end of file after ${count} tensor${count === 1 ? '' : 's'}`,
      `${bytes.byteLength - end} more bytes`,
    );
  }
  return { version, records };
}

/**
 * Reads the tensor whose record is at `offset`, checking that it holds `expected.elementCount`
 * elements of `expected.dtype` (what the program's BLOBFILE type declares). Returns a copy, so the
 * result is aligned and independent of `bytes` (which may be any view, e.g. a Node `Buffer` from
 * `fs.readFileSync` at any byte offset). With `options.deviations`, records other tools write are
 * accepted as `readBlobRecordAs` describes.
 */
export function readBlobTensor<D extends BlobDtype>(
  bytes: Uint8Array,
  offset: number,
  expected: ExpectedBlobTensor<D>,
  options: BlobReadOptions = {},
): BlobElementArrays[D] {
  const { dtype, elementCount } = expected;
  if (!Number.isSafeInteger(elementCount) || elementCount < 0) {
    throw new RangeError(`readBlobTensor: element count must be a non-negative integer, got ${elementCount}`);
  }
  const record = readBlobRecordAs(bytes, offset, expected, options);
  const expectedBytes = blobPayloadBytes(dtype, elementCount);
  if (record.dtype !== dtype || record.byteSize !== expectedBytes) {
    throw new MilBlobError(
      offset,
      `${dtype} × ${elementCount} elements (${expectedBytes} bytes)`,
      `${record.dtype} with ${record.byteSize} bytes`,
    );
  }
  // A fresh buffer: `bytes.slice` of a Node Buffer is a view into Node's pool, not a copy.
  const payload = copyBytes(bytes, record.payloadOffset, record.byteSize);
  const arrayType = TYPED_ARRAY_FOR_DTYPE[dtype];
  if (arrayType === undefined) return payload as BlobElementArrays[D];
  return new arrayType(payload.buffer, 0, elementCount) as BlobElementArrays[D];
}
