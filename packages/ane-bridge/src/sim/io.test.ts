import { describe, expect, it } from 'vitest';
import { readFp16Buffer, readFp32Buffer, writeFp16Buffer, writeFp32Buffer } from './io';

describe('device buffer conversion', () => {
  const values = Float32Array.of(1, -2.5, 65504, Number.NEGATIVE_INFINITY, 2 ** -24, -0);

  for (const offset of [0, 1, 2]) {
    it(`fp16 round trip at byte offset ${offset} is exact for fp16 values, little-endian`, () => {
      const backing = new Uint8Array(offset + 12);
      const bytes = backing.subarray(offset);
      writeFp16Buffer(values, bytes);
      expect([bytes[0], bytes[1]]).toEqual([0x00, 0x3c]);
      const back = new Float32Array(6);
      readFp16Buffer(bytes, back);
      expect([...back]).toEqual([...values]);
      expect(Object.is(back[5], -0)).toBe(true);
    });

    it(`fp32 round trip at byte offset ${offset}, little-endian`, () => {
      const backing = new Uint8Array(offset + 24);
      const bytes = backing.subarray(offset);
      const fp32 = Float32Array.of(0.1, -3, 1e30, 2 ** -149, 7, 8);
      writeFp32Buffer(fp32, bytes);
      expect([bytes[4], bytes[5], bytes[6], bytes[7]]).toEqual([0x00, 0x00, 0x40, 0xc0]);
      const back = new Float32Array(6);
      readFp32Buffer(bytes, back);
      expect([...back]).toEqual([...fp32]);
    });
  }

  it('writing fp16 rounds values to nearest even', () => {
    const bytes = new Uint8Array(2);
    writeFp16Buffer(Float32Array.of(1 + 2 ** -11), bytes);
    expect([bytes[0], bytes[1]]).toEqual([0x00, 0x3c]);
  });
});
