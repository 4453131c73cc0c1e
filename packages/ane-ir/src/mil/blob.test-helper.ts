/** Test helpers: weight files as other tools write them. */

/**
 * A weight file as maderix/ANE's ane_int8_bench.m writes it: one file, three int8 records, header
 * count 1, each record with dtype code 1 (fp16), a payload-offset field of 0 and a size field of the
 * channel count (not the payload bytes); payloads at record + 64.
 */
export function maderixBenchFile(
  payloads: readonly Int8Array[],
  channels: readonly number[],
): {
  bytes: Uint8Array;
  offsets: number[];
} {
  const offsets: number[] = [];
  let end = 64;
  for (const payload of payloads) {
    const record = Math.ceil(end / 64) * 64;
    offsets.push(record);
    end = record + 64 + payload.byteLength;
  }
  const bytes = new Uint8Array(end);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, 1, true);
  view.setUint32(4, 2, true);
  payloads.forEach((payload, i) => {
    const at = offsets[i]!;
    view.setUint32(at, 0xdeadbeef, true);
    view.setUint32(at + 4, 1, true);
    view.setBigUint64(at + 8, BigInt(channels[i]!), true);
    view.setBigUint64(at + 16, 0n, true);
    bytes.set(new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength), at + 64);
  });
  return { bytes, offsets };
}
