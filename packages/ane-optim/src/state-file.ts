/**
 * One binary blob for a saved optimizer state, so a checkpoint writes it in one go:
 *
 *   bytes [0, 8)      magic 'ANEOPTIM'
 *   bytes [8, 12)     u32 little-endian: container version (2)
 *   bytes [12, 16)    u32 little-endian: n, the byte length of the JSON header
 *   bytes [16, 24)    u64 little-endian: d, the byte length of the data section
 *   bytes [24, 24+n)  UTF-8 JSON: OptimizerStateMeta, padded with spaces so data starts 8-aligned
 *   then d bytes      data: fp32 little-endian, every buffer of the state (meta.buffers says where)
 *   last 4 bytes      u32 little-endian: CRC-32 (IEEE, as zlib's) of every byte before it
 *
 * Decoding bounds-checks everything, checks the CRC before it reads anything else, and copies
 * bytes, so NaN payloads and -0 survive bit for bit. Version 1 (no checksum) was never released:
 * it is refused with a message, not read.
 */
import * as zlib from 'node:zlib';
import { describeValue, OptimizerStateError } from './errors';
import type { OptimizerState, OptimizerStateMeta } from './optimizer';

const MAGIC = 'ANEOPTIM';
const CONTAINER_VERSION = 2;
const HEADER_BYTES = 24;
const CRC_BYTES = 4;

let crcTable: Uint32Array | undefined;

/**
 * CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, zlib's), continuing from `crc` (start with
 * 0): the readable twin of `zlib.crc32`, used where Node lacks it (before 20.15).
 */
export function crc32Reference(bytes: Uint8Array, crc = 0): number {
  if (crcTable === undefined) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  const table = crcTable;
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = table[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

/** CRC-32 of `bytes`: zlib's native one (GB/s; a state file is hundreds of MB), else the twin. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  return typeof nativeCrc32 === 'function' ? nativeCrc32(bytes, crc) >>> 0 : crc32Reference(bytes, crc);
}

function assertLittleEndian(): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new OptimizerStateError('optimizer state files are little-endian; this host is big-endian', {
      field: 'endianness',
    });
  }
}

export interface DecodeOptimizerStateOptions {
  /** Where the bytes came from (a file path), named in every error. */
  source?: string;
}

export function encodeOptimizerState(state: OptimizerState): Uint8Array {
  assertLittleEndian();
  let json = new TextEncoder().encode(JSON.stringify(state.meta));
  const padded = Math.ceil((HEADER_BYTES + json.length) / 8) * 8 - HEADER_BYTES;
  if (padded !== json.length) {
    const withPadding = new Uint8Array(padded).fill(0x20);
    withPadding.set(json);
    json = withPadding;
  }
  const dataStart = HEADER_BYTES + json.length;
  const out = new Uint8Array(dataStart + state.data.byteLength + CRC_BYTES);
  for (let i = 0; i < MAGIC.length; i++) out[i] = MAGIC.charCodeAt(i);
  const header = new DataView(out.buffer);
  header.setUint32(8, CONTAINER_VERSION, true);
  header.setUint32(12, json.length, true);
  header.setBigUint64(16, BigInt(state.data.byteLength), true);
  out.set(json, HEADER_BYTES);
  out.set(new Uint8Array(state.data.buffer, state.data.byteOffset, state.data.byteLength), dataStart);
  const crcAt = out.length - CRC_BYTES;
  header.setUint32(crcAt, crc32(out.subarray(0, crcAt)), true);
  return out;
}

/**
 * Reads a blob written by `encodeOptimizerState`. Throws OptimizerStateError (naming `source`,
 * when given) on anything but an intact file of this version: wrong magic, an old or unknown
 * version, a truncated or over-long file, a checksum mismatch (a flipped bit), bad JSON.
 */
export function decodeOptimizerState(
  bytes: Uint8Array,
  options: DecodeOptimizerStateOptions = {},
): OptimizerState {
  assertLittleEndian();
  const where = options.source === undefined ? '' : ` (${options.source})`;
  const fail = (message: string, field: string): never => {
    throw new OptimizerStateError(`decodeOptimizerState${where}: ${message}`, {
      field,
      ...(options.source !== undefined ? { file: options.source } : {}),
    });
  };
  if (!(bytes instanceof Uint8Array))
    fail(`expected a Uint8Array (or Buffer), got ${describeValue(bytes)}`, 'bytes');
  const magic = String.fromCharCode(...bytes.subarray(0, MAGIC.length));
  if (magic.length < MAGIC.length && MAGIC.startsWith(magic))
    fail(`${bytes.length} bytes is too short for a state file (truncated)`, 'magic');
  if (magic !== MAGIC) {
    fail(
      `this is not an ane-optim state file (magic ${JSON.stringify(magic)}, expected "${MAGIC}")`,
      'magic',
    );
  }
  if (bytes.length < 12) fail(`${bytes.length} bytes is too short for a state file (truncated)`, 'version');
  const header = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = header.getUint32(8, true);
  if (version !== CONTAINER_VERSION) {
    fail(
      version < CONTAINER_VERSION
        ? `file version ${version} is an unreleased format without a checksum, which this ane-optim no longer reads (it reads version ${CONTAINER_VERSION}); save the state again`
        : `file version ${version} is newer than this ane-optim reads (version ${CONTAINER_VERSION}); upgrade ane-optim`,
      'version',
    );
  }
  if (bytes.length < HEADER_BYTES + CRC_BYTES)
    fail(`${bytes.length} bytes is too short for a state file (truncated)`, 'length');
  const jsonLength = header.getUint32(12, true);
  const dataLength = header.getBigUint64(16, true);
  const expected = BigInt(HEADER_BYTES + jsonLength + CRC_BYTES) + dataLength;
  if (BigInt(bytes.length) !== expected) {
    fail(
      `the header says the file has ${expected} bytes (${jsonLength} of JSON, ${dataLength} of data) but it has ${bytes.length}: ${BigInt(bytes.length) < expected ? 'it is truncated' : 'bytes follow its end'}`,
      'length',
    );
  }
  const crcAt = bytes.length - CRC_BYTES;
  const stored = header.getUint32(crcAt, true);
  const actual = crc32(bytes.subarray(0, crcAt));
  if (stored !== actual) {
    fail(
      `checksum mismatch (stored CRC-32 ${hex(stored)}, computed ${hex(actual)}): the file is corrupt; load another copy or an earlier checkpoint`,
      'checksum',
    );
  }
  let meta: OptimizerStateMeta;
  try {
    meta = JSON.parse(new TextDecoder().decode(bytes.subarray(HEADER_BYTES, HEADER_BYTES + jsonLength)));
  } catch (error) {
    return fail(`the JSON header does not parse: ${(error as Error).message}`, 'meta');
  }
  const dataBytes = Number(dataLength);
  if (dataBytes % 4 !== 0)
    fail(`the data section has ${dataBytes} bytes, not a whole number of fp32 values`, 'data');
  const dataStart = HEADER_BYTES + jsonLength;
  const data = new Float32Array(dataBytes / 4);
  new Uint8Array(data.buffer).set(bytes.subarray(dataStart, dataStart + dataBytes));
  return { meta, data };
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}
