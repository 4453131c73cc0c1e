import { describe, expect, it } from 'vitest';
import {
  decodeFp16,
  encodeFp16,
  FP16_MAX,
  fp16BitsBlockToFp32,
  fp16BitsFromNumber,
  fp16BitsToFp32,
  fp32BlockToFp16Bits,
  fp32ToFp16Bits,
  numberFromFp16Bits,
  roundToFp16,
  roundToFp16InPlace,
} from './fp16';

describe('fp16', () => {
  it('encodes hand-checked values', () => {
    // Values from the IEEE 754 binary16 tables.
    expect(fp16BitsFromNumber(1)).toBe(0x3c00);
    expect(fp16BitsFromNumber(-2)).toBe(0xc000);
    expect(fp16BitsFromNumber(65504)).toBe(0x7bff);
    expect(fp16BitsFromNumber(2 ** -24)).toBe(0x0001);
    expect(fp16BitsFromNumber(2 ** -14)).toBe(0x0400);
    expect(fp16BitsFromNumber(0)).toBe(0);
    expect(fp16BitsFromNumber(-0)).toBe(0x8000);
    expect(fp16BitsFromNumber(Number.POSITIVE_INFINITY)).toBe(0x7c00);
    expect(fp16BitsFromNumber(Number.NaN) & 0x7c00).toBe(0x7c00);
    expect(fp16BitsFromNumber(Number.NaN) & 0x3ff).not.toBe(0);
  });

  it('rounds to nearest, ties to even, and overflows to infinity', () => {
    // The corpus README: fp16(0.176777) is 0.1767578125.
    expect(roundToFp16(0.176777)).toBe(0.1767578125);
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1).
    expect(roundToFp16(1 + 2 ** -11)).toBe(1);
    expect(roundToFp16(1 + 3 * 2 ** -11)).toBe(1 + 2 * 2 ** -10);
    expect(roundToFp16(65519)).toBe(FP16_MAX);
    expect(roundToFp16(65520)).toBe(Number.POSITIVE_INFINITY);
    expect(roundToFp16(2 ** -26)).toBe(0);
  });

  it('round-trips every fp16 bit pattern', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const decoded = decodeFp16(all);
    const encoded = encodeFp16(decoded);
    for (let h = 0; h < 65536; h++) {
      const encodesNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (encodesNaN) expect(Number.isNaN(numberFromFp16Bits(h))).toBe(true);
      else expect(encoded[h]).toBe(h);
    }
  });

  it('rounds fp32 arrays in place exactly as the scalar rounding does, over the whole fp32 range', () => {
    // Every 4099th fp32 bit pattern (~1M values: both signs, every exponent, NaNs, infinities,
    // subnormals), plus the edges of the fp16 range.
    const patterns: number[] = [];
    for (let u = 0; u < 2 ** 32; u += 4099) patterns.push(u);
    const edges = [
      65504,
      65519.99,
      65520,
      65536,
      2 ** -14,
      2 ** -15,
      2 ** -24,
      2 ** -25,
      1.5 * 2 ** -25,
      2048.5,
    ];
    const values = new Float32Array(patterns.length + 2 * edges.length);
    new Uint32Array(values.buffer, 0, patterns.length).set(patterns);
    edges.forEach((e, i) => {
      values[patterns.length + 2 * i] = e;
      values[patterns.length + 2 * i + 1] = -e;
    });
    const expected = Array.from(values, (v) => roundToFp16(v));
    roundToFp16InPlace(values);
    for (let i = 0; i < values.length; i++) {
      if (Number.isNaN(expected[i])) expect(Number.isNaN(values[i])).toBe(true);
      else if (values[i] !== expected[i] || Object.is(values[i], -0) !== Object.is(expected[i], -0)) {
        expect.fail(`element ${i}: got ${values[i]}, expected ${expected[i]}`);
      }
    }
  });

  it('converts float32 as F16C does: double rounding through fp32, saturation, NaN payloads', () => {
    // 1 + 2^-11 + 2^-40 rounds up to 1 + 2^-10 from float64, but float32 drops the 2^-40 first and
    // the tie 1 + 2^-11 goes to the even 1.
    const x = 1 + 2 ** -11 + 2 ** -40;
    expect(fp16BitsFromNumber(x)).toBe(0x3c01);
    expect(fp32ToFp16Bits(x)).toBe(0x3c00);
    expect(fp32ToFp16Bits(65520)).toBe(0x7c00);
    expect(fp32ToFp16Bits(65520, true)).toBe(0x7bff);
    expect(fp32ToFp16Bits(Number.NEGATIVE_INFINITY, true)).toBe(0xfc00);
    expect(fp32ToFp16Bits(-0)).toBe(0x8000);
    expect(fp32ToFp16Bits(2 ** -25)).toBe(0); // the tie between 0 and 2^-24 goes to even 0
    expect(fp32ToFp16Bits(3 * 2 ** -25)).toBe(2); // 1.5 units of 2^-24 ties to even 2
    // A signalling NaN with payload 0x3ff << 13 comes out quiet with the payload's top bits.
    const nan = new Float32Array(new Uint32Array([0xff800000 | (0x1ff << 13)]).buffer)[0]!;
    expect(fp32ToFp16Bits(nan)).toBe(0xfe00 | 0x1ff);
    expect(fp16BitsToFp32(0x3555)).toBe(0.333251953125);
    expect(fp16BitsToFp32(0x0001)).toBe(2 ** -24);
    const payload = new Uint32Array(new Float32Array([fp16BitsToFp32(0x7d23)]).buffer)[0];
    expect(payload).toBe(0x7fc00000 | (0x123 << 13));
  });

  it('converts strided blocks both ways, touching only the block', () => {
    // src: a 2 x 3 block at offset 1 with row stride 4; dst: offset 2, row stride 5.
    const src = new Float32Array([9, 1, 2, 3, 9, -1, 0.5, 65504, 9]);
    const dst = new Uint16Array(12).fill(0xaaaa);
    fp32BlockToFp16Bits(src, dst, 2, 3, 1, 4, 2, 5);
    expect([...dst]).toEqual([
      0xaaaa, 0xaaaa, 0x3c00, 0x4000, 0x4200, 0xaaaa, 0xaaaa, 0xbc00, 0x3800, 0x7bff, 0xaaaa, 0xaaaa,
    ]);
    const back = new Float32Array(7).fill(7);
    fp16BitsBlockToFp32(dst, back, 2, 3, 2, 5, 0, 4);
    expect([...back]).toEqual([1, 2, 3, 7, -1, 0.5, 65504]);
    // Empty blocks return at once, whatever the other extent.
    fp32BlockToFp16Bits(src, dst, 2 ** 52, 0);
    fp16BitsBlockToFp32(dst, back, 0, 2 ** 52);
  });
});
