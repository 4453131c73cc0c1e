/**
 * One binary blob for a saved optimizer state, so a checkpoint writes it in one go:
 *
 *   bytes [0, 8)     magic 'ANEOPTIM'
 *   bytes [8, 12)    u32 little-endian: container version (1)
 *   bytes [12, 16)   u32 little-endian: n, the byte length of the JSON header
 *   bytes [16, 16+n) UTF-8 JSON: OptimizerStateMeta, padded with spaces so data starts 8-aligned
 *   then             data: fp32 little-endian, every buffer of the state (meta.buffers says where)
 *
 * Decoding bounds-checks everything and copies bytes, so NaN payloads and -0 survive bit for bit.
 */
import { describeValue, OptimizerStateError } from './errors';
import type { OptimizerState, OptimizerStateMeta } from './optimizer';

const MAGIC = 'ANEOPTIM';
const CONTAINER_VERSION = 1;
const HEADER_BYTES = 16;

function assertLittleEndian(): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new OptimizerStateError('optimizer state files are little-endian; this host is big-endian', {
      field: 'endianness',
    });
  }
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
  const out = new Uint8Array(HEADER_BYTES + json.length + state.data.byteLength);
  for (let i = 0; i < MAGIC.length; i++) out[i] = MAGIC.charCodeAt(i);
  const header = new DataView(out.buffer);
  header.setUint32(8, CONTAINER_VERSION, true);
  header.setUint32(12, json.length, true);
  out.set(json, HEADER_BYTES);
  out.set(
    new Uint8Array(state.data.buffer, state.data.byteOffset, state.data.byteLength),
    HEADER_BYTES + json.length,
  );
  return out;
}

export function decodeOptimizerState(bytes: Uint8Array): OptimizerState {
  assertLittleEndian();
  const fail = (message: string, field: string): never => {
    throw new OptimizerStateError(`decodeOptimizerState: ${message}`, { field });
  };
  if (!(bytes instanceof Uint8Array))
    fail(`expected a Uint8Array (or Buffer), got ${describeValue(bytes)}`, 'bytes');
  if (bytes.length < HEADER_BYTES) fail(`${bytes.length} bytes is too short for a state file`, 'magic');
  const magic = String.fromCharCode(...bytes.subarray(0, MAGIC.length));
  if (magic !== MAGIC) {
    fail(
      `this is not an ane-optim state file (magic ${JSON.stringify(magic)}, expected "${MAGIC}")`,
      'magic',
    );
  }
  const header = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = header.getUint32(8, true);
  if (version !== CONTAINER_VERSION) {
    fail(
      `file version ${version} is not supported (this ane-optim reads version ${CONTAINER_VERSION})`,
      'version',
    );
  }
  const jsonLength = header.getUint32(12, true);
  if (HEADER_BYTES + jsonLength > bytes.length) {
    fail(
      `the header claims ${jsonLength} bytes of JSON but the file has ${bytes.length - HEADER_BYTES}`,
      'meta',
    );
  }
  let meta: OptimizerStateMeta;
  try {
    meta = JSON.parse(new TextDecoder().decode(bytes.subarray(HEADER_BYTES, HEADER_BYTES + jsonLength)));
  } catch (error) {
    return fail(`the JSON header does not parse: ${(error as Error).message}`, 'meta');
  }
  const dataBytes = bytes.length - HEADER_BYTES - jsonLength;
  if (dataBytes % 4 !== 0)
    fail(`the data section has ${dataBytes} bytes, not a whole number of fp32 values`, 'data');
  const data = new Float32Array(dataBytes / 4);
  new Uint8Array(data.buffer).set(bytes.subarray(HEADER_BYTES + jsonLength));
  return { meta, data };
}
